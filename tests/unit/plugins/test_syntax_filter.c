/* Tests for plugins/syntax_filter.c and its use by plugins/pipeline.c: trim and drop of
 * candidates on constructed C and Python documents, a document that does not parse at the cursor
 * and a language without a grammar left alone, LRU eviction and tree reuse across calls with
 * edits, and the pipeline cutting the text of a completion provider registered through the plugin
 * host (a deliberately broken candidate), with the check on and off. */
#include "../test_support.h"

#include "plugins/host.h"
#include "plugins/pipeline.h"
#include "plugins/syntax_filter.h"

/* No time or parse budget: they count thread CPU time now, so the load no longer spends them,
 * but under ASan or valgrind a check costs several times its CPU time and could be given up
 * (time) or cut shorter (parse), which these tests do not measure
 * (tests/unit/grammars/test_syntax.c tests the budgets with a hook that makes a parse slow). */
static struct syntax_filter *new_filter(size_t max_docs) {
  struct syntax_filter_params p = syntax_filter_params_default();
  assert_int_equal(p.max_docs, 16);
  assert_int_equal(p.parse_budget_us, 5000);
  assert_int_equal(p.time_budget_us, 10000);
  p.max_docs = max_docs;
  p.parse_budget_us = 0;
  p.time_budget_us = 0;
  struct syntax_filter *f = NULL;
  struct aug_err err = {0};
  assert_int_equal(syntax_filter_create(&p, &f, &err), 0);
  return f;
}

/* Checks candidate at the first "@" of doc_with_cursor (the "@" is removed). */
static struct syntax_filter_result check_at(struct syntax_filter *f, const char *uri,
                                            const char *language_id, const char *doc_with_cursor,
                                            const char *candidate) {
  const char *at = strchr(doc_with_cursor, '@');
  assert_non_null(at);
  size_t cursor = (size_t)(at - doc_with_cursor);
  char text[4096];
  size_t len = strlen(doc_with_cursor) - 1;
  assert_true(len < sizeof text);
  memcpy(text, doc_with_cursor, cursor);
  memcpy(text + cursor, at + 1, len - cursor);
  struct syntax_filter_result res;
  struct aug_err err = {0};
  assert_int_equal(syntax_filter_check(f, uri, language_id, NULL, text, len, cursor, candidate,
                                       strlen(candidate), &res, &err),
                   0);
  return res;
}

static const char c_doc[] = "#include <stdio.h>\n"
                            "\n"
                            "int main(void) {\n"
                            "  int a = 1;\n"
                            "  @\n"
                            "  return a;\n"
                            "}\n";

static const char py_doc[] = "import os\n"
                             "\n"
                             "\n"
                             "def f(x):\n"
                             "    y = x + 1\n"
                             "    @\n"
                             "    return y\n"
                             "\n"
                             "\n"
                             "print(f(2))\n";

static void test_c_trim_and_drop(void **state) {
  (void)state;
  struct syntax_filter *f = new_filter(16);
  const char *good = "a += 2;\n  printf(\"%d\\n\", a);";
  struct syntax_filter_result r = check_at(f, "file:///w/a.c", "c", c_doc, good);
  assert_int_equal(r.outcome, SYNTAX_FILTER_KEPT);
  assert_int_equal(r.keep, strlen(good));
  assert_true(r.new_document);
  assert_null(r.reason);

  /* The second line breaks the parse (and the third only parses after it): cut to the first. */
  r = check_at(f, "file:///w/a.c", "c", c_doc, "a += 2;\n  a = a * ;\n  a--;");
  assert_int_equal(r.outcome, SYNTAX_FILTER_TRIMMED);
  assert_int_equal(r.keep, strlen("a += 2;"));
  assert_false(r.new_document);
  assert_int_equal(r.verdict.lines_kept, 1);
  assert_int_equal(r.verdict.lines_total, 3);

  r = check_at(f, "file:///w/a.c", "c", c_doc, "a = = 3;");
  assert_int_equal(r.outcome, SYNTAX_FILTER_DROPPED);
  assert_int_equal(r.keep, 0);
  assert_string_equal(syntax_filter_outcome_name(r.outcome), "dropped");
  syntax_filter_destroy(f);
}

static void test_python_trim_and_drop(void **state) {
  (void)state;
  struct syntax_filter *f = new_filter(16);
  struct syntax_filter_result r =
      check_at(f, "file:///w/a.py", "python", py_doc, "z = y * 2\n    w = (z +\n    y = w");
  assert_int_equal(r.outcome, SYNTAX_FILTER_TRIMMED);
  assert_int_equal(r.keep, strlen("z = y * 2"));
  r = check_at(f, "file:///w/a.py", "python", py_doc, "z = y * 2\n    y = z");
  assert_int_equal(r.outcome, SYNTAX_FILTER_KEPT);
  r = check_at(f, "file:///w/a.py", "python", py_doc, "z = )(");
  assert_int_equal(r.outcome, SYNTAX_FILTER_DROPPED);
  /* Blank text has nothing to judge: shown as it is. */
  r = check_at(f, "file:///w/a.py", "python", py_doc, "\n    ");
  assert_int_equal(r.outcome, SYNTAX_FILTER_KEPT);
  assert_int_equal(r.keep, 5);
  syntax_filter_destroy(f);
}

/* A document whose own ERROR spans the cursor: the check cannot tell new errors from old, so the
 * candidate, broken or not, is left as it is and the result says why. */
static void test_document_that_does_not_parse(void **state) {
  (void)state;
  struct syntax_filter *f = new_filter(16);
  static const char broken[] = "int main(void) {\n"
                               "  int a = (1 + ;\n"
                               "  foo(a, @\n"
                               "  return a;\n"
                               "}\n";
  struct syntax_filter_result r = check_at(f, "file:///w/b.c", "c", broken, "a = = 3;");
  assert_int_equal(r.outcome, SYNTAX_FILTER_SKIPPED);
  assert_string_equal(r.reason, "the document does not parse at the cursor");
  assert_int_equal(r.keep, strlen("a = = 3;"));
  assert_true(r.verdict.inside_error);
  syntax_filter_destroy(f);
}

static void test_unknown_language_skipped(void **state) {
  (void)state;
  struct syntax_filter *f = new_filter(16);
  struct syntax_filter_result res;
  struct aug_err err = {0};
  static const char text[] = "some notes\n";
  assert_int_equal(syntax_filter_check(f, "file:///w/n.txt", "plaintext", "n.txt", text,
                                       sizeof text - 1, 5, "((", 2, &res, &err),
                   0);
  assert_int_equal(res.outcome, SYNTAX_FILTER_SKIPPED);
  assert_string_equal(res.reason, "no grammar");
  assert_int_equal(res.keep, 2);
  assert_int_equal(syntax_filter_count(f), 0);
  /* No languageId: the file name finds the grammar. */
  static const char py[] = "x = 1\n";
  assert_int_equal(syntax_filter_check(f, "file:///w/p.py", NULL, "p.py", py, sizeof py - 1, 6,
                                       "y = )(", 6, &res, &err),
                   0);
  assert_int_equal(res.outcome, SYNTAX_FILTER_DROPPED);
  /* A cursor past the text is the caller's error. */
  assert_int_equal(syntax_filter_check(f, "file:///w/p.py", NULL, "p.py", py, sizeof py - 1, 99,
                                       "y", 1, &res, &err),
                   AUG_ERANGE);
  syntax_filter_destroy(f);
}

/* Three documents through a set of two: the least recently checked one goes, the others keep
 * their trees across edits, and an edited document is judged on its new text. */
static void test_lru_and_reuse_across_edits(void **state) {
  (void)state;
  struct syntax_filter *f = new_filter(2);
  struct syntax_filter_result r = check_at(f, "file:///w/a.c", "c", c_doc, "a++;");
  assert_true(r.new_document);
  r = check_at(f, "file:///w/b.py", "python", py_doc, "z = 1");
  assert_true(r.new_document);
  r = check_at(f, "file:///w/a.c", "c", c_doc, "a--;");
  assert_false(r.new_document);
  assert_int_equal(r.outcome, SYNTAX_FILTER_KEPT);
  r = check_at(f, "file:///w/c.c", "c", c_doc, "a++;"); /* b.py was used least recently */
  assert_true(r.new_document);
  assert_int_equal(syntax_filter_count(f), 2);
  assert_true(syntax_filter_holds(f, "file:///w/a.c"));
  assert_false(syntax_filter_holds(f, "file:///w/b.py"));
  assert_true(syntax_filter_holds(f, "file:///w/c.c"));

  /* Edits to a.c: a line typed above the cursor, then the cursor moved into a new function. */
  static const char edited[] = "#include <stdio.h>\n"
                               "\n"
                               "int main(void) {\n"
                               "  int a = 1;\n"
                               "  int b = 2;\n"
                               "  @\n"
                               "  return a;\n"
                               "}\n";
  r = check_at(f, "file:///w/a.c", "c", edited, "a += b;\n  b = (;\n");
  assert_false(r.new_document);
  assert_int_equal(r.outcome, SYNTAX_FILTER_TRIMMED);
  assert_int_equal(r.keep, strlen("a += b;"));
  static const char moved[] = "#include <stdio.h>\n"
                              "\n"
                              "static int twice(int x) {\n"
                              "  @\n"
                              "}\n"
                              "\n"
                              "int main(void) {\n"
                              "  int a = 1;\n"
                              "  int b = 2;\n"
                              "  return a;\n"
                              "}\n";
  r = check_at(f, "file:///w/a.c", "c", moved, "return 2 * x;\n}\n\nint y;");
  assert_false(r.new_document);
  /* The cursor opens an empty block: the candidate is cut where that block closes. */
  assert_int_equal(r.outcome, SYNTAX_FILTER_TRIMMED);
  assert_true(r.verdict.block_cut);
  assert_int_equal(r.keep, strlen("return 2 * x;"));
  /* The same uri in another language: a new document of the other grammar. */
  r = check_at(f, "file:///w/a.c", "python", py_doc, "z = 1");
  assert_true(r.new_document);
  assert_int_equal(r.outcome, SYNTAX_FILTER_KEPT);
  assert_int_equal(syntax_filter_count(f), 2);
  syntax_filter_destroy(f);
  syntax_filter_destroy(NULL);
}

/* A completion provider registered through the plugin host, answering a fixed text. */
struct fake_provider {
  const char *text;
  int calls;
};

static int fake_supports(void *self, uint32_t capability) {
  (void)self;
  return capability == AUGURY_CAP_COMPLETION;
}

static int fake_complete(void *self, const struct augury_completion_request *req,
                         struct augury_completion_result *result) {
  struct fake_provider *fake = self;
  (void)req;
  fake->calls++;
  size_t n = strlen(fake->text);
  assert_true(n < result->cap);
  memcpy(result->text, fake->text, n + 1);
  result->len = n;
  result->served_by = "fake";
  return 0;
}

struct pipeline_fixture {
  struct plugin_host *host;
  struct syntax_filter *filter;
  struct fake_provider fake;
  struct augury_plugin table;
  char text[sizeof py_doc];
  size_t len, cursor;
};

static int pipeline_setup(void **state) {
  struct pipeline_fixture *p = calloc(1, sizeof *p);
  struct plugin_host_params hp = plugin_host_params_default();
  struct aug_err err = {0};
  assert_int_equal(plugin_host_create(&hp, &p->host, &err), 0);
  p->table = (struct augury_plugin){
      .abi_version = AUGURY_PLUGIN_ABI_VERSION,
      .struct_size = sizeof p->table,
      .name = "fake",
      .version = "1",
      .self = &p->fake,
      .supports = fake_supports,
      .complete = fake_complete,
  };
  assert_int_equal(plugin_host_register(p->host, &p->table, "built-in", &err), 0);
  p->filter = new_filter(16);
  const char *at = strchr(py_doc, '@');
  p->cursor = (size_t)(at - py_doc);
  p->len = sizeof py_doc - 2;
  memcpy(p->text, py_doc, p->cursor);
  memcpy(p->text + p->cursor, at + 1, p->len - p->cursor + 1);
  *state = p;
  return 0;
}

static int pipeline_teardown(void **state) {
  struct pipeline_fixture *p = *state;
  plugin_host_destroy(p->host);
  syntax_filter_destroy(p->filter);
  free(p);
  return 0;
}

/* One completion through pipeline_complete with the fake provider; with_doc: the request carries
 * the whole document (as lsp/ sends it), else the filter sees the window only. */
static int run_pipeline(struct pipeline_fixture *p, bool with_filter, bool with_doc, char *out,
                        size_t cap, size_t *len, struct pipeline_result *res) {
  struct pipeline_request req = {
      .completion =
          {
              .prefix = p->text,
              .prefix_len = p->cursor,
              .suffix = p->text + p->cursor,
              .suffix_len = p->len - p->cursor,
              .path = "a.py",
              .max_tokens = 64,
          },
      .uri = "file:///w/a.py",
      .language_id = "python",
      .doc_text = with_doc ? p->text : NULL,
      .doc_len = with_doc ? p->len : 0,
      .cursor = p->cursor,
      .provider = "fake",
      .syntax = with_filter ? p->filter : NULL,
  };
  memset(res, 0, sizeof *res);
  struct aug_err err = {0};
  int rc = pipeline_complete(p->host, NULL, &req, NULL, out, cap, len, res, &err);
  if (rc == 0) assert_int_equal(strlen(out), *len);
  return rc;
}

static void test_pipeline_trims_provider_text(void **state) {
  struct pipeline_fixture *p = *state;
  char out[256];
  size_t len = 0;
  struct pipeline_result res;
  p->fake.text = "z = y * 2\n    w = (z +\n    y = w";

  /* Off: the provider's text as it came (after the host's clean-up rules). */
  assert_int_equal(run_pipeline(p, false, true, out, sizeof out, &len, &res), 0);
  assert_string_equal(out, "z = y * 2\n    w = (z +\n    y = w");
  assert_false(res.syntax_checked);
  pipeline_result_free(&res);

  /* On: cut to the line that keeps the file parsing; the returned text is the cut one (what lsp/
   * puts in the completion cache and the reply). */
  assert_int_equal(run_pipeline(p, true, true, out, sizeof out, &len, &res), 0);
  assert_string_equal(out, "z = y * 2");
  assert_int_equal(len, strlen("z = y * 2"));
  assert_true(res.syntax_checked);
  assert_int_equal(res.syntax.outcome, SYNTAX_FILTER_TRIMMED);
  assert_int_equal(res.syntax_original_len, strlen(p->fake.text));
  assert_string_equal(res.served_by, "fake");
  pipeline_result_free(&res);

  /* Without the document the window is checked (here the window is the whole file). */
  assert_int_equal(run_pipeline(p, true, false, out, sizeof out, &len, &res), 0);
  assert_string_equal(out, "z = y * 2");
  pipeline_result_free(&res);

  /* Nothing survives: an empty answer, not an error. */
  p->fake.text = "z = )(";
  assert_int_equal(run_pipeline(p, true, true, out, sizeof out, &len, &res), 0);
  assert_int_equal(len, 0);
  assert_string_equal(out, "");
  assert_int_equal(res.syntax.outcome, SYNTAX_FILTER_DROPPED);
  pipeline_result_free(&res);
  assert_int_equal(p->fake.calls, 4);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_c_trim_and_drop),
      cmocka_unit_test(test_python_trim_and_drop),
      cmocka_unit_test(test_document_that_does_not_parse),
      cmocka_unit_test(test_unknown_language_skipped),
      cmocka_unit_test(test_lru_and_reuse_across_edits),
      cmocka_unit_test_setup_teardown(test_pipeline_trims_provider_text, pipeline_setup,
                                      pipeline_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
