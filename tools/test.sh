#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs what the tests need when it is missing (cmocka, from Debian's
# libcmocka-dev), builds everything and runs the whole ctest suite.
#   BUILD_DIR   build folder (default: build)
#   CMAKE_ARGS  extra configure arguments, e.g. -DASYNC_SANITIZE=ON
set -eu
cd "$(dirname "$0")/.."

have_cmocka() {
  printf '#include <stdarg.h>\n#include <stddef.h>\n#include <stdint.h>\n#include <setjmp.h>\n#include <cmocka.h>\n' |
    "${CC:-cc}" -E -x c - >/dev/null 2>&1
}

if ! have_cmocka; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq libcmocka-dev pkgconf
fi

build="${BUILD_DIR:-build}"
jobs="$(nproc 2>/dev/null || echo 2)"
# shellcheck disable=SC2086 # CMAKE_ARGS is a list of words on purpose
cmake -S . -B "$build" ${CMAKE_ARGS:-}
cmake --build "$build" -j "$jobs"
ctest --test-dir "$build" --output-on-failure -j "$jobs"
