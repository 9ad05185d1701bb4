#!/usr/bin/env bash
# Build fastasgi._http._core with clang under AddressSanitizer + UndefinedBehaviorSanitizer and
# libFuzzer's coverage instrumentation (-fsanitize=fuzzer-no-link, as atheris's
# native_extension_fuzzing.md asks, so the fuzzer sees the extension's edges as well as the
# Python ones), into fuzz/build/ -- never into src/, whose in-place build others use.
#
# The result is fuzz/build/site/fastasgi: the pure-Python package copied from src/ with the
# sanitized _core*.so next to it, so that
#
#     PYTHONPATH=fuzz/build/site python3 -c "import fastasgi._http._core"
#
# imports it (with the ASan runtime preloaded: see fuzz/run.sh and fuzz/README.md).
#
# It is a debug build as well (FASTASGI_DEBUG=1, see setup.py): every state transition of the
# core is checked against its table, so an illegal one raises instead of passing silently.
#
# Environment: CC (default clang), PYTHON (default python3), FUZZ_BUILD (default fuzz/build).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
CC="${CC:-clang}"
PYTHON="${PYTHON:-python3}"
out="${FUZZ_BUILD:-$root/fuzz/build}"
site="$out/site"
gen="$out/gen"
obj="$out/obj"

# Every sanitizer report aborts (no recovery), so the fuzzer stops at the first one and keeps
# the input. -O1 and frame pointers: readable stacks at a fraction of -O0's cost.
SANITIZE="-fsanitize=address,undefined,fuzzer-no-link -fno-sanitize-recover=undefined"
SANITIZE="$SANITIZE -fsanitize-ignorelist=$root/fuzz/ubsan-ignorelist.txt"
CFLAGS_FUZZ="-g -O1 -fno-omit-frame-pointer -fPIC $SANITIZE -DFASTASGI_DEBUG=1"

rm -rf "$site" "$gen" "$obj"
mkdir -p "$site" "$gen" "$obj"

# 1. the pure-Python package, without build products of the in-place build
"$PYTHON" - "$root/src/fastasgi" "$site/fastasgi" <<'PY'
import shutil, sys
shutil.copytree(sys.argv[1], sys.argv[2],
                ignore=shutil.ignore_patterns("*.so", "*.c", "*.html", "__pycache__", "*.py[cod]"))
PY

# 2. Cython -> C, into fuzz/build/gen (not next to the .pyx), with setup.py's directives
#    (they live there only: STYLE.md 11), read from its DIRECTIVES literal
directives="$("$PYTHON" - "$root/setup.py" <<'PY'
import ast, sys
tree = ast.parse(open(sys.argv[1]).read())
for node in tree.body:
    if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "DIRECTIVES":
        print(",".join(f"{k}={v}" for k, v in ast.literal_eval(node.value).items()))
        break
else:
    sys.exit("setup.py: no DIRECTIVES dict")
PY
)"
"$PYTHON" -m cython -3 -X "$directives" -I src --module-name fastasgi._http._core \
    -o "$gen/_core.c" src/fastasgi/_http/_core.pyx

# 3. compile the Cython output and the vendored llhttp and nghttp2 with the sanitizers (nghttp2
#    with the macros setup.py gives it), and link
pyinc="$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
suffix="$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')"
incs=(-I "$pyinc" -I csrc/llhttp/include -I csrc/nghttp2/includes -I csrc)
defs=(-DNGHTTP2_STATICLIB -DHAVE_TIME_H=1 -DHAVE_ARPA_INET_H=1 -DHAVE_NETINET_IN_H=1 -DHAVE_CLOCK_GETTIME=1)
objs=()
for c in "$gen/_core.c" csrc/llhttp/src/llhttp.c csrc/llhttp/src/api.c csrc/llhttp/src/http.c csrc/nghttp2/*.c; do
    o="$obj/$(basename "$c" .c).o"
    # shellcheck disable=SC2086
    "$CC" $CFLAGS_FUZZ "${incs[@]}" "${defs[@]}" -c "$c" -o "$o" &
    objs+=("$o")
done
wait
# -lz: zlib for WebSocket permessage-deflate (_http/wsdeflate.pxi), setup.py's libraries=["z"];
# without it the import fails with "undefined symbol: inflate"
# shellcheck disable=SC2086
"$CC" -shared $SANITIZE "${objs[@]}" -lz -o "$site/fastasgi/_http/_core$suffix"

# 4. the .so must carry ASan and the coverage counters the fuzzer reads
so="$site/fastasgi/_http/_core$suffix"
symbols="$(nm -D "$so")"
grep -q __asan_report <<<"$symbols" || { echo "no ASan instrumentation in $so" >&2; exit 1; }
grep -q __sanitizer_cov_8bit_counters_init <<<"$symbols" \
    || { echo "no libFuzzer counters in $so" >&2; exit 1; }
# 5. and must load: CPython dlopens it with RTLD_NOW, so a library missing from the link (as
#    -lz once was) fails every import with "undefined symbol"; checked under clang's ASan runtime
LD_PRELOAD="$("$CC" -print-file-name=libclang_rt.asan-x86_64.so)" ASAN_OPTIONS=detect_leaks=0 \
    "$PYTHON" -c 'import ctypes, os, sys; ctypes.CDLL(sys.argv[1], mode=os.RTLD_NOW)' "$so" \
    || { echo "$so does not load: a library missing from the link?" >&2; exit 1; }
echo "built $so"
echo "run with: fuzz/run.sh fuzz_http 60   (or see fuzz/README.md)"
