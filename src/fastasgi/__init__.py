"""fastasgi: a fast ASGI server with an llhttp + Cython hot path, a drop-in for uvicorn.

fastasgi main:app            # command line
fastasgi.run("main:app")     # from Python
"""

from fastasgi._version import __version__
from fastasgi.config import Config
from fastasgi.main import run
from fastasgi.server import Server

__all__ = ["Config", "Server", "__version__", "run"]
