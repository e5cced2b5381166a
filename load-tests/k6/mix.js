// Realistic mix per iteration: 70 % OCSP GET, 20 % OCSP POST, 5 % CRL, 5 % AIA (weights
// overridable: W_GET, W_POST, W_CRL, W_AIA). Same request sets as the single scenarios.
// CRL_ANY=1 (with CHECK=1): CRLs change during the run (revocations, fleet.sh), so only their
// status and content type are checked; OCSP and AIA bodies are still compared byte for byte.
import http from 'k6/http';
import { BASE, FIX, STATIC, CHECK, options as opts, lines, pad, bin, verify, summary } from './common.js';

const getUrls = lines(`${FIX}/reqs/get.txt`).map((s) => `${BASE}/ocsp/${s}`);
const postBodies = lines(`${FIX}/reqs/post.list`).map((p) => bin(p));
const crlPaths = lines(`${STATIC}/crl.list`);
const aiaPaths = lines(`${STATIC}/aia.list`);
const expect = CHECK ? getUrls.map((_, n) => bin(`${STATIC}/expect/${pad(n)}.der`)) : [];
const canned = CHECK && __ENV.POST_CANNED === '1' ? bin(`${STATIC}/ocsp-post.der`) : null;
const crlBytes = CHECK && __ENV.CRL_ANY !== '1' ? crlPaths.map((p) => bin(`${STATIC}${p}`)) : [];
const aiaBytes = CHECK ? aiaPaths.map((p) => bin(`${STATIC}${p}`)) : [];
const w = [Number(__ENV.W_GET || 70), Number(__ENV.W_POST || 20), Number(__ENV.W_CRL || 5), Number(__ENV.W_AIA || 5)];
const total = w.reduce((a, b) => a + b, 0);
const rt = CHECK ? 'binary' : 'none';
const P = {
  get: { tags: { name: 'ocsp_get' }, responseType: rt },
  post: { headers: { 'Content-Type': 'application/ocsp-request' }, tags: { name: 'ocsp_post' }, responseType: rt },
  crl: { tags: { name: 'crl' }, responseType: rt },
  aia: { tags: { name: 'aia' }, responseType: rt },
};

export const options = opts();
export default function () {
  const r = Math.random() * total;
  if (r < w[0]) {
    const i = Math.floor(Math.random() * getUrls.length);
    const res = http.get(getUrls[i], P.get);
    if (CHECK) verify(res, expect[i], 'application/ocsp-response', `GET #${i}`);
  } else if (r < w[0] + w[1]) {
    const i = Math.floor(Math.random() * postBodies.length);
    const res = http.post(`${BASE}/ocsp`, postBodies[i], P.post);
    if (CHECK) verify(res, canned || expect[i], 'application/ocsp-response', `POST #${i}`);
  } else if (r < w[0] + w[1] + w[2]) {
    const i = Math.floor(Math.random() * crlPaths.length);
    const res = http.get(`${BASE}${crlPaths[i]}`, P.crl);
    if (CHECK) verify(res, crlBytes[i] || null, 'application/pkix-crl', crlPaths[i]);
  } else {
    const i = Math.floor(Math.random() * aiaPaths.length);
    const res = http.get(`${BASE}${aiaPaths[i]}`, P.aia);
    if (CHECK) verify(res, aiaBytes[i], 'application/pkix-cert', aiaPaths[i]);
  }
}
export const handleSummary = summary;
