#!/usr/bin/env python3
"""Fuzz the request-line, request-target and Host checks of the compiled core in isolation.

The input chooses a request line (method, the separators, the target bytes, the version), zero
to two Host field lines with any values, the server's limits and root_path, and how the bytes
are cut for delivery (whole, byte by byte, or in two). A minimal app answers 200 to whatever
reaches it. Invariants (each a Violation when broken):

- accepted: the app got exactly this request once; its scope's method and http_version are
  the ones sent, and path, raw_path and query_string are what the target says (origin-form,
  absolute-form with the authority dropped, asterisk-form; percent-decoded path as UTF-8
  with replacement; root_path in front: reference_target below, written from RFC 9112 3.2
  and RFC 3986 apart from the core); the scope's host header is the target's authority for
  absolute-form, else the Host sent, and it is a valid uri-host [ ":" port ] (valid_host,
  from RFC 3986 3.2.2-3.2.3 and RFC 9110 7.2, without "," as the core chooses);
- refused: the output is exactly the server's error response, 400, 414, 431, 501 or 505,
  with connection: close, and the transport is closed; the app got nothing;
- a request that is valid by the RFCs' grammar (a registered method, one SP, HTTP/1.1 with
  one valid Host or HTTP/1.0, an origin-form or http(s) absolute-form target) is served.

Only when the parts hold no CR or LF (which would change the message's structure) are these
checked; otherwise the general ones are: nothing escapes, nothing is written after close,
the output parses as responses.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import sys
from http import HTTPStatus
from urllib.parse import unquote_to_bytes

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from fuzz._common import (  # noqa: E402
    WATCH,
    FuzzedDataProvider,
    check,
    in_loop,
    new_loop,
    parse_responses,
    settle,
    step,
)
from support.inproc import connect, make_ctx  # noqa: E402
from support.wire_cases import error_response  # noqa: E402

# lists, not tuples: atheris picks from lists only
METHODS = [
    b"GET",
    b"HEAD",
    b"POST",
    b"PUT",
    b"DELETE",
    b"OPTIONS",
    b"PATCH",
    b"TRACE",
    b"CONNECT",
    b"PROPFIND",
    b"get",
    b"G@T",
    b"",
    b"M-SEARCH",
]
#: methods RFC 9110 9.3 registers that an ASGI app can serve (CONNECT is refused: 501)
SERVED_METHODS = {b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"TRACE"}
SEPARATORS = [b" ", b"  ", b"\t", b""]
VERSIONS = [
    b"HTTP/1.1",
    b"HTTP/1.0",
    b"HTTP/2.0",
    b"HTTP/0.9",
    b"HTTP/1.2",
    b"http/1.1",
    b"RTSP/1.0",
    b"HTTP/1.1 ",
    b"HTTP/11",
    b"",
]
HOST_NAMES = [b"Host", b"host", b"HOST", b"Host "]
ROOTS = ["", "/root"]
#: ServerContext limits: the defaults, and small ones so that 414 and 431 are reachable
LIMITS = [{}, {"max_header_bytes": 256, "max_headers": 3}]
REFUSALS = (400, 414, 431, 501, 505)
MAX_TARGET = 2048
MAX_HOST = 512


def decode(fdp) -> dict:
    case = {
        "method": fdp.PickValueInList(METHODS),
        "sep1": fdp.PickValueInList(SEPARATORS),
        "target": fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, MAX_TARGET)),
        "sep2": fdp.PickValueInList(SEPARATORS),
        "version": fdp.PickValueInList(VERSIONS),
        "hosts": [],
        "host_name": fdp.PickValueInList(HOST_NAMES),
        "root": fdp.PickValueInList(ROOTS),
        "limits": fdp.ConsumeIntInRange(0, len(LIMITS) - 1),
        "split": fdp.ConsumeIntInRange(0, 2),
        "cut": fdp.ConsumeIntInRange(0, 65535),
    }
    for _ in range(fdp.ConsumeIntInRange(0, 2)):
        case["hosts"].append(fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, MAX_HOST)))
    return case


def encode(case: dict, enc) -> None:
    """The inverse of decode (fuzz/make_corpus.py)."""
    enc.pick(METHODS, case["method"])
    enc.pick(SEPARATORS, case["sep1"])
    enc.int_in_range(0, MAX_TARGET, len(case["target"]))
    enc.bytes(case["target"])
    enc.pick(SEPARATORS, case["sep2"])
    enc.pick(VERSIONS, case["version"])
    enc.pick(HOST_NAMES, case["host_name"])
    enc.pick(ROOTS, case["root"])
    enc.int_in_range(0, len(LIMITS) - 1, case["limits"])
    enc.int_in_range(0, 2, case["split"])
    enc.int_in_range(0, 65535, case["cut"])
    enc.int_in_range(0, 2, len(case["hosts"]))
    for h in case["hosts"]:
        enc.int_in_range(0, MAX_HOST, len(h))
        enc.bytes(h)


def request_bytes(case: dict) -> bytes:
    head = case["method"] + case["sep1"] + case["target"] + case["sep2"] + case["version"] + b"\r\n"
    for h in case["hosts"]:
        head += case["host_name"] + b": " + h + b"\r\n"
    return head + b"\r\n"


# --------------------------------------------------------------------------- the references

_UNRESERVED = rb"A-Za-z0-9\-._~"
_SUB_DELIMS = rb"!$&'()*+,;="
_PCT = rb"%[0-9A-Fa-f]{2}"
_REG_NAME = re.compile(rb"(?:[" + _UNRESERVED + rb"!$&'()*+;=]|" + _PCT + rb")+\Z")  # no ","
_IPVFUTURE = re.compile(rb"[vV][0-9A-Fa-f]+\.[" + _UNRESERVED + _SUB_DELIMS + rb":]+\Z")
_PCHAR = rb"(?:[" + _UNRESERVED + _SUB_DELIMS + rb":@]|" + _PCT + rb")"
_ORIGIN_FORM = re.compile(rb"(?:/" + _PCHAR + rb"*)+(?:\?(?:" + _PCHAR + rb"|[/?])*)?\Z")
_ABSOLUTE_HTTP = re.compile(
    rb"(?i:https?)://([^/?#]*)((?:/" + _PCHAR + rb"*)*)(?:\?(?:" + _PCHAR + rb"|[/?])*)?\Z"
)


def valid_host(value: bytes) -> bool:
    """RFC 9110 7.2: uri-host [ ":" port ] (RFC 3986 3.2.2, 3.2.3), no userinfo, no empty
    host, a port a TCP port can be (<= 65535), and no "," in a reg-name."""
    if value.startswith(b"["):
        end = value.find(b"]")
        if end < 0:
            return False
        literal, rest = value[1:end], value[end + 1 :]
        if _IPVFUTURE.match(literal):
            pass
        else:
            try:
                if b"%" in literal:
                    return False  # RFC 6874 zone ids are not for Host
                ipaddress.IPv6Address(literal.decode("ascii"))
            except (ValueError, UnicodeDecodeError):
                return False
    else:
        host, _, port = value.partition(b":")
        if not _REG_NAME.match(host):
            return False
        rest = value[len(host) :]
    if not rest:
        return True
    if not rest.startswith(b":"):
        return False
    port = rest[1:]
    return port == b"" or (port.isdigit() and int(port) <= 65535)


def reference_target(target: bytes, root: str) -> tuple[str, bytes, bytes, bytes | None]:
    """(path, raw_path, query_string, authority) as an ASGI scope has them for a target the
    server accepted: RFC 9112 3.2.1-3.2.4; the path percent-decoded and read as UTF-8 with
    replacement (as urllib.parse.unquote); root_path in front of both (ASGI)."""
    authority = None
    rest = target
    if not target.startswith(b"/") and target != b"*":
        scheme_end = target.index(b"://") + 3
        end = scheme_end
        while end < len(target) and target[end : end + 1] not in (b"/", b"?"):
            end += 1
        authority = target[scheme_end:end]
        rest = target[end:]
    raw, _, query = rest.partition(b"?")
    if not raw:
        raw = b"/"  # RFC 9112 3.2.2: an empty path is "/"
    path = unquote_to_bytes(raw).decode("utf-8", "replace")
    return root + path, root.encode("utf-8") + raw, query, authority


def valid_request(case: dict) -> bool:
    """Whether the request is valid by the RFCs' grammar and within the server's limits, so
    the server must serve it."""
    if case["method"] not in SERVED_METHODS or case["sep1"] != b" " or case["sep2"] != b" ":
        return False
    if case["host_name"] == b"Host ":
        return False  # RFC 9112 5.1: no whitespace between name and colon
    version = case["version"]
    hosts = [h.strip(b" \t") for h in case["hosts"]]
    if version == b"HTTP/1.1":
        if len(hosts) != 1 or not valid_host(hosts[0]):
            return False
    elif version == b"HTTP/1.0":
        if len(hosts) > 1 or (hosts and not valid_host(hosts[0])):
            return False
    else:
        return False
    target = case["target"]
    if target == b"*":
        ok = case["method"] == b"OPTIONS"
    elif _ORIGIN_FORM.match(target):
        ok = True
    else:
        m = _ABSOLUTE_HTTP.match(target)
        ok = bool(m) and valid_host(m.group(1))
    if not ok:
        return False
    limit = LIMITS[case["limits"]]
    return len(request_bytes(case)) < limit.get("max_header_bytes", 65536) and len(hosts) <= limit.get(
        "max_headers", 100
    )


# --------------------------------------------------------------------------- running a case


class App:
    def __init__(self) -> None:
        self.scopes: list[dict] = []

    async def __call__(self, scope, receive, send):
        self.scopes.append(scope)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def pieces(data: bytes, split: int, cut: int) -> list[bytes]:
    if split == 0:
        return [data]
    if split == 1:
        return [data[i : i + 1] for i in range(len(data))]
    k = cut % (len(data) + 1)
    return [p for p in (data[:k], data[k:]) if p]


def run(case: dict) -> None:
    with WATCH:
        loop = new_loop()
        WATCH.attach(loop)
        try:
            app, transport = play(loop, case)
        finally:
            for task in asyncio.all_tasks(loop):
                task.cancel()
            settle(loop)
            loop.close()
        WATCH.verify()
    check_case(case, app, transport)


def play(loop, case: dict):
    app = App()
    ctx = make_ctx(app, loop, root_path=case["root"], **LIMITS[case["limits"]])
    _, transport = connect(ctx)
    for piece in pieces(request_bytes(case), case["split"], case["cut"]):
        step(loop)
        transport.feed(piece)
    settle(loop)
    in_loop(loop, ctx.tick)
    settle(loop)
    return app, transport


def check_case(case: dict, app: App, transport) -> None:
    check(not transport.writes_after_close, "written after the transport was closed")
    out = transport.output()
    parts = (case["method"], case["target"], case["version"], *case["hosts"])
    # the checks below read the request line as the parts say; an empty method or separator
    # lets the target's bytes be read as the method, CR or LF change the message's structure
    ambiguous = not case["method"] or not case["sep1"] or not case["sep2"]
    if ambiguous or any(b"\r" in p or b"\n" in p for p in parts):
        heads = [s["method"] == "HEAD" for s in app.scopes]
        parse_responses(out, lambda k, r: k < len(heads) and heads[k])
        return
    if app.scopes:
        check(len(app.scopes) == 1, "one request line reached the app %d times", len(app.scopes))
        scope = app.scopes[0]
        check(out.startswith(b"HTTP/1.1 200 OK\r\n"), "accepted, but answered %r", out[:100])
        check(scope["method"] == case["method"].decode("latin-1"), "method %r", scope["method"])
        check(case["version"] in (b"HTTP/1.1", b"HTTP/1.0"), "version %r accepted", case["version"])
        check(
            scope["http_version"] == case["version"][5:].decode(),
            "http_version %r for %r",
            scope["http_version"],
            case["version"],
        )
        check(
            case["sep1"] == b" " and case["sep2"] == b" ",
            "request line separators %r %r accepted",
            case["sep1"],
            case["sep2"],
        )
        path, raw_path, query, authority = reference_target(case["target"], case["root"])
        check(scope["path"] == path, "path %r, the target %r says %r", scope["path"], case["target"], path)
        check(
            scope["raw_path"] == raw_path,
            "raw_path %r, the target %r says %r",
            scope["raw_path"],
            case["target"],
            raw_path,
        )
        check(
            scope["query_string"] == query,
            "query_string %r, the target %r says %r",
            scope["query_string"],
            case["target"],
            query,
        )
        hosts = [v for k, v in scope["headers"] if k == b"host"]
        sent = [h.strip(b" \t") for h in case["hosts"]]
        if authority is not None:
            check(hosts == [authority], "absolute-form: host %r, the authority is %r", hosts, authority)
        else:
            check(hosts == sent, "host headers %r, sent %r", hosts, sent)
        check(len(hosts) <= 1, "%d Host values accepted", len(hosts))
        for h in hosts:
            check(valid_host(h), 'Host %r accepted, which is not uri-host [ ":" port ]', h)
        if case["version"] == b"HTTP/1.1":
            check(hosts, "HTTP/1.1 without Host accepted")
    else:
        code = int(out[9:12]) if out.startswith(b"HTTP/1.1 ") else 0
        check(code in REFUSALS, "refused with %r", out[:200])
        expected = [error_response(code)]
        if case["method"] == b"HEAD":
            # RFC 9110 9.3.2: no content to a HEAD request, once the server has read that it is
            # one (the core knows from the method and the first byte of the target)
            expected.append(expected[0][: -len(HTTPStatus(code).phrase)])
        check(out in expected, "refusal %d is not the server's error response: %r", code, out[:300])
        check(transport.closed, "refused with %d but not closed", code)
        check(
            not valid_request(case),
            "a valid request was refused with %d: %r",
            code,
            request_bytes(case)[:300],
        )


def one_input(data: bytes) -> None:
    """atheris's TestOneInput: decode, run, check."""
    run(decode(FuzzedDataProvider(data)))


def main() -> None:
    import atheris

    import fastasgi._http._core as core

    print(
        f"fuzz_target: fastasgi._http._core from {core.__file__} (debug build: {core.DEBUG})", file=sys.stderr
    )
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
