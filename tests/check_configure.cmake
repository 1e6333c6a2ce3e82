# SPDX-License-Identifier: MIT
# Configures libasync the ways a user does and checks what configure decides:
#   cmake -DSRC=<source> -DBIN=<scratch folder> -DCC=<compiler> -P check_configure.cmake
# Each case configures a fresh folder (a few seconds each; nothing is built).

file(REMOVE_RECURSE "${BIN}")
file(MAKE_DIRECTORY "${BIN}")

# Configures `dir` from `src` with the extra arguments; sets out and rc.
function(configure name src)
  execute_process(
    COMMAND ${CMAKE_COMMAND} -S ${src} -B ${BIN}/${name}
            -DCMAKE_C_COMPILER=${CC} ${ARGN}
    OUTPUT_VARIABLE o ERROR_VARIABLE e RESULT_VARIABLE r)
  set(out "${o}${e}" PARENT_SCOPE)
  set(rc "${r}" PARENT_SCOPE)
endfunction()

# `want` is "ok" (configure succeeded) or "fail".
function(expect name want)
  if(rc EQUAL 0)
    set(got ok)
  else()
    set(got fail)
  endif()
  if(NOT got STREQUAL want)
    message(FATAL_ERROR "case ${name}: expected ${want}, got ${got}:\n${out}")
  endif()
endfunction()

function(expect_output name regex)
  if(NOT out MATCHES "${regex}")
    message(FATAL_ERROR "case ${name}: no \"${regex}\" in:\n${out}")
  endif()
endfunction()

# 1. A subproject builds the library only: no tests, examples or bench.
file(WRITE ${BIN}/parent/CMakeLists.txt "
cmake_minimum_required(VERSION 3.16)
project(parent C)
add_subdirectory(\"${SRC}\" libasync)
foreach(t test_ctx countasync async_bench)
  if(TARGET \${t})
    message(FATAL_ERROR \"subproject made target \${t}\")
  endif()
endforeach()
foreach(t async::async async::async_static)
  if(NOT TARGET \${t})
    message(FATAL_ERROR \"subproject did not make \${t}\")
  endif()
endforeach()
message(STATUS \"parent: library only\")
")
configure(subproject ${BIN}/parent)
expect(subproject ok)
expect_output(subproject "parent: library only")
expect_output(subproject "tests +no [(]a subproject")

# 2. Without cmocka (nothing is found under a root that does not exist),
# the tests are skipped by default, and asking for them is an error.
set(no_cmocka -DCMAKE_FIND_ROOT_PATH=${BIN}/empty
    -DCMAKE_FIND_ROOT_PATH_MODE_INCLUDE=ONLY
    -DCMAKE_FIND_ROOT_PATH_MODE_LIBRARY=ONLY)
configure(no_cmocka_auto ${SRC} ${no_cmocka})
expect(no_cmocka_auto ok)
expect_output(no_cmocka_auto "cmocka not found, the tests are skipped")
expect_output(no_cmocka_auto "tests +no [(]cmocka not found")
configure(no_cmocka_on ${SRC} ${no_cmocka} -DASYNC_BUILD_TESTS=ON)
expect(no_cmocka_on fail)
expect_output(no_cmocka_on "ASYNC_BUILD_TESTS=ON but cmocka was not found")

# 3. ASYNC_VALGRIND=ON builds the stack registration in, or fails without
# the header: which one depends on this machine, so ask the compiler.
file(WRITE ${BIN}/vg.c "#include <valgrind/valgrind.h>\n")
execute_process(COMMAND ${CC} -E ${BIN}/vg.c
  OUTPUT_QUIET ERROR_QUIET RESULT_VARIABLE no_valgrind)
configure(valgrind_on ${SRC} -DASYNC_VALGRIND=ON -DASYNC_BUILD_TESTS=OFF)
if(no_valgrind)
  expect(valgrind_on fail)
  expect_output(valgrind_on "ASYNC_VALGRIND=ON but <valgrind/valgrind.h> was not found")
else()
  expect(valgrind_on ok)
  expect_output(valgrind_on "valgrind +yes, stacks registered")
endif()
configure(valgrind_off ${SRC} -DASYNC_VALGRIND=OFF -DASYNC_BUILD_TESTS=OFF)
expect(valgrind_off ok)
expect_output(valgrind_off "valgrind +no [(]ASYNC_VALGRIND=OFF[)]")

# 4. A value that is none of AUTO, ON, OFF is an error, not a silent OFF.
configure(valgrind_typo ${SRC} -DASYNC_VALGRIND=maybe -DASYNC_BUILD_TESTS=OFF)
expect(valgrind_typo fail)
expect_output(valgrind_typo "ASYNC_VALGRIND=maybe: expected AUTO, ON or OFF")

file(REMOVE_RECURSE "${BIN}")
