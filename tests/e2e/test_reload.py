"""``--reload``: the real CLI watching a temporary directory with watchfiles.

The app lives in a file the test writes in ``tmp_path`` (``--app-dir``, ``--reload-dir``);
the test edits it and checks that the server answers with the new code.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest

from fastasgi.config import Config, ConfigError
from fastasgi.supervisors.reload import ChangeReload, watch_settings
from support.supervisors import Supervised, get, wait_until

pytest.importorskip("watchfiles")

APP_TEMPLATE = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({{"type": "http.response.start", "status": 200, "headers": []}})
    await send({{"type": "http.response.body", "body": {body!r}}})
"""


def write_app(path: Path, body: bytes) -> None:
    path.write_text(APP_TEMPLATE.format(body=body))


def start_reloader(directory: Path, *args: str) -> Supervised:
    return Supervised.cli(
        "main:app", "--reload", "--port", "0", "--app-dir", str(directory), "--reload-dir", str(directory),
        "--reload-delay", "0.1", *args, cwd=directory,
    )  # fmt: skip


def body_becomes(port: int, expected: bytes, timeout: float = 15.0) -> None:
    def answered() -> bool:
        try:
            return get(port, timeout=5) == (200, expected)
        except OSError:
            return False

    wait_until(answered, timeout, f"the server to answer {expected!r}", interval=0.1)


def test_reload_picks_up_an_edited_file(tmp_path):
    write_app(tmp_path / "main.py", b"version 1")
    with start_reloader(tmp_path) as server:
        port = server.wait_started()
        server.wait_for(r"Started reloader process \[\d+\] using WatchFiles")
        assert server.wait_for(r"Will watch for changes in these directories: \[(.*)\]").group(1) == repr(
            str(tmp_path.resolve())
        )
        body_becomes(port, b"version 1")
        first = server.started_pids()

        write_app(tmp_path / "main.py", b"version 2")
        server.wait_for(r"WatchFiles detected changes in 'main.py'\. Reloading\.\.\.")
        body_becomes(port, b"version 2")
        # the new server answers as soon as it listens; its "Started server process" line
        # may reach our log reader a moment later
        deadline = time.monotonic() + 5
        while len(server.started_pids()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(server.started_pids()) == 2 and server.started_pids()[0] == first[0]

        assert server.stop() == 0
    assert "Stopping reloader process" in server.stderr


def test_reload_survives_an_app_that_does_not_import(tmp_path):
    write_app(tmp_path / "main.py", b"good")
    with start_reloader(tmp_path) as server:
        port = server.wait_started()
        body_becomes(port, b"good")

        (tmp_path / "main.py").write_text("def app(:\n")
        server.wait_for(
            r"Server process \[\d+\] exited with code 1; waiting for a change to start it again\."
        )
        assert "SyntaxError" in server.stderr

        write_app(tmp_path / "main.py", b"fixed")
        body_becomes(port, b"fixed")
        assert server.stop() == 0


def test_reload_include_and_exclude(tmp_path):
    write_app(tmp_path / "main.py", b"v1")
    (tmp_path / "data.txt").write_text("1")
    (tmp_path / "scratch_notes.py").write_text("x = 1\n")
    with start_reloader(tmp_path, "--reload-include", "*.txt", "--reload-exclude", "scratch_*.py") as server:
        port = server.wait_started()
        body_becomes(port, b"v1")

        (tmp_path / "scratch_notes.py").write_text("x = 2\n")  # excluded
        (tmp_path / "data.txt").write_text("2")  # included
        line = server.wait_for(r"WatchFiles detected changes in (.*)\. Reloading").group(1)
        assert line == "'data.txt'"
        body_becomes(port, b"v1")
        assert server.stop() == 0
    assert server.stderr.count("detected changes") == 1


# -- what is watched (in-process) ---------------------------------------------------------


def settings(tmp_path: Path, **kwargs) -> tuple[list[Path], object]:
    return watch_settings(Config("main:app", reload=True, log_config=None, **kwargs))


def test_default_filter_is_uvicorns_with_hidden_directories_left_out(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    dirs, wanted = settings(tmp_path)
    assert dirs == [tmp_path.resolve()]
    root = tmp_path.resolve()
    assert wanted(root / "app.py")
    assert wanted(root / "pkg" / "views.py")
    assert not wanted(root / "README.md")
    assert not wanted(root / ".hidden.py")
    assert not wanted(root / "~backup.py")
    assert not wanted(root / ".venv" / "lib" / "site.py")  # uvicorn would reload on this one
    assert not wanted(root / ".git" / "hooks" / "x.py")


def test_include_exclude_patterns_and_directories(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "src").mkdir()
    (tmp_path / "build").mkdir()
    dirs, wanted = settings(
        tmp_path,
        reload_dirs=[str(tmp_path / "src"), str(tmp_path / "src")],
        reload_includes=["*.html", ".env"],
        reload_excludes=["build", "test_*.py"],
    )
    root = tmp_path.resolve()
    assert dirs == [root / "src"]
    assert wanted(root / "src" / "page.html")
    assert wanted(root / "src" / ".env")  # named explicitly: wins over the '.*' default
    assert not wanted(root / "src" / "test_views.py")
    assert wanted(root / "src" / "views.py")
    assert not wanted(root / "build" / "gen.py")


def test_excluding_the_py_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _, wanted = settings(tmp_path, reload_includes=["*.toml"], reload_excludes=["*.py"])
    assert not wanted(tmp_path.resolve() / "app.py")
    assert wanted(tmp_path.resolve() / "pyproject.toml")


def test_missing_reload_dirs_fall_back_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    # Straight on the logger: fastasgi's log config does not propagate to the root logger.
    logging.getLogger("fastasgi.error").addHandler(handler)
    try:
        dirs, _ = settings(tmp_path, reload_dirs=[str(tmp_path / "nope")])
    finally:
        logging.getLogger("fastasgi.error").removeHandler(handler)
    assert dirs == [tmp_path.resolve()]
    assert any("did not contain valid directories" in record.getMessage() for record in records)


def test_reload_needs_an_import_string():
    async def app(scope, receive, send):
        pass

    with pytest.raises(ConfigError, match=r"--reload needs the application as an import string"):
        ChangeReload(Config(app, reload=True, log_config=None))


def test_reload_dir_must_exist(tmp_path):
    result = Supervised.cli("main:app", "--reload", "--reload-dir", str(tmp_path / "nope"), cwd=tmp_path)
    with result:
        assert result.wait_exit(20) == 2
    assert "Invalid value for '--reload-dir'" in result.stderr
    assert os.listdir(tmp_path) == []
