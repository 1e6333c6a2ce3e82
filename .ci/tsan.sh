#!/bin/sh
# SPDX-License-Identifier: MIT
# ThreadSanitizer over the tests that cross threads (the thread pool and
# name resolution on it, call_soon_threadsafe
# against the loop and its close, one loop per thread, the virtual clock
# woken from another thread, a loop closed on another thread than the one
# that ran it, tasks resumed on other threads as their loop moves between
# runs, a loop inherited through fork whose pool the child restarts).
# ctx.c tells TSan of every task switch.
#   BUILD_DIR  build folder (default: build-tsan)
set -eu
cd "$(dirname "$0")/.."

if ! command -v clang >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq clang
fi
build="${BUILD_DIR:-build-tsan}"
cmake -S . -B "$build" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
  -DASYNC_WERROR=ON -DASYNC_TSAN=ON -DASYNC_BUILD_EXAMPLES=OFF \
  -DASYNC_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" -j 2 --target test_loop test_vclock test_cancel test_pool test_dns test_oom \
  test_thread test_fork
# TSan of older LLVM releases cannot map its shadow under the 32 bits of
# mmap randomisation newer kernels use: run without randomisation.
run=""
if command -v setarch >/dev/null 2>&1 && setarch "$(uname -m)" -R true 2>/dev/null; then
  run="setarch $(uname -m) -R"
fi
export TSAN_OPTIONS="halt_on_error=1 exitcode=66 ${TSAN_OPTIONS:-}"
for t in loop vclock cancel pool dns oom thread; do
  for backend in poll epoll; do
    echo "tsan: test_$t ($backend)"
    ASYNC_BACKEND=$backend $run "$build/tests/test_$t"
  done
done
# test_fork: TSan judges its parent only (the test's header says why its
# children are not judged), so a report must not halt a child; the
# parent's exit status is the verdict. A child of a process with threads
# that starts threads of its own (the pool after async_loop_fork) is
# killed by TSan unless told otherwise (die_after_fork): its runtime could
# have been forked mid-update; the tests fork between calls.
for backend in poll epoll; do
  echo "tsan: test_fork ($backend)"
  ASYNC_BACKEND=$backend \
    TSAN_OPTIONS="$TSAN_OPTIONS halt_on_error=0 die_after_fork=0" \
    $run "$build/tests/test_fork"
done
echo "tsan: clean"
