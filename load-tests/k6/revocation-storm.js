// The OCSP load that runs DURING the revocation storm (the revocations themselves are made by
// lib/storm.py through `cloudpki cert revoke`, as there is no HTTP hook for them).
// 90 % GETs over the sampled serials, every body compared with the bytes fetched before the
// storm (those serials are not revoked by the storm, so every snapshot swap must keep serving
// exactly them); 10 % GETs for the storm serials (their answers flip to revoked: only HTTP 200
// + content type are checked here, storm.py times the flip). Run in rate mode (RATE).
import http from 'k6/http';
import { BASE, FIX, STATIC, options as opts, lines, pad, bin, verify, summary } from './common.js';

const urls = lines(`${FIX}/reqs/get.txt`).map((s) => `${BASE}/ocsp/${s}`);
const expect = urls.map((_, n) => bin(`${STATIC}/expect/${pad(n)}.der`));
const stormUrls = lines(`${FIX}/reqs/storm.tsv`).map((l) => `${BASE}/ocsp/${l.split('\t')[2]}`);
const params = { tags: { name: 'ocsp_get' }, responseType: 'binary' };
const stormParams = { tags: { name: 'ocsp_get_storm' }, responseType: 'binary' };

export const options = opts();
export default function () {
  if (Math.random() < 0.9) {
    const i = Math.floor(Math.random() * urls.length);
    verify(http.get(urls[i], params), expect[i], 'application/ocsp-response', `GET #${i}`);
  } else {
    const i = Math.floor(Math.random() * stormUrls.length);
    verify(http.get(stormUrls[i], stormParams), null, 'application/ocsp-response', `storm GET #${i}`);
  }
}
export const handleSummary = summary;
