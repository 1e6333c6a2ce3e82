#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs the fuzzers (libFuzzer, ASan, UBSan, LSan): fuzz_api for
# FUZZ_SECONDS (default 120, on the virtual clock), fuzz_stream and
# fuzz_server for half that each (their waits take real time), each
# starting from its
# committed corpus and crashes; fails on any crash, leak, timeout or
# sanitizer report. New interesting inputs go to a scratch folder, not
# into the repo; a crashing input is left in $BUILD_DIR/artifacts/, to be
# added to the target's crashes folder with its fix.
#   BUILD_DIR     build folder (default: build-fuzz)
#   FUZZ_SECONDS  how long to run fuzz_api (default: 120)
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
cmake --build "$build" -j 2 --target fuzz_api fuzz_stream fuzz_server

# fuzz TARGET SECONDS CORPUS CRASHES [OPTION...]
fuzz() {
  target=$1 secs=$2 corpus=$3 crashes=$4
  shift 4
  work="$build/corpus-$target"
  mkdir -p "$work" "$build/artifacts"
  log="$build/$target.log"
  status=0
  "$build/fuzz/$target" -max_total_time="$secs" -max_len=512 -timeout=20 \
    -rss_limit_mb=2048 -print_final_stats=1 "$@" \
    -artifact_prefix="$build/artifacts/$target-" \
    "$work" "$corpus" "$crashes" >"$log" 2>&1 || status=$?
  # The programs' own stderr (errors nobody read) is noise: show libFuzzer's.
  grep -E '^#[0-9]+.*(INITED|DONE|pulse|NEW|REDUCE)' "$log" | tail -3 || true
  grep -E '^(stat::|Done )' "$log" || true
  if [ "$status" -ne 0 ]; then
    echo "fuzz: $target failed (exit $status):"
    sed -n '/^==[0-9]*==ERROR\|^SUMMARY\|deadly signal\|Test unit written\|^fuzz_[a-z]*: /,$p' "$log" | head -120
    ls -l "$build/artifacts/"
    exit 1
  fi
  echo "fuzz: $target, no crash in $secs s"
}

fuzz fuzz_api "$seconds" fuzz/corpus fuzz/crashes
# Inputs up to max_len from the first minute (-len_control=0): a state
# worth testing takes a program of many steps, and libFuzzer otherwise
# lets inputs grow only slowly, past the end of a short run.
fuzz fuzz_stream $((seconds / 2)) fuzz/stream-corpus fuzz/stream-crashes \
  -len_control=0
fuzz fuzz_server $((seconds / 2)) fuzz/server-corpus fuzz/server-crashes \
  -len_control=0
