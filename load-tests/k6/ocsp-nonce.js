// cloudpki only (a static server cannot echo nonces): POST requests carrying a nonce, which
// cloudpki signs on demand within its signing bounds (concurrency 2, queue 64 by default) and
// answers `tryLater` past them. Counts try_later answers; everything else must be a real answer.
import http from 'k6/http';
import { Counter } from 'k6/metrics';
import { BASE, FIX, options as opts, lines, bin, summary, wrong } from './common.js';

const tryLater = new Counter('try_later');
const bodies = lines(`${FIX}/reqs/nonce.list`).map((p) => bin(p));
const url = `${BASE}/ocsp`;
const params = { headers: { 'Content-Type': 'application/ocsp-request' }, tags: { name: 'ocsp_nonce' }, responseType: 'binary' };

export const options = opts();
let i = Math.floor(Math.random() * bodies.length);
export default function () {
  i = (i + 1) % bodies.length;
  const res = http.post(url, bodies[i], params);
  const len = res.body ? res.body.byteLength : 0;
  // tryLater is the 5-byte OCSPResponse 30 03 0a 01 03; a signed answer is a few hundred bytes
  if (res.status === 200 && len === 5 && new Uint8Array(res.body)[4] === 3) tryLater.add(1);
  else if (res.status !== 200 || len < 100) wrong.add(1);
}
export const handleSummary = summary;
