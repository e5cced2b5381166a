// OCSP GET /ocsp/{urlencoded base64 DER} over the sampled serials (SHA-1 CertID, no nonce:
// pre-signed answers), round-robin from a random start per VU. See common.js for the env.
import http from 'k6/http';
import { BASE, FIX, STATIC, CHECK, options as opts, lines, pad, bin, verify, summary } from './common.js';

const urls = lines(`${FIX}/reqs/get.txt`).map((s) => `${BASE}/ocsp/${s}`);
const expect = CHECK ? urls.map((_, n) => bin(`${STATIC}/expect/${pad(n)}.der`)) : [];
const params = { tags: { name: 'ocsp_get' }, responseType: CHECK ? 'binary' : 'none' };

export const options = opts();
let i = Math.floor(Math.random() * urls.length);
export default function () {
  i = (i + 1) % urls.length;
  const res = http.get(urls[i], params);
  if (CHECK) verify(res, expect[i], 'application/ocsp-response', `GET #${i}`);
}
export const handleSummary = summary;
