#!/usr/bin/env python3
"""Validate one leaf with pyhanko-certvalidator, revocation from CRLs only, fetched over
HTTP from the URLs in the certificates (CRL distribution points, and Freshest CRL for
delta CRLs, which pyhanko-certvalidator follows).

Usage: python3 tests/tools/pyhanko_crl.py ROOT.pem ISSUING.pem LEAF.pem

Prints "valid" or "revoked" (or "error: ...") on the first line, then one line per URL
fetched. Exit 0 when it could decide, 1 otherwise.
"""

import asyncio
import logging
import sys

import aiohttp
from asn1crypto import pem
from asn1crypto import x509 as a_x509
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator import errors as pv_errors
from pyhanko_certvalidator.fetchers import Fetchers
from pyhanko_certvalidator.fetchers.aiohttp_fetchers.cert_fetch_client import AIOHttpCertificateFetcher
from pyhanko_certvalidator.fetchers.aiohttp_fetchers.crl_client import AIOHttpCRLFetcher
from pyhanko_certvalidator.fetchers.aiohttp_fetchers.ocsp_client import AIOHttpOCSPFetcher
from pyhanko_certvalidator.policy_decl import CertRevTrustPolicy, RevocationCheckingPolicy, RevocationCheckingRule


def load(path):
    data = open(path, "rb").read()
    if pem.detect(data):
        _, _, data = pem.unarmor(data)
    return a_x509.Certificate.load(data)


class Recording:
    """Duck-typed aiohttp session: records the URLs fetched."""

    def __init__(self, session):
        self.session, self.log = session, []

    def get(self, url, **kw):
        self.log.append(url)
        return self.session.get(url=url, **kw)

    def post(self, url, **kw):
        self.log.append("POST " + url)
        return self.session.post(url=url, **kw)


async def main(root, issuing, leaf):
    rule = RevocationCheckingRule.CRL_REQUIRED
    async with aiohttp.ClientSession(trust_env=False) as http:
        session = Recording(http)
        fetchers = Fetchers(
            ocsp_fetcher=AIOHttpOCSPFetcher(session),
            crl_fetcher=AIOHttpCRLFetcher(session),
            cert_fetcher=AIOHttpCertificateFetcher(session),
        )
        vc = ValidationContext(
            trust_roots=[root],
            allow_fetching=True,
            fetchers=fetchers,
            revinfo_policy=CertRevTrustPolicy(RevocationCheckingPolicy(rule, rule)),
        )
        validator = CertificateValidator(leaf, intermediate_certs=[issuing], validation_context=vc)
        try:
            await validator.async_validate_usage({"digital_signature"})
            verdict = "valid"
        except pv_errors.RevokedError:
            verdict = "revoked"
        except Exception as e:  # noqa: BLE001
            verdict = f"error: {type(e).__name__}: {e}"
        return verdict, session.log


if __name__ == "__main__":
    logging.getLogger("pyhanko_certvalidator").addHandler(logging.NullHandler())
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    verdict, fetched = asyncio.run(main(*(load(p) for p in sys.argv[1:4])))
    print(verdict)
    for url in fetched:
        print(url)
    sys.exit(0 if verdict in ("valid", "revoked") else 1)
