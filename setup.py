"""Build the one compiled extension: the Cython hot path plus the vendored llhttp C parser.

Compiler directives are set here, in one place (see STYLE.md 12).
"""

import os

from setuptools import Extension, setup

LLHTTP = os.path.join("csrc", "llhttp")

DIRECTIVES = {
    "language_level": 3,
    "boundscheck": False,
    "wraparound": False,
    "cdivision": True,
    "embedsignature": True,
    "freethreading_compatible": False,
}


def extensions():
    from Cython.Build import cythonize

    ext = Extension(
        "fastasgi._http._core",
        sources=[
            "src/fastasgi/_http/_core.pyx",
            os.path.join(LLHTTP, "src", "llhttp.c"),
            os.path.join(LLHTTP, "src", "api.c"),
            os.path.join(LLHTTP, "src", "http.c"),
        ],
        include_dirs=[os.path.join(LLHTTP, "include"), "csrc"],
        # FASTASGI_DEBUG=1 at build time: every state transition of the core is checked
        # against its table (_http/protocol.pxi, _http/cycle.pxi); off, the checks compile away.
        define_macros=[("FASTASGI_DEBUG", "1")] if os.environ.get("FASTASGI_DEBUG") == "1" else [],
        extra_compile_args=["-O2"] if os.name != "nt" else [],
    )
    return cythonize(
        [ext],
        compiler_directives=DIRECTIVES,
        include_path=["src"],
        annotate=bool(os.environ.get("FASTASGI_ANNOTATE")),
    )


setup(ext_modules=extensions())
