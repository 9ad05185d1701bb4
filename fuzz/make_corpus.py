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
fuzz_proxy_protocol: PROXY protocol headers by hand (proxy_seeds): v1 TCP4, TCP6 and UNKNOWN
lines, v2 PROXY and LOCAL over IPv4, IPv6, unix sockets, UNSPEC and datagrams, with TLVs,
each followed by a request; their truncations, the limits (107 bytes, the v2 cap), malformed
ones, HTTP and garbage; under each mode, from trusted and untrusted peers, cut into pieces.

Each seed is encoded with fuzz._fdp.Encoder and checked to decode back to what was meant.
Cases over MAX_SEED bytes are left out (libFuzzer's -max_len in fuzz/run.sh; for
fuzz_proxy_protocol its MAX_LEN). Run from the repository root: python3 fuzz/make_corpus.py
(it replaces the seed-* files, nothing else).
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import re
import struct
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from fuzz import fuzz_h2 as H2  # noqa: E402
from fuzz import fuzz_http as H  # noqa: E402
from fuzz import fuzz_proxy_protocol as PP  # noqa: E402
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


def proxy_seeds():
    def case(data, mode="auto", cuts=(), peer="trusted", shape="raw", extra=0):
        return {"mode": mode, "peer": peer, "shape": shape, "extra": extra, "cuts": list(cuts), "data": data}

    def v2(command, family, block=b"", tlvs=b"", length=None):
        body = block + tlvs
        size = len(body) if length is None else length
        return PP.V2_SIGNATURE + bytes([command, family]) + struct.pack("!H", size) + body

    def inet(src, dst, sport, dport):
        a, b = ipaddress.ip_address(src), ipaddress.ip_address(dst)
        return a.packed + b.packed + struct.pack("!HH", sport, dport)

    def tlv(kind, value):
        return bytes([kind]) + struct.pack("!H", len(value)) + value

    request = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
    v4 = inet("192.0.2.1", "192.0.2.11", 56324, 443)
    v6 = inet("2001:db8::1", "2001:db8::11", 56324, 8443)
    unix = b"/run/client.sock".ljust(108, b"\x00") + b"/run/haproxy.sock".ljust(108, b"\x00")
    ssl = tlv(0x20, b"\x07" + b"\x00\x00\x00\x00" + tlv(0x21, b"TLSv1.3") + tlv(0x22, b"client"))
    tlvs = tlv(0x01, b"h2") + tlv(0x02, b"example.com") + tlv(0x05, b"id-1") + tlv(0x04, b"\x00" * 3) + ssl
    good = {
        "v1-tcp4": b"PROXY TCP4 192.0.2.1 192.0.2.11 56324 443\r\n",
        "v1-tcp6": b"PROXY TCP6 2001:db8::1 2001:db8::11 56324 8443\r\n",
        "v1-tcp6-long-form": b"PROXY TCP6 2001:0db8:0:0:0:0:0:1 ::ffff:192.0.2.11 1 65535\r\n",
        "v1-tcp4-ports-0": b"PROXY TCP4 0.0.0.0 255.255.255.255 0 0\r\n",
        "v1-unknown": b"PROXY UNKNOWN\r\n",
        "v1-unknown-rest": b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n",
        "v1-longest": b"PROXY UNKNOWN " + b"f" * (PP.V1_LIMIT - 16) + b"\r\n",
        "v2-tcp4": v2(0x21, 0x11, v4),
        "v2-tcp6": v2(0x21, 0x21, v6),
        "v2-unix": v2(0x21, 0x31, unix),
        "v2-unix-no-path": v2(0x21, 0x31, b"\x00" * 216),
        "v2-udp4": v2(0x21, 0x12, v4),
        "v2-udp6": v2(0x21, 0x22, v6),
        "v2-unix-dgram": v2(0x21, 0x32, unix),
        "v2-unspec": v2(0x21, 0x00),
        "v2-unspec-tlvs": v2(0x21, 0x00, b"", tlv(0x04, b"")),
        "v2-local": v2(0x20, 0x00),
        "v2-local-block": v2(0x20, 0x11, v4),
        "v2-local-any-family": v2(0x20, 0xFF, b"xyz"),
        "v2-tcp4-tlvs": v2(0x21, 0x11, v4, tlvs),
        "v2-tcp6-tlvs": v2(0x21, 0x21, v6, tlv(0x03, b"\x12\x34\x56\x78") + tlv(0x30, b"netns")),
        "v2-cap": v2(0x21, 0x11, v4, tlv(0x04, b"\x00" * (PP.V2_CAP - len(v4) - 3))),
    }
    for name, header in good.items():
        modes = ["auto", "v1" if header.startswith(b"PROXY") else "v2"]
        for mode in modes:
            yield f"{name}-{mode}", case(header + request, mode)
        yield f"{name}-bytewise-head", case(header + request, modes[1], cuts=range(1, 24))
        yield f"{name}-cut", case(header + request, modes[1], cuts=(len(header) // 2, len(header) + 3))
        yield f"{name}-alone", case(header, modes[1])
        yield f"{name}-truncated", case(header[: len(header) - 1], modes[1])
        yield f"{name}-other-mode", case(header + request, "v2" if modes[1] == "v1" else "v1")
        yield f"{name}-untrusted", case(header + request, "auto", peer="untrusted")
    for cut in (1, 5, 6, 12, 13, 15, 16, 20):
        yield f"v2-tcp4-first-{cut}", case(good["v2-tcp4"][:cut], "v2")
    bad = {
        "v1-108": b"PROXY UNKNOWN " + b"f" * (PP.V1_LIMIT - 15) + b"\r\n",
        "v1-no-crlf": b"PROXY UNKNOWN " + b"f" * 120,
        "v1-bare-lf": b"PROXY TCP4 192.0.2.1 192.0.2.11 56324 443\n",
        "v1-bare-cr": b"PROXY TCP4 192.0.2.1\r192.0.2.11 56324 443\r\n",
        "v1-no-space": b"PROXYTCP4 192.0.2.1 192.0.2.11 56324 443\r\n",
        "v1-proxy-alone": b"PROXY\r\n",
        "v1-udp4": b"PROXY UDP4 192.0.2.1 192.0.2.11 56324 443\r\n",
        "v1-two-spaces": b"PROXY TCP4  192.0.2.1 192.0.2.11 56324 443\r\n",
        "v1-trailing-space": b"PROXY TCP4 192.0.2.1 192.0.2.11 56324 443 \r\n",
        "v1-five-fields": b"PROXY TCP4 192.0.2.1 192.0.2.11 56324\r\n",
        "v1-v6-under-tcp4": b"PROXY TCP4 2001:db8::1 192.0.2.11 56324 443\r\n",
        "v1-v4-under-tcp6": b"PROXY TCP6 192.0.2.1 2001:db8::11 56324 443\r\n",
        "v1-leading-zero": b"PROXY TCP4 192.0.2.01 192.0.2.11 56324 443\r\n",
        "v1-zone": b"PROXY TCP6 fe80::1%eth0 2001:db8::11 56324 443\r\n",
        "v1-port-zero-led": b"PROXY TCP4 192.0.2.1 192.0.2.11 056324 443\r\n",
        "v1-port-65536": b"PROXY TCP4 192.0.2.1 192.0.2.11 65536 443\r\n",
        "v1-port-sign": b"PROXY TCP4 192.0.2.1 192.0.2.11 +1 443\r\n",
        "v1-port-unicode-digit": "PROXY TCP4 192.0.2.1 192.0.2.11 \u0661 443\r\n".encode(),
        "v1-not-ascii": b"PROXY UNKNOWN \xc3\xa9\r\n",
        "v1-lower-case": b"PROXY tcp4 192.0.2.1 192.0.2.11 56324 443\r\n",
        "v1-nul": b"PROXY TCP4 192.0.2.1\x00 192.0.2.11 56324 443\r\n",
        "v2-version-1": PP.V2_SIGNATURE + b"\x11\x11\x00\x0c" + v4,
        "v2-version-3": PP.V2_SIGNATURE + b"\x31\x11\x00\x0c" + v4,
        "v2-command-2": v2(0x22, 0x11, v4),
        "v2-family-4": v2(0x21, 0x41, v4),
        "v2-transport-3": v2(0x21, 0x13, v4),
        "v2-short-v4": v2(0x21, 0x11, v4[:8]),
        "v2-short-v6": v2(0x21, 0x21, v4),
        "v2-short-unix": v2(0x21, 0x31, b"\x00" * 108),
        "v2-over-cap": v2(0x21, 0x11, v4, length=PP.V2_CAP + 1),
        "v2-length-65535": v2(0x21, 0x11, v4, length=0xFFFF),
        "v2-tlv-truncated": v2(0x21, 0x11, v4, b"\x01\x00"),
        "v2-tlv-past-end": v2(0x21, 0x11, v4, b"\x02\x00\x05abc"),
        "v2-tlv-past-end-unspec": v2(0x21, 0x00, b"", b"\x02\x00\x05abc"),
        "http": request,
        "http-leading-crlf": b"\r\n" + request,
        "v2-signature-prefix": PP.V2_SIGNATURE[:7] + b"GET",
        "tls-client-hello": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        "empty": b"",
        "p": b"P",
        "garbage": bytes(range(256)),
    }
    for name, data in bad.items():
        for mode in PP.MODES:
            yield f"{name}-{mode}", case(data + request, mode)
    fixed = v2(0x21, 0x11, v4, tlvs, length=0) + request
    yield "v2-length-fixed", case(fixed, "v2", shape="v2-length", extra=len(request))
    yield "v2-length-fixed-tlvs-cut", case(v2(0x21, 0x21, v6, tlvs), "v2", (17, 40), shape="v2-length")


def safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:80]


def write(harness: str, seeds, encode, decode, limit: int = MAX_SEED) -> int:
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
        if len(data) > limit:
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
    # a v2 header at the cap is 16 + 4096 bytes: its -max_len is MAX_LEN (fuzz/run.sh)
    p = write("fuzz_proxy_protocol", proxy_seeds(), PP.encode, PP.decode, PP.MAX_LEN)
    print(
        f"fuzz/corpus/fuzz_http: {n} seeds; fuzz/corpus/fuzz_target: {m} seeds; fuzz/corpus/fuzz_h2: {k} seeds; "
        f"fuzz/corpus/fuzz_wsconn: {w} seeds; fuzz/corpus/fuzz_proxy_protocol: {p} seeds"
    )


if __name__ == "__main__":
    main()
