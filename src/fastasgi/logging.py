"""Log configuration from plain values, and the formatters.

fastasgi logs on ``fastasgi.error`` (server life cycle and application errors; despite the
name it carries INFO lines such as "Started server process") and ``fastasgi.access`` (one
line per response). Log configs are everywhere written for uvicorn's names, so the two
name sets are linked into one chain, and a record reaches the handlers configured on either
name, each handler once::

    fastasgi.error  -> uvicorn.error  -> uvicorn -> fastasgi -> root
    fastasgi.access -> uvicorn.access -> uvicorn -> fastasgi -> root

``fastasgi.error`` and ``fastasgi.access`` are children of their uvicorn twins (so a config
that names only ``uvicorn``, ``uvicorn.error`` and ``uvicorn.access`` gets fastasgi's lines,
and its ``propagate: false`` stops them as it stops uvicorn's), and ``uvicorn`` is a child
of ``fastasgi`` (so a config written for fastasgi's names still gets them, and so do the
lines an app logs on ``uvicorn.error``). A config naming both sets with ``propagate: false``
prints a line once: at the first configured logger of the chain. The default config names
the uvicorn loggers, exactly as uvicorn's does, so a config the app applies later on those
names replaces it as it would under uvicorn.

Two things of ``logging`` apply to a record only where it is logged, not where it
propagates to: logger filters and the ``disabled`` flag. The fastasgi loggers are therefore
of a ``Logger`` subclass that applies the filters of their uvicorn twin too (a health-check
filter added to ``uvicorn.access`` sees fastasgi's access records), and that counts as
disabled only while its twin is disabled as well (``disable_existing_loggers`` in a config
that names the uvicorn loggers does not silence fastasgi). The records keep their own
names: ``%(name)s`` shows ``fastasgi.error`` / ``fastasgi.access``.

An access record carries uvicorn's message and args, ``(client_addr, method,
path_with_query, http_version, status)``, so uvicorn's ``AccessFormatter`` and filters on
``record.args`` work; the startup lines carry uvicorn's ``color_message``.

The default formatters prefix each line with the level (``INFO:     ``), coloured when the
stream is a terminal, as uvicorn does. With ``--log-format json`` both handlers use
``JsonFormatter`` instead: one JSON object per line. ``configure_logging`` takes plain
values, not a ``Config``; the access lines themselves are made by ``fastasgi._accesslog``.
"""

from __future__ import annotations

import json
import logging
import logging.config
import os
import sys
import time
from configparser import RawConfigParser
from copy import copy, deepcopy
from typing import IO, Any, ClassVar, Literal, cast

from fastasgi import _defaults
from fastasgi._http._core import reason_phrase

TRACE_LOG_LEVEL = 5

#: The access handler's format in the default log config: uvicorn's line.
DEFAULT_ACCESS_FMT = '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s'

LOG_LEVELS: dict[str, int] = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": TRACE_LOG_LEVEL,
}

LOGGING_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "default": {
            "()": "fastasgi.logging.DefaultFormatter",
            "fmt": "%(levelprefix)s %(message)s",
            "use_colors": None,
        },
        "access": {
            "()": "fastasgi.logging.AccessFormatter",
            "fmt": DEFAULT_ACCESS_FMT,
            "use_colors": None,
        },
    },
    "handlers": {
        "default": {
            "formatter": "default",
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stderr",
        },
        "access": {
            "formatter": "access",
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
        },
    },
    # uvicorn's names, as in uvicorn's default: fastasgi's loggers propagate to them (see
    # above), and a config of the app's own for these names replaces this one.
    "loggers": {
        "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"level": "INFO"},
        "uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
    },
}

#: ``--log-format`` values: the default (uvicorn's) lines, or one JSON object per line.
LOG_FORMATS = _defaults.LOG_FORMATS

#: The default log config with ``--log-format json``: the same handlers and loggers, both
#: handlers writing JSON objects.
JSON_LOGGING_CONFIG: dict[str, Any] = deepcopy(LOGGING_CONFIG)
JSON_LOGGING_CONFIG["formatters"] = {
    "default": {"()": "fastasgi.logging.JsonFormatter"},
    "access": {"()": "fastasgi.logging.JsonFormatter"},
}

#: The message of an access record as uvicorn logs it, with the args client_addr, method,
#: path with query, HTTP version, status (what ``AccessFormatter`` expects).
ACCESS_LOG_FORMAT = '%s - "%s %s HTTP/%s" %d'

LogConfig = dict[str, Any] | str | os.PathLike[str] | RawConfigParser | IO[Any] | None

_ANSI_COLORS = {
    "red": 31,
    "green": 32,
    "yellow": 33,
    "blue": 34,
    "cyan": 36,
    "bright_red": 91,
    "bright_white": 97,
}


def style(text: str, fg: str | None = None, bold: bool = False) -> str:
    """Wrap ``text`` in ANSI escape codes."""
    prefix = ""
    if fg is not None:
        prefix += f"\033[{_ANSI_COLORS[fg]}m"
    if bold:
        prefix += "\033[1m"
    return f"{prefix}{text}\033[0m"


class ColourizedFormatter(logging.Formatter):
    """Adds ``%(levelprefix)s`` ("INFO:     ", the level name padded to line messages up),
    coloured when colours are on. A record logged with ``extra={"color_message": ...}``
    uses that message instead of the plain one when colours are on."""

    level_colors: ClassVar[dict[int, str]] = {
        TRACE_LOG_LEVEL: "blue",
        logging.DEBUG: "cyan",
        logging.INFO: "green",
        logging.WARNING: "yellow",
        logging.ERROR: "red",
        logging.CRITICAL: "bright_red",
    }
    #: the stream this formatter's handler writes to by default (for the tty check)
    stream_name = "stderr"

    def __init__(
        self,
        fmt: str | None = None,
        datefmt: str | None = None,
        style: Literal["%", "{", "$"] = "%",
        use_colors: bool | None = None,
    ) -> None:
        if use_colors is None:
            use_colors = _is_tty(getattr(sys, self.stream_name, None))
        self.use_colors = use_colors
        super().__init__(fmt=fmt, datefmt=datefmt, style=style)

    def formatMessage(self, record: logging.LogRecord) -> str:
        record = copy(record)
        levelname = record.levelname
        padding = " " * (8 - len(levelname))
        if self.use_colors:
            color = self.level_colors.get(record.levelno)
            if color is not None:
                levelname = style(levelname, fg=color)
            if "color_message" in record.__dict__:
                record.msg = record.__dict__["color_message"]
                record.message = record.getMessage()
        record.__dict__["levelprefix"] = levelname + ":" + padding
        return super().formatMessage(record)


class DefaultFormatter(ColourizedFormatter):
    stream_name = "stderr"


class AccessFormatter(ColourizedFormatter):
    """Formats records logged by the access log, and the format may use
    ``%(client_addr)s``, ``%(request_line)s`` and ``%(status_code)s`` ("200 OK").

    With the default ``--access-log-format`` a record's args are uvicorn's ``(client_addr,
    method, path_with_query, http_version, status)``; with a custom one the message is the
    finished line and the three fields come as record attributes (uncoloured)."""

    stream_name = "stdout"
    status_colors: ClassVar[dict[int, str]] = {
        1: "bright_white",
        2: "green",
        3: "yellow",
        4: "red",
        5: "bright_red",
    }

    def formatMessage(self, record: logging.LogRecord) -> str:
        args = record.args
        if not (isinstance(args, tuple) and len(args) == 5):
            return super().formatMessage(record)
        record = copy(record)
        # the access log's args (fastasgi._accesslog, uvicorn's order): the status is an int
        client_addr, method, full_path, http_version, status = cast("tuple[Any, Any, Any, Any, int]", args)
        status_code = f"{status} {reason_phrase(status)}"
        request_line = f"{method} {full_path} HTTP/{http_version}"
        if self.use_colors:
            status_code = style(status_code, fg=self.status_colors.get(status // 100))
            request_line = style(request_line, bold=True)
        record.__dict__.update(client_addr=client_addr, request_line=request_line, status_code=status_code)
        return super().formatMessage(record)


# ensure_ascii: every character outside printable ASCII, control characters and DEL
# included, is written as a \uXXXX escape (RFC 8259 7), so a line never carries a raw
# escape sequence to a terminal, and never a raw line break.
_json_encode = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), default=str).encode


def json_line(entry: dict[str, Any]) -> str:
    """``entry`` as one line of JSON, escaped as described above; a value JSON has no type
    for is written as its ``str()``."""
    return _json_encode(entry)


_rfc3339_second = -1
_rfc3339_text = ""


def rfc3339(timestamp: float) -> str:
    """``timestamp`` (seconds since the epoch) as an RFC 3339 UTC time with milliseconds:
    ``2025-11-26T10:44:03.512Z``."""
    global _rfc3339_second, _rfc3339_text
    # the nearest millisecond: a float's fraction is rarely exact (.001 is .000999...)
    second, millisecond = divmod(round(timestamp * 1000), 1000)
    if second != _rfc3339_second:
        # the text up to the seconds changes once a second: format it once per second
        _rfc3339_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _rfc3339_second = second
    return f"{_rfc3339_text}.{millisecond:03d}Z"


#: What every LogRecord has: the rest of a record's attributes came from ``extra``.
_RECORD_ATTRIBUTES = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys() | {"message", "asctime", "taskName"}
)
#: ``extra`` attributes that only matter to the text formatters: the coloured message, and
#: the text fields a custom access record carries (the JSON fields say the same).
_TEXT_ONLY = frozenset({"color_message"})
_TEXT_ONLY_ACCESS = frozenset({"color_message", "client_addr", "request_line", "status_code"})


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (``--log-format json``):

    ``time`` (RFC 3339, UTC, milliseconds), ``level``, ``logger``, ``message`` (trailing
    line breaks dropped); then the
    record's ``extra`` attributes (the access log's fields: see
    ``fastasgi._accesslog.access_fields``); ``exception`` (the formatted traceback) when
    the record carries exc_info, and ``stack`` with stack_info.

    Usable in a ``--log-config`` of one's own (``"()": "fastasgi.logging.JsonFormatter"``);
    ``fmt`` and ``use_colors`` are accepted, so a config written for the text formatters
    works, and ignored: the fields are fixed and JSON is never coloured. The access log
    writes the lines of a handler with exactly this formatter itself, in batches."""

    def __init__(
        self,
        fmt: str | None = None,
        datefmt: str | None = None,
        style: Literal["%", "{", "$"] = "%",
        use_colors: bool | None = None,
    ) -> None:
        super().__init__(fmt=fmt, datefmt=datefmt, style=style)

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": rfc3339(record.created),
            "level": record.levelname,
            "logger": record.name,
            # without trailing line breaks (uvicorn's "Exception in ASGI application\n"
            # ends with one to put the traceback on lines of its own)
            "message": record.getMessage().rstrip("\r\n"),
        }
        skip = _TEXT_ONLY_ACCESS if record.name == "fastasgi.access" else _TEXT_ONLY
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES and key not in skip and key not in entry:
                entry[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json_line(entry)


#: (fastasgi's logger, its uvicorn twin), the top one first.
LOGGER_PAIRS = (
    ("fastasgi", "uvicorn"),
    ("fastasgi.error", "uvicorn.error"),
    ("fastasgi.access", "uvicorn.access"),
)


class LinkedLogger(logging.Logger):
    """The class of fastasgi's loggers: a record logged here passes this logger's filters
    and its uvicorn twin's (logging applies a logger's filters only to records logged on
    it, and fastasgi logs on its own names); disabled only while the twin is disabled too.
    """

    twin: logging.Logger
    _own_disabled: bool

    @property  # type: ignore[override]
    def disabled(self) -> bool:  # type: ignore[override]
        # A config applied with disable_existing_loggers disables every logger it does
        # not name: naming uvicorn's loggers is naming ours.
        return self._own_disabled and self.twin.disabled

    @disabled.setter
    def disabled(self, value: bool) -> None:
        self._own_disabled = value

    def filter(self, record: logging.LogRecord) -> Any:
        result = super().filter(record)
        if not result or not self.twin.filters:
            return result
        # Python 3.12+: a filter may return a changed record, which the twin's filters see
        return self.twin.filter(result if isinstance(result, logging.LogRecord) else record)


def _link_loggers() -> None:
    """Make the chain of the module docstring: set the parents, and the fastasgi loggers'
    class and twins. Loggers are never re-parented by logging afterwards: it does so only
    when a logger is created where a placeholder stood, and these all exist from now on."""
    ours_top = logging.getLogger("fastasgi")
    for ours_name, uvicorn_name in LOGGER_PAIRS:
        ours, twin = logging.getLogger(ours_name), logging.getLogger(uvicorn_name)
        if not isinstance(ours, LinkedLogger):
            disabled = ours.__dict__.pop("disabled", False)
            ours.__class__ = LinkedLogger  # the same object: loggers already held keep working
            ours.disabled = disabled
        cast("LinkedLogger", ours).twin = twin
        if ours is ours_top:
            twin.parent = ours_top  # uvicorn -> fastasgi
        else:
            ours.parent = twin  # fastasgi.error -> uvicorn.error, fastasgi.access -> uvicorn.access
    # the levels are inherited along the new parents: drop what isEnabledFor has cached
    ours_top.setLevel(ours_top.level)


_link_loggers()


def reached_handlers(logger: logging.Logger, *, stop: logging.Logger | None = None) -> list[logging.Handler]:
    """The handlers a record logged on ``logger`` is offered to, in order (what
    ``Logger.callHandlers`` walks); up to, not including, ``stop`` when given."""
    found: list[logging.Handler] = []
    node: logging.Logger | None = logger
    while node is not None and node is not stop:
        found.extend(node.handlers)
        node = node.parent if node.propagate else None
    return found


def _is_tty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def configure_logging(
    log_config: LogConfig,
    *,
    log_level: str | int | None = None,
    use_colors: bool | None = None,
    access_log: bool = True,
    access_log_format: str | None = None,
    log_format: str = _defaults.LOG_FORMAT,
) -> None:
    """Apply a log config, then the settings that adjust it.

    ``log_config`` is a dictConfig dict, a path to a ``.json`` / ``.yaml`` / ``.yml`` file
    (dictConfig) or to an ini file (fileConfig), a ``RawConfigParser`` or an open ini file,
    or None to leave logging as it is. ``log_level`` (a name of ``LOG_LEVELS`` or a
    number) is set on fastasgi's loggers and on uvicorn's; ``use_colors`` (None: when the
    stream is a terminal) goes to our formatters in a dict config; ``access_log`` False
    removes the access handlers; an ``access_log_format`` is the whole access line, so our default
    access handler then writes it without a prefix. ``log_format`` ``"json"`` turns the
    default config (``LOGGING_CONFIG``, or a dict equal to it) into ``JSON_LOGGING_CONFIG``;
    any other config is applied as it is (it says how lines look).

    Raises ``OSError`` / ``ValueError`` for unreadable or invalid files; the caller turns
    them into an error naming ``--log-config``.
    """
    logging.addLevelName(TRACE_LOG_LEVEL, "TRACE")

    if isinstance(log_config, os.PathLike):
        log_config = os.fspath(log_config)
    if log_format == "json" and isinstance(log_config, dict) and log_config == LOGGING_CONFIG:
        # compared by value: a Config that was pickled (--reload) holds a copy of the default
        log_config = JSON_LOGGING_CONFIG
    if isinstance(log_config, dict):
        if use_colors is not None:
            log_config = _with_colors(log_config, use_colors)
        logging.config.dictConfig(log_config)
    elif isinstance(log_config, str) and log_config.endswith(".json"):
        with open(log_config) as file:
            logging.config.dictConfig(json.load(file))
    elif isinstance(log_config, str) and log_config.endswith((".yaml", ".yml")):
        import yaml  # optional: pip install pyyaml (or fastasgi[standard])

        with open(log_config) as file:
            logging.config.dictConfig(yaml.safe_load(file))
    elif log_config is not None:
        # An ini file, a file object or a RawConfigParser.
        logging.config.fileConfig(log_config, disable_existing_loggers=False)

    if log_level is not None:
        level = LOG_LEVELS[log_level.lower()] if isinstance(log_level, str) else log_level
        # both sets: an app's own uvicorn.error lines follow --log-level as under uvicorn
        for prefix in ("fastasgi", "uvicorn"):
            for name in ("error", "access", "asgi"):
                logging.getLogger(f"{prefix}.{name}").setLevel(level)

    if access_log_format is not None and log_config is not None:
        # --access-log-format is the whole line: the default access handler writes it as is.
        _plain_access_formatter()

    if not access_log:
        for name in ("fastasgi.access", "uvicorn.access"):  # uvicorn empties its one too
            access_logger = logging.getLogger(name)
            access_logger.handlers = []
            access_logger.propagate = False


def _plain_access_formatter() -> None:
    """Give the access handlers that use our default access format ``%(message)s``
    instead (``--access-log-format`` then decides the whole line)."""
    for handler in reached_handlers(logging.getLogger("fastasgi.access")):
        formatter = handler.formatter
        if isinstance(formatter, AccessFormatter) and formatter._fmt == DEFAULT_ACCESS_FMT:
            handler.setFormatter(AccessFormatter("%(message)s", use_colors=False))


def _with_colors(log_config: dict[str, Any], use_colors: bool) -> dict[str, Any]:
    """A copy of ``log_config`` with ``use_colors`` set on our formatters (the caller's
    dict, often the module-level default, is left as it was)."""
    log_config = dict(log_config)
    formatters = {name: dict(spec) for name, spec in log_config.get("formatters", {}).items()}
    for spec in formatters.values():
        if str(spec.get("()", "")).startswith("fastasgi.logging."):
            spec["use_colors"] = use_colors
    log_config["formatters"] = formatters
    return log_config
