/* Tests for lsp/documents.c: incremental edits in utf-16, utf-8 and utf-32 positions, astral
 * characters (surrogate pairs), CRLF and lone CR line ends, clamping past the line end, and the
 * all-or-nothing rule for change batches. */
#include "../test_support.h"

#include "lsp/documents.h"

static struct documents *open_doc(const char *text) {
  struct documents *docs = NULL;
  struct aug_err err = {0};
  assert_int_equal(documents_create(&docs, &err), 0);
  assert_int_equal(documents_open(docs, "file:///a.py", "python", 1, text, strlen(text), &err), 0);
  return docs;
}

static struct document_change ranged(int64_t l1, int64_t c1, int64_t l2, int64_t c2,
                                     const char *text) {
  struct document_change c = {true, {l1, c1}, {l2, c2}, text, strlen(text)};
  return c;
}

static int apply(struct documents *docs, enum position_encoding enc, struct document_change *c,
                 size_t n) {
  struct aug_err err = {0};
  int rc = documents_apply_changes(docs, "file:///a.py", 2, c, n, enc, &err);
  if (rc) assert_true(strlen(err.msg) > 0);
  return rc;
}

static const char *text_of(struct documents *docs) {
  return documents_find(docs, "file:///a.py")->text.data;
}

static void test_utf16_astral(void **state) {
  (void)state;
  /* "a😀b": the emoji is 4 bytes in UTF-8, 2 UTF-16 units, 1 UTF-32 unit. */
  struct documents *docs = open_doc("a\xF0\x9F\x98\x80"
                                    "b\n");
  struct document_change c = ranged(0, 3, 0, 3, "X");
  assert_int_equal(apply(docs, POSITION_ENCODING_UTF16, &c, 1), 0);
  assert_string_equal(text_of(docs), "a\xF0\x9F\x98\x80Xb\n");
  /* Column 2 is between the two surrogates: rejected, text unchanged. */
  c = ranged(0, 2, 0, 2, "Y");
  assert_int_equal(apply(docs, POSITION_ENCODING_UTF16, &c, 1), AUG_ERANGE);
  assert_string_equal(text_of(docs), "a\xF0\x9F\x98\x80Xb\n");
  /* utf-32: the emoji is one unit. */
  c = ranged(0, 1, 0, 2, "");
  assert_int_equal(apply(docs, POSITION_ENCODING_UTF32, &c, 1), 0);
  assert_string_equal(text_of(docs), "aXb\n");
  documents_destroy(docs);
}

static void test_utf8_positions(void **state) {
  (void)state;
  struct documents *docs = open_doc("\xC3\xA9t\xC3\xA9\n"); /* "été" */
  struct document_change c = ranged(0, 1, 0, 1, "Z");       /* inside the 2-byte é */
  assert_int_equal(apply(docs, POSITION_ENCODING_UTF8, &c, 1), AUG_ERANGE);
  c = ranged(0, 2, 0, 3, "T");
  assert_int_equal(apply(docs, POSITION_ENCODING_UTF8, &c, 1), 0);
  assert_string_equal(text_of(docs), "\xC3\xA9T\xC3\xA9\n");
  /* The same edit in utf-16 units. */
  c = ranged(0, 1, 0, 2, "u");
  assert_int_equal(apply(docs, POSITION_ENCODING_UTF16, &c, 1), 0);
  assert_string_equal(text_of(docs), "\xC3\xA9u\xC3\xA9\n");
  documents_destroy(docs);
}

static void test_crlf_and_cr(void **state) {
  (void)state;
  struct documents *docs = open_doc("one\r\ntwo\rthree\nfour");
  struct document *d = documents_find(docs, "file:///a.py");
  assert_int_equal(d->text.n_lines, 4);
  size_t s, e;
  document_text_line(&d->text, 0, &s, &e);
  assert_int_equal(e - s, 3);
  /* Past the end of line 0 clamps to before "\r\n", never between \r and \n. */
  struct document_change c = ranged(0, 99, 0, 99, "!");
  assert_int_equal(apply(docs, POSITION_ENCODING_UTF16, &c, 1), 0);
  assert_string_equal(text_of(docs), "one!\r\ntwo\rthree\nfour");
  c = ranged(2, 0, 3, 2, "3\nFO");
  assert_int_equal(apply(docs, POSITION_ENCODING_UTF16, &c, 1), 0);
  assert_string_equal(text_of(docs), "one!\r\ntwo\r3\nFOur");
  /* Joining across a CRLF. */
  c = ranged(0, 4, 1, 0, " ");
  assert_int_equal(apply(docs, POSITION_ENCODING_UTF16, &c, 1), 0);
  assert_string_equal(text_of(docs), "one! two\r3\nFOur");
  assert_int_equal(d->text.n_lines, 3);
  documents_destroy(docs);
}

static void test_batch_all_or_nothing(void **state) {
  (void)state;
  struct documents *docs = open_doc("abc\ndef\n");
  struct document_change batch[3] = {
      ranged(0, 0, 0, 0, "1"), ranged(1, 3, 1, 3, "2"),
      ranged(7, 0, 7, 0, "never"), /* line 7 does not exist */
  };
  assert_int_equal(apply(docs, POSITION_ENCODING_UTF16, batch, 3), AUG_ERANGE);
  assert_string_equal(text_of(docs), "abc\ndef\n");
  assert_int_equal(documents_find(docs, "file:///a.py")->version, 1);
  /* Each change sees the result of the one before. */
  batch[2] = ranged(0, 0, 0, 2, "");
  assert_int_equal(apply(docs, POSITION_ENCODING_UTF16, batch, 3), 0);
  assert_string_equal(text_of(docs), "bc\ndef2\n");
  assert_int_equal(documents_find(docs, "file:///a.py")->version, 2);
  /* Start after end, negative values: rejected. */
  struct document_change c = ranged(0, 2, 0, 1, "");
  assert_int_equal(apply(docs, POSITION_ENCODING_UTF16, &c, 1), AUG_ERANGE);
  c = ranged(0, -1, 0, 1, "");
  assert_int_equal(apply(docs, POSITION_ENCODING_UTF16, &c, 1), AUG_ERANGE);
  /* The end of the text as line n_lines, character 0; then a full-text change. */
  c = ranged(2, 0, 4, 0, "# end");
  assert_int_equal(apply(docs, POSITION_ENCODING_UTF16, &c, 1), AUG_ERANGE);
  c = ranged(3, 1, 3, 1, "# end");
  assert_int_equal(apply(docs, POSITION_ENCODING_UTF16, &c, 1), AUG_ERANGE);
  c = ranged(2, 0, 3, 0, "# end");
  assert_int_equal(apply(docs, POSITION_ENCODING_UTF16, &c, 1), 0);
  assert_string_equal(text_of(docs), "bc\ndef2\n# end");
  struct document_change full = {false, {0, 0}, {0, 0}, "new", 3};
  assert_int_equal(apply(docs, POSITION_ENCODING_UTF16, &full, 1), 0);
  assert_string_equal(text_of(docs), "new");
  documents_destroy(docs);
}

static void test_open_close(void **state) {
  (void)state;
  struct documents *docs = open_doc("x");
  struct aug_err err = {0};
  assert_int_equal(documents_count(docs), 1);
  assert_int_equal(documents_open(docs, "file:///b.c", "c", 1, "", 0, &err), 0);
  assert_int_equal(documents_count(docs), 2);
  assert_int_equal(documents_close(docs, "file:///a.py", &err), 0);
  assert_int_equal(documents_close(docs, "file:///a.py", &err), AUG_ENOTFOUND);
  assert_non_null(strstr(err.msg, "a.py"));
  assert_null(documents_find(docs, "file:///a.py"));
  struct document_change c = ranged(0, 0, 0, 0, "int");
  assert_int_equal(
      documents_apply_changes(docs, "file:///b.c", 5, &c, 1, POSITION_ENCODING_UTF16, &err), 0);
  assert_string_equal(documents_find(docs, "file:///b.c")->text.data, "int");
  documents_destroy(docs);
  documents_destroy(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_utf16_astral), cmocka_unit_test(test_utf8_positions),
      cmocka_unit_test(test_crlf_and_cr),  cmocka_unit_test(test_batch_all_or_nothing),
      cmocka_unit_test(test_open_close),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
