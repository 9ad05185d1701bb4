"""The Autobahn|Testsuite fuzzing client against fastasgi serving the echo app: a quick
subset (framing, pings, fragmentation, UTF-8, close handshake: cases 1.* to 7.*, no
permessage-deflate), which must end with no FAILED case.

The suite is not a Python dependency of the project: it is built once by the tool's
``build.sh`` (AUTOBAHN_TOOL, default ``../shared/tools/autobahn`` next to the repository) into
``~/.cache/autobahn`` (AUTOBAHN_CACHE). Without it this test is skipped, saying why. The full
run (517 cases, ~9 minutes) is ``run_autobahn.sh 127.0.0.1 PORT OUTDIR``.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOOL = Path(os.environ.get("AUTOBAHN_TOOL", REPO.parent / "shared" / "tools" / "autobahn"))
CACHE = Path(os.environ.get("AUTOBAHN_CACHE", Path.home() / ".cache" / "autobahn"))
CASES = "1.*,2.*,3.*,4.*,5.*,6.*,7.*"
SUMMARY = re.compile(
    r"(\d+) cases: OK=(\d+) NON-STRICT=(\d+) INFORMATIONAL=(\d+) UNIMPLEMENTED=(\d+) FAILED=(\d+)"
)


def _missing() -> str | None:
    script = TOOL / "run_autobahn.sh"
    if not script.exists():
        return f"the Autobahn tool is not at {TOOL} (set AUTOBAHN_TOOL)"
    if not (CACHE / "ab3" / "wstest").exists() or not (CACHE / "ab-venv" / "bin" / "python").exists():
        return f"the Autobahn suite is not built in {CACHE}: run {TOOL / 'build.sh'} once"
    return None


@pytest.mark.skipif(_missing() is not None, reason=_missing() or "")
def test_autobahn_subset(serve, tmp_path):
    server = serve("ws_echo:app", "--ws-per-message-deflate", "false", "--log-level", "warning")
    done = subprocess.run(
        [str(TOOL / "run_autobahn.sh"), "127.0.0.1", str(server.port), str(tmp_path), CASES],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    match = SUMMARY.search(done.stdout)
    assert match, f"no summary from run_autobahn.sh (exit {done.returncode}):\n{done.stdout}\n{done.stderr}"
    # 1.* to 7.* are 246 cases in autobahntestsuite 25.10.1
    assert int(match.group(1)) >= 240, done.stdout
    assert match.group(6) == "0", done.stdout
    assert done.returncode == 0, done.stdout
