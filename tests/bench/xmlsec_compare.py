#!/usr/bin/env python3
"""truc's XML-Signature verification against libxmlsec1, side by side, in one run.

How to run (from the repository root):

    pip install xmlsec lxml        # python-xmlsec bundles libxmlsec1 (1.3.9 in xmlsec 1.3.17)
    cargo build --release && python3 tests/bench/xmlsec_compare.py

    # another binary, JSON output, the trusted-chain comparison:
    python3 tests/bench/xmlsec_compare.py --truc /tmp/target-xmlsec/release/truc --json
    python3 tests/bench/xmlsec_compare.py --trust chain

What it does:

1. Makes signed edXML packages of about 20 KB, 200 KB and 5 MB with the truc binary itself:
   `truc package new --from 000.00.00.G12 ... --attach <random bytes>` then `truc sign` with
   the test PKI's `certs-test/agencies/000.00.00.G12/sign.{key,pem}` (RSA-2048, RSA-SHA256,
   one Reference URI="" with enveloped + exc-c14n, SHA-256, KeyInfo with the leaf and the
   issuing CA).
2. Sanity, per package, before any timing: both verifiers accept it; both reject a copy with
   one base64 character of the attachment content changed (so libxmlsec1 really checks the
   reference digest over the content) and a copy with one SignatureValue character changed.
3. Times, per package, in the same run and interleaved (``--rounds`` rounds per side):
   (a) libxmlsec1 in process: each iteration is ``etree.fromstring(bytes)``, find the
       ds:Signature, a new ``xmlsec.SignatureContext`` and ``ctx.verify(node)``, with the key
       material loaded once before the loop;
   (b) ``truc dsig verify FILE --repeat N`` with the equivalent key options; truc reads the
       file once and verifies it N times in process, and its stderr timing line
       (``truc: N verifications in S s: U µs each (R/s)``) gives the figure. Process start-up
       and key loading are outside the timed part on both sides.
   N is calibrated per size so that each side spends about ``--seconds`` (default 2.5 s).

Key options (``--trust``), the same trust decision on both sides:
  pubkey (default)  the signer's public key, pinned (extracted from its certificate):
                    libxmlsec1 ``ctx.key = xmlsec.Key.from_file(pub.pem, KeyDataFormatPem)``;
                    truc ``--pubkey-pem pub.pem``
  cert              the signer's certificate, pinned: libxmlsec1
                    ``ctx.key = xmlsec.Key.from_file(leaf.pem, KeyDataFormatCertPem)``; truc
                    ``--pubkey-cert-pem leaf.pem``. python-xmlsec copies the key into every new
                    context, and with a certificate attached that copy costs ~60 µs (measured
                    here), so this mode is slower for libxmlsec1 than ``pubkey``; a context
                    cannot be reused for a second verify (libxmlsec1 refuses it)
  chain             the certificate path: libxmlsec1 a KeysManager with ``root-ca.pem`` trusted,
                    the chain taken from KeyInfo/X509Data (leaf + issuing CA) and validated at
                    the current time; truc ``--trusted-pem certs-test/root-ca.pem`` (path
                    validation at the current time, no CRL)

Output: a table (size, bytes, libxmlsec1 µs/verify, truc µs/verify, ratio = libxmlsec1 / truc)
or, with ``--json``, one JSON object. The figures are medians over the rounds. Exit status: 0
measured, 1 a sanity check failed or a tool misbehaved, 2 missing modules or bad arguments,
3 ``--min-ratio`` given and some ratio below it.
"""

import argparse
import base64
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

try:
    import xmlsec
    from lxml import etree
except ImportError as e:  # pragma: no cover - depends on the machine
    sys.stderr.write(
        f"xmlsec_compare.py: cannot import {e.name or 'xmlsec/lxml'}: this benchmark needs "
        "python-xmlsec and lxml.\n    pip install xmlsec lxml\n"
    )
    sys.exit(2)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CERTS = os.path.join(ROOT, "certs-test")
SIGNER = os.path.join(CERTS, "agencies", "000.00.00.G12")
ROOT_CA = os.path.join(CERTS, "root-ca.pem")
DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"

SIZES = [("20 KB", 20_000), ("200 KB", 200_000), ("5 MB", 5_000_000)]

TIMING = re.compile(
    r"^truc: (\d+) verifications in ([0-9.]+) s: ([0-9.]+) µs each \(([0-9.]+|inf)/s\)$",
    re.M,
)


class Failed(Exception):
    """A sanity check or a tool failed: the run cannot be trusted."""


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, **kw)


# --- packages ----------------------------------------------------------------------------


def make_package(truc, workdir, name, target):
    """A package signed by G12 whose size is within ~1 % of `target` bytes."""
    # The attachment is base64 in the package: about 4/3 of its size, plus the envelope.
    overhead = None
    raw = max(1, target * 3 // 4)
    data = None
    for _ in range(4):
        att = os.path.join(workdir, f"{name}.bin")
        with open(att, "wb") as f:
            f.write(os.urandom(raw))
        unsigned = os.path.join(workdir, f"{name}.unsigned.edxml")
        p = run(
            [
                truc, "package", "new",
                "--from", "000.00.00.G12",
                "--to", "000.00.00.H29",
                "--number", "1234",
                "--notation", "BTC-VP",
                "--subject", f"V/v benchmark package {name}",
                "--date", "2026/11/20",
                "--attach", att,
            ]
        )
        if p.returncode != 0:
            raise Failed(f"truc package new: exit {p.returncode}: {p.stderr.decode()}")
        with open(unsigned, "wb") as f:
            f.write(p.stdout)
        p = run(
            [
                truc, "sign", unsigned,
                "--key", os.path.join(SIGNER, "sign.key"),
                "--cert", os.path.join(SIGNER, "sign.pem"),
            ]
        )
        if p.returncode != 0:
            raise Failed(f"truc sign: exit {p.returncode}: {p.stderr.decode()}")
        data = p.stdout
        if abs(len(data) - target) <= target // 100:
            break
        overhead = len(data) - len(base64.b64encode(b"\0" * raw))
        raw = max(1, (target - overhead) * 3 // 4)
    path = os.path.join(workdir, f"{name}.edxml")
    with open(path, "wb") as f:
        f.write(data)
    return path, data


def leaf_pem(workdir):
    """The signer's certificate alone (sign.pem also carries the issuing CA)."""
    with open(os.path.join(SIGNER, "sign.pem")) as f:
        text = f.read()
    end = "-----END CERTIFICATE-----"
    first = text[text.index("-----BEGIN CERTIFICATE-----") : text.index(end) + len(end)]
    path = os.path.join(workdir, "leaf.pem")
    with open(path, "w") as f:
        f.write(first + "\n")
    return path


def der_element(der, i):
    """(tag, start of content, end of content) of the DER element at `der[i]`."""
    tag, n = der[i], der[i + 1]
    i += 2
    if n & 0x80:
        k = n & 0x7F
        n = int.from_bytes(der[i : i + k], "big")
        i += k
    return tag, i, i + n


def spki_pem(cert_pem, workdir):
    """The SubjectPublicKeyInfo of the certificate in `cert_pem`, as a PEM PUBLIC KEY file."""
    with open(cert_pem) as f:
        b64 = "".join(l for l in f.read().splitlines() if l and not l.startswith("-----"))
    der = base64.b64decode(b64)
    _, cert, _ = der_element(der, 0)  # Certificate
    _, i, _ = der_element(der, cert)  # tbsCertificate
    fields = []
    while len(fields) < 7:
        tag, start, end = der_element(der, i)
        fields.append((tag, i, end))
        i = end
    if fields[0][0] != 0xA0:  # no explicit version: v1, one field fewer before the key
        fields.pop()
    _, start, end = fields[6]  # version, serial, signature, issuer, validity, subject, spki
    spki = base64.encodebytes(der[start:end]).decode().replace("\n", "")
    lines = [spki[j : j + 64] for j in range(0, len(spki), 64)]
    path = os.path.join(workdir, "pub.pem")
    with open(path, "w") as f:
        f.write("-----BEGIN PUBLIC KEY-----\n" + "\n".join(lines) + "\n-----END PUBLIC KEY-----\n")
    return path


def flip_base64_char(data, start, end):
    """`data` with one base64 character in data[start:end] (the middle one) changed."""
    i = start + (end - start) // 2
    while i < end and data[i : i + 1] not in b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789":
        i += 1
    if i >= end:
        raise Failed("no base64 character to flip")
    c = data[i : i + 1]
    new = b"B" if c == b"A" else b"A"
    return data[:i] + new + data[i + 1 :]


def element_text_span(data, local):
    """Byte span of the text of the first element whose local name is `local`."""
    m = re.search(rb"<(?:[A-Za-z0-9_.-]+:)?" + local.encode() + rb"(?:\s[^>]*)?>", data)
    if not m:
        raise Failed(f"no <{local}> in the package")
    close = data.index(b"</", m.end())
    return m.end(), close


def attachment_span(data):
    """Byte span of the attachment content: the longest text node in the package."""
    best = (0, 0)
    for m in re.finditer(rb">([A-Za-z0-9+/=\r\n]{64,})<", data):
        if m.end(1) - m.start(1) > best[1] - best[0]:
            best = (m.start(1), m.end(1))
    if best == (0, 0):
        raise Failed("no attachment content found")
    return best


# --- libxmlsec1 --------------------------------------------------------------------------


class Libxmlsec:
    def __init__(self, trust, leaf, pub):
        self.trust = trust
        if trust == "pubkey":
            self.key = xmlsec.Key.from_file(pub, xmlsec.constants.KeyDataFormatPem)
            self.manager = None
        elif trust == "cert":
            self.key = xmlsec.Key.from_file(leaf, xmlsec.constants.KeyDataFormatCertPem)
            self.manager = None
        else:
            self.key = None
            self.manager = xmlsec.KeysManager()
            self.manager.load_cert(
                ROOT_CA, xmlsec.constants.KeyDataFormatPem, xmlsec.constants.KeyDataTypeTrusted
            )

    def verify_once(self, data):
        root = etree.fromstring(data)
        node = xmlsec.tree.find_node(root, xmlsec.constants.NodeSignature)
        if node is None:
            raise Failed("libxmlsec1: no ds:Signature")
        if self.manager is not None:
            ctx = xmlsec.SignatureContext(self.manager)
        else:
            ctx = xmlsec.SignatureContext()
            ctx.key = self.key
        ctx.verify(node)  # raises xmlsec.VerificationError unless valid

    def valid(self, data):
        try:
            self.verify_once(data)
            return True
        except xmlsec.Error:
            return False

    def time(self, data, n):
        verify = self.verify_once
        start = time.perf_counter()
        for _ in range(n):
            verify(data)
        return time.perf_counter() - start


# --- truc ----------------------------------------------------------------------------------


class Truc:
    def __init__(self, binary, trust, leaf, pub):
        self.binary = binary
        if trust == "pubkey":
            self.key_args = ["--pubkey-pem", pub]
        elif trust == "cert":
            self.key_args = ["--pubkey-cert-pem", leaf]
        else:
            self.key_args = ["--trusted-pem", ROOT_CA]

    def verify(self, path, repeat=1):
        cmd = [self.binary, "dsig", "verify", path, *self.key_args]
        if repeat != 1:
            cmd += ["--repeat", str(repeat)]
        return run(cmd)

    def valid(self, path):
        p = self.verify(path)
        if p.returncode not in (0, 1, 2, 3):
            raise Failed(f"truc dsig verify {path}: exit {p.returncode}: {p.stderr.decode()}")
        return p.returncode == 0

    def time(self, path, n):
        """Seconds for n verifications, from truc's timing line."""
        p = self.verify(path, n)
        if p.returncode != 0:
            raise Failed(
                f"truc dsig verify --repeat {n} {path}: exit {p.returncode}: "
                f"{p.stdout.decode()}{p.stderr.decode()}"
            )
        m = TIMING.search(p.stderr.decode())
        if not m or int(m.group(1)) != n:
            raise Failed(f"truc: no timing line for {n} verifications in: {p.stderr.decode()!r}")
        # The total is printed to the millisecond; the per-verification figure is finer.
        return float(m.group(3)) * n / 1e6


# --- measurement ---------------------------------------------------------------------------


def calibrate(time_n, budget, first=3):
    """N such that time_n(N) takes about `budget` seconds."""
    n = first
    while True:
        t = time_n(n)
        if t >= 0.2 or n >= 1_000_000:
            break
        n *= 10 if t < 0.02 else 4
    return max(1, round(n * budget / max(t, 1e-9)))


def sanity(lib, truc, path, data, workdir, name):
    """Both accept the package and reject a tampered attachment and SignatureValue."""
    problems = []
    if not lib.valid(data):
        try:
            lib.verify_once(data)
        except xmlsec.Error as e:
            problems.append(f"libxmlsec1 rejects the genuine {name} package: {e}")
    if not truc.valid(path):
        p = truc.verify(path)
        problems.append(f"truc rejects the genuine {name} package: {p.stdout.decode().strip()}")
    s, e = attachment_span(data)
    sv = element_text_span(data, "SignatureValue")
    for what, bad in [
        ("attachment content", flip_base64_char(data, s, e)),
        ("SignatureValue", flip_base64_char(data, *sv)),
    ]:
        tampered = os.path.join(workdir, f"{name}.tampered.edxml")
        with open(tampered, "wb") as f:
            f.write(bad)
        if lib.valid(bad):
            problems.append(f"libxmlsec1 accepts the {name} package with its {what} changed")
        if truc.valid(tampered):
            problems.append(f"truc accepts the {name} package with its {what} changed")
        os.remove(tampered)
    if problems:
        raise Failed("; ".join(problems))


def measure(lib, truc, path, data, seconds, rounds):
    per_round = seconds / rounds
    n_lib = calibrate(lambda n: lib.time(data, n), per_round)
    n_truc = calibrate(lambda n: truc.time(path, n), per_round)
    lib_us, truc_us = [], []
    for _ in range(rounds):  # interleaved, so both see the same background load
        lib_us.append(lib.time(data, n_lib) * 1e6 / n_lib)
        truc_us.append(truc.time(path, n_truc) * 1e6 / n_truc)
    return {
        "libxmlsec1_us": statistics.median(lib_us),
        "truc_us": statistics.median(truc_us),
        "libxmlsec1_n": n_lib,
        "truc_n": n_truc,
        "libxmlsec1_rounds_us": [round(x, 2) for x in lib_us],
        "truc_rounds_us": [round(x, 2) for x in truc_us],
    }


def fmt_us(x):
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


def main():
    ap = argparse.ArgumentParser(
        description="truc dsig verify vs libxmlsec1 (python-xmlsec), in process, same packages"
    )
    ap.add_argument(
        "--truc",
        default=os.path.join(ROOT, "target", "release", "truc"),
        help="the truc binary (default: target/release/truc in the repository)",
    )
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument(
        "--trust",
        choices=["pubkey", "cert", "chain"],
        default="pubkey",
        help="key options on both sides: pinned public key (default), pinned certificate, "
        "or certificate path to certs-test/root-ca.pem",
    )
    ap.add_argument(
        "--seconds", type=float, default=2.5, help="timed seconds per side and size (2.5)"
    )
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds per side (3)")
    ap.add_argument(
        "--min-ratio", type=float, help="exit 3 when any libxmlsec1/truc ratio is below this"
    )
    ap.add_argument("--keep", metavar="DIR", help="write the packages to DIR and keep them")
    a = ap.parse_args()
    if a.rounds < 1 or a.seconds <= 0:
        ap.error("--rounds must be >= 1 and --seconds > 0")
    truc_bin = a.truc if os.path.isabs(a.truc) else os.path.join(os.getcwd(), a.truc)
    if not os.access(truc_bin, os.X_OK):
        sys.stderr.write(
            f"xmlsec_compare.py: {a.truc} is not an executable; build it first:\n"
            "    cargo build --release\n"
        )
        sys.exit(2)

    tmp = None
    if a.keep:
        os.makedirs(a.keep, exist_ok=True)
        workdir = a.keep
    else:
        tmp = tempfile.TemporaryDirectory(prefix="xmlsec-compare-")
        workdir = tmp.name
    try:
        leaf = leaf_pem(workdir)
        pub = spki_pem(leaf, workdir)
        lib = Libxmlsec(a.trust, leaf, pub)
        truc = Truc(truc_bin, a.trust, leaf, pub)
        rows = []
        for label, target in SIZES:
            name = label.replace(" ", "").lower()
            path, data = make_package(truc_bin, workdir, name, target)
            sanity(lib, truc, path, data, workdir, name)
            m = measure(lib, truc, path, data, a.seconds, a.rounds)
            m.update(
                size=label,
                bytes=len(data),
                ratio=m["libxmlsec1_us"] / m["truc_us"],
            )
            rows.append(m)
            if not a.json:
                sys.stderr.write(
                    f"{label}: libxmlsec1 {fmt_us(m['libxmlsec1_us'])} µs, "
                    f"truc {fmt_us(m['truc_us'])} µs\n"
                )
    except Failed as e:
        sys.stderr.write(f"xmlsec_compare.py: {e}\n")
        sys.exit(1)
    finally:
        if tmp is not None:
            tmp.cleanup()

    libver = ".".join(map(str, xmlsec.get_libxmlsec_version()))
    key_opts = {
        "pubkey": "--pubkey-pem <signer's public key>",
        "cert": "--pubkey-cert-pem <signer's certificate>",
        "chain": f"--trusted-pem {os.path.relpath(ROOT_CA, ROOT)}",
    }[a.trust]
    below = [r["size"] for r in rows if a.min_ratio is not None and r["ratio"] < a.min_ratio]
    if a.json:
        out = {
            "libxmlsec1": libver,
            "python_xmlsec": xmlsec.__version__,
            "lxml": etree.__version__,
            "python": platform.python_version(),
            "truc": truc_bin,
            "trust": a.trust,
            "truc_key_options": key_opts,
            "seconds_per_side": a.seconds,
            "rounds": a.rounds,
            "rows": [
                {
                    "size": r["size"],
                    "bytes": r["bytes"],
                    "libxmlsec1_us": round(r["libxmlsec1_us"], 2),
                    "truc_us": round(r["truc_us"], 2),
                    "ratio": round(r["ratio"], 2),
                    "libxmlsec1_n": r["libxmlsec1_n"],
                    "truc_n": r["truc_n"],
                    "libxmlsec1_rounds_us": r["libxmlsec1_rounds_us"],
                    "truc_rounds_us": r["truc_rounds_us"],
                }
                for r in rows
            ],
            "lowest_ratio": round(min(r["ratio"] for r in rows), 2),
        }
        print(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        print(
            f"libxmlsec1 {libver} (python-xmlsec {xmlsec.__version__}, lxml {etree.__version__})"
            f" vs {truc_bin}; keys: {a.trust} (truc {key_opts});"
            f" medians of {a.rounds} interleaved rounds, ~{a.seconds:g} s per side"
        )
        header = ("size", "bytes", "libxmlsec1 µs/verify", "truc µs/verify", "ratio")
        table = [
            (
                r["size"],
                f"{r['bytes']:,}",
                fmt_us(r["libxmlsec1_us"]),
                fmt_us(r["truc_us"]),
                f"{r['ratio']:.1f}×",
            )
            for r in rows
        ]
        widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(header)]
        print("  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths))))
        for t in table:
            print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(t, widths))))
    if below:
        sys.stderr.write(f"ratio below {a.min_ratio:g} at: {', '.join(below)}\n")
        sys.exit(3)


if __name__ == "__main__":
    main()
