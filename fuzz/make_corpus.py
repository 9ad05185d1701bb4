"""Write the seed corpora, fuzz/corpus/<harness>/seed-*, from the wire tables.

fuzz_http: every GOOD, BAD and LIMITS case of tests/support/wire_cases.py delivered whole
(and the GOOD ones also cut in two, with the app waiting), each app behaviour once over a
pipelined pair of requests, and the connection events (half-close, reset, pause_writing,
ticks, shutdown, abort, a body past the read high-water mark).
fuzz_target: the request line and Host cases of tests/e2e/test_conformance.py (REFUSED,
GOOD_HOSTS, the absolute-form ones) taken apart into method, target, version and Host.

Each seed is encoded with fuzz._fdp.Encoder and checked to decode back to what was meant.
Cases over MAX_SEED bytes are left out (libFuzzer's -max_len in fuzz/run.sh). Run from the
repository root: python3 fuzz/make_corpus.py (it replaces the seed-* files, nothing else).
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from fuzz import fuzz_http as H  # noqa: E402
from fuzz import fuzz_target as T  # noqa: E402
from fuzz._common import FuzzedDataProvider  # noqa: E402
from fuzz._fdp import Encoder  # noqa: E402
from support.wire_cases import BAD, GOOD, LIMITS  # noqa: E402

CORPUS = os.path.join(_ROOT, "fuzz", "corpus")
MAX_SEED = 4096

REQ = b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n"
POST_CHUNKED = b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
POST_CL = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"


def conformance():
    path = os.path.join(_ROOT, "tests", "e2e", "test_conformance.py")
    spec = importlib.util.spec_from_file_location("_conformance_tables", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def http_seeds():
    B = H.Behaviour

    def feed(data: bytes) -> tuple:
        return ("feed", data)

    for name, data, _ in GOOD:
        yield f"good-{name}", H.Plan(0, (), (feed(data),))
        cut = len(data) // 2
        yield (
            f"good-{name}-cut",
            H.Plan(
                0, (B(wait=0.1, reads=3),) * 3, (feed(data[:cut]), ("step",), feed(data[cut:]), ("timers",))
            ),
        )
    for name, data, _ in BAD:
        yield f"bad-{name}", H.Plan(0, (), (feed(data + REQ),))
    for name, data, _ in LIMITS:
        yield f"limits-{name}", H.Plan(1, (), (feed(data),))
    # every app behaviour, over a request with a body and one pipelined behind it
    for mode in H.MODES:
        behaviour = B(mode, 200, 1, 2, 7, 1, 3.0)
        yield (
            f"mode-{mode}",
            H.Plan(
                0,
                (behaviour, behaviour),
                (
                    feed(POST_CHUNKED[:60]),
                    ("step",),
                    feed(POST_CHUNKED[60:] + REQ),
                    ("timers",),
                    ("tick", 31.0),
                    ("eof",),
                ),
            ),
        )
        yield (
            f"mode-{mode}-head",
            H.Plan(
                0,
                (B(mode, 204, 2, 1, 1000, 3, 0.0),),
                (feed(b"HEAD /h HTTP/1.1\r\nHost: t\r\n\r\n"), ("idle",)),
            ),
        )
    for i, headers in enumerate(range(H.HEADER_SETS)):
        yield (
            f"headers-{i}",
            H.Plan(0, (B("respond", 200, headers, 1, 7),) * 2, (feed(REQ), feed(b"GET /b HTTP/1.0\r\n\r\n"))),
        )
    # connection events
    yield (
        "expect-100",
        H.Plan(
            0,
            (B(reads=3),),
            (
                feed(b"POST /e HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"),
                ("idle",),
                feed(b"hello"),
            ),
        ),
    )
    yield "eof-mid-body", H.Plan(0, (B(reads=3),), (feed(POST_CL[:-2]), ("eof",)))
    yield "lose-mid-body", H.Plan(0, (B(reads=3),), (feed(POST_CL[:-2]), ("lose",)))
    yield (
        "lose-streaming",
        H.Plan(0, (B("stream_waits", parts=3, wait=3.0),), (feed(REQ), ("timers",), ("lose",))),
    )
    yield (
        "pause-writing",
        H.Plan(
            0,
            (B("stream_waits", parts=3, size=20000),),
            (feed(REQ), ("pause_writing",), ("idle",), feed(REQ), ("resume_writing",), ("idle",)),
        ),
    )
    yield "slow-head-408", H.Plan(0, (), (feed(REQ[:10]), ("tick", 31.0), ("tick", 31.0)))
    yield "slow-body-408", H.Plan(0, (B(reads=3),), (feed(POST_CL[:-2]), ("tick", 61.0), ("tick", 61.0)))
    yield "keep-alive-timeout", H.Plan(0, (), (feed(REQ), ("tick", 5.0), ("tick", 1.0)))
    yield "shutdown-idle", H.Plan(0, (), (feed(REQ), ("shutdown",), ("tick", 1.0)))
    yield "shutdown-busy", H.Plan(0, (B(wait=3.0),), (feed(REQ + REQ), ("shutdown",), ("timers",)))
    yield "abort-busy", H.Plan(0, (B(wait=3.0),), (feed(REQ), ("abort",), ("idle",)))
    yield (
        "flood-body",
        H.Plan(
            0,
            (B(wait=0.1, reads=1),),
            (
                feed(b"POST /f HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n"),
                ("flood", b"x" * 250, 400),
                ("timers",),
                ("idle",),
            ),
        ),
    )
    yield "limit-concurrency", H.Plan(3, (B(wait=3.0),), (feed(REQ + REQ), ("timers",)))
    yield (
        "max-body",
        H.Plan(2, (B(reads=3),), (feed(POST_CL.replace(b"5\r\n\r\nhello", b"200\r\n\r\n") + b"y" * 200),)),
    )
    yield "header-map-refuse", H.Plan(4, (), (feed(b"GET / HTTP/1.1\r\nHost: t\r\nX_A: 1\r\n\r\n"),))
    yield "header-map-dangerous", H.Plan(5, (), (feed(b"GET / HTTP/1.1\r\nHost: t\r\nX_A: 1\r\n\r\n"),))


def target_seeds():
    tables = conformance()

    def case(
        method=b"GET",
        target=b"/",
        version=b"HTTP/1.1",
        hosts=(b"t",),
        sep1=b" ",
        sep2=b" ",
        split=0,
        limits=0,
    ):
        return {
            "method": method,
            "sep1": sep1,
            "target": target,
            "sep2": sep2,
            "version": version,
            "hosts": list(hosts),
            "host_name": b"Host",
            "root": "",
            "limits": limits,
            "split": split,
            "cut": 0,
        }

    line = re.compile(rb"([^ \t]*)( +|\t)([^ \t]*)( +)(.*)\Z")
    for name, req, _ in tables.REFUSED:
        if name.startswith(("te_", "chunk_")):
            continue  # header section and body cases: not this harness's
        req = req.replace(b"{T}", b"tok")
        head = req.split(b"\r\n\r\n")[0].split(b"\r\n")
        m = line.match(head[0])
        hosts = [h.split(b":", 1)[1].lstrip(b" ") for h in head[1:] if h.lower().startswith(b"host:")]
        if not m or len(hosts) > 2 or len(req) > MAX_SEED:
            continue
        method, sep1, target, sep2, version = m.groups()
        if (
            method not in T.METHODS
            or version not in T.VERSIONS
            or sep1 not in T.SEPARATORS
            or sep2 not in T.SEPARATORS
        ):
            continue
        yield f"refused-{name}", case(method, target, version, hosts, sep1, sep2)
    for host in tables.GOOD_HOSTS:
        yield f"host-{host.decode('latin-1')}", case(hosts=(host,))
    for target in (
        b"http://example.com:8080/scope?x=1",
        b"HTTPS://Example.COM/scope",
        b"http://[::1]:8000/scope",
        b"http://example.com",
        b"/%2F%e2%82%ac%zz?a=%20#",
        b"/a/../b;p?q=/?",
        b"*",
    ):
        yield f"target-{target.decode('latin-1')}", case(target=target)
    yield "http10-no-host", case(version=b"HTTP/1.0", hosts=())
    yield "http10-absolute", case(target=b"http://example.com/scope", version=b"HTTP/1.0", hosts=())
    yield "options-asterisk", case(method=b"OPTIONS", target=b"*")
    yield "bytewise", case(target=b"/a?b", split=1)
    yield "limit-414", case(target=b"/" + b"a" * 300, limits=1)
    yield "limit-431", case(hosts=(b"h" * 300,), limits=1)


def safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:80]


def write(harness: str, seeds, encode, decode) -> int:
    folder = os.path.join(CORPUS, harness)
    os.makedirs(folder, exist_ok=True)
    for old in os.listdir(folder):
        if old.startswith("seed-"):
            os.remove(os.path.join(folder, old))
    n = 0
    names = set()
    for name, value in seeds:
        enc = Encoder()
        try:
            encode(value, enc)
        except ValueError:  # a piece longer than a feed op carries: too big anyway
            continue
        data = enc.data()
        if len(data) > MAX_SEED:
            continue
        assert decode(FuzzedDataProvider(data)) == value, name
        fname = "seed-" + safe(name)
        assert fname not in names, fname
        names.add(fname)
        with open(os.path.join(folder, fname), "wb") as f:
            f.write(data)
        n += 1
    return n


def main() -> None:
    n = write("fuzz_http", http_seeds(), H.encode, H.decode)
    m = write("fuzz_target", target_seeds(), T.encode, T.decode)
    print(f"fuzz/corpus/fuzz_http: {n} seeds; fuzz/corpus/fuzz_target: {m} seeds")


if __name__ == "__main__":
    main()
