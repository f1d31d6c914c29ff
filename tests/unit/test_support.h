/* Shared helpers for the cmocka unit tests: where fixtures and models are. A test that needs a real
 * model calls test_model_path(); without one it is skipped, unless AUGURY_REQUIRE_MODELS=1 (as in
 * scripts/test and CI), where a missing model fails the test instead. */
#ifndef AUGURY_TESTS_UNIT_TEST_SUPPORT_H
#define AUGURY_TESTS_UNIT_TEST_SUPPORT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

enum test_model { TEST_MODEL_DEFAULT, TEST_MODEL_SMALL };

/* Path of the real model, or NULL after calling skip() (or fail()) when it is not available. */
static inline const char *test_model_path(enum test_model which) {
  const char *var = which == TEST_MODEL_SMALL ? "AUGURY_TEST_MODEL_SMALL" : "AUGURY_TEST_MODEL";
  const char *path = getenv(var);
  if (path && *path) return path;
  const char *require = getenv("AUGURY_REQUIRE_MODELS");
  if (require && !strcmp(require, "1")) {
    fail_msg("%s is not set but AUGURY_REQUIRE_MODELS=1 (run scripts/get-model)", var);
  }
  skip();
  return NULL;
}

/* Reads a whole fixture file (relative to tests/fixtures); caller frees. Fails the test if absent. */
static inline char *test_read_fixture(const char *relative, size_t *size) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", AUGURY_FIXTURES_DIR, relative);
  FILE *f = fopen(path, "rb");
  if (!f) fail_msg("cannot open fixture %s", path);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  assert_non_null(buf);
  assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
  buf[n] = '\0';
  fclose(f);
  if (size) *size = (size_t)n;
  return buf;
}

#endif
