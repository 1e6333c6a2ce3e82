# SPDX-License-Identifier: MIT
# Run by the install step (see CMakeLists.txt), where CMAKE_INSTALL_PREFIX
# is the prefix being installed to: writes libasync.pc and
# libasync-static.pc into ASYNC_PC_OUT for the install step to copy.
# A relative --prefix is relative to the directory cmake --install runs in,
# which a script sees as its current source directory.
get_filename_component(ASYNC_PC_PREFIX "${CMAKE_INSTALL_PREFIX}" ABSOLUTE)
foreach(dir LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${ASYNC_PC_${dir}}")
    set(ASYNC_PC_${dir}_PATH "${ASYNC_PC_${dir}}")
  else()
    set(ASYNC_PC_${dir}_PATH "\${prefix}/${ASYNC_PC_${dir}}")
  endif()
endforeach()
foreach(pc libasync libasync-static)
  configure_file("${CMAKE_CURRENT_LIST_DIR}/${pc}.pc.in"
    "${ASYNC_PC_OUT}/${pc}.pc" @ONLY)
endforeach()
