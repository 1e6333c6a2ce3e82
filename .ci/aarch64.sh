#!/bin/sh
# SPDX-License-Identifier: MIT
# CI stage: the whole suite (unit tests on both backends, the example
# checks) cross-built for Linux AArch64 with Debian's cross compiler and run
# under qemu-user, once with the assembly switch (src/os/ctx_aarch64.S) and
# once with ucontext. Installs what is missing. The builds go to a scratch
# folder removed at the end, as .ci/run's do, so that a rerun starts as
# clean as the first and the checkout is left as it was.
#   AARCH64_BUILDS  which builds to run: "asm ucontext" (default), or one
#   CI_KEEP=1       keep the scratch folder
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)

builds="${AARCH64_BUILDS:-asm ucontext}"
jobs=2
toolchain="$top/cmake/toolchain-aarch64-linux-gnu.cmake"
scratch="$(mktemp -d "${TMPDIR:-/tmp}/libasync-aarch64.XXXXXX")"
finish() {
  if [ -n "${CI_KEEP:-}" ]; then echo "kept $scratch"; else rm -rf "$scratch"; fi
}
trap finish EXIT
trap 'exit 130' INT TERM

now() { date +%s; }
stage_start=$(now)
report=""
timed() { # timed NAME SECONDS-SINCE
  t=$(($(now) - $2))
  report="$report  $1: ${t} s
"
  echo "== aarch64: $1 took ${t} s"
}

# ---------------------------------------------------------------- install
t0=$(now)
have_all() {
  command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 &&
    { command -v qemu-aarch64 >/dev/null 2>&1 ||
      command -v qemu-aarch64-static >/dev/null 2>&1; } &&
    [ -e /usr/lib/aarch64-linux-gnu/libcmocka.so ] &&
    [ -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ]
}
if ! have_all; then
  pkgs="gcc-aarch64-linux-gnu qemu-user libcmocka-dev:arm64"
  if [ "$(id -u)" -eq 0 ]; then
    sudo=""
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo="sudo"
  else
    echo "aarch64: missing packages; as root run:" >&2
    echo "  dpkg --add-architecture arm64 && apt-get update &&" \
      "apt-get install $pkgs" >&2
    exit 1
  fi
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    $sudo dpkg --add-architecture arm64
  fi
  # Other jobs on the machine may hold the dpkg lock: wait for it.
  $sudo apt-get -o DPkg::Lock::Timeout=600 update -qq
  # shellcheck disable=SC2086 # pkgs is a list of words on purpose
  DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 \
    install -y -qq $pkgs
  have_all || { echo "aarch64: packages installed, tools still missing" >&2; exit 1; }
fi
timed install "$t0"

# ctest runs every binary through the emulator the toolchain file names
# (CMAKE_CROSSCOMPILING_EMULATOR), not through binfmt_misc, which a
# container may lack.
qemu=$(command -v qemu-aarch64 || command -v qemu-aarch64-static)
echo "== aarch64: $("$qemu" --version | head -n 1)"

# Tests crash forked children on purpose; qemu writes a core file of the
# guest for each crash, into the test's folder, wherever the limit allows.
# shellcheck disable=SC3045 # not POSIX; dash, bash and busybox have it
ulimit -c 0 2>/dev/null || true

failed=0
for build in $builds; do
  case "$build" in
    asm) args="" ;;
    ucontext) args="-DASYNC_USE_UCONTEXT=ON" ;;
    *) echo "aarch64: unknown build '$build' (asm, ucontext)" >&2; exit 2 ;;
  esac
  dir="$scratch/$build"

  # ------------------------------------------------------------ build
  t0=$(now)
  mkdir -p "$dir"
  # shellcheck disable=SC2086 # args is a list of words on purpose
  cmake -S "$top" -B "$dir" -DCMAKE_TOOLCHAIN_FILE="$toolchain" \
    -DASYNC_WERROR=ON $args >"$dir/configure.log" 2>&1 ||
    { cat "$dir/configure.log"; exit 1; }
  grep -q 'qemu-aarch64' "$dir/tests/CTestTestfile.cmake" ||
    { echo "aarch64: the tests would not run under qemu" >&2; exit 1; }
  cmake --build "$dir" -j "$jobs" >"$dir/build.log" 2>&1 ||
    { cat "$dir/build.log"; exit 1; }
  # The switch the build was asked for is the one it contains.
  objs=$(ar t "$dir/libasync.a" | tr '\n' ' ')
  case "$build:$objs" in
    asm:*ctx_aarch64.S.o*) ;;
    ucontext:*ctx_ucontext.c.o*) ;;
    *) echo "aarch64: $build build lacks its context switch: $objs" >&2; exit 1 ;;
  esac
  timed "build ($build)" "$t0"

  # ------------------------------------------------------------- test
  t0=$(now)
  # The whole suite. Where qemu-user differs from the kernel, the tests find
  # out what it does and check the library's answer to it: test_stack
  # expects mprotect guards (the emulator takes MADV_GUARD_INSTALL and
  # ignores it), test_server counts the program's own resident pages
  # (statm counts the emulator's), test_process compares children with a
  # bare posix_spawnp child and expects a failed exec to exit 127 (the
  # emulator's clone is a fork).
  if ! ctest --test-dir "$dir" --no-tests=error --output-on-failure \
      -j "$jobs" >"$dir/ctest.log" 2>&1; then
    cat "$dir/ctest.log"
    failed=1
  else
    grep -E '^[0-9]+% tests passed' "$dir/ctest.log"
  fi
  timed "test ($build)" "$t0"
done

timed total "$stage_start"
printf 'aarch64 timings:\n%s' "$report"
[ "$failed" -eq 0 ] || { echo "aarch64: FAILED" >&2; exit 1; }
echo "aarch64: passed ($builds)"
