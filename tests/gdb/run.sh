#!/bin/sh
# SPDX-License-Identifier: MIT
# Drives gdb in batch mode over gdb_target (see gdb_target.c) and checks
# what tools/gdb/libasync.py shows: on the live process, on a core file
# written by gdb's gcore, and on one the kernel dumped when core_pattern
# lets a test find it.
#
#   run.sh GDB TARGET STAGE MODES
#
# STAGE is a DESTDIR where the helper was installed (cmake --install
# --component gdb). gdb finds it the way a user's would: the library's
# .debug_gdb_scripts section names its installed path, looked up under the
# source path (`directory STAGE`) and allowed by `set auto-load safe-path`.
# MODES lists, comma-separated, what to check: live, gcore, kernel.
#
# Exits 0 when every check passed, 1 when one failed (the gdb session is
# printed), 77 (ctest's SKIP_RETURN_CODE) when gdb, its Python or ptrace
# is not available here.

if [ "$#" -ne 4 ]; then
  echo "usage: $0 GDB TARGET STAGE MODES" >&2
  exit 2
fi
gdb=$1
target=$2
stage=$3
modes=,$4,
want() { case "$modes" in *,"$1",*) return 0 ;; esac; return 1; }

skip() {
  echo "SKIP: $*"
  exit 77
}

command -v "$gdb" >/dev/null 2>&1 || skip "gdb not found ($gdb)"
"$gdb" -batch -nx -ex 'python print("python " + "ok")' 2>&1 | grep -q "python ok" ||
  skip "$gdb was built without Python"
scope=/proc/sys/kernel/yama/ptrace_scope
if [ -r "$scope" ] && [ "$(cat "$scope")" -ge 3 ]; then
  skip "ptrace is disabled ($scope is 3)"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/gdb-test.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' 0
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# LeakSanitizer stops the world with ptrace, which it cannot do under gdb;
# in other builds the variable is ignored.
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
export ASAN_OPTIONS

# `directory` splits its argument into paths at spaces unless quoted, as a
# build folder's path may need; the safe-path setting takes its whole line.
G() {
  "$gdb" -batch -nx -iex "set auto-load safe-path $stage" \
    -iex "directory \"$stage\"" "$@" </dev/null 2>&1
}

"$gdb" -batch -nx -ex run "$target" </dev/null >"$tmp/probe" 2>&1
if ! grep -q "exited normally" "$tmp/probe"; then
  if grep -qiE "ptrace|not permitted|could not trace" "$tmp/probe"; then
    skip "gdb cannot trace a process here: $(head -n 3 "$tmp/probe")"
  fi
  echo "FAIL: gdb_target does not run under gdb:"
  cat "$tmp/probe"
  exit 1
fi

# The same commands on every process and core, between markers.
cat >"$tmp/cmds" <<'EOF'
echo @@autoload\n
info auto-load python-scripts
echo @@tasks\n
info async-tasks
echo @@tasks-expr\n
info async-tasks async__tls_loop
echo @@bt1\n
async-task bt 1
echo @@bt2\n
async-task bt 2
echo @@bt3\n
async-task bt 3
echo @@bt4\n
async-task bt 4
echo @@bt5\n
async-task bt 5
echo @@bt6\n
async-task bt 6
echo @@bt7\n
async-task bt 7
echo @@bt8\n
async-task bt 8
echo @@btloop\n
async-task bt loop
echo @@btfull\n
async-task bt 2 full
echo @@btall\n
async-task bt all
echo @@conv\n
set $async_loop = async__tls_loop
info async-tasks
async-task bt 2
python gdb.set_convenience_variable("async_loop", None)
echo @@after\n
bt
echo @@thread2\n
python main_thread = gdb.selected_thread()
python [t for t in gdb.selected_inferior().threads() if t != main_thread][0].switch()
info async-tasks
async-task bt 1
python main_thread.switch()
set $async_loop = async__tls_loop
python [t for t in gdb.selected_inferior().threads() if t != main_thread][0].switch()
async-task bt 7
EOF
# Each -ex goes on after an error, a sourced file would not (its last
# command fails on purpose).
set -- -x "$tmp/cmds" -ex "echo @@errors\n" -ex "async-task bt 99" -ex "async-task bt nope" \
  -ex "async-task bt" -ex "info async-tasks queue" \
  -ex "info async-tasks (struct async_loop *)8" -ex "echo @@end\n"

failures=0
fail() {
  echo "FAIL ($where): $*"
  failures=$((failures + 1))
}
section() {
  awk -v s="@@$1" '$0 == s { on = 1; next } /^@@/ { on = 0 } on' "$log"
}
has() { # SECTION ERE...: every pattern matches a line of the section
  sec=$1
  shift
  for re; do
    section "$sec" | grep -Eq -- "$re" || fail "[$sec] no line matches: $re"
  done
}
lacks() { # SECTION ERE: no line of the section matches
  if section "$1" | grep -Eq -- "$2"; then fail "[$1] a line matches: $2"; fi
}

check() { # LOG WHERE
  log=$1
  where=$2
  before=$failures
  has autoload '^Yes +/.*/libasync\.py' "full name: $stage/.*/libasync\\.py\$"
  for sec in tasks tasks-expr; do
    has "$sec" \
      '^loop 0x[0-9a-f]+: 8 tasks, now 0\.000 s \(virtual clock\)$' \
      '^  1 +sleeper +waiting +sleep +1000\.000 \(\+1000\.000\)$' \
      '^  2 +getter +waiting +queue get +-$' \
      '^  3 +awaiter +waiting +await future 0x[0-9a-f]+ +-$' \
      '^  4 +joiner +waiting +await sleeper \(1\) +-$' \
      '^  5 +timed +waiting +event +500\.000 \(\+500\.000\) \(timeout\)$' \
      '^  6 +yielder +ready +- +-$' \
      '^\* 7 +runner +running +- +-$' \
      '^  8 +idle +not started cancelling +- +-$'
  done
  has bt1 "^task 1 'sleeper', waiting\$" ' async_sleep ' ' sleeper_nap ' \
    ' sleeper_main ' ' task_entry ' ' async(__|\.)ctx_trampoline '
  has bt2 ' async_queue_get ' ' getter_take ' ' getter_main '
  has bt3 ' async_await ' ' awaiter_hold ' ' awaiter_main '
  has bt4 ' async_await ' ' joiner_wait ' ' joiner_main '
  has bt5 ' async_event_wait ' ' timed_wait ' ' timed_main '
  has bt6 "^task 6 'yielder', ready\$" ' async_yield ' ' yielder_main '
  for sec in bt1 bt2 bt3 bt4 bt5 bt6 btloop; do
    # The thread's own frames must not leak into a saved context's.
    lacks "$sec" 'runner_main|gdb_target_pause'
    lacks "$sec" 'Backtrace stopped|corrupt stack'
  done
  has bt7 "^task 7 'runner', running\$" ' runner_main '
  has bt8 "^task 8 'idle', not started\$" '^not started: no stack yet$'
  has btloop ' async_loop_run_until_complete ' ' main '
  has btfull ' getter_main ' '^ +item = '
  has btall "^task 1 'sleeper', waiting\$" "^task 8 'idle', not started\$" \
    ' sleeper_nap ' ' getter_take ' ' awaiter_hold ' ' joiner_wait ' \
    ' timed_wait ' ' yielder_main ' ' runner_main '
  has conv '^  2 +getter +waiting +queue get' ' getter_main '
  # The other thread, its own loop; a loop named from there runs elsewhere.
  has thread2 '^loop 0x[0-9a-f]+: 1 tasks, now [0-9.]+ s \(monotonic clock\)$' \
    '^  1 +worker +waiting +sleep +[0-9.]+ \(\+(999|1000)\.[0-9]+\)$' \
    "^task 1 'worker', waiting\$" ' worker_nap ' ' worker_main ' \
    "^libasync: loop 0x[0-9a-f]+ runs on another thread: select it"
  lacks thread2 'runner_main|gdb_target_pause'
  # The backtrace is the thread's own again.
  has after '^#0 ' ' runner_main '
  has errors '^libasync: no task 99 in loop 0x[0-9a-f]+$' \
    "^libasync: 'nope' is not a task id\$" \
    '^usage: async-task bt ID\|all\|loop' \
    '^libasync: 0x[0-9a-f]+ is not a live async_loop$' \
    '^libasync: 0x8 is not a live async_loop$'
  grep -q '^@@end$' "$log" || fail "the session stopped early"
  if grep -Eq 'Python Exception|Traceback|Error occurred in Python' "$log"; then
    fail "a Python error"
  fi
  if [ "$failures" -ne "$before" ]; then
    echo "---- the gdb session ($where)"
    cat "$log"
    echo "----"
  else
    echo "ok: $where"
  fi
}

# 1. The live process, stopped in the running task; resumed, it must still
#    exit 0.
if want live; then
  G -ex "break gdb_target_pause" -ex run "$@" -ex continue "$target" \
    >"$tmp/live"
  check "$tmp/live" "live process"
  if ! grep -q "exited normally" "$tmp/live"; then
    where="live process"
    fail "gdb_target did not exit normally once resumed"
  fi
fi

# 1b. Without libthread_db gdb cannot read the thread-local loop: the
#     helper finds it in the library's frames instead (as on qemu's stub).
if want live; then
  where="live, no libthread_db"
  log=$tmp/notls
  G -iex "set libthread-db-search-path /nonexistent" \
    -ex "break gdb_target_pause" -ex run -ex "echo @@notls\n" \
    -ex "print async__tls_loop" -ex "info async-tasks" -ex "async-task bt 2" \
    -ex kill "$target" >"$log"
  before=$failures
  has notls 'Cannot find thread-local' '^  2 +getter +waiting +queue get' \
    ' getter_main '
  if [ "$failures" -ne "$before" ]; then cat "$log"; else echo "ok: $where"; fi
fi

# 2. A core written by gdb's gcore. gcore abandons a whole mapping at its
#    first unreadable page, and the madvise guard pages of Linux 6.13+ are
#    unreadable: with mprotect'd guards the stacks are mappings of their
#    own.
if want gcore; then
  G -ex "break gdb_target_pause" -ex "run mprotect" \
    -ex "gcore $tmp/gcore" -ex kill "$target" >"$tmp/gcore.log"
  if [ ! -s "$tmp/gcore" ]; then
    where=gcore
    fail "gcore wrote no core: $(cat "$tmp/gcore.log")"
  else
    G "$@" "$target" "$tmp/gcore" >"$tmp/core1"
    check "$tmp/core1" "gcore core file"
  fi
  # With the default guards, where gcore loses the stacks, a backtrace
  # must say so rather than show garbage.
  G -ex "break gdb_target_pause" -ex run -ex "gcore $tmp/gcore0" -ex kill \
    "$target" >"$tmp/gcore0.log"
  # (The vsyscall page is never readable, whatever the guards.)
  if grep "Memory read failed for corefile section" "$tmp/gcore0.log" |
    grep -qv 0xffffffffff600000; then
    G -ex "async-task bt 1" "$target" "$tmp/gcore0" >"$tmp/core0"
    if grep -q "^libasync: task 1's stack is not in memory as it should be: the core" \
      "$tmp/core0"; then
      echo "ok: gcore core file without the stacks"
    else
      where="gcore without the stacks"
      fail "no clear error:"
      cat "$tmp/core0"
    fi
  fi
  rm -f "$tmp/gcore0"
fi

# 3. A core the kernel dumps (default guards), where core_pattern names a
#    file in the working directory.
pattern=$(cat /proc/sys/kernel/core_pattern 2>/dev/null)
case "$pattern" in
*/* | "|"*) local_core=no ;;
core*) local_core=yes ;;
*) local_core=no ;;
esac
if ! want kernel; then
  :
elif [ "$local_core" = no ]; then
  echo "note: no kernel core dump tried (core_pattern is '$pattern')"
else
  mkdir "$tmp/k"
  (
    cd "$tmp/k" && ulimit -c unlimited 2>/dev/null
    ASAN_OPTIONS="$ASAN_OPTIONS:disable_coredump=0"
    export ASAN_OPTIONS
    exec "$target" abort
  ) >/dev/null 2>&1
  status=$?
  core=$(ls "$tmp/k" | head -n 1)
  if [ "$status" -ne 134 ]; then
    where="kernel core"
    fail "gdb_target abort exited with status $status, not SIGABRT"
  elif [ -z "$core" ]; then
    echo "note: the kernel dumped no core (ulimit -c is $(ulimit -c))"
  else
    G "$@" "$target" "$tmp/k/$core" >"$tmp/core2"
    check "$tmp/core2" "kernel core file"
  fi
fi

[ "$failures" -eq 0 ] || exit 1
echo "PASS"
