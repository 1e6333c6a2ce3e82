#!/bin/bash
# SPDX-License-Identifier: MIT
# Tests the http_server example on 127.0.0.1 with real clients.
#
#   http_server_test.sh PATH/TO/http_server
#
# curl makes a request; raw requests through bash's /dev/tcp check
# pipelining and keep-alive, garbage (400, and the server goes on), an
# oversized head (431), a client gone mid-request; then wrk loads it
# (-t1 -c10 -d1s) and must see no socket error and no non-2xx response;
# SIGTERM stops it gracefully. curl and wrk come from Debian's packages,
# installed when missing if run as root; otherwise the test says which
# package is missing and exits 77 (ctest's skip). Every wait is bounded.

server=$1
[ -x "$server" ] || { echo "usage: $0 PATH/TO/http_server" >&2; exit 2; }

need() { # need COMMAND PACKAGE
  command -v "$1" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing $2 (Debian package) for $1"
    DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -q "$2" \
      >/dev/null 2>&1 ||
      { apt-get update -q >/dev/null 2>&1 &&
        DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -q "$2" \
          >/dev/null 2>&1; }
    command -v "$1" >/dev/null 2>&1 && return 0
  fi
  echo "SKIP: $1 is missing: install the Debian package $2"
  exit 77
}
need curl curl
need wrk wrk
need timeout coreutils

out=$(mktemp "${TMPDIR:-/tmp}/http_server_test.XXXXXX") || exit 2
pid=
cleanup() {
  [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
  rm -f "$out"
}
trap cleanup EXIT

fails=0
check() { # check WHAT CONDITION-STATUS
  if [ "$2" -eq 0 ]; then echo "ok: $1"; else echo "FAIL: $1"; fails=$((fails + 1)); fi
}

"$server" >"$out" &
pid=$!
port=
for _ in $(seq 100); do
  port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$out")
  [ -n "$port" ] && break
  sleep 0.05
done
[ -n "$port" ] || { echo "FAIL: the server did not start"; cat "$out"; exit 1; }
url=http://127.0.0.1:$port/

# raw REQUEST-BYTES: sends them on a new connection, prints what comes back
# until the server closes it (or 5 s pass).
raw() {
  exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
  printf "$1" >&3
  timeout 5 cat <&3
  exec 3<&- 3>&-
}

body=$(timeout 10 curl -sS --max-time 5 "$url")
check "curl gets Hello, World!" "$([ "$body" = "Hello, World!" ]; echo $?)"

headers=$(timeout 10 curl -sS --max-time 5 -D - -o /dev/null "$url" | tr -d '\r')
echo "$headers" | grep -qx 'Content-Length: 13'
check "Content-Length: 13" $?

# curl reuses one connection for two URLs: keep-alive.
log=$(timeout 10 curl -sS -v --max-time 5 "$url" "$url" 2>&1)
echo "$log" | grep -q 'Re-using existing connection'
check "keep-alive (curl reuses the connection)" $?

# Three pipelined requests in one write; the last asks to close.
resp=$(raw 'GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
n=$(printf '%s' "$resp" | grep -o 'Hello, World!' | wc -l)
check "three pipelined requests, three responses in order (got $n)" "$([ "$n" -eq 3 ]; echo $?)"

resp=$(raw 'GARBAGE\r\n\r\n')
printf '%s' "$resp" | head -1 | grep -q '^HTTP/1.1 400 '
check "garbage gets 400" $?

resp=$(raw 'GET / HTTP/1.1\r\nNo colon here\r\n\r\n')
printf '%s' "$resp" | head -1 | grep -q '^HTTP/1.1 400 '
check "a malformed header gets 400" $?

long=$(head -c 9000 /dev/zero | tr '\0' 'a')
resp=$(raw "GET /$long HTTP/1.1\r\n\r\n")
printf '%s' "$resp" | head -1 | grep -q '^HTTP/1.1 431 '
check "a 9000-byte head gets 431" $?

# A client that goes away in the middle of its request.
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'GET / HTTP/1.1\r\nHost: ' >&3
exec 3<&- 3>&-

body=$(timeout 10 curl -sS --max-time 5 "$url")
check "still serving after garbage and a client gone mid-request" "$([ "$body" = "Hello, World!" ]; echo $?)"

wout=$(timeout 30 wrk -t1 -c10 -d1s "$url" 2>&1)
echo "$wout" | sed 's/^/  wrk: /'
echo "$wout" | grep -q 'Requests/sec'
check "wrk ran" $?
! echo "$wout" | grep -qE 'Socket errors|Non-2xx'
check "wrk: no socket error, no non-2xx response" $?

kill -TERM "$pid"
for _ in $(seq 100); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.05
done
wait "$pid"
status=$?
pid=
check "SIGTERM stops it, status 0 (got $status)" "$status"
grep '^stopped:' "$out"
grep -qE '^stopped: [0-9]+ connections, [0-9]+ requests, [1-9][0-9]* bad, [1-9][0-9]* cut short' "$out"
check "it counted the bad requests and the client cut short" $?

[ "$fails" -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "all checks passed"
