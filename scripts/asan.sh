#!/usr/bin/env bash
# Builds the addon with clang + AddressSanitizer/LeakSanitizer into a directory of its
# own (the normal build/ is never touched) and runs a native smoke script under it.
#
#   scripts/asan.sh            build (incrementally) and run the smoke script
#   scripts/asan.sh build      only build; prints the path of the instrumented addon
#   scripts/asan.sh run        only run (the addon must have been built)
#
# Needs clang and the clang ASan runtime: apt-get install -y clang libclang-rt-14-dev.
# Node itself is not instrumented, so the runtime is LD_PRELOADed into it. Leaks that
# node, V8 or libtorch make in their own start-up (static initialisers, thread pools,
# the loader) are suppressed by tests/faults/lsan.supp, which never names torchlet code.
# This build leaves out -fopenmp (clang's OpenMP wants libomp, which Debian's libtorch does
# not use), so torchlet's own parallel loops run on one thread here; libtorch's are unchanged.
#
# Environment:
#   TORCHLET_ASAN_DIR   build directory (default: ${TMPDIR:-/tmp}/torchlet-asan)
#   ASAN_RUNTIME        path of libclang_rt.asan-x86_64.so (default: found under /usr/lib/llvm-*)
#   ASAN_SMOKE_ARGS     extra arguments for the smoke script
# Exit status: the smoke run's (ASan makes it non-zero on any error or unsuppressed leak).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${TORCHLET_ASAN_DIR:-${TMPDIR:-/tmp}/torchlet-asan}"
MODE="${1:-all}"

die() {
  echo "asan.sh: $*" >&2
  exit 3
}

find_runtime() {
  if [[ -n "${ASAN_RUNTIME:-}" ]]; then
    echo "$ASAN_RUNTIME"
    return
  fi
  local rt
  rt="$(clang -print-file-name=libclang_rt.asan-x86_64.so 2>/dev/null || true)"
  if [[ -n "$rt" && -f "$rt" ]]; then
    echo "$rt"
    return
  fi
  rt="$(ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.asan-x86_64.so 2>/dev/null | sort -V | tail -n 1 || true)"
  [[ -n "$rt" ]] || die "cannot find libclang_rt.asan-x86_64.so; apt-get install -y clang libclang-rt-14-dev (or set ASAN_RUNTIME)"
  echo "$rt"
}

build() {
  command -v clang++ >/dev/null || die "clang++ not found; apt-get install -y clang libclang-rt-14-dev"
  mkdir -p "$DIR/native" "$DIR/scripts"
  # cp -p keeps mtimes, so make only recompiles the sources that really changed.
  cp -p "$ROOT/binding.gyp" "$DIR/"
  cp -p "$ROOT"/native/*.cc "$ROOT"/native/*.h "$ROOT"/native/*.inc "$DIR/native/"
  cp -p "$ROOT/scripts/libtorch.mjs" "$DIR/scripts/"
  # binding.gyp asks node for node-addon-api's include dir from the build directory.
  ln -sfn "$ROOT/node_modules" "$DIR/node_modules"
  local gyp="$ROOT/node_modules/node-gyp/bin/node-gyp.js"
  [[ -f "$gyp" ]] || die "node-gyp is not installed in $ROOT/node_modules (run npm ci)"
  (
    cd "$DIR"
    export TORCHLET_SANITIZE=1 CC=clang CXX=clang++ LINK=clang++ CXXFLAGS="-g -fno-omit-frame-pointer"
    # Configuring again only when binding.gyp changed keeps rebuilds incremental.
    # Use the running node's own headers when it ships them (Debian's nodejs does),
    # so that configuring needs no download.
    local nodedir="${npm_config_nodedir:-}"
    local prefix
    prefix="$(dirname "$(dirname "$(command -v node)")")"
    if [[ -z "$nodedir" && -f "$prefix/include/node/node_api.h" ]]; then nodedir="$prefix"; fi
    if [[ ! -f build/Makefile || binding.gyp -nt build/Makefile ]]; then
      node "$gyp" configure --loglevel=warn ${nodedir:+--nodedir="$nodedir"} >&2
    fi
    node "$gyp" build --loglevel=warn --jobs="$(nproc)" >&2
  )
  local addon="$DIR/build/Release/torchlet.node"
  [[ -f "$addon" ]] || die "the build finished but $addon is missing"
  nm -u "$addon" | grep __asan_ >/dev/null || die "$addon is not instrumented (no __asan_ symbols); is TORCHLET_SANITIZE honoured by binding.gyp?"
  echo "$addon"
}

run() {
  local addon="$DIR/build/Release/torchlet.node"
  [[ -f "$addon" ]] || die "$addon is missing; run scripts/asan.sh build first"
  local rt
  rt="$(find_runtime)"
  local symbolizer
  symbolizer="$(command -v llvm-symbolizer || ls /usr/lib/llvm-*/bin/llvm-symbolizer 2>/dev/null | tail -n 1 || true)"
  echo "asan.sh: running the smoke script with $rt preloaded" >&2
  # detect_leaks=1: LeakSanitizer runs at exit. fast_unwind_on_malloc=0: full allocation
  # stacks through libtorch (built without frame pointers), so that suppressions can
  # match libtorch's own frames. intercept_tls_get_addr=0: with it on, clang 14's LSan
  # crashes at exit in its stop-the-world tracer ("Tracer caught signal 11" while walking
  # a libtorch OpenMP thread's dynamic-TLS ranges, glibc 2.36) and reports nothing; with
  # it off, LSan stops tracking those ranges itself and the leak check completes.
  env LD_PRELOAD="$rt" \
    ASAN_SYMBOLIZER_PATH="${symbolizer:-}" \
    ASAN_OPTIONS="detect_leaks=1:intercept_tls_get_addr=0:fast_unwind_on_malloc=0:exitcode=23${ASAN_EXTRA_OPTIONS:+:$ASAN_EXTRA_OPTIONS}" \
    LSAN_OPTIONS="suppressions=$ROOT/tests/faults/lsan.supp:print_suppressions=1" \
    TORCHLET_ADDON="$addon" \
    node --expose-gc "$ROOT/tests/faults/asan-smoke.mjs" ${ASAN_SMOKE_ARGS:-}
}

case "$MODE" in
  build) build ;;
  run) run ;;
  all)
    build >/dev/null
    run
    ;;
  *) die "usage: scripts/asan.sh [build|run|all]" ;;
esac
