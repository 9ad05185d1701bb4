"""The servers under test: one table, one entry per server, easy to extend.

Each entry is the command line that serves an ASGI app (``{app}`` as ``module:attr``) on
``{host}:{port}`` with one worker process, no access log, and otherwise the server's own
defaults or its documented fast configuration (uvicorn with httptools + uvloop, hypercorn
with its uvloop worker). The harness adds ``taskset`` in front; nothing here pins cores.

To add a server: append a ``ServerSpec`` to ``SERVERS``. ``module`` is imported (with
``requires``) to decide whether it is installed and which version it is; ``websocket`` is
True, or the reason the websocket scenario is skipped for it; ``h2c`` is the arguments
added for the HTTP/2 scenarios (cleartext, prior knowledge: RFC 9113 3.3), or the reason
they do not apply to it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field

PY = "{python}"


@dataclass(frozen=True)
class ServerSpec:
    name: str
    module: str
    argv: tuple[str, ...]
    #: distribution name for the version (importlib.metadata); defaults to ``module``
    dist: str | None = None
    #: further modules that must import for this configuration to be valid
    requires: tuple[str, ...] = ()
    #: True, or why the websocket scenario does not apply
    websocket: bool | str = True
    #: arguments appended to ``argv`` for the HTTP/2 scenarios (h2c with prior knowledge;
    #: empty: the server does it by default), or why those scenarios do not apply
    h2c: tuple[str, ...] | str = ()
    notes: str = ""

    @property
    def serves_h2c(self) -> bool:
        return not isinstance(self.h2c, str)

    def command(
        self, app: str, host: str, port: int, python: str = sys.executable, http2: bool = False
    ) -> list[str]:
        if http2 and not self.serves_h2c:
            raise ValueError(f"{self.name} serves no HTTP/2: {self.h2c}")
        values = {"python": python, "app": app, "host": host, "port": str(port)}
        argv = self.argv + (self.h2c if http2 else ())
        return [part.format(**values) for part in argv]


SERVERS: dict[str, ServerSpec] = {
    spec.name: spec
    for spec in (
        ServerSpec(
            name="fastasgi",
            module="fastasgi",
            requires=("fastasgi._http._core",),
            argv=(
                PY,
                "-m",
                "fastasgi",
                "{app}",
                "--host",
                "{host}",
                "--port",
                "{port}",
                "--no-access-log",
                "--log-level",
                "warning",
            ),
            notes="defaults (uvloop when installed; h2c by the connection preface)",
        ),
        ServerSpec(
            name="uvicorn",
            module="uvicorn",
            requires=("httptools", "uvloop"),
            argv=(
                PY,
                "-m",
                "uvicorn",
                "{app}",
                "--host",
                "{host}",
                "--port",
                "{port}",
                "--http",
                "httptools",
                "--loop",
                "uvloop",
                "--no-access-log",
                "--log-level",
                "warning",
            ),
            h2c="uvicorn has no HTTP/2",
            notes="--http httptools --loop uvloop",
        ),
        ServerSpec(
            name="granian",
            module="granian",
            argv=(
                PY,
                "-m",
                "granian",
                "--interface",
                "asgi",
                "--workers",
                "1",
                "--host",
                "{host}",
                "--port",
                "{port}",
                "--no-access-log",
                "--log-level",
                "warning",
                "{app}",
            ),
            # --http auto (the default) also answers h2c prior knowledge; 2 serves HTTP/2 only
            h2c=("--http", "2"),
            notes="--interface asgi --workers 1 (app runs in a worker process); h2: --http 2",
        ),
        ServerSpec(
            name="hypercorn",
            module="hypercorn",
            requires=("uvloop",),
            argv=(
                PY,
                "-m",
                "hypercorn",
                "--bind",
                "{host}:{port}",
                "--worker-class",
                "uvloop",
                "--log-level",
                "warning",
                "{app}",
            ),
            notes="--worker-class uvloop; h2c prior knowledge on a plain bind by default",
        ),
        ServerSpec(
            name="h2corn",
            module="h2corn",
            argv=(
                PY,
                "-m",
                "h2corn",
                "{app}",
                "--host",
                "{host}",
                "--port",
                "{port}",
                "--no-access-log",
                "--server-header",
                "on",
            ),
            notes="--server-header on (off by default; TechEmpower rules want it); h2c by "
            "default next to HTTP/1.1",
        ),
        ServerSpec(
            name="fastpysgi",
            module="fastpysgi",
            argv=(
                PY,
                "-c",
                "import fastpysgi; fastpysgi.run_from_cli()",
                "{app}",
                "--host",
                "{host}",
                "--port",
                "{port}",
            ),
            websocket="fastpysgi has no WebSocket support",
            h2c="fastpysgi has no HTTP/2",
            notes="its console script, run through the interpreter; 0.6 breaks every later "
            "connection after one 'Connection: close' request, so the harness sends none",
        ),
        ServerSpec(
            name="daphne",
            module="daphne",
            argv=(PY, "-m", "daphne", "--bind", "{host}", "--port", "{port}", "-v", "0", "{app}"),
            h2c="daphne serves HTTP/2 only over TLS (ALPN), no h2c",
            notes="-v 0 (no access log); sends no Date header",
        ),
    )
}

#: the reference for "x uvicorn" ratios
BASELINE = "uvicorn"
#: the server whose ratio to the fastest other server is reported
SUBJECT = "fastasgi"

_PROBE = r"""
import importlib, json, sys
name, dist, requires = sys.argv[1], sys.argv[2], sys.argv[3:]
out = {}
try:
    mod = importlib.import_module(name)
    for extra in requires:
        importlib.import_module(extra)
except BaseException as exc:
    out["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
else:
    version = None
    try:
        import importlib.metadata as md
        version = md.version(dist)
    except Exception:
        version = getattr(mod, "__version__", None)
    out["version"] = version or "unknown"
print(json.dumps(out))
"""


@dataclass
class Probe:
    """Whether a server can run here, and its version."""

    name: str
    available: bool
    version: str | None = None
    reason: str | None = None
    extra: dict = field(default_factory=dict)


def probe(
    spec: ServerSpec,
    env: dict | None = None,
    cwd: str | None = None,
    python: str = sys.executable,
    timeout: float = 30.0,
) -> Probe:
    """Import the server in a fresh interpreter with the environment it will run in."""
    argv = [python, "-c", _PROBE, spec.module, spec.dist or spec.module, *spec.requires]
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd, check=False
        )
    except subprocess.TimeoutExpired:
        return Probe(spec.name, False, reason=f"importing {spec.module} took over {timeout:.0f}s")
    try:
        info = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return Probe(spec.name, False, reason=f"probe failed: {tail[0][:300]}")
    if "error" in info:
        return Probe(spec.name, False, reason=f"not installed or not importable ({info['error']})")
    return Probe(spec.name, True, version=info["version"])
