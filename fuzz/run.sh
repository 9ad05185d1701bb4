#!/usr/bin/env bash
# Run one harness against the sanitized build for SECONDS seconds:
#
#     fuzz/run.sh fuzz_http 600 [more libFuzzer flags]
#     FUZZ_CPU=1 fuzz/run.sh fuzz_target 60        # pinned to CPU 1 (taskset)
#     fuzz/run.sh fuzz_http replay FILE...          # run inputs once (a crash, a corpus)
#     fuzz/run.sh fuzz_h2 600                       # HTTP/2
#     fuzz/run.sh fuzz_ws 600                       # WebSocket frames and the inflater
#     fuzz/run.sh fuzz_proxy_protocol 600           # the PROXY protocol header parser
#                                                   # (harnesses: fuzz_http, fuzz_target, fuzz_h2, fuzz_ws,
#                                                   #  fuzz_wsconn, fuzz_proxy_protocol)
#
# Needs fuzz/build-sanitized.sh first and `pip install atheris`. New inputs go to
# fuzz/build/corpus/HARNESS (the seeds in fuzz/corpus/HARNESS are read, never written),
# crashes to fuzz/build/artifacts/HARNESS/, the output to fuzz/build/logs/HARNESS-*.log.
#
# Environment: PYTHON (default python3); FUZZ_CPU (a CPU to pin the run to); FUZZ_IGNORE
# (findings already reported to skip, see fuzz/README.md).
set -euo pipefail

if [ $# -lt 2 ]; then
    echo "usage: fuzz/run.sh HARNESS SECONDS [libFuzzer flags...]" >&2
    exit 2
fi
harness="${1%.py}"
seconds="$2"
shift 2

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
PYTHON="${PYTHON:-python3}"
build="$root/fuzz/build"
[ -f "fuzz/$harness.py" ] || { echo "no harness fuzz/$harness.py" >&2; exit 2; }
ls "$build"/site/fastasgi/_http/_core*.so >/dev/null 2>&1 \
    || { echo "no sanitized build: run fuzz/build-sanitized.sh first" >&2; exit 2; }

# The ASan runtime must be loaded before python starts (python is not built with ASan).
# atheris ships one with libFuzzer linked in (native_extension_fuzzing.md): libFuzzer's
# coverage callbacks then resolve to it, and the fuzzer sees the extension's edges. clang's
# plain runtime (clang -print-file-name=libclang_rt.asan-x86_64.so) defines those callbacks
# as no-ops: sanitizers still work, native coverage is not seen; it is the fallback.
runtime="$("$PYTHON" -c 'import atheris, os; print(os.path.join(atheris.path(), "asan_with_fuzzer.so"))')"
if [ ! -f "$runtime" ]; then
    runtime="$(clang -print-file-name=libclang_rt.asan-x86_64.so)"
    echo "warning: atheris has no asan_with_fuzzer.so; using $runtime (no native coverage)" >&2
fi

corpus="$build/corpus/$harness"
artifacts="$build/artifacts/$harness"
mkdir -p "$corpus" "$artifacts" "$build/logs"
log="$build/logs/$harness-$(date +%Y%m%d-%H%M%S).log"

common=(LD_PRELOAD="$runtime"
        ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:symbolize=1"
        UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
        PYTHONMALLOC=malloc
        PYTHONPATH="$build/site")
if [ "$seconds" = replay ]; then
    # libFuzzer runs each file given (not a folder) once, and reports as when fuzzing
    exec env "${common[@]}" "$PYTHON" "fuzz/$harness.py" "$@"
fi

max_len=4096
if [ "$harness" = fuzz_proxy_protocol ]; then
    max_len=8192
fi

pin=()
if [ -n "${FUZZ_CPU:-}" ]; then
    pin=(taskset -c "$FUZZ_CPU")
fi

# detect_leaks=0: CPython keeps memory until exit by design, LeakSanitizer would report it.
# PYTHONMALLOC=malloc: every Python object from malloc, so ASan sees overruns of them too.
# -max_len: the seeds are under 4 KiB (fuzz/make_corpus.py); flood ops reach the big sizes.
# fuzz_proxy_protocol's is 8 KiB (its MAX_LEN): a v2 header may be 16 + 4096 bytes.
# -rss_limit_mb: ASan's shadow memory and quarantine on top of CPython.
echo "fuzz/run.sh: $harness for ${seconds}s, log $log" >&2
env "${common[@]}" "${pin[@]}" "$PYTHON" "fuzz/$harness.py" \
    -max_total_time="$seconds" -max_len="$max_len" -timeout=20 -rss_limit_mb=4096 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" \
    "$@" "$corpus" "fuzz/corpus/$harness" 2>&1 | tee "$log"
exit "${PIPESTATUS[0]}"
