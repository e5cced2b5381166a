// CRL download: GET /crls/{caId}_v1/current.crl for the issuing CA (50 entries in the default
// fixture) and the root, alternating.
import http from 'k6/http';
import { BASE, STATIC, CHECK, options as opts, lines, bin, verify, summary } from './common.js';

const paths = lines(`${STATIC}/crl.list`);
const urls = paths.map((p) => `${BASE}${p}`);
const expect = CHECK ? paths.map((p) => bin(`${STATIC}${p}`)) : [];
const params = { tags: { name: 'crl' }, responseType: CHECK ? 'binary' : 'none' };

export const options = opts();
let i = 0;
export default function () {
  i = (i + 1) % urls.length;
  const res = http.get(urls[i], params);
  if (CHECK) verify(res, expect[i], 'application/pkix-crl', paths[i]);
}
export const handleSummary = summary;
