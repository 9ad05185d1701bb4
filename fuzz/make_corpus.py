"""Write the seed corpora, fuzz/corpus/<harness>/seed-*, from the wire tables.

fuzz_http: every GOOD, BAD and LIMITS case of tests/support/wire_cases.py delivered whole
(and the GOOD ones also cut in two, with the app waiting), each app behaviour once over a
pipelined pair of requests, and the connection events (half-close, reset, pause_writing,
ticks, shutdown, abort, a body past the read high-water mark).
fuzz_target: the request line and Host cases of tests/e2e/test_conformance.py (REFUSED,
GOOD_HOSTS, the absolute-form ones) taken apart into method, target, version and Host.
fuzz_h2: HTTP/2 exchanges by hand (h2_seeds): requests with and without bodies, trailers,
several streams, resets, invalid HPACK blocks, CONTINUATION chains, floods, odd SETTINGS and
WINDOW_UPDATEs, every app behaviour, the connection events.
fuzz_wsconn: websocket connections by hand (wsconn_seeds): echo with and without deflate,
fragments, early frames, read back-pressure, a deferred close, pings and their timeout, every
app behaviour but the concurrent receive() (an open finding), refused handshakes, shutdown.

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

from fuzz import fuzz_h2 as H2  # noqa: E402
from fuzz import fuzz_http as H  # noqa: E402
from fuzz import fuzz_target as T  # noqa: E402
from fuzz import fuzz_wsconn as WS  # noqa: E402
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


def h2_seeds():
    B, P = H2.Behaviour, H2.Plan
    END_STREAM, PRIORITY, PADDED, OPEN = 1, 2, 4, 8

    def get(sel="new", flags=END_STREAM, kind="get", continuations=0):
        return ("headers", sel, kind, flags, continuations)

    def data(size, flags=1, sel="last"):
        return ("data", sel, size, flags)

    ack = ("settings", 1, ())
    yield "get", P(0, 0, (), (get(), ack))
    yield "get-bytewise", P(0, 1, (), (get(), *[("deliver", 1)] * 80))
    yield "post-body", P(0, 0, (B("read_respond", 200, 2, 1, 7),), (get(kind="post", flags=0), data(1000)))
    yield (
        "post-flow-control",
        P(0, 1, (B("read_respond", reads=3),), (get(kind="post", flags=0), data(70000), ("timers",))),
    )
    yield "trailers", P(0, 0, (B("trailers", 200, 1, 2, 7, 0, 0.1),), (get(kind="te_trailers"), ("timers",)))
    yield (
        "client-trailers",
        P(
            0,
            0,
            (B("read_respond"),),
            (get(kind="post", flags=0), data(7, 0), get("last", END_STREAM, "trailers")),
        ),
    )
    yield (
        "several-streams",
        P(
            0,
            0,
            (
                B("stream", 200, 0, 2, 1000, 0, 0.1),
                B("respond", 404, 1),
                B("read_respond", 200, 2),
                B("trailers"),
            ),
            (get(), get(), get(kind="post", flags=0), data(100), get(kind="head"), ("timers",), get()),
        ),
    )
    yield (
        "max-streams",
        P(1, 0, (B(wait=3.0),) * 3, (get(), get(), get(), ack, get(), ("timers",))),
    )
    yield (
        "reset",
        P(0, 0, (B("read_respond"),), (get(kind="post", flags=0), ("deliver", 0), ("rst", "last", 8))),
    )
    yield "rapid-reset", P(0, 0, (B(wait=3.0),), (("burst", 100), ("burst", 100)))
    for kind in ("hpack_overflow", "hpack_bad_huffman"):
        yield f"bad-{kind}", P(0, 0, (), (get(kind=kind), get()))
    yield (
        "continuation-chain",
        P(0, 0, (), (get(continuations=3), get(flags=END_STREAM | PRIORITY | PADDED, continuations=1))),
    )
    yield (
        "continuation-flood",
        P(0, 0, (), (get(flags=OPEN), ("continuation", "last", "empty", 0), ("repeat", 10))),
    )
    yield "ping-flood", P(0, 0, (), (("ping", 0), ("repeat", 1001), get()))
    yield (
        "settings-odd",
        P(
            0,
            3,
            (),
            (
                ("settings", 0, ((4, 2**31), (5, 16777216), (3, 0))),
                ("settings", 0, ((0x99, 1), (1, 0), (5, 16777215))),
                get(),
            ),
        ),
    )
    yield (
        "settings-window-overflow",
        P(
            0,
            2,
            (B("stream", 200, 0, 1, 20000),),
            (
                get(),
                ("deliver", 0),
                ("window", "last", H2.MAX_STREAM - 65535),
                ("settings", 0, ((4, H2.MAX_STREAM),)),
            ),
        ),
    )
    yield (
        "window-zero",
        P(0, 0, (B("stream", 200, 0, 1, 20000),), (get(), ("window", 0, 0), ("window", "last", 0))),
    )
    yield "window-huge", P(0, 0, (), (("window", 0, H2.MAX_STREAM), get(), ("window", "last", H2.MAX_STREAM)))
    yield (
        "zero-window-stall",
        P(
            0,
            2,
            (B("respond", 200, 0, 0, 20000),),
            (get(), ("deliver", 0), ("tick", 31.0), ("window", "last", 1000), ("tick", 61.0)),
        ),
    )
    yield (
        "priority",
        P(
            0,
            0,
            (),
            (
                ("priority", "new", "last", 16, 1),
                ("priority", 3, 0, 256, 0),
                get(flags=END_STREAM | PRIORITY),
                ("priority", "last", "last", 1, 0),
            ),
        ),
    )
    yield "goaway-from-client", P(0, 0, (B(wait=3.0),), (get(), ("goaway", "last", 0), get(), ("timers",)))
    yield (
        "unknown-frames",
        P(0, 0, (), (("unknown", 0x42, 0xFF, 0, 8), get(), ("unknown", 0xF0, 0, "last", 100))),
    )
    yield (
        "raw-garbage",
        P(
            0,
            0,
            (),
            (("raw", b"\x00\x00\x04\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00"), get(), ("raw", b"garbage")),
        ),
    )
    yield (
        "stream-ids",
        P(0, 0, (), (get("reserved"), ("window", "reserved", 1), get(2), data(1, 1, 0), get(H2.MAX_STREAM))),
    )
    yield "reused-stream", P(0, 0, (), (get(), get(), get("prev")))
    yield (
        "malformed",
        P(
            3,
            0,
            (),
            tuple(
                get(kind=k)
                for k in (
                    "uppercase",
                    "connection",
                    "no_path",
                    "connect",
                    "bad_authority",
                    "host_differs",
                    "options_star",
                    "pseudo_after",
                    "underscore",
                    "empty",
                )
            ),
        ),
    )
    yield (
        "limits",
        P(1, 0, (), (get(kind="big_field"), get(kind="many_fields"), ack, get(kind="cookies_host"))),
    )
    yield (
        "body-limit",
        P(
            2,
            0,
            (B("read_respond"),) * 2,
            (get(kind="huge_length", flags=0), get(kind="post", flags=0), data(1000)),
        ),
    )
    modes = H2.MODES
    for i in range(0, len(modes), 8):
        group = tuple(B(m, 200, i % H2.HEADER_SETS, 1, 1000, 1, 0.1) for m in modes[i : i + 8])
        yield f"modes-{i // 8}", P(0, 0, group, (*[get() for _ in group], ("timers",), ("tick", 31.0)))
    yield (
        "head-and-204",
        P(
            0,
            0,
            (B("stream", 204, 2, 1, 1000), B("trailers", 200, 0, 1, 1000)),
            (get(kind="head"), get(kind="head")),
        ),
    )
    yield (
        "pause-writing",
        P(
            0,
            0,
            (B("stream", 200, 0, 3, 20000),),
            (("pause_writing",), get(), ("deliver", 0), ("idle",), ("resume_writing",), ("idle",)),
        ),
    )
    yield "eof-mid-body", P(0, 0, (B("read_respond"),), (get(kind="post", flags=0), data(7, 0), ("eof",)))
    yield (
        "lose-mid-response",
        P(0, 0, (B("stream", 200, 0, 3, 1000, 0, 3.0),), (get(), ("deliver", 0), ("timers",), ("lose",))),
    )
    yield "shutdown-busy", P(0, 0, (B(wait=3.0),), (get(), ("deliver", 0), ("shutdown",), get(), ("timers",)))
    yield "abort-busy", P(0, 0, (B(wait=3.0),), (get(), ("deliver", 0), ("abort",), ("idle",)))
    yield (
        "timeouts",
        P(
            2,
            0,
            (B("read_respond"), B(wait=45.0)),
            (get(kind="post", flags=0), data(7, 0), ("tick", 5.0), ("tick", 5.0), get(), ("tick", 31.0)),
        ),
    )
    yield "limit-concurrency", P(2, 0, (B(wait=3.0),), (get(), get(), ("timers",)))
    yield "long-poll", P(0, 0, (B("disconnect_then_send"),), (get(), ("tick", 61.0)))


def wsconn_seeds():
    B, P = WS.Behaviour, WS.Plan
    KEY = 0x37FA213D  # a masking key (RFC 6455 5.3)
    FIN, COMPRESS, UNMASKED, FRESH = 0, 2, 4, 8
    NOT_FIN = 1

    def frame(kind, payload=b"", flags=FIN, big=0, extra=0):
        return ("frame", kind, flags, big, extra, KEY, payload)

    def close(code=1000, reason=b""):
        return frame("close", reason, extra=WS.CLOSE_CODES.index(code))

    hs = {name: k for k, (name, _, _) in enumerate(WS.HANDSHAKES)}
    talk = (frame("text", b"hello"), frame("binary", b"\x00\x01\xff"), frame("ping", b"p"))
    deliver, step, idle = ("deliver", 0), ("step",), ("idle",)
    yield "echo", P(ops=(*talk, close(1000, b"bye")))
    yield "echo-bytewise", P(ops=(frame("text", b"hi"), close(), *[("deliver", 1)] * 40))
    yield (
        "deflate-echo",
        P(deflate=6, handshake=hs["deflate"], ops=(*[frame("text", b"hello hello", COMPRESS)] * 3, close())),
    )
    yield (
        "deflate-no-takeover",
        P(
            deflate=1,
            handshake=hs["deflate-no-takeover"],
            behaviour=B("burst", count=3, size=126),
            ops=(
                frame("binary", b"abcabc", COMPRESS | FRESH),
                frame("binary", b"abcabc", COMPRESS | FRESH),
                close(),
            ),
        ),
    )
    yield (
        "deflate-fragments",
        P(
            deflate=9,
            handshake=hs["deflate-other-first"],
            ops=(
                frame("text", b"frag", COMPRESS | NOT_FIN),
                frame("ping"),
                frame("cont", b"ment", COMPRESS),
                close(),
            ),
        ),
    )
    yield "fragments", P(ops=(frame("text", b"a", NOT_FIN), frame("ping"), frame("cont", b"b"), close(3000)))
    yield "early-frames", P(max_queue=1, ops=(*talk, *talk, deliver, step, idle, close()))
    yield (
        "backpressure",
        P(
            max_queue=2,
            behaviour=B("slow", wait=0.5),
            ops=(
                *[frame("text", b"m")] * 6,
                deliver,
                ("timers",),
                frame("text", b"n"),
                ("flood", 64),
                deliver,
                idle,
            ),
        ),
    )
    yield (
        "deferred-close",
        P(behaviour=B("idle", wait=30.0), ops=(deliver, idle, *talk, close(4999), deliver, ("advance", 5.1))),
    )
    yield (
        "deferred-error",
        P(
            behaviour=B("slow", wait=3.0),
            ops=(
                deliver,
                idle,
                frame("text", b"x"),
                frame("text", b"unmasked", UNMASKED),
                deliver,
                ("advance", 4.9),
            ),
        ),
    )
    yield "too-big", P(max_size=125, ops=(frame("text", b"ok"), frame("binary", big=126), deliver, idle))
    yield "bad-utf8", P(ops=(frame("text", b"ok"), frame("text", b"\xc3\x28"), deliver, idle, ("eof",)))
    yield (
        "burst-write-paused",
        P(
            behaviour=B("burst", count=300, size=125, text=False),
            ops=(deliver, ("pause_writing",), step, step, idle, ("resume_writing",), idle, close()),
        ),
    )
    yield (
        "sender-write-paused",
        P(
            behaviour=B("sender", count=16, size=4000, wait=0.5),
            ops=(deliver, step, ("pause_writing",), ("timers",), ("resume_writing",), ("timers",), close()),
        ),
    )
    yield (
        "app-close",
        P(
            behaviour=B("close", n=1, code=4999, reason="bye"),
            ops=(frame("text", b"one"), deliver, idle, close()),
        ),
    )
    yield "app-raise", P(behaviour=B("raise", n=2), ops=(*talk, deliver, idle))
    yield "app-return", P(behaviour=B("return", n=1, variant=3), handshake=hs["subprotocols"], ops=(*talk,))
    yield "deny", P(behaviour=B("deny", n=2, variant=1, status=404, wait=0.5), ops=(deliver, ("timers",)))
    yield "deny-unfinished", P(behaviour=B("deny", n=1, variant=3, status=200), ops=(deliver, idle))
    yield "reject", P(behaviour=B("reject"), ops=(talk[0], deliver, idle))
    yield "raise-before", P(behaviour=B("raise_before"))
    yield "return-before", P(behaviour=B("return_before"))
    for name in ("bad-key", "version-8", "two-keys", "bad-extension"):
        yield f"handshake-{name}", P(deflate=6, handshake=hs[name], ops=(talk[0],))
    yield (
        "handshake-fuzzed-extension",
        P(
            deflate=0,
            handshake=hs["fuzzed-extension"],
            ext=b"permessage-deflate; client_max_window_bits=8; server_no_context_takeover",
            ops=(frame("text", b"zz", COMPRESS), close()),
        ),
    )
    yield "ping-timeout", P(ping=(5.0, 2.0), ops=(deliver, idle, ("advance", 5.0), ("advance", 2.0)))
    yield (
        "ping-pong",
        P(
            ping=(1.0, None),
            ops=(deliver, idle, ("advance", 1.0), ("pong",), deliver, ("advance", 1.0), close()),
        ),
    )
    yield "shutdown-open", P(ops=(deliver, idle, ("begin_shutdown",), frame("text", b"late"), idle, close()))
    yield "shutdown-handshake", P(ops=(deliver, ("shutdown",), ("begin_shutdown",), idle))
    yield "ping-flood", P(ops=(deliver, idle, frame("ping", b"x"), ("flood", 1024), deliver, ("lose",)))
    yield "abort", P(behaviour=B("slow", wait=6.0), ops=(deliver, idle, *talk, deliver, ("abort",)))


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
    k = write("fuzz_h2", h2_seeds(), H2.encode, H2.decode)
    w = write("fuzz_wsconn", wsconn_seeds(), WS.encode, WS.decode)
    print(
        f"fuzz/corpus/fuzz_http: {n} seeds; fuzz/corpus/fuzz_target: {m} seeds; fuzz/corpus/fuzz_h2: {k} seeds; "
        f"fuzz/corpus/fuzz_wsconn: {w} seeds"
    )


if __name__ == "__main__":
    main()
