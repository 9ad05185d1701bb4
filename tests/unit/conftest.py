"""Fixtures of the in-process suite: a loop with a fake clock per test, and a guard that
keeps this suite free of subprocesses (the e2e suite is where real servers run)."""

from __future__ import annotations

import logging
import subprocess

import pytest

from support.inproc import ClockLoop, close_loop, new_loop


@pytest.fixture
def loop() -> ClockLoop:
    loop = new_loop()
    yield loop
    close_loop(loop)


@pytest.fixture(autouse=True)
def _no_subprocess(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"the unit suite starts no process: {args[:1]!r}")

    monkeypatch.setattr(subprocess, "Popen", refuse)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self, level: int = logging.ERROR) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno >= level]


@pytest.fixture
def error_log():
    """The records of the "fastasgi.error" logger during the test, whatever the logging
    configuration (a Config built by another test sets propagate and levels)."""
    logger = logging.getLogger("fastasgi.error")
    handler = _Records()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.fixture
def restore_logging():
    """Put the fastasgi and uvicorn loggers back as they were (building a Config
    configures logging; the default config's handlers are on the uvicorn names)."""
    names = ("fastasgi", "fastasgi.error", "fastasgi.access", "uvicorn", "uvicorn.error", "uvicorn.access")
    saved = {}
    for name in names:
        logger = logging.getLogger(name)
        # a fastasgi logger's own flag (its .disabled also reads its uvicorn twin's)
        disabled = vars(logger).get("_own_disabled", logger.disabled)
        saved[name] = (list(logger.handlers), logger.level, logger.propagate, disabled, list(logger.filters))
    yield
    for name, (handlers, level, propagate, disabled, filters) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate
        logger.disabled = disabled
        logger.filters[:] = filters
