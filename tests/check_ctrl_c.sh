#!/bin/sh
# SPDX-License-Identifier: MIT
# Sends SIGINT to a program the way Ctrl-C does, and checks what it did.
#
#   check_ctrl_c.sh N EXPECTED STATUS COMMAND [ARG...]
#
# Runs COMMAND; once it has printed a line, sends it SIGINT; with N = 2,
# sends a second one once it has printed its second line (the first
# SIGINT's cleanup has begun). Then checks that its output is EXPECTED,
# line for line, and that its exit status, as the shell reports it, is
# STATUS (130: exit(130), or death by SIGINT; the output tells which).
#
# The program must start with SIGINT at its default. A non-interactive
# shell ignores SIGINT in what it runs in the background (POSIX), so the
# program runs in the foreground of a child shell that execs it, and the
# signals come from a background job that knows that shell's pid. And a
# test run that was itself started in the background inherits SIGINT
# ignored, which no shell can undo, but `env --default-signal`
# (coreutils 8.31) can, where there is one.

if [ "$#" -lt 4 ]; then
  echo "usage: $0 N EXPECTED STATUS COMMAND [ARG...]" >&2
  exit 2
fi
n=$1
expected=$2
want=$3
shift 3
out=$(mktemp "${TMPDIR:-/tmp}/check_ctrl_c.XXXXXX") || exit 2
trap 'rm -f "$out"' 0

dfl=
if env --default-signal=INT true 2>/dev/null; then
  dfl="env --default-signal=INT"
fi

sh -c '
  out=$1 n=$2 dfl=$3
  shift 3
  me=$$
  # Waits (10 s at most) until the output has $1 lines.
  lines() {
    i=0
    while [ "$(wc -l <"$out")" -lt "$1" ] && [ $i -lt 200 ]; do
      sleep 0.05
      i=$((i + 1))
    done
  }
  (
    lines 1
    kill -INT $me
    if [ "$n" -ge 2 ]; then
      lines 2
      kill -INT $me
    fi
  ) &
  exec $dfl "$@" >"$out"
' sh "$out" "$n" "$dfl" "$@"
status=$?

if ! diff "$expected" "$out"; then
  echo "check_ctrl_c: the output differs from $expected (< expected, > got)"
  exit 1
fi
if [ "$status" -ne "$want" ]; then
  echo "check_ctrl_c: exit status $status, expected $want"
  exit 1
fi
exit 0
