# SPDX-License-Identifier: MIT
# Cross-builds for Linux AArch64 with Debian's cross compiler
# (gcc-aarch64-linux-gnu) and runs what it builds under qemu-user:
#
#   cmake -S . -B build-aarch64 \
#     -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-aarch64-linux-gnu.cmake
#
# Libraries for the target (cmocka) come from Debian's multiarch packages
# (libcmocka-dev:arm64), installed under /usr/lib/aarch64-linux-gnu; the
# C library and the dynamic loader from the cross compiler's
# /usr/aarch64-linux-gnu, which qemu-aarch64 -L takes as the target's root.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(ASYNC_CROSS_TRIPLE aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${ASYNC_CROSS_TRIPLE}-gcc)
set(CMAKE_ASM_COMPILER ${ASYNC_CROSS_TRIPLE}-gcc)
set(CMAKE_LIBRARY_ARCHITECTURE ${ASYNC_CROSS_TRIPLE})

# Programs (sh, awk) run on the host; libraries and headers are the target's:
# the cross root first, then the multiarch folders of the host's root, where
# find_library looks in lib/aarch64-linux-gnu before lib and so never picks
# the host's x86-64 libraries in lib/x86_64-linux-gnu.
set(CMAKE_FIND_ROOT_PATH /usr/${ASYNC_CROSS_TRIPLE} /)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# ctest runs every test binary through this; so do the example checks,
# which get it from CMAKE_CROSSCOMPILING_EMULATOR themselves. The dynamic
# loader comes from the cross root (-L), and it must load that root's C
# library, the one built with it: left to its default paths it finds the
# libc6:arm64 that libcmocka0:arm64 pulls into /lib/aarch64-linux-gnu, a
# different build whose private loader data differ, and every fork()ed child
# then spins forever in glibc's fork (walking a list whose layout it
# misreads). LD_LIBRARY_PATH, set in the guest only, puts the matching libc
# first; cmocka is still found in the multiarch folders.
find_program(ASYNC_QEMU_AARCH64 NAMES qemu-aarch64 qemu-aarch64-static)
if(ASYNC_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR
      ${ASYNC_QEMU_AARCH64} -L /usr/${ASYNC_CROSS_TRIPLE}
      -E LD_LIBRARY_PATH=/usr/${ASYNC_CROSS_TRIPLE}/lib)
endif()
