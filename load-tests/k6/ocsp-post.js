// OCSP POST /ocsp (Content-Type application/ocsp-request) with the sampled DER requests.
// With POST_CANNED=1 (nginx baseline) every answer is compared with the one canned body.
import http from 'k6/http';
import { BASE, FIX, STATIC, CHECK, options as opts, lines, pad, bin, verify, summary } from './common.js';

const bodies = lines(`${FIX}/reqs/post.list`).map((p) => bin(p));
const canned = CHECK && __ENV.POST_CANNED === '1' ? bin(`${STATIC}/ocsp-post.der`) : null;
const expect = CHECK && !canned ? bodies.map((_, n) => bin(`${STATIC}/expect/${pad(n)}.der`)) : [];
const url = `${BASE}/ocsp`;
const params = {
  headers: { 'Content-Type': 'application/ocsp-request' },
  tags: { name: 'ocsp_post' },
  responseType: CHECK ? 'binary' : 'none',
};

export const options = opts();
let i = Math.floor(Math.random() * bodies.length);
export default function () {
  i = (i + 1) % bodies.length;
  const res = http.post(url, bodies[i], params);
  if (CHECK) verify(res, canned || expect[i], 'application/ocsp-response', `POST #${i}`);
}
export const handleSummary = summary;
