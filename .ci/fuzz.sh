#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs the API fuzzer (fuzz/fuzz_api.c: libFuzzer, ASan, UBSan, LSan, the
# virtual clock) for FUZZ_SECONDS (default 120), starting from the
# committed corpus and crashes; fails on any crash, leak, timeout or
# sanitizer report. New interesting inputs go to a scratch folder, not
# into the repo; a crashing input is left in $BUILD_DIR/artifacts/, to be
# added to fuzz/crashes/ with its fix.
#   BUILD_DIR     build folder (default: build-fuzz)
#   FUZZ_SECONDS  how long to fuzz (default: 120)
set -eu
cd "$(dirname "$0")/.."

if ! command -v clang >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq clang
fi
build="${BUILD_DIR:-build-fuzz}"
seconds="${FUZZ_SECONDS:-120}"
cmake -S . -B "$build" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DASYNC_WERROR=ON -DASYNC_FUZZ=ON -DASYNC_BUILD_TESTS=OFF \
  -DASYNC_BUILD_EXAMPLES=OFF -DASYNC_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" -j 2 --target fuzz_api

work="$build/corpus"
mkdir -p "$work" "$build/artifacts"
log="$build/fuzz.log"
status=0
"$build/fuzz/fuzz_api" -max_total_time="$seconds" -max_len=512 -timeout=20 \
  -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$build/artifacts/" \
  "$work" fuzz/corpus fuzz/crashes >"$log" 2>&1 || status=$?
# The programs' own stderr (errors nobody read) is noise: show libFuzzer's.
grep -E '^#[0-9]+.*(INITED|DONE|pulse|NEW|REDUCE)' "$log" | tail -3 || true
grep -E '^(stat::|Done )' "$log" || true
if [ "$status" -ne 0 ]; then
  echo "fuzz: the fuzzer failed (exit $status):"
  sed -n '/^==[0-9]*==ERROR\|^SUMMARY\|deadly signal\|Test unit written/,$p' "$log" | head -120
  ls -l "$build/artifacts/"
  exit 1
fi
echo "fuzz: no crash in ${seconds}s"
