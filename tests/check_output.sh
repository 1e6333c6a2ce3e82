#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs a program and checks its standard output against an expected file.
#
#   check_output.sh EXPECTED COMMAND [ARG...]
#
# Each line of EXPECTED is an extended regular expression that must match
# the whole of the output line at the same place, and the output must have
# as many lines. A plain line thus stands for itself, and a line that varies
# (a duration) is written as a pattern; metacharacters meant literally are
# escaped (\{ \. \( ...). Interval braces ({2}) are not portable to every
# awk: write [0-9][0-9] instead.
#
# Exits 0 on a match; 1 on a mismatch, with a diff-like report on stdout
# (" " matched, "-" expected pattern, "+" actual line); the program's own
# status if it failed; 2 on bad usage.

if [ "$#" -lt 2 ]; then
  echo "usage: $0 EXPECTED COMMAND [ARG...]" >&2
  exit 2
fi
expected=$1
shift
if [ ! -r "$expected" ]; then
  echo "check_output: cannot read $expected" >&2
  exit 2
fi

actual=$(mktemp "${TMPDIR:-/tmp}/check_output.XXXXXX") || exit 2
trap 'rm -f "$actual"' 0
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

"$@" >"$actual"
status=$?
if [ "$status" -ne 0 ]; then
  echo "check_output: $* exited with status $status; its output:"
  cat "$actual"
  exit "$status"
fi

# The expected file is read with getline, not passed with -v, which would
# interpret the backslashes of its patterns.
awk '
  BEGIN {
    file = ARGV[1]
    while ((getline line < file) > 0) want[++n] = line
    close(file)
    ARGV[1] = ""
  }
  { got[++m] = $0 }
  END {
    bad = 0
    for (i = 1; i <= n || i <= m; i++)
      if (i > n || i > m || got[i] !~ ("^(" want[i] ")$")) {
        if (!bad) first = i
        bad++
      }
    if (!bad) exit 0
    printf "check_output: %d lines expected, %d got, first mismatch at %d\n",
      n, m, first
    printf "--- %s\n+++ the output\n", file
    for (i = 1; i <= n || i <= m; i++) {
      if (i <= n && i <= m && got[i] ~ ("^(" want[i] ")$")) {
        print " " got[i]
        continue
      }
      if (i <= n) print "-" want[i]
      if (i <= m) print "+" got[i]
    }
    exit 1
  }
' "$expected" "$actual"
