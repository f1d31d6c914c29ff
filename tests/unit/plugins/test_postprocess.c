/* Tests for plugins/postprocess.c: each stopping rule and the final clean-up on small Python and C
 * examples, including the cases where a rule must not fire. */
#include "../test_support.h"

#include "plugins/postprocess.h"

static struct postprocess_context ctx_of(const char *before, const char *after, double budget) {
  struct postprocess_context ctx;
  postprocess_context_init(&ctx, before, strlen(before), after, strlen(after), budget);
  return ctx;
}

/* Runs the decode-time check over every prefix of gen (as tokens would arrive, one byte each) and
 * then finish; returns the final text in a static buffer. */
static const char *run(const struct postprocess_context *ctx, const char *gen) {
  static char out[1024];
  size_t n = strlen(gen), len = n;
  for (size_t i = 1; i <= n; i++) {
    size_t keep;
    if (postprocess_check(ctx, gen, i, 0, &keep) == POSTPROCESS_STOP) {
      assert_true(keep <= i);
      len = keep;
      break;
    }
  }
  len = postprocess_finish(ctx, gen, len);
  memcpy(out, gen, len);
  out[len] = '\0';
  return out;
}

static void test_indent(void **state) {
  (void)state;
  bool blank;
  assert_int_equal(postprocess_indent("    x", 5, &blank), 4);
  assert_false(blank);
  assert_int_equal(postprocess_indent("\t  ", 3, &blank), POSTPROCESS_TAB_WIDTH + 2);
  assert_true(blank);
}

static void test_dedent_stops(void **state) {
  (void)state;
  /* Inside a Python function body at indent 4: the next top-level def ends the completion. */
  struct postprocess_context ctx = ctx_of("    total = ", "\n", 0);
  assert_false(ctx.single_line);
  assert_int_equal(ctx.base_indent, 4);
  assert_string_equal(run(&ctx, "a + b\n    return total\n\ndef other():\n    pass\n"),
                      "a + b\n    return total");
  /* Deeper lines are fine. */
  assert_string_equal(run(&ctx, "0\n    for x in xs:\n        total += x\n"),
                      "0\n    for x in xs:\n        total += x");
}

static void test_block_opened_at_cursor(void **state) {
  (void)state;
  /* Cursor right after "def f(x):" at top level: the body is kept, the next def is not. */
  struct postprocess_context ctx = ctx_of("def f(x):", "", 0);
  assert_string_equal(run(&ctx, "\n    return x * 2\n\n\ndef g():\n    pass"),
                      "\n    return x * 2");
  /* C: the completion opens a block; its closing brace at the same indentation is kept. */
  ctx = ctx_of("int add(int a, int b) ", "\n", 0);
  assert_string_equal(run(&ctx, "{\n    return a + b;\n}\n\nint sub(int a) {\n"),
                      "{\n    return a + b;\n}");
  /* ...unless the suffix already has it. */
  ctx = ctx_of("  if (x) {", "\n  }\n", 0);
  assert_int_equal(ctx.base_indent, 2);
  assert_string_equal(run(&ctx, "\n    y = 1;\n  }\n"), "\n    y = 1;");
}

static void test_suffix_repeat_trimmed(void **state) {
  (void)state;
  struct postprocess_context ctx = ctx_of("    ", "\n    return result\n", 0);
  assert_string_equal(run(&ctx, "result = compute()\n    return result\n"), "result = compute()");
  /* The same line at the end of the text without a newline is trimmed too. */
  assert_string_equal(run(&ctx, "result = compute()\n    return result"), "result = compute()");
}

static void test_single_line_mode(void **state) {
  (void)state;
  struct postprocess_context ctx = ctx_of("    print(", ")\n", 0);
  assert_true(ctx.single_line);
  assert_string_equal(run(&ctx, "total)\n    return total\n"), "total");
  /* Overlap with identifier characters is kept unless it is the whole rest of the line. */
  ctx = ctx_of("x = ", "y + 1\n", 0);
  assert_string_equal(run(&ctx, "y + 1"), "");
  assert_string_equal(run(&ctx, "2 * y"), "2 * y");
  /* Trailing spaces after the cursor do not make single-line mode. */
  ctx = ctx_of("x = ", "   \nnext", 0);
  assert_false(ctx.single_line);
}

static void test_trailing_whitespace(void **state) {
  (void)state;
  struct postprocess_context ctx = ctx_of("", "", 0);
  assert_string_equal(run(&ctx, "x = 1\n    \n\n  \n"), "x = 1");
  assert_string_equal(run(&ctx, " \n \n"), "");
  assert_string_equal(run(&ctx, "a\n\nb  "), "a\n\nb");
}

static void test_time_budget(void **state) {
  (void)state;
  struct postprocess_context ctx = ctx_of("", "", 100);
  size_t keep = 0;
  /* Before any newline the budget does not apply: the first line is always finished. */
  assert_int_equal(postprocess_check(&ctx, "abc", 3, 500, &keep), POSTPROCESS_CONTINUE);
  assert_int_equal(postprocess_check(&ctx, "abc\nde", 6, 50, &keep), POSTPROCESS_CONTINUE);
  assert_int_equal(postprocess_check(&ctx, "abc\nde", 6, 150, &keep), POSTPROCESS_STOP);
  assert_int_equal(keep, 3);
  /* Only line breaks so far (the cursor was at a line end): the first real line is still due. */
  assert_int_equal(postprocess_check(&ctx, "\n  ", 3, 500, &keep), POSTPROCESS_CONTINUE);
  assert_int_equal(postprocess_check(&ctx, "\n  x = 1\n  y", 13, 500, &keep), POSTPROCESS_STOP);
  assert_int_equal(keep, 8);
  ctx = ctx_of("", "", 0);
  assert_int_equal(postprocess_check(&ctx, "abc\nde", 6, 1e9, &keep), POSTPROCESS_CONTINUE);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_indent),
      cmocka_unit_test(test_dedent_stops),
      cmocka_unit_test(test_block_opened_at_cursor),
      cmocka_unit_test(test_suffix_repeat_trimmed),
      cmocka_unit_test(test_single_line_mode),
      cmocka_unit_test(test_trailing_whitespace),
      cmocka_unit_test(test_time_budget),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
