"""``--log-format json`` and ``--worker-init``, called directly: the JSON formatter on
hand-made records (fields, escaping, exception text), the access log's JSON fields and
batched JSON lines, the settings' checks, and ``run_worker_init``. No server is started."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import sys
from datetime import datetime, timezone

import pytest

from fastasgi._accesslog import access_fields, compile_access_format, compile_json_batch, make_access_log
from fastasgi.config import STARTUP_FAILURE, Config, ConfigError, WorkerInitError, run_worker_init
from fastasgi.logging import (
    JSON_LOGGING_CONFIG,
    LOGGING_CONFIG,
    JsonFormatter,
    configure_logging,
    reached_handlers,
    rfc3339,
)

TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")

SCOPE = {
    "type": "http",
    "client": ("1.2.3.4", 5678),
    "method": "POST",
    "path": "/a b",
    "raw_path": b"/a%20b",
    "query_string": b"q=1",
    "http_version": "1.1",
    "headers": [
        (b"user-agent", b"caf\xc3\xa9 \x1b[31m"),  # UTF-8 and an escape sequence (obs-text)
        (b"referer", b"https://example.com/"),
        (b"x-forwarded-for", b"10.0.0.1"),
        (b"x-forwarded-for", b"10.0.0.2"),
    ],
}


def record(
    msg: str = "hello",
    args: tuple = (),
    name: str = "fastasgi.error",
    level: int = logging.INFO,
    exc_info=None,
    extra: dict | None = None,
) -> logging.LogRecord:
    made = logging.LogRecord(name, level, __file__, 1, msg, args, exc_info)
    made.created = 1764153843.512789  # 2025-11-26T10:44:03.513Z (nearest millisecond)
    for key, value in (extra or {}).items():
        setattr(made, key, value)
    return made


def formatted(made: logging.LogRecord) -> tuple[str, dict]:
    line = JsonFormatter().format(made)
    return line, json.loads(line)


def test_fields_of_a_plain_record():
    line, entry = formatted(record("Started server process [%d]", (42,), extra={"color_message": "x"}))
    assert entry == {
        "time": "2025-11-26T10:44:03.513Z",
        "level": "INFO",
        "logger": "fastasgi.error",
        "message": "Started server process [42]",
    }
    assert line == (
        '{"time":"2025-11-26T10:44:03.513Z","level":"INFO","logger":"fastasgi.error",'
        '"message":"Started server process [42]"}'
    )


def test_level_names():
    logging.addLevelName(5, "TRACE")
    assert formatted(record(level=logging.WARNING))[1]["level"] == "WARNING"
    assert formatted(record(level=5))[1]["level"] == "TRACE"


def test_control_characters_and_non_ascii_are_escaped():
    text = 'a\x1b[2J\r\n\t\x00\x7f\x85 caf\u00e9 \u2028 \U0001f600 "q" \\'
    line, entry = formatted(record("%s", (text,)))
    assert entry["message"] == text
    # Only printable ASCII on the line: no terminal escape, no line break, no DEL, no C1.
    assert all(" " <= char <= "~" for char in line), line
    assert "\\u001b[2J" in line and "\\r\\n\\t\\u0000\\u007f\\u0085" in line
    assert "caf\\u00e9" in line and "\\u2028" in line and "\\ud83d\\ude00" in line
    assert '\\"q\\" \\\\' in line


def test_exception_is_the_formatted_traceback():
    try:
        raise ValueError("bad \x1b value")
    except ValueError:
        exc_info = sys.exc_info()
    line, entry = formatted(record("Exception in ASGI application\n", exc_info=exc_info, level=logging.ERROR))
    assert entry["message"] == "Exception in ASGI application"
    assert entry["exception"].startswith("Traceback (most recent call last):\n")
    assert entry["exception"].endswith("ValueError: bad \x1b value")
    assert "test_exception_is_the_formatted_traceback" in entry["exception"]
    assert "\n" not in line and "\x1b" not in line


def test_stack_info_and_extra_fields():
    made = record(extra={"user_id": 7, "obj": object(), "time": "not ours"})
    made.stack_info = "Stack (most recent call last):\n  here"
    entry = formatted(made)[1]
    assert entry["user_id"] == 7
    assert entry["obj"].startswith("<object object")  # no JSON type: its str()
    assert entry["time"] == "2025-11-26T10:44:03.513Z"  # the record's time wins
    assert entry["stack"] == made.stack_info


def test_fmt_and_use_colors_are_accepted_and_ignored():
    line = JsonFormatter(fmt="%(levelprefix)s %(message)s", use_colors=True).format(record())
    assert json.loads(line)["message"] == "hello"


def test_rfc3339():
    assert rfc3339(0.0) == "1970-01-01T00:00:00.000Z"
    assert rfc3339(1764153843.9989) == "2025-11-26T10:44:03.999Z"
    assert rfc3339(1764153843.9999) == "2025-11-26T10:44:04.000Z"
    assert rfc3339(1764153844.001) == "2025-11-26T10:44:04.001Z"


# -- access lines -------------------------------------------------------------------------


def test_access_fields():
    assert access_fields(SCOPE, 201, 5, 0.0123456789) == {
        "client": "1.2.3.4",
        "client_port": 5678,
        "forwarded_for": "10.0.0.1, 10.0.0.2",
        "method": "POST",
        "path": "/a%20b",
        "query": "q=1",
        "protocol": "HTTP/1.1",
        "status": 201,
        "bytes": 5,
        "request_time": 0.012346,
        "user_agent": "caf\u00e9 \x1b[31m",
        "referer": "https://example.com/",
    }


def test_access_fields_when_absent_and_invalid_utf8():
    scope = dict(SCOPE, client=None, headers=[], raw_path=b"/\xff", query_string=b"")
    fields = access_fields(scope, 404, 0, 0.5)
    assert fields["client"] is fields["client_port"] is fields["forwarded_for"] is None
    assert fields["user_agent"] is fields["referer"] is None
    assert (fields["path"], fields["query"]) == ("/\\xff", "")


def test_json_batch_lines():
    format_batch = compile_json_batch('%(client_addr)s - "%(request_line)s" %(s)s')
    text = format_batch([(SCOPE, 200, 5, 0.25), (dict(SCOPE, method="GET"), 404, 0, 0.001)])
    assert text.endswith("\n") and text.count("\n") == 2
    first, second = (json.loads(line) for line in text.splitlines())
    assert TIME.fullmatch(first["time"])
    assert (first["level"], first["logger"]) == ("INFO", "fastasgi.access")
    assert first["message"] == '1.2.3.4:5678 - "POST /a%20b?q=1 HTTP/1.1" 200'
    assert {key: first[key] for key in ("method", "path", "status", "bytes", "request_time")} == {
        "method": "POST",
        "path": "/a%20b",
        "status": 200,
        "bytes": 5,
        "request_time": 0.25,
    }
    assert (second["method"], second["status"], second["bytes"]) == ("GET", 404, 0)
    assert all(" " <= char <= "~" for char in text.replace("\n", ""))


@pytest.mark.parametrize(
    "scope",
    [
        SCOPE,
        dict(SCOPE, client=None, headers=[], raw_path=b'/\xff\x1b"', query_string=b"a=\\"),
        dict(SCOPE, raw_path=None, path="/caf\u00e9", http_version="1.0"),
    ],
)
@pytest.mark.parametrize("duration", [0, 0.000012, 1.5, 123.4567891])
def test_batch_line_is_what_the_formatter_makes_of_the_fields(scope, duration):
    """The batched writer writes its lines field by field: byte for byte JsonFormatter's."""
    fmt = '%(client_addr)s - "%(request_line)s" %(s)s'
    line = compile_json_batch(fmt)([(scope, 200, 5, duration)]).rstrip("\n")
    made = record("%s", (compile_access_format(fmt)(scope, 200, 5, duration),), name="fastasgi.access")
    made.created = rfc3339_to_timestamp(json.loads(line)["time"])
    made.__dict__.update(access_fields(scope, 200, 5, duration))
    assert line == JsonFormatter().format(made)


def rfc3339_to_timestamp(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("custom", [None, "%(h)s %(r)s %(s)s %(b)s"])
def test_access_log_writes_json_directly_and_through_logging(custom):
    """The batched writer (one handler with JsonFormatter) and the path through logging (a
    second handler) write the same fields."""
    configure_logging(JSON_LOGGING_CONFIG)
    # the default config's access handler is on uvicorn.access: fastasgi.access propagates to it
    logger = logging.getLogger("uvicorn.access")
    direct = io.StringIO()
    logger.handlers[0].setStream(direct)  # type: ignore[attr-defined]
    access_log = make_access_log(custom)
    access_log(SCOPE, 200, 5, 0.25)  # no running loop: written at once
    through = io.StringIO()
    for stream in (direct, through):
        handler = logging.StreamHandler(stream)
        handler.setFormatter(JsonFormatter())
        logger.handlers = [handler]
        access_log = make_access_log(custom)
        if stream is through:
            logger.addHandler(logging.NullHandler())  # two handlers: through logging
        access_log(SCOPE, 200, 5, 0.25)
    lines = direct.getvalue().splitlines() + through.getvalue().splitlines()
    assert len(lines) == 3
    entries = [json.loads(line) for line in lines]
    for entry in entries:
        del entry["time"]
    assert entries[0] == entries[1] == entries[2]
    expected = (
        "1.2.3.4 POST /a%20b?q=1 HTTP/1.1 200 5"
        if custom
        else '1.2.3.4:5678 - "POST /a%20b?q=1 HTTP/1.1" 200'
    )
    assert entries[0]["message"] == expected
    assert entries[0]["user_agent"] == "caf\u00e9 \x1b[31m"


# -- settings -----------------------------------------------------------------------------


@pytest.mark.usefixtures("restore_logging")
def test_log_format_json_makes_the_default_config_json():
    config = Config("app:app", log_format="json")
    assert config.log_format == "json"
    for name in ("uvicorn", "uvicorn.access"):
        (handler,) = logging.getLogger(name).handlers
        assert type(handler.formatter) is JsonFormatter
    # a copy of the default (a Config pickled for --reload) is recognised by its value
    configure_logging(json.loads(json.dumps(LOGGING_CONFIG)), log_format="json")
    assert type(logging.getLogger("uvicorn").handlers[0].formatter) is JsonFormatter
    configure_logging(LOGGING_CONFIG, log_format="text")
    assert type(logging.getLogger("uvicorn").handlers[0].formatter) is not JsonFormatter


@pytest.mark.usefixtures("restore_logging")
def test_log_format_is_checked_and_a_log_config_wins():
    with pytest.raises(
        ConfigError, match=r"^Invalid value for '--log-format': 'xml' is not one of 'text', 'json'\.$"
    ):
        Config("app:app", log_format="xml")
    own = {"version": 1, "disable_existing_loggers": False}
    logger = logging.getLogger("fastasgi.error")
    seen = io.StringIO()
    logger.addHandler(logging.StreamHandler(seen))  # restore_logging takes it off again
    Config("app:app", log_format="json", log_config=own)
    assert "--log-format json has no effect with --log-config" in seen.getvalue()
    for name in ("fastasgi.error", "fastasgi.access"):
        reached = reached_handlers(logging.getLogger(name))
        assert not [handler for handler in reached if type(handler.formatter) is JsonFormatter]


# -- --worker-init ------------------------------------------------------------------------


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("value", ["nocolon", ":init", "module:", 42])
def test_worker_init_must_be_an_import_string(value):
    with pytest.raises(
        ConfigError, match=r"^Invalid value for '--worker-init': .* is not of the form \"module:function\"\.$"
    ) as info:
        Config("app:app", worker_init=value)
    assert info.value.exit_code == 1


def test_worker_init_runs_once_per_process():
    calls = []

    def init():
        calls.append(os.getpid())

    run_worker_init(init)
    run_worker_init(init)
    run_worker_init(None)
    assert calls == [os.getpid()]


@pytest.mark.parametrize(
    "value,says",
    [
        (
            "no_such_module_here:init",
            r'^Error loading the --worker-init function\. Could not import module "no_such_module_here"\.$',
        ),
        (
            "os:no_such_function",
            r'^Error loading the --worker-init function\. Attribute "no_such_function" not found in module "os"\.$',
        ),
        ("os:sep", r"^Invalid value for '--worker-init': 'os:sep' is not callable \(got str\)\.$"),
    ],
)
def test_worker_init_that_cannot_be_called(value, says):
    with pytest.raises(WorkerInitError, match=says) as info:
        run_worker_init(value)
    assert info.value.exit_code == STARTUP_FAILURE
    assert "\n" not in str(info.value)


def test_worker_init_that_raises_keeps_its_traceback():
    def init():
        raise RuntimeError("no collector")

    with pytest.raises(WorkerInitError) as info:
        run_worker_init(init)
    assert (
        str(info.value)
        == "--worker-init 'test_worker_init_that_raises_keeps_its_traceback.<locals>.init' raised RuntimeError: no collector"
    )
    assert info.value.show_cause and isinstance(info.value.__cause__, RuntimeError)
    assert info.value.__cause__.__traceback__.tb_frame.f_code is init.__code__  # starts in the user's code
    # it did not run to the end: the next load tries again
    with pytest.raises(WorkerInitError):
        run_worker_init(init)


def test_worker_init_must_not_be_a_coroutine_function():
    async def init():
        pass

    with pytest.raises(WorkerInitError, match=r"returned an awaitable; it must be a plain function"):
        run_worker_init(init)
