"""What an app sees of asyncio in its first step, under fastasgi and under uvicorn, in the
same test: fastasgi starts every app's Task eagerly (its first step runs inside
data_received), and the app must not be able to tell (tests/apps/first_step_app.py says
what each route checks). Each answer is compared with uvicorn's AND with the expected
value, so the test fails when both servers are wrong alike.
"""

from __future__ import annotations

import sys

import httpx
import pytest

from support.server import ServerProcess, fastasgi_command

EXPECTED = {
    "/task": {
        "first": {
            "is_task": True,
            "done": False,
            "repr_ok": True,
            "name_ok": True,
            "loop_ok": True,
            "coro_ok": True,
            "callback_ok": True,
        },
        "same_after_suspension": True,
    },
    "/cancel-scope": {"cancelled_caught": True},
    "/move-on": {"cancelled_caught": True},
    "/fail-after": {"timed_out": True},
    "/task-group": {"children_ran": 1},
    "/asyncio-timeout": {"timed_out": True}
    if sys.version_info >= (3, 11)
    else {"skipped": "asyncio.timeout is 3.11+"},
    "/self-cancel": {"cancel_delivered": True, "cancelling": 1, "uncancel": 0},
    "/contextvar": {"before": "unset", "after": "set by a request"},
}

try:
    import uvloop  # noqa: F401

    LOOPS = ["asyncio", "uvloop"]
except ImportError:
    LOOPS = ["asyncio"]


def _command(server: str, loop: str) -> list[str]:
    args = ["first_step_app:app", "--port", "0", "--loop", loop]
    if server == "fastasgi":
        return fastasgi_command(*args)
    return [sys.executable, "-m", "uvicorn", *args]


@pytest.fixture(scope="module", params=LOOPS)
def servers(request):
    pytest.importorskip("anyio")
    pytest.importorskip("uvicorn")
    started = {}
    try:
        for name in ("fastasgi", "uvicorn"):
            proc = ServerProcess(_command(name, request.param))
            started[name] = proc
            proc.wait_started()
        yield {name: f"http://127.0.0.1:{proc.port}" for name, proc in started.items()}
    finally:
        for proc in started.values():
            proc.kill()
            proc._close_files()


def _answers(base: str, path: str) -> list[dict]:
    # two requests on one kept-alive connection: the second shows what the first left behind
    with httpx.Client(base_url=base, timeout=10) as client:
        answers = []
        for _ in range(2):
            resp = client.get(path)
            assert resp.status_code == 200, (path, resp.status_code, resp.text)
            answers.append(resp.json())
        return answers


@pytest.mark.parametrize("path", sorted(EXPECTED))
def test_first_step_as_under_uvicorn(servers, path):
    fast = _answers(servers["fastasgi"], path)
    uvi = _answers(servers["uvicorn"], path)
    for answer in fast + uvi:
        answer.pop("callbacks_so_far", None)  # counts earlier requests: differs per process
    assert fast == uvi, f"{path}: fastasgi {fast} != uvicorn {uvi}"
    assert fast == [EXPECTED[path]] * 2, f"{path}: {fast}"
