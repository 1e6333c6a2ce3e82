#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs what the tests need when it is missing (cmocka, from Debian's
# libcmocka-dev: apt-get as root, through sudo otherwise), builds everything
# with the tests and runs the whole ctest suite. A run that finds no test
# fails.
#   BUILD_DIR   build folder (default: build)
#   CMAKE_ARGS  extra configure arguments, e.g. -DASYNC_SANITIZE=ON
set -eu
cd "$(dirname "$0")/.."

have_cmocka() {
  printf '#include <stdarg.h>\n#include <stddef.h>\n#include <stdint.h>\n#include <setjmp.h>\n#include <cmocka.h>\n' |
    "${CC:-cc}" -E -x c - >/dev/null 2>&1
}

cannot_install() {
  echo "tools/test.sh: the tests need cmocka, and $1." >&2
  echo "Install the package libcmocka-dev (Debian, Ubuntu: apt-get install libcmocka-dev)," >&2
  echo "or cmocka from https://cmocka.org, then run this again." >&2
  exit 1
}

if ! have_cmocka; then
  if [ "$(id -u)" -eq 0 ]; then
    sudo=""
  elif command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
  else
    cannot_install "this is not root and there is no sudo"
  fi
  command -v apt-get >/dev/null 2>&1 || cannot_install "there is no apt-get"
  echo "tools/test.sh: installing libcmocka-dev: ${sudo:+$sudo }apt-get install libcmocka-dev"
  # No questions: CI runs this without a terminal.
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends libcmocka-dev >/dev/null ||
    cannot_install "apt-get could not install it"
  have_cmocka || cannot_install "the compiler still does not find cmocka.h"
fi

build="${BUILD_DIR:-build}"
jobs="$(nproc 2>/dev/null || echo 2)"
# Tests asked for explicitly: a folder configured without them (the
# quickstart's first command) gets them, and a missing cmocka is an error.
# shellcheck disable=SC2086 # CMAKE_ARGS is a list of words on purpose
cmake -S . -B "$build" -DASYNC_BUILD_TESTS=ON ${CMAKE_ARGS:-}
cmake --build "$build" -j "$jobs"
cd "$build"
ctest --output-on-failure --no-tests=error -j "$jobs"
