// Shared by the scenario scripts. Environment (all set by run.sh):
//   BASE      target base URL, e.g. http://127.0.0.1:18190 (no trailing slash)
//   FIX       fixture dir (reqs/get.txt, reqs/post.list, ...)      STATIC  fetched bytes (expect/, crl.list, aia.list)
//   DURATION  e.g. 10s      VUS  concurrent VUs (peak mode; pre-allocated VUs in rate mode)
//   RATE      if set: constant-arrival-rate at RATE req/s (open model: latency at a fixed load);
//             else constant-vus (closed model: as fast as the target answers = peak)
//   CHECK=1   keep bodies and compare every answer with the expected bytes (counts wrong_answers);
//             off for peak runs, where body handling in JS would make k6 even more the bottleneck
//   POST_CANNED=1  the target answers every POST with one canned body (nginx static baseline)
//   SUMMARY   where handleSummary writes the JSON summary
import { Counter } from 'k6/metrics';
import crypto from 'k6/crypto';

export const BASE = __ENV.BASE;
export const FIX = __ENV.FIX;
export const STATIC = __ENV.STATIC;
export const CHECK = __ENV.CHECK === '1';
export const wrong = new Counter('wrong_answers');

export function options() {
  const duration = __ENV.DURATION || '10s';
  const vus = Number(__ENV.VUS || 64);
  const load = __ENV.RATE
    ? { executor: 'constant-arrival-rate', rate: Number(__ENV.RATE), timeUnit: '1s', duration,
        preAllocatedVUs: vus, maxVUs: Number(__ENV.MAXVUS || 4 * vus), gracefulStop: '3s' }
    : { executor: 'constant-vus', vus, duration, gracefulStop: '3s' };
  return {
    scenarios: { load },
    discardResponseBodies: !CHECK,
    summaryTrendStats: ['avg', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
  };
}

export function lines(path) {
  return open(path).split('\n').filter(Boolean);
}

export function pad(n) {
  return String(n).padStart(4, '0');
}

export function bin(path) {
  return open(path, 'b');
}

// Same bytes: equal length and equal SHA-256, computed natively by k6/crypto (a JavaScript loop
// over the bytes cost k6 two thirds of its throughput: 2.0k vs 6.3k req/s on one core here).
const digests = new Map();   // expected body -> its hex SHA-256 (per VU)
function same(a, b) {
  if (!a || a.byteLength !== b.byteLength) return false;
  let d = digests.get(b);
  if (d === undefined) {
    d = crypto.sha256(b, 'hex');
    digests.set(b, d);
  }
  return crypto.sha256(a, 'hex') === d;
}

// Counts a wrong answer (status, content type or bytes); prints the first few.
let reported = 0;
export function verify(res, want, ctype, what) {
  const ok = res.status === 200 && res.headers['Content-Type'] === ctype && (want === null || same(res.body, want));
  if (!ok) {
    wrong.add(1);
    if (reported++ < 3) {
      console.error(`wrong answer (${what}): HTTP ${res.status} ${res.headers['Content-Type']} ` +
                    `len=${res.body ? res.body.byteLength : 0} error=${res.error || ''}`);
    }
  }
  return ok;
}

export function summary(data) {
  return { [__ENV.SUMMARY || '/dev/null']: JSON.stringify(data) };
}
