"""The access log: the ``--access-log-format`` compiler and the batched writer.

The protocol calls ``access_log(scope, status, nbytes, duration)`` once per response. At
tens of thousands of responses a second, one ``Logger.info`` per response (a LogRecord, a
handler lock, a formatter pass, a write and a flush) would cost more than serving the
request. So the line format is compiled once into one Python function, and while the
access records reach one StreamHandler only, with a formatter we can compile (the default
config's, on ``uvicorn.access``, to which ``fastasgi.access`` propagates), finished lines are
collected and written with one ``write`` per event-loop iteration.
Any other logging setup (files, JSON formatters, filters, extra handlers, propagation to
the root logger) gets one ordinary ``Logger.info`` per response instead. The shape is
checked again at the start of every batch, so a log config changed at run time (in the
app's lifespan, say) is followed from the next batch on.

With ``--log-format json`` the handler's formatter is ``fastasgi.logging.JsonFormatter``:
the batched writer then writes one JSON object per response itself (``access_fields``,
and the line of the format as ``message``); records that go through logging carry the
same fields as ``extra`` attributes.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import os
import re
import time
from collections.abc import Callable
from json.encoder import encode_basestring_ascii as _json_string
from typing import Any, Protocol, cast

from fastasgi._http._core import is_token, reason_phrase
from fastasgi.logging import ACCESS_LOG_FORMAT, AccessFormatter, JsonFormatter, rfc3339, style

#: ``--access-log-format`` atoms. Names shared with gunicorn mean what they mean there.
ACCESS_LOG_ATOMS: dict[str, str] = {
    "h": "client IP address ('-' when unknown, e.g. on a unix socket)",
    "client_addr": "client address as uvicorn shows it, 'IP:port' ('' when unknown)",
    "l": "'-' (the identd field of the common log format)",
    "u": "user name from an HTTP Basic Authorization header, else '-'",
    "t": "time of the log line, [21/Nov/2025:13:55:36 +0000]",
    "r": "request line: GET /path?query HTTP/1.1",
    "request_line": "the same as %(r)s",
    "m": "request method",
    "U": "URL path as the client sent it (raw_path, percent-escapes kept), without the query",
    "q": "query string, without the '?' ('' when none)",
    "H": "protocol: HTTP/1.1",
    "s": "status code: 200",
    "status_code": "status code and reason phrase: 200 OK",
    "b": "response body bytes, '-' when none",
    "B": "response body bytes",
    "D": "duration in microseconds (integer)",
    "M": "duration in milliseconds (integer)",
    "L": "duration in seconds, with 6 decimals",
    "T": "duration in whole seconds",
    "a": "User-Agent request header ('-' when absent)",
    "f": "Referer request header ('-' when absent)",
    "p": "process id, <1234>",
    "{name}i": "request header 'name' (several occurrences joined with ', '; '-' when absent)",
}

# The message of a default access record, written with atoms.
_UVICORN_MESSAGE = '%(client_addr)s - "%(request_line)s" %(s)s'

# nginx's rule for log fields: everything but printable ASCII, and '"' and '\\', becomes
# \xHH, so a line is always one printable line and its quoted fields can be split.
_UNSAFE = re.compile(rb"[^ !#-\[\]-~]")
_unsafe_search = _UNSAFE.search
_unsafe_sub = _UNSAFE.sub


def _hex_escape(match: re.Match[bytes]) -> bytes:
    return b"\\x%02x" % match[0][0]


def escape(raw: bytes) -> str:
    """A request field (path, query, header value) made safe for one log line."""
    if _unsafe_search(raw) is None:
        return raw.decode("ascii")
    return _unsafe_sub(_hex_escape, raw).decode("ascii")


_STATUS_TEXT: dict[int, str] = {}
_STATUS_COLORED: dict[int, str] = {}


def _status_text(status: int) -> str:
    try:
        return _STATUS_TEXT[status]
    except KeyError:
        pass
    text = f"{status} {reason_phrase(status)}"
    if 100 <= status < 600:
        _STATUS_TEXT[status] = text
    return text


def _status_colored(status: int) -> str:
    try:
        return _STATUS_COLORED[status]
    except KeyError:
        pass
    color = AccessFormatter.status_colors.get(status // 100)
    text = style(_status_text(status), fg=color) if color else _status_text(status)
    if 100 <= status < 600:
        _STATUS_COLORED[status] = text
    return text


def _request_header(headers: list[tuple[bytes, bytes]], name: bytes) -> str:
    found: bytes | None = None
    for key, value in headers:
        if key == name:  # names in the scope are lower-case
            found = value if found is None else found + b", " + value
    return "-" if found is None else escape(found)


def _json_text(raw: bytes) -> str:
    """A request field for a JSON log line: UTF-8 text, an invalid byte as ``\\xHH``
    (the JSON encoder escapes whatever is not printable ASCII)."""
    return raw.decode("utf-8", "backslashreplace")


def _json_headers(headers: list[tuple[bytes, bytes]]) -> tuple[str | None, str | None, str | None]:
    """X-Forwarded-For, User-Agent and Referer as text (None when absent)."""
    forwarded = user_agent = referer = None
    for key, value in headers:
        # names in the scope are lower-case; RFC 9110 5.3: repeated field lines combine
        # into one value, joined with ", "
        if key == b"x-forwarded-for":
            forwarded = value if forwarded is None else forwarded + b", " + value
        elif key == b"user-agent":
            user_agent = value if user_agent is None else user_agent + b", " + value
        elif key == b"referer":
            referer = value if referer is None else referer + b", " + value
    return (
        None if forwarded is None else _json_text(forwarded),
        None if user_agent is None else _json_text(user_agent),
        None if referer is None else _json_text(referer),
    )


def access_fields(scope: dict, status: int, nbytes: int, duration: float) -> dict[str, Any]:
    """The fields of a JSON access line, also the ``extra`` of an access record that goes
    through logging. ``client`` is the scope's (the forwarded client when the proxy headers
    are trusted); ``forwarded_for`` is the X-Forwarded-For header as received. Absent
    values are None (``null``). ``compile_json_batch`` writes the same fields."""
    forwarded, user_agent, referer = _json_headers(scope["headers"])
    client = scope.get("client")
    return {
        "client": client[0] if client else None,
        "client_port": client[1] if client else None,
        "forwarded_for": forwarded,
        "method": scope["method"],
        "path": _json_text(scope.get("raw_path") or scope["path"].encode("utf-8")),
        "query": _json_text(scope["query_string"]),
        "protocol": "HTTP/" + scope["http_version"],
        "status": status,
        "bytes": nbytes,
        "request_time": round(float(duration), 6),
        "user_agent": user_agent,
        "referer": referer,
    }


def _json_or_null(text: str | None) -> str:
    return "null" if text is None else _json_string(text)


def compile_json_batch(
    message_format: str, terminator: str = "\n"
) -> Callable[[list[tuple[dict, int, int, float]]], str]:
    """``format_batch(items)`` for a handler whose formatter is ``JsonFormatter``: one
    JSON object per ``(scope, status, nbytes, duration)``, the line of
    ``message_format`` as its ``message``, joined with ``terminator`` after each.

    A line is exactly what ``JsonFormatter`` makes of a record with ``access_fields``,
    written out field by field: a dict through the JSON encoder costs several times more.
    Strings go through the encoder's own escaping (``ensure_ascii``); numbers are ``repr``
    as the encoder writes them."""
    message = compile_access_format(message_format)

    def format_batch(items: list[tuple[dict, int, int, float]]) -> str:
        # One time for the batch: its responses ended in one event-loop iteration.
        head = f'{{"time":"{rfc3339(time.time())}","level":"INFO","logger":"fastasgi.access","message":'
        lines: list[str] = []
        add = lines.append
        for scope, status, nbytes, duration in items:
            forwarded, user_agent, referer = _json_headers(scope["headers"])
            client = scope.get("client")
            raw_path = scope.get("raw_path") or scope["path"].encode("utf-8")
            add(
                f"{head}{_json_string(message(scope, status, nbytes, duration))}"
                f',"client":{_json_string(client[0]) if client else "null"}'
                f',"client_port":{int(client[1]) if client else "null"}'
                f',"forwarded_for":{_json_or_null(forwarded)}'
                f',"method":{_json_string(scope["method"])}'
                f',"path":{_json_string(_json_text(raw_path))}'
                f',"query":{_json_string(_json_text(scope["query_string"]))}'
                f',"protocol":{_json_string("HTTP/" + scope["http_version"])}'
                f',"status":{int(status)},"bytes":{int(nbytes)}'
                f',"request_time":{round(float(duration), 6)!r}'
                f',"user_agent":{_json_or_null(user_agent)},"referer":{_json_or_null(referer)}}}'
            )
        add("")
        return terminator.join(lines)

    return format_batch


def _basic_user(headers: list[tuple[bytes, bytes]]) -> str:
    for key, value in headers:
        if key == b"authorization":
            scheme, _, credentials = value.strip().partition(b" ")
            if scheme.lower() != b"basic":
                return "-"
            try:
                decoded = base64.b64decode(credentials.strip(), validate=True)
            except (binascii.Error, ValueError):
                return "-"
            user = decoded.partition(b":")[0]
            return escape(user) if user else "-"
    return "-"


_clf_second = -1
_clf_text = ""


def _clf_time() -> str:
    """The common log format's time, formatted once per second."""
    global _clf_second, _clf_text
    now = int(time.time())
    if now != _clf_second:
        _clf_text = time.strftime("[%d/%b/%Y:%H:%M:%S %z]", time.localtime(now))
        _clf_second = now
    return _clf_text


# Escaped paths and client addresses repeat from request to request: keep the recent ones.
_CACHE_SIZE = 1024
_escaped_paths: dict[bytes, str] = {}
_client_addrs: dict[Any, str] = {}


def _escape_path(raw: bytes) -> str:
    if len(_escaped_paths) >= _CACHE_SIZE:
        _escaped_paths.clear()
    text = _escaped_paths[raw] = escape(raw)
    return text


def _client_addr(client: tuple[str, int] | None) -> str:
    if len(_client_addrs) >= _CACHE_SIZE:
        _client_addrs.clear()
    text = _client_addrs[client] = f"{client[0]}:{client[1]}" if client else ""
    return text


# Values atoms need, computed at most once per line, in dependency order:
# name -> (statements, names it needs).
_LOCALS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "client": (('client = scope.get("client")',), ()),
    "client_addr": (
        ("client_addr = _addrs_get(client)", "if client_addr is None: client_addr = _client_addr(client)"),
        ("client",),
    ),
    "path": (
        (
            'raw_path = scope.get("raw_path") or scope["path"].encode("utf-8")',
            "path = _paths_get(raw_path)",
            "if path is None: path = _escape_path(raw_path)",
        ),
        (),
    ),
    "query": (('query = scope["query_string"]',), ()),
    "full_path": (('full_path = path + "?" + _escape(query) if query else path',), ("path", "query")),
    "status_text": (
        ("status_text = _status_get(status)", "if status_text is None: status_text = _status_text(status)"),
        (),
    ),
}

# atom -> (expression, names from _LOCALS it needs). Composite atoms (r, H, ...) are
# expanded into these in the template itself (see _EXPANSIONS), which is cheaper than
# joining strings per line.
_ATOM_CODE: dict[str, tuple[str, tuple[str, ...]]] = {
    "h": ('client[0] if client else "-"', ("client",)),
    "client_addr": ("client_addr", ("client_addr",)),
    "l": ('"-"', ()),
    "u": ('_basic_user(scope["headers"])', ()),
    "t": ("_clf_time()", ()),
    "m": ('scope["method"]', ()),
    "U": ("path", ("path",)),
    "q": ('_escape(query) if query else ""', ("query",)),
    "s": ("status", ()),
    "status_code": ("status_text", ("status_text",)),
    "b": ('nbytes or "-"', ()),
    "B": ("nbytes", ()),
    "D": ("int(duration * 1000000)", ()),
    "M": ("int(duration * 1000)", ()),
    "L": ('format(duration, ".6f")', ()),
    "T": ("int(duration)", ()),
    "a": ('_header(scope["headers"], b"user-agent")', ()),
    "f": ('_header(scope["headers"], b"referer")', ()),
    "p": ("_PID", ()),
    "\0full_path": ("full_path", ("full_path",)),
    "\0version": ('scope["http_version"]', ()),
    "\0status_code_c": ("_status_colored(status)", ()),
}

_REQUEST_LINE = [
    ("atom", "m"),
    ("text", " "),
    ("atom", "\0full_path"),
    ("text", " HTTP/"),
    ("atom", "\0version"),
]
_EXPANSIONS: dict[str, list[tuple[str, str]]] = {
    "r": _REQUEST_LINE,
    "request_line": _REQUEST_LINE,
    "H": [("text", "HTTP/"), ("atom", "\0version")],
    # only in a formatter's fmt with colours on (see _line_format)
    "\0request_line_c": [("text", "\033[1m"), *_REQUEST_LINE, ("text", "\033[0m")],
}

_FORMAT_PART = re.compile(r"%\((?P<atom>[^)]*)\)s|%%|%")

LineFormatter = Callable[[dict, int, int, float], str]


class AccessLog(Protocol):
    """What ``make_access_log`` returns: called once per response; ``flush()`` writes the
    lines not written yet."""

    def __call__(self, scope: dict, status: int, nbytes: int, duration: float) -> None: ...

    def flush(self) -> None: ...


def _parse_format(fmt: str) -> list[tuple[str, str]]:
    """``fmt`` -> [("text", literal) | ("atom", name) | ("header", lower-case name)]."""
    parts: list[tuple[str, str]] = []
    position = 0
    for match in _FORMAT_PART.finditer(fmt):
        parts.append(("text", fmt[position : match.start()]))
        position = match.end()
        atom = match.group("atom")
        if match.group(0) == "%%":
            parts.append(("text", "%"))
        elif atom is None:
            raise ValueError(
                f"{fmt!r} has a '%' at position {match.start()} that starts no atom; "
                "write atoms as %(h)s and a percent sign as %%"
            )
        elif atom.startswith("{") and atom.endswith("}i") and len(atom) > 3:
            name = atom[1:-2]
            if not is_token(name.encode("latin-1", "replace")):
                raise ValueError(f"{fmt!r}: %({atom})s does not name a header")
            parts.append(("header", name.lower()))
        elif atom in _EXPANSIONS:
            parts.extend(_EXPANSIONS[atom])
        elif atom in _ATOM_CODE:
            parts.append(("atom", atom))
        else:
            raise ValueError(f"{fmt!r} has an unknown atom %({atom})s")
    parts.append(("text", fmt[position:]))
    return parts


def _fstring_text(text: str) -> str:
    """``text`` as literal text inside a ``f'...'`` in generated source."""
    out = []
    for char in text:
        if char in "{}":
            out.append(char * 2)
        elif char in "\\'" or not char.isprintable():
            out.append(f"\\U{ord(char):08x}")
        else:
            out.append(char)
    return "".join(out)


def _generate(fmt: str, prefix: str, suffix: str, batched: bool) -> tuple[list[str], dict[str, Any]]:
    """Source lines and namespace of the line function for ``fmt`` (see
    ``compile_access_format``). The line is one f-string; the lookups it needs are bound
    as default arguments (fast locals). With ``batched`` the function formats a list of
    (scope, status, nbytes, duration) in one loop and joins the lines."""
    template = [_fstring_text(prefix)]
    needed: set[str] = set()
    bound: dict[str, Any] = {
        "_escape": escape,
        "_paths_get": _escaped_paths.get,
        "_escape_path": _escape_path,
        "_addrs_get": _client_addrs.get,
        "_client_addr": _client_addr,
        "_status_get": _STATUS_TEXT.get,
        "_status_text": _status_text,
        "_status_colored": _status_colored,
        "_header": _request_header,
        "_basic_user": _basic_user,
        "_clf_time": _clf_time,
        "_PID": f"<{os.getpid()}>",
    }
    for kind, value in _parse_format(fmt):
        if kind == "text":
            template.append(_fstring_text(value))
        elif kind == "header":
            constant = f"_header_name_{len(bound)}"
            bound[constant] = value.encode("ascii")
            template.append(f'{{(_header(scope["headers"], {constant}))}}')
        else:
            expression, needs = _ATOM_CODE[value]
            needed.update(needs)
            # parenthesised: a ':' or '!' in the expression is never read as a format spec
            template.append(f"{{({expression})}}")
    template.append(_fstring_text(suffix))
    line = "f'" + "".join(template) + "'"

    # Add what the needed locals need themselves, then emit them in dependency order.
    pending = list(needed)
    while pending:
        for dependency in _LOCALS[pending.pop()][1]:
            if dependency not in needed:
                needed.add(dependency)
                pending.append(dependency)
    defaults = ", ".join(f"{name}={name}" for name in bound)
    if batched:
        lines = [
            f"def format_batch(items, {defaults}):",
            "    lines = []",
            "    add = lines.append",
            "    for scope, status, nbytes, duration in items:",
        ]
        indent = "        "
    else:
        lines = [f"def format_line(scope, status, nbytes, duration, {defaults}):"]
        indent = "    "
    for name, (statements, _) in _LOCALS.items():
        if name in needed:
            lines += [f"{indent}{statement}" for statement in statements]
    if batched:
        lines.append(f"{indent}add({line})")
        lines.append('    return "".join(lines)')
    else:
        lines.append(f"{indent}return {line}")
    return lines, bound


def compile_access_format(fmt: str, prefix: str = "", suffix: str = "") -> LineFormatter:
    """Compile an access line format (``%(atom)s`` parts, see ``ACCESS_LOG_ATOMS``, and
    ``%%`` for a percent sign) into ``format_line(scope, status, nbytes, duration) -> str``.
    ``prefix`` and ``suffix`` are literal text around it. Raises ``ValueError`` saying what
    is wrong with ``fmt``."""
    lines, namespace = _generate(fmt, prefix, suffix, batched=False)
    exec(compile("\n".join(lines), f"<access log format {fmt!r}>", "exec"), namespace)
    return namespace["format_line"]  # type: ignore[no-any-return]


def compile_batch_format(fmt: str, suffix: str = "") -> Callable[[list[tuple[dict, int, int, float]]], str]:
    """Like ``compile_access_format``, for many lines at once: ``format_batch(items)``
    takes ``(scope, status, nbytes, duration)`` tuples and returns their lines joined."""
    lines, namespace = _generate(fmt, "", suffix, batched=True)
    exec(compile("\n".join(lines), f"<access log format {fmt!r}>", "exec"), namespace)
    return namespace["format_batch"]  # type: ignore[no-any-return]


def _uvicorn_args(scope: dict, status: int) -> tuple[str, str, str, str, int]:
    """The args of uvicorn's access record (``ACCESS_LOG_FORMAT``)."""
    client = scope.get("client")
    path = escape(scope.get("raw_path") or scope["path"].encode("utf-8"))
    query = scope.get("query_string")
    if query:
        path += "?" + escape(query)
    return (
        f"{client[0]}:{client[1]}" if client else "",
        scope["method"],
        path,
        scope["http_version"],
        status,
    )


def _line_format(formatter: logging.Formatter | None, message_format: str) -> str | None:
    """The formatter's fmt as one access line format, with its ``%(message)s`` replaced by
    ``message_format``; None when the formatter does something we do not compile (a time
    stamp, other record attributes, ``{``-style, a subclass of its own)."""
    if formatter is None:
        # what a handler without a formatter uses (private, so not in the stubs)
        formatter = logging._defaultFormatter  # type: ignore[attr-defined]
    if type(formatter) not in (AccessFormatter, logging.Formatter):
        return None
    if type(formatter._style) is not logging.PercentStyle:
        return None
    fmt = formatter._fmt or "%(message)s"
    is_access = isinstance(formatter, AccessFormatter)
    colors = is_access and formatter.use_colors  # type: ignore[union-attr]
    parts = []
    position = 0
    for match in _FORMAT_PART.finditer(fmt):
        parts.append(fmt[position : match.start()])
        position = match.end()
        atom = match.group("atom")
        if atom is None:
            parts.append(match.group(0))
        elif atom == "message":
            parts.append(message_format)
        elif atom == "levelname":
            parts.append("INFO")
        elif atom == "name":
            parts.append("fastasgi.access")
        elif atom == "levelprefix" and is_access:
            levelname = style("INFO", fg="green") if colors else "INFO"
            parts.append((levelname + ":" + " " * 4).replace("%", "%%"))
        elif atom in ("client_addr", "request_line", "status_code") and is_access:
            parts.append(f"%(\0{atom}_c)s" if colors and atom != "client_addr" else match.group(0))
        else:
            return None
    parts.append(fmt[position:])
    return "".join(parts)


def make_access_log(custom_format: str | None = None) -> AccessLog:
    """The callback the HTTP protocol calls after each response, writing uvicorn's line or,
    with ``custom_format`` (``--access-log-format``), that line. The callback has a
    ``flush()`` attribute: the server calls it at shutdown. (With the access log off the
    server gives the protocol no callback at all.)

    The logger's level and handlers are looked at when lines are logged, not now: the
    app's lifespan startup, which runs after this, may configure logging."""
    logger = logging.getLogger("fastasgi.access")
    twin = logging.getLogger("uvicorn.access")
    message_format = _UVICORN_MESSAGE if custom_format is None else custom_format
    custom_line = None if custom_format is None else compile_access_format(custom_format)
    error_logger = logging.getLogger("fastasgi.error")
    is_enabled_for = logger.isEnabledFor
    info = logger.info
    INFO = logging.INFO

    def through_logging(scope: dict, status: int, nbytes: int, duration: float) -> None:
        if not is_enabled_for(INFO):
            return
        args = _uvicorn_args(scope, status)
        # the JSON fields go with every record: a formatter of the user's (a JSON one from
        # --log-config, say) can use them as well as ours
        extra = access_fields(scope, status, nbytes, duration)
        if custom_line is None:
            info(ACCESS_LOG_FORMAT, *args, extra=extra)
        else:
            extra["client_addr"] = args[0]
            extra["request_line"] = f"{args[1]} {args[2]} HTTP/{args[3]}"
            extra["status_code"] = _status_text(status)
            info(custom_line(scope, status, nbytes, duration), extra=extra)

    # Direct writing: the one handler written to, its formatter, and the compiled lines.
    handler: Any = None
    formatter: logging.Formatter | None = None
    format_batch: Callable[[list[tuple[dict, int, int, float]]], str] | None = None

    def writable_directly() -> bool:
        """Is the logger in a shape whose output we can produce ourselves? Sets
        ``handler``, ``formatter`` and ``format_batch`` for it."""
        nonlocal handler, formatter, format_batch
        # The first logger up the chain with handlers (uvicorn.access in the default
        # config: fastasgi.access propagates to it) must be the last one a record reaches.
        sink: logging.Logger | None = logger
        while sink is not None and not sink.handlers and sink.propagate:
            sink = sink.parent
        if sink is None or (sink.propagate and sink.parent is not None):
            return False
        handlers = sink.handlers
        candidate: logging.StreamHandler[Any]
        if len(handlers) == 1 and handlers[0] is handler and handler.formatter is formatter:
            candidate = cast("logging.StreamHandler[Any]", handler)  # chosen below, as a StreamHandler
        elif len(handlers) == 1 and type(handlers[0]) is logging.StreamHandler:
            candidate = handlers[0]
        else:
            return False
        if (
            logger.filters
            or twin.filters  # LinkedLogger applies uvicorn.access's filters as well
            or candidate.filters
            or candidate.level > INFO
            or logger.disabled
            or not is_enabled_for(INFO)
        ):
            return False
        if candidate is not handler or candidate.formatter is not formatter:
            if type(candidate.formatter) is JsonFormatter:
                format_batch = compile_json_batch(message_format, candidate.terminator)
            else:
                line_format = _line_format(candidate.formatter, message_format)
                if line_format is None:
                    return False
                format_batch = compile_batch_format(line_format, candidate.terminator)
            handler, formatter = candidate, candidate.formatter
        return True

    # The responses of the current event-loop iteration, formatted and written at its end
    # with one write: formatting them in one loop is cheaper than one at a time.
    batch: list[tuple[dict, int, int, float]] = []
    add = batch.append
    direct = True  # until the logger turns out not to be writable directly

    def flush() -> None:
        nonlocal direct
        if not batch:
            return
        try:
            data = format_batch(batch)  # type: ignore[misc]
        finally:
            batch.clear()
        handler.acquire()
        try:
            stream = handler.stream
            stream.write(data)
            stream.flush()
        except Exception as exc:  # noqa: BLE001 - any write error: log it, never lose the line
            direct = False  # from now on through logging, which reports errors its own way
            error_logger.error("Access log write failed: %s", exc)
        finally:
            handler.release()

    def start_batch(item: tuple[dict, int, int, float]) -> None:
        # The logger's shape is checked once per batch (per event-loop iteration).
        nonlocal direct
        if not direct or not writable_directly():
            direct = False
            through_logging(*item)
            return
        add(item)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            flush()  # called outside a running loop (a test, a tool): write now
            return
        loop.call_soon(flush)

    def access_log(scope: dict, status: int, nbytes: int, duration: float) -> None:
        # While a batch is open, a response is only noted: no check, no formatting.
        if batch:
            add((scope, status, nbytes, duration))
        else:
            start_batch((scope, status, nbytes, duration))

    access_log.flush = flush  # type: ignore[attr-defined]
    return access_log  # type: ignore[return-value]
