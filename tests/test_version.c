/* SPDX-License-Identifier: MIT */
/* The version: the header's macros, the library's two calls and the version
 * CMake read from the header (passed in as TEST_CMAKE_VERSION*) agree. */
#include "helpers.h"

static void test_version_header_matches_cmake(void **state) {
  (void)state;
  assert_int_equal(ASYNC_VERSION_MAJOR, TEST_CMAKE_VERSION_MAJOR);
  assert_int_equal(ASYNC_VERSION_MINOR, TEST_CMAKE_VERSION_MINOR);
  assert_int_equal(ASYNC_VERSION_PATCH, TEST_CMAKE_VERSION_PATCH);
  /* CMake's own arithmetic, so a wrong shift in the macro shows. */
  assert_int_equal(ASYNC_VERSION_HEX, TEST_CMAKE_VERSION_HEX);
  /* And it works in #if, where programs test it. */
#if ASYNC_VERSION_HEX != TEST_CMAKE_VERSION_HEX
  fail();
#endif
}

static void test_version_library_matches_header(void **state) {
  char want[32];
  (void)state;
  assert_string_equal(async_version(), TEST_CMAKE_VERSION);
  assert_int_equal(async_version_hex(), ASYNC_VERSION_HEX);
  snprintf(want, sizeof want, "%u.%u.%u", async_version_hex() >> 16,
           (async_version_hex() >> 8) & 0xff, async_version_hex() & 0xff);
  assert_string_equal(async_version(), want);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_version_header_matches_cmake),
      cmocka_unit_test(test_version_library_matches_header),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
