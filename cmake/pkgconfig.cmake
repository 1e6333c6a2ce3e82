# SPDX-License-Identifier: MIT
# Run by the install step (see CMakeLists.txt), where CMAKE_INSTALL_PREFIX
# is the prefix being installed to: writes libasync.pc and
# libasync-static.pc into ASYNC_PC_OUT for the install step to copy.
# A relative --prefix is relative to the directory cmake --install runs in,
# which a script sees as its current source directory.
#
# A .pc file's values are split into flags at spaces unless a backslash
# escapes them, so every path written is escaped: pkg-config then prints
# -I/opt/my\ libs/include, which a shell (eval, make's recipes) reads as one
# word. Only spaces are escaped; a path with a backslash, '#' or '$' is not
# one a .pc file can name.
get_filename_component(ASYNC_PC_PREFIX "${CMAKE_INSTALL_PREFIX}" ABSOLUTE)
string(REPLACE " " "\\ " ASYNC_PC_PREFIX "${ASYNC_PC_PREFIX}")
foreach(dir LIBDIR INCLUDEDIR)
  string(REPLACE " " "\\ " path "${ASYNC_PC_${dir}}")
  if(IS_ABSOLUTE "${ASYNC_PC_${dir}}")
    set(ASYNC_PC_${dir}_PATH "${path}")
  else()
    set(ASYNC_PC_${dir}_PATH "\${prefix}/${path}")
  endif()
endforeach()
foreach(pc libasync libasync-static)
  configure_file("${CMAKE_CURRENT_LIST_DIR}/${pc}.pc.in"
    "${ASYNC_PC_OUT}/${pc}.pc" @ONLY)
endforeach()
