"""The README's "Exit codes" table, run for real: each row's failure under uvicorn and under
fastasgi (``python -m ...`` as subprocesses, the same apps and flags), which must exit with
the row's code; fastasgi's stderr must hold the row's message. The rows are read from the
README, so that the table and the servers cannot drift apart.

uvicorn is a test dependency (pyproject's dev extra): without it this module fails to import
instead of passing untested.
"""

from __future__ import annotations

import re
import socket
import sys

import pytest
import uvicorn  # noqa: F401  (the comparison needs it: fail loudly when it is missing)

from support.server import APPS, REPO, run_to_end, server_env

#: the flags each row runs both servers with; PORT is a port held busy by the test
ARGS = {
    "App module not found": ["nosuch_module:app"],
    "Import string without `:attribute`": ["exit_codes_app"],
    "Attribute not found": ["exit_codes_app:nosuch"],
    "App module raises while imported": ["cli_raises:app"],
    "`--factory` on a callable that takes arguments": ["exit_codes_app:app", "--factory"],
    "`--factory` on what is not callable": ["exit_codes_app:not_callable", "--factory"],
    "The factory raises": ["exit_codes_app:factory_raises", "--factory"],
    "Lifespan startup failed": ["exit_codes_app:startup_failed"],
    "Address in use": ["exit_codes_app:app", "--port", "PORT"],
    "Unknown flag": ["exit_codes_app:app", "--no-such-flag"],
    "Bad value": ["exit_codes_app:app", "--port", "abc"],
    "Bad value found at startup": ["exit_codes_app:app", "--ssl-certfile", "missing.pem"],
    "No APP": [],
}

#: the port the README's messages show; the test's busy port replaces it
README_PORT = "8000"


def readme_rows() -> dict[str, tuple[int, list[str]]]:
    """The "Exit codes" section's table: failure -> (exit code, the message's `code` spans)."""
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Exit codes\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[1].isdigit():
            continue  # prose, the header, the separator
        rows[cells[0]] = (int(cells[1]), re.findall(r"`([^`]+)`", cells[2]))
    return rows


def run(module: str, args: list[str], port: int):
    command = [sys.executable, "-m", module, *(str(port) if arg == "PORT" else arg for arg in args)]
    return run_to_end(command, cwd=APPS, env=server_env(), timeout=30)


@pytest.fixture
def busy_port():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def test_every_row_is_run():
    assert set(readme_rows()) == set(ARGS)


@pytest.mark.parametrize("failure", list(ARGS))
def test_uvicorn_and_fastasgi_exit_alike(failure, busy_port):
    code, messages = readme_rows()[failure]
    assert messages, f"the README row {failure!r} shows no message"
    theirs = run("uvicorn", ARGS[failure], busy_port)
    ours = run("fastasgi", ARGS[failure], busy_port)
    assert theirs.returncode == code, theirs.stderr
    assert ours.returncode == code, ours.stderr
    # run as `python -m fastasgi`; the README shows the `fastasgi` command
    stderr = ours.stderr.replace("python -m fastasgi", "fastasgi")
    for message in messages:
        assert message.replace(f":{README_PORT}", f":{busy_port}") in stderr, (message, ours.stderr)
    if code != 1:
        assert "Traceback" not in ours.stderr  # 1 with a traceback: the app's own code raised
