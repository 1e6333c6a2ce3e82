#!/bin/sh
# SPDX-License-Identifier: MIT
# Builds tests/consumer against a staged install of this build, as another
# project would, and runs what it built. ctest runs it in three steps:
#
#   check_consumer.sh install       cmake --install BUILD --prefix STAGE
#   check_consumer.sh find_package  tests/consumer's CMake project
#   check_consumer.sh pkg_config    cc with the flags of libasync.pc and
#                                   of libasync-static.pc
#
# Every program built must run and print "libasync VERSION"; readelf, when
# there is one, checks that each is linked as it claims (shared or static).
# The environment comes from tests/CMakeLists.txt: ASYNC_BUILD (the build
# tree), ASYNC_WORK (a scratch folder; the stage is ASYNC_WORK/stage),
# ASYNC_LIBDIR, ASYNC_VERSION, ASYNC_CMAKE, ASYNC_GENERATOR,
# ASYNC_BUILD_TYPE, ASYNC_CC, ASYNC_CFLAGS (the build's C flags and compile
# options), ASYNC_CFLAGS_CONFIG (those of its build type), ASYNC_LDFLAGS.
# Installs nothing outside ASYNC_WORK.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
stage="$ASYNC_WORK/stage"

fail() {
  echo "check_consumer: $*" >&2
  exit 1
}

# check PROGRAM shared|static; a cross build runs it under ASYNC_EMULATOR.
check() {
  # shellcheck disable=SC2086 # the emulator is a command and its options
  out=$(${ASYNC_EMULATOR:-} "$1") || fail "$1 exited with status $?"
  [ "$out" = "libasync $ASYNC_VERSION" ] ||
    fail "$1 printed '$out', expected 'libasync $ASYNC_VERSION'"
  if command -v readelf >/dev/null 2>&1; then
    linked=static
    if readelf -d "$1" | grep -q 'NEEDED.*\[libasync\.so'; then
      linked=shared
    fi
    [ "$linked" = "$2" ] || fail "$1 is linked $linked, expected $2"
  fi
  echo "ok: $1 ($2): $out"
}

case "${1:-}" in
install)
  rm -rf "$stage"
  "$ASYNC_CMAKE" --install "$ASYNC_BUILD" --prefix "$stage"
  ;;
find_package)
  dir="$ASYNC_WORK/find_package"
  rm -rf "$dir"
  "$ASYNC_CMAKE" -S "$here/consumer" -B "$dir" -G "$ASYNC_GENERATOR" \
    -DCMAKE_BUILD_TYPE="$ASYNC_BUILD_TYPE" \
    -DCMAKE_C_COMPILER="$ASYNC_CC" -DCMAKE_C_FLAGS="$ASYNC_CFLAGS" \
    -DCMAKE_EXE_LINKER_FLAGS="$ASYNC_LDFLAGS" \
    -DCMAKE_PREFIX_PATH="$stage" -DASYNC_VERSION="$ASYNC_VERSION"
  "$ASYNC_CMAKE" --build "$dir"
  check "$dir/consumer_shared" shared
  check "$dir/consumer_static" static
  ;;
pkg_config)
  pkgconf="${PKG_CONFIG:-pkg-config}"
  command -v "$pkgconf" >/dev/null 2>&1 ||
    fail "$pkgconf not found: install pkgconf (sh tools/test.sh does)"
  dir="$ASYNC_WORK/pkg_config"
  rm -rf "$dir"
  mkdir -p "$dir"
  PKG_CONFIG_PATH="$stage/$ASYNC_LIBDIR/pkgconfig"
  export PKG_CONFIG_PATH
  # A .pc file escapes the spaces in its paths (cmake/pkgconfig.cmake).
  want=$(printf '%s\n' "$stage" | sed 's/ /\\ /g')
  for pc in libasync libasync-static; do
    prefix=$("$pkgconf" --variable=prefix "$pc")
    [ "$prefix" = "$want" ] ||
      fail "$pc.pc has prefix=$prefix, installed to $stage (as $want)"
    version=$("$pkgconf" --modversion "$pc")
    [ "$version" = "$ASYNC_VERSION" ] ||
      fail "$pc.pc has version $version, expected $ASYNC_VERSION"
  done
  # pkg-config's flags are read as a shell reads them (eval), as make's
  # recipes and a `eval cc $(pkg-config ...)` do, so that a path's escaped
  # space stays in its word; the build's own flags are split at spaces.
  for pc in libasync libasync-static; do
    cflags=$("$pkgconf" --cflags "$pc")
    libs=$("$pkgconf" --libs "$pc")
    # shellcheck disable=SC2034 # out and rpath are read by the eval
    out="$dir/consumer_static" rpath=""
    # shellcheck disable=SC2034
    if [ "$pc" = libasync ]; then
      out="$dir/consumer_shared" rpath="-Wl,-rpath,$stage/$ASYNC_LIBDIR"
    fi
    echo "pkg-config $pc: $cflags $libs"
    eval "\"\$ASYNC_CC\" \$ASYNC_CFLAGS \$ASYNC_CFLAGS_CONFIG $cflags" \
      "\"\$here/consumer/main.c\" -o \"\$out\" \$ASYNC_LDFLAGS $libs" \
      "\${rpath:+\"\$rpath\"}"
  done
  check "$dir/consumer_shared" shared
  check "$dir/consumer_static" static
  ;;
*)
  echo "usage: $0 install|find_package|pkg_config" >&2
  exit 2
  ;;
esac
