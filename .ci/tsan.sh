#!/bin/sh
# SPDX-License-Identifier: MIT
# ThreadSanitizer over the tests that cross threads (the thread pool and
# name resolution on it, call_soon_threadsafe
# against the loop and its close, one loop per thread, the virtual clock
# woken from another thread, a loop closed on another thread than the one
# that ran it, tasks resumed on other threads as their loop moves between
# runs). ctx.c tells TSan of every task switch.
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
  test_thread
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
# Not test_fork: TSan cannot follow tasks across fork(2). In the child,
# every task made before the fork is, to TSan, a thread that died there,
# so whatever the child touches after them is reported, and clang 14's
# runtime then fails a check of its own (tsan_rtl_report.cpp) and ends the
# child with status 66. test_fork runs in every other build.
echo "tsan: clean"
