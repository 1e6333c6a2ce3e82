#!/bin/bash
# SPDX-License-Identifier: MIT
# Smoke test of async_bench's server modes, as peers/run uses them:
#
#   server_test.sh PATH/TO/async_bench echo-server|http-server
#
# Starts the mode on a free 127.0.0.1 port, checks one echo (echo-server)
# or two pipelined requests answered with exactly the harness's 78-byte
# response each (http-server), and that SIGTERM ends it. Every wait is
# bounded; the figures are the harness's business.

bench=$1
mode=$2
pid=
trap '[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null' EXIT

# A free port below the kernel's ephemeral range (32768 and up), where
# other programs' outgoing connections do not take ports; retried, since
# another program may still have it.
for _ in 1 2 3 4 5 6 7 8 9 10; do
  port=$((20000 + RANDOM % 12000))
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && continue
  "$bench" "$mode" "$port" &
  pid=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break 2
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  kill -KILL "$pid" 2>/dev/null
  pid=
done
[ -n "$pid" ] || { echo "FAIL: $mode did not start"; exit 1; }

exec 3<>"/dev/tcp/127.0.0.1/$port"
if [ "$mode" = echo-server ]; then
  printf 'hello, echo\n' >&3
  read -r -t 5 line <&3
  [ "$line" = "hello, echo" ] || { echo "FAIL: echoed '$line'"; exit 1; }
else
  printf 'GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n' >&3
  resp=$(timeout 2 head -c 156 <&3)
  one=$'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!'
  [ "$resp" = "$one$one" ] || { echo "FAIL: got '$resp'"; exit 1; }
fi
exec 3<&- 3>&-
kill -TERM "$pid"
wait "$pid"
status=$?
pid=
[ "$status" -eq 143 ] || { echo "FAIL: SIGTERM gave status $status"; exit 1; }
echo "ok: $mode on port $port"
