#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs what the tests need when it is missing (cmocka from Debian's
# libcmocka-dev, pkg-config from pkgconf for the installed-package test,
# gdb for the debugger helper's: apt-get as root, through sudo otherwise),
# builds everything with the tests and runs the whole ctest suite. A run
# that finds no test fails.
#   BUILD_DIR   build folder (default: build)
#   CMAKE_ARGS  extra configure arguments, e.g. -DASYNC_SANITIZE=ON
set -eu
cd "$(dirname "$0")/.."

packages="libcmocka-dev pkgconf gdb"

have_cmocka() {
  printf '#include <stdarg.h>\n#include <stddef.h>\n#include <stdint.h>\n#include <setjmp.h>\n#include <cmocka.h>\n' |
    "${CC:-cc}" -E -x c - >/dev/null 2>&1
}

have_all() {
  have_cmocka && command -v pkg-config >/dev/null 2>&1 &&
    command -v gdb >/dev/null 2>&1
}

cannot_install() {
  echo "tools/test.sh: the tests need cmocka, pkg-config and gdb, and $1." >&2
  echo "Install the packages $packages (Debian, Ubuntu: apt-get install $packages)," >&2
  echo "then run this again." >&2
  exit 1
}

if ! have_all; then
  if [ "$(id -u)" -eq 0 ]; then
    sudo=""
  elif command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
  else
    cannot_install "this is not root and there is no sudo"
  fi
  command -v apt-get >/dev/null 2>&1 || cannot_install "there is no apt-get"
  echo "tools/test.sh: installing $packages: ${sudo:+$sudo }apt-get install $packages"
  # No questions: CI runs this without a terminal.
  # shellcheck disable=SC2086 # a list of package names
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends $packages >/dev/null ||
    cannot_install "apt-get could not install them"
  have_all || cannot_install "they are still not found after the install"
fi

build="${BUILD_DIR:-build}"
jobs="$(nproc 2>/dev/null || echo 2)"
# Tests asked for explicitly: a folder configured without them (the
# quickstart's first command) gets them, and a missing cmocka is an error.
# shellcheck disable=SC2086 # CMAKE_ARGS is a list of words on purpose
cmake -S . -B "$build" -DASYNC_BUILD_TESTS=ON ${CMAKE_ARGS:-}
cmake --build "$build" -j "$jobs"
cd "$build"
# Twice as many tests as cores: most of the suite's time is tests waiting
# (sleeps, timeouts, children), not computing.
ctest --output-on-failure --no-tests=error -j "$((jobs * 2))"
