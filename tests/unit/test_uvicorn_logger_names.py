"""fastasgi's loggers linked to uvicorn's (fastasgi.logging's docstring), in process: the
access record's args, logger filters and ``disabled`` of the uvicorn names applying to
fastasgi's records, ``--log-level``, and the batched access writer kept with the default
config (whose access handler is on ``uvicorn.access``)."""

from __future__ import annotations

import io
import logging
import logging.config

import pytest

from fastasgi._accesslog import make_access_log
from fastasgi.logging import LOGGING_CONFIG, configure_logging

pytestmark = pytest.mark.usefixtures("restore_logging")

SCOPE = {
    "type": "http",
    "client": ("10.0.0.7", 51234),
    "method": "GET",
    "path": "/a b",
    "raw_path": b"/a%20b",
    "query_string": b"q=1",
    "http_version": "1.1",
    "headers": [],
}


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def uvicorn_only(access_handler: logging.Handler, error_handler: logging.Handler, **loggers) -> None:
    """A config of uvicorn's names only (dictConfig's default disable_existing_loggers),
    with the two handlers given."""
    logging.config.dictConfig(
        {
            "version": 1,
            "handlers": {"access": {"()": lambda: access_handler}, "error": {"()": lambda: error_handler}},
            "loggers": {
                "uvicorn": {"handlers": ["error"], "level": "INFO", "propagate": False},
                "uvicorn.error": {"level": "INFO", **loggers.get("error", {})},
                "uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
            },
        }
    )


def test_access_record_is_uvicorns():
    uvicorn_logging = pytest.importorskip("uvicorn.logging")
    access, error = Records(), Records()
    uvicorn_only(access, error)
    make_access_log()(SCOPE, 404, 0, 0.1)
    (record,) = access.records
    assert record.args == ("10.0.0.7:51234", "GET", "/a%20b?q=1", "1.1", 404)
    assert type(record.args[4]) is int
    formatter = uvicorn_logging.AccessFormatter(
        '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s', use_colors=False
    )
    assert formatter.format(record) == 'INFO:     10.0.0.7:51234 - "GET /a%20b?q=1 HTTP/1.1" 404 Not Found'
    assert not error.records


def test_uvicorn_logger_filters_and_disabled_apply_to_fastasgi_records():
    access, error = Records(), Records()
    uvicorn_only(access, error)  # disables every logger it does not name: ours follow uvicorn's
    logging.getLogger("uvicorn.access").addFilter(lambda record: record.args[2] != "/health")
    logging.getLogger("uvicorn.error").addFilter(lambda record: "noise" not in record.getMessage())
    access_log = make_access_log()
    access_log(dict(SCOPE, raw_path=b"/health", query_string=b""), 200, 0, 0.1)
    access_log(SCOPE, 200, 0, 0.1)
    assert [record.args[2] for record in access.records] == ["/a%20b?q=1"]
    logging.getLogger("fastasgi.error").info("noise")
    logging.getLogger("fastasgi.error").info("signal")
    assert [record.getMessage() for record in error.records] == ["signal"]

    # a config naming neither set disables both, as it disables any other logger
    logging.config.dictConfig({"version": 1, "root": {"handlers": [], "level": "INFO"}})
    assert logging.getLogger("uvicorn.error").disabled and logging.getLogger("fastasgi.error").disabled


def test_log_level_is_set_on_both_sets():
    configure_logging(LOGGING_CONFIG, log_level="debug")
    for name in ("fastasgi.error", "fastasgi.access", "uvicorn.error", "uvicorn.access"):
        assert logging.getLogger(name).level == logging.DEBUG


def test_default_config_writes_access_lines_in_batches():
    """The default config's handler is on uvicorn.access: the writer still formats the lines
    itself and writes the handler's stream, without a record."""
    configure_logging(LOGGING_CONFIG, use_colors=False)
    (handler,) = logging.getLogger("uvicorn.access").handlers
    stream = io.StringIO()
    handler.setStream(stream)  # type: ignore[attr-defined]

    def no_record(record: logging.LogRecord) -> None:
        raise AssertionError("went through logging")

    handler.emit = no_record  # type: ignore[method-assign]
    make_access_log()(SCOPE, 200, 2, 0.1)  # outside a running loop: written at once
    assert stream.getvalue() == 'INFO:     10.0.0.7:51234 - "GET /a%20b?q=1 HTTP/1.1" 200 OK\n'


@pytest.mark.parametrize("config", ["default", "uvicorn"])
def test_access_log_filtered_by_level_formats_nothing(config):
    if config == "default":
        configure_logging(LOGGING_CONFIG)
    else:
        uvicorn_only(Records(), Records())
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    make_access_log()({}, 200, 0, 0.0)  # an empty scope: any formatting would raise
