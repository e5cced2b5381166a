// AIA: GET /cacerts/{caId}_v1/cert.cer (DER CA certificate) for the issuing CA and the root.
import http from 'k6/http';
import { BASE, STATIC, CHECK, options as opts, lines, bin, verify, summary } from './common.js';

const paths = lines(`${STATIC}/aia.list`);
const urls = paths.map((p) => `${BASE}${p}`);
const expect = CHECK ? paths.map((p) => bin(`${STATIC}${p}`)) : [];
const params = { tags: { name: 'aia' }, responseType: CHECK ? 'binary' : 'none' };

export const options = opts();
let i = 0;
export default function () {
  i = (i + 1) % urls.length;
  const res = http.get(urls[i], params);
  if (CHECK) verify(res, expect[i], 'application/pkix-cert', paths[i]);
}
export const handleSummary = summary;
