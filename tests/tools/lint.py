#!/usr/bin/env python3
"""Lint X.509 certificates, CRLs and OCSP responses with pkilint (RFC 5280/6960 profiles).

Usage:
  python3 tests/tools/lint.py cert  FILE [FILE...]   # each certificate on its own
  python3 tests/tools/lint.py chain FILE [FILE...]   # leaf-first: doc[i] must be issued by doc[i+1]
  python3 tests/tools/lint.py crl   FILE [FILE...]
  python3 tests/tools/lint.py arl   FILE [FILE...]     # an authority (CA) revocation list
  python3 tests/tools/lint.py ocsp  FILE [FILE...]
Options: --fail-on SEVERITY (default ERROR), --ignore CODE (repeatable).

FILEs may be DER or PEM; a PEM file may hold several blocks (e.g. a chain).
Every finding is printed as "FILE[#n] SEVERITY code @ node (validator): message".
Exit 0: no finding at or above --fail-on; 1: such a finding; 2: a document could not be
linted at all (missing pkilint, unreadable file, undecodable DER, bad usage).
"""

import argparse
import base64
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile

# pkilint's severities, most severe first (pkilint.validation.ValidationFindingSeverity).
SEVERITIES = ["FATAL", "ERROR", "WARNING", "NOTICE", "INFO", "DEBUG"]

# KIND -> (pkilint module, extra CLI args, PEM label). lint_crl insists on -t/-p; with the
# PKIX profile the CRL/ARL type changes nothing (it only matters for -p BR).
TOOLS = {
    "cert": ("lint_pkix_cert", [], "CERTIFICATE"),
    "chain": ("lint_pkix_signer_signee_cert_chain", [], "CERTIFICATE"),
    "crl": ("lint_crl", ["-t", "CRL", "-p", "PKIX"], "X509 CRL"),
    # A root's CRL of its issuing CAs (onlyContainsCACerts).
    "arl": ("lint_crl", ["-t", "ARL", "-p", "PKIX"], "X509 CRL"),
    "ocsp": ("lint_ocsp_response", [], "OCSP RESPONSE"),
}

PEM_RE = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL)


def documents(path, label):
    """Yield (name, DER bytes) for each document in a DER or PEM file."""
    with open(path, "rb") as f:
        data = f.read()
    if data.startswith(b"\x30"):
        yield path, data
        return
    # pkilint's own PEM detection needs exactly one block and nothing around it, so PEM is
    # unwrapped here; blocks with other labels (keys, etc.) are skipped.
    blocks = [b for lab, b in PEM_RE.findall(data) if lab.decode() == label]
    if not blocks:
        raise ValueError(f"neither DER nor PEM with a '{label}' block")
    for i, b64 in enumerate(blocks):
        name = path if len(blocks) == 1 else f"{path}#{i}"
        yield name, base64.b64decode(b"".join(b64.split()), validate=True)


def run_pkilint(module, extra, der_files):
    """Run one pkilint CLI on DER files; return its findings as dicts, or raise RuntimeError."""
    # `python -m` on the same interpreter avoids depending on the console scripts being on PATH.
    # -s INFO hides only DEBUG; the CLI's exit code (= number of findings, capped at 255, and
    # also 1 when loading fails) is not used: success is judged from the JSON report.
    cmd = [sys.executable, "-m", f"pkilint.bin.{module}", "lint", *extra,
           "-s", "INFO", "-f", "JSON", "--document-format", "DER", *der_files]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    try:
        report = json.loads(proc.stdout)["results"]
    except (ValueError, KeyError, TypeError):
        raise RuntimeError((proc.stderr or proc.stdout).strip() or f"exit code {proc.returncode}")
    return [dict(f, node=r["node_path"], validator=r["validator"])
            for r in report for f in r["finding_descriptions"]]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=TOOLS)
    ap.add_argument("files", nargs="+")
    ap.add_argument("--fail-on", default="ERROR", type=str.upper, choices=SEVERITIES[:4])
    ap.add_argument("--ignore", action="append", default=[], metavar="CODE",
                    help="finding code never to fail on (still printed)")
    args = ap.parse_args()

    if importlib.util.find_spec("pkilint") is None:
        print("lint.py: pkilint is not installed (pip install pkilint)", file=sys.stderr)
        return 2
    module, extra, label = TOOLS[args.kind]
    threshold = SEVERITIES.index(args.fail_on)
    failed = broken = False

    with tempfile.TemporaryDirectory() as tmp:
        docs = []  # (display name, DER path)
        for path in args.files:
            try:
                for name, der in documents(path, label):
                    der_path = os.path.join(tmp, f"{len(docs)}.der")
                    with open(der_path, "wb") as f:
                        f.write(der)
                    docs.append((name, der_path))
            except (OSError, ValueError) as e:
                print(f"{path}: BROKEN cannot read: {e}")
                broken = True

        if args.kind == "chain":
            if len(docs) < 2:
                print("lint.py: chain needs at least two certificates (leaf first)", file=sys.stderr)
                return 2
            # lint_pkix_signer_signee_cert_chain takes ISSUER SUBJECT.
            jobs = [(f"{s[0]} <- {i[0]}", [i[1], s[1]]) for s, i in zip(docs, docs[1:])]
        else:
            jobs = [(name, [p]) for name, p in docs]

        for name, files in jobs:
            try:
                findings = run_pkilint(module, extra, files)
            except RuntimeError as e:
                print(f"{name}: BROKEN pkilint could not lint it: {e}")
                broken = True
                continue
            for f in findings:
                msg = f": {f['message']}" if f.get("message") else ""
                print(f"{name} {f['severity']} {f['code']} @ {f['node']} ({f['validator']}){msg}")
                sev = SEVERITIES.index(f["severity"]) if f["severity"] in SEVERITIES else 0
                if sev <= threshold and f["code"] not in args.ignore:
                    failed = True
            if not findings:
                print(f"{name} clean")

    return 2 if broken else 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
