"""Build the one compiled extension: the Cython hot path plus the vendored C libraries, llhttp
(HTTP/1.1) and nghttp2 (HTTP/2).

Compiler directives are set here, in one place (see STYLE.md 12).
"""

import os

from setuptools import Extension, setup

LLHTTP = os.path.join("csrc", "llhttp")
NGHTTP2 = os.path.join("csrc", "nghttp2")
# nghttp2's lib, every .c file (a file added by a new version needs no edit here); sorted, so the
# build is the same whatever order the directory lists them in.
NGHTTP2_SOURCES = sorted(os.path.join(NGHTTP2, f) for f in os.listdir(NGHTTP2) if f.endswith(".c"))
# What nghttp2's configure would put into config.h, as macros (the lib reads no config.h here:
# HAVE_CONFIG_H stays undefined). NGHTTP2_STATICLIB: linked into this extension, not a DLL, so
# nghttp2.h declares its API without dllimport/visibility attributes. time.h is ISO C: without
# it lib/nghttp2_time.c has no time() or clock_gettime(). Not defined: DEBUGBUILD (nghttp2's
# debug output, slow), HAVE_GETTICKCOUNT64 and HAVE_SYSINFOAPI_H (Windows only).
NGHTTP2_MACROS = [("NGHTTP2_STATICLIB", None), ("HAVE_TIME_H", "1")]
if os.name != "nt":
    NGHTTP2_MACROS += [
        # lib/nghttp2_net.h: htonl() and friends; on Windows it defines its own
        ("HAVE_ARPA_INET_H", "1"),
        ("HAVE_NETINET_IN_H", "1"),
        # lib/nghttp2_time.c: the stream-reset rate limit (CVE-2023-44487) counts on
        # clock_gettime(CLOCK_MONOTONIC) (POSIX.1-2008; macOS from 10.12), else on time()
        ("HAVE_CLOCK_GETTIME", "1"),
    ]

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

    # FASTASGI_DEBUG=1 at build time: every state transition of the core is checked
    # against its table (_http/protocol.pxi, _http/cycle.pxi); off, the checks compile away.
    debug_macros = [("FASTASGI_DEBUG", "1")] if os.environ.get("FASTASGI_DEBUG") == "1" else []
    ext = Extension(
        "fastasgi._http._core",
        sources=[
            "src/fastasgi/_http/_core.pyx",
            os.path.join(LLHTTP, "src", "llhttp.c"),
            os.path.join(LLHTTP, "src", "api.c"),
            os.path.join(LLHTTP, "src", "http.c"),
            *NGHTTP2_SOURCES,
        ],
        include_dirs=[os.path.join(LLHTTP, "include"), os.path.join(NGHTTP2, "includes"), "csrc"],
        define_macros=[*NGHTTP2_MACROS, *debug_macros],
        # zlib for WebSocket permessage-deflate (_http/wsdeflate.pxi)
        libraries=["z"],
        # -fvisibility=hidden: the module exports PyInit__core only (CPython marks it visible).
        # The vendored C stays private to it: a libnghttp2 the process already has (libcurl's)
        # cannot take the place of ours, nor ours of it.
        extra_compile_args=["-O2", "-fvisibility=hidden"] if os.name != "nt" else [],
    )
    return cythonize(
        [ext],
        compiler_directives=DIRECTIVES,
        include_path=["src"],
        annotate=bool(os.environ.get("FASTASGI_ANNOTATE")),
    )


setup(ext_modules=extensions())
