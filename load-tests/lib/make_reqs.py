#!/usr/bin/env python3
"""make_reqs.py FIXDIR SAMPLE STORM REVOKED SEED

Reads FIXDIR/leaves.json (`cloudpki --json cert list`) and FIXDIR/ca.pem, writes:
  leaves.tsv                 serial<TAB>id of every listed leaf
  reqs/der/NNNN.der          SAMPLE OCSP requests: one SHA-1 CertID, no nonce (what the peers send:
                             same bytes as `openssl ocsp -issuer ca.pem -serial 0xHEX -no_nonce -reqout`)
  reqs/post.list             absolute paths of those files, one per line
  reqs/b64.txt               base64(DER), one per line
  reqs/get.txt               RFC 6960 App. A GET suffix: urlencode(base64(DER)) (%2B %2F %3D)
  reqs/expect.txt            serial<TAB>V|R per request, same order (R = revoked by gen-fixture.sh)
  reqs/revoke-at-fixture.tsv serial<TAB>id of the REVOKED sampled leaves gen-fixture.sh revokes
  reqs/sha256/NNNN.der       the first 50 sampled serials with a SHA-256 CertID (validation only)
  reqs/nonce/NNNN.der        200 requests with a random 16-byte nonce (signed on demand), nonce.list
  reqs/unknown.der           a serial this CA never issued (expect `unknown`, signed on demand)
  reqs/storm.tsv             STORM further serials (not in the sample, left good):
                             serial<TAB>id<TAB>GET suffix, for the revocation storm
Requests are built from the issuer's name and key hashes, so no leaf certificate is needed.
"""
import base64, json, os, random, sys, urllib.parse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import ocsp


def issuer_hashes(ca, alg):
    """(issuerNameHash, issuerKeyHash) per RFC 6960 4.1.1 for hash `alg`."""
    pub = ca.public_key()
    if isinstance(pub, ec.EllipticCurvePublicKey):
        key = pub.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    elif isinstance(pub, rsa.RSAPublicKey):
        key = pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    else:
        raise SystemExit(f"unsupported CA key type {type(pub)}")

    def h(b):
        d = hashes.Hash(alg)
        d.update(b)
        return d.finalize()

    return h(ca.subject.public_bytes()), h(key)


def request(ca, serial, alg=hashes.SHA1(), nonce=None):
    nh, kh = issuer_hashes(ca, alg)
    b = ocsp.OCSPRequestBuilder().add_certificate_by_hash(nh, kh, serial, alg)
    if nonce is not None:
        b = b.add_extension(x509.OCSPNonce(nonce), critical=False)
    return b.build().public_bytes(serialization.Encoding.DER)


def get_suffix(der):
    return urllib.parse.quote(base64.b64encode(der).decode(), safe="")


def main():
    fix, sample_n, storm_n, revoked_n, seed = sys.argv[1], *map(int, sys.argv[2:6])
    ca = x509.load_pem_x509_certificate(open(f"{fix}/ca.pem", "rb").read())
    leaves = [(l["serialNumber"].upper(), l["id"]) for l in json.load(open(f"{fix}/leaves.json"))["value"]]
    with open(f"{fix}/leaves.tsv", "w") as f:
        f.writelines(f"{s}\t{i}\n" for s, i in leaves)
    rnd = random.Random(seed)
    if sample_n + storm_n > len(leaves):
        raise SystemExit(f"only {len(leaves)} leaves listed; need SAMPLE+STORM = {sample_n + storm_n}")
    picked = rnd.sample(leaves, sample_n + storm_n)
    sample, storm = picked[:sample_n], picked[sample_n:]
    revoked = set(s for s, _ in rnd.sample(sample, min(revoked_n, len(sample))))

    r = f"{fix}/reqs"
    for sub in ("der", "sha256", "nonce"):
        os.makedirs(f"{r}/{sub}", exist_ok=True)
    post, b64, get, expect = [], [], [], []
    for n, (serial, _id) in enumerate(sample):
        der = request(ca, int(serial, 16))
        path = f"{r}/der/{n:04d}.der"
        open(path, "wb").write(der)
        post.append(os.path.abspath(path))
        b64.append(base64.b64encode(der).decode())
        get.append(get_suffix(der))
        expect.append(f"{serial}\t{'R' if serial in revoked else 'V'}")
    for name, lines in (("post.list", post), ("b64.txt", b64), ("get.txt", get), ("expect.txt", expect)):
        open(f"{r}/{name}", "w").write("\n".join(lines) + "\n")
    with open(f"{r}/revoke-at-fixture.tsv", "w") as f:
        f.writelines(f"{s}\t{i}\n" for s, i in sample if s in revoked)
    for n, (serial, _id) in enumerate(sample[:50]):
        open(f"{r}/sha256/{n:04d}.der", "wb").write(request(ca, int(serial, 16), hashes.SHA256()))
    nonce_paths = []
    for n, (serial, _id) in enumerate(sample[:200]):
        p = f"{r}/nonce/{n:04d}.der"
        open(p, "wb").write(request(ca, int(serial, 16), nonce=rnd.randbytes(16)))
        nonce_paths.append(os.path.abspath(p))
    open(f"{r}/nonce.list", "w").write("\n".join(nonce_paths) + "\n")
    issued = {int(s, 16) for s, _ in leaves}
    unknown = rnd.getrandbits(127) | (1 << 126)
    while unknown in issued:
        unknown += 1
    open(f"{r}/unknown.der", "wb").write(request(ca, unknown))
    open(f"{r}/unknown.serial", "w").write(f"{unknown:X}\n")
    with open(f"{r}/storm.tsv", "w") as f:
        for serial, id_ in storm:
            f.write(f"{serial}\t{id_}\t{get_suffix(request(ca, int(serial, 16)))}\n")
    print(f"{len(sample)} requests ({len(revoked)} to revoke), {len(storm)} storm serials, "
          f"{len(nonce_paths)} nonce requests", file=sys.stderr)


if __name__ == "__main__":
    main()
