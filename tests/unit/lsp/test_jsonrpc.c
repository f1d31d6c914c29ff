/* Tests for lsp/jsonrpc.c: Content-Length framing (partial reads, case-insensitive headers, the
 * body cap, malformed headers and resynchronisation), message classification with the JSON-RPC
 * error codes, encoding, and an allocation-failure loop over framer + parser + encoder. */
#include "../test_support.h"

#include <limits.h>

#include "engine/alloc.h"
#include "lsp/jsonrpc.h"

static struct jsonrpc_framer *make_framer(size_t cap) {
  struct jsonrpc_framer *f = NULL;
  struct aug_err err = {0};
  assert_int_equal(jsonrpc_framer_create(cap, &f, &err), 0);
  return f;
}

static void feed(struct jsonrpc_framer *f, const char *s) {
  struct aug_err err = {0};
  assert_int_equal(jsonrpc_framer_feed(f, s, strlen(s), &err), 0);
}

static void expect_message(struct jsonrpc_framer *f, const char *body) {
  struct jsonrpc_frame fr;
  jsonrpc_framer_next(f, &fr);
  assert_int_equal(fr.kind, JSONRPC_FRAME_MESSAGE);
  assert_int_equal(fr.len, strlen(body));
  assert_memory_equal(fr.body, body, fr.len);
}

static void expect_kind(struct jsonrpc_framer *f, enum jsonrpc_frame_kind kind) {
  struct jsonrpc_frame fr;
  jsonrpc_framer_next(f, &fr);
  assert_int_equal(fr.kind, kind);
  if (kind == JSONRPC_FRAME_ERROR) assert_true(strlen(fr.message) > 10);
}

static void test_framer_whole_and_byte_by_byte(void **state) {
  (void)state;
  const char *stream = "Content-Length: 7\r\n\r\n{\"a\":1}content-LENGTH:2\r\nContent-Type: "
                       "application/vscode-jsonrpc; charset=utf-8\r\n\r\n[]";
  struct jsonrpc_framer *f = make_framer(0);
  feed(f, stream);
  expect_message(f, "{\"a\":1}");
  expect_message(f, "[]");
  expect_kind(f, JSONRPC_FRAME_NONE);
  assert_int_equal(jsonrpc_framer_pending(f), 0);
  jsonrpc_framer_destroy(f);

  /* One byte at a time: a message appears exactly when its last byte arrives. */
  f = make_framer(0);
  size_t n = strlen(stream), got = 0;
  for (size_t i = 0; i < n; i++) {
    struct aug_err err = {0};
    assert_int_equal(jsonrpc_framer_feed(f, stream + i, 1, &err), 0);
    struct jsonrpc_frame fr;
    jsonrpc_framer_next(f, &fr);
    if (fr.kind == JSONRPC_FRAME_MESSAGE) {
      got++;
      assert_true(i == 27 || i == n - 1);
    } else {
      assert_int_equal(fr.kind, JSONRPC_FRAME_NONE);
    }
  }
  assert_int_equal(got, 2);
  jsonrpc_framer_destroy(f);
}

static void test_framer_malformed_headers_resync(void **state) {
  (void)state;
  struct jsonrpc_framer *f = make_framer(0);
  /* Missing Content-Length, then a non-number, then a valid message: errors, then the message. */
  feed(f, "Content-Type: x\r\n\r\n");
  expect_kind(f, JSONRPC_FRAME_ERROR);
  expect_kind(f, JSONRPC_FRAME_NONE);
  feed(f, "Content-Length: abc\r\n\r\n{\"x\":true}Content-Length: 2\r\n\r\n{}");
  expect_kind(f, JSONRPC_FRAME_ERROR);
  /* The orphaned body is garbage in front of the next header: dropped with one more error. */
  expect_kind(f, JSONRPC_FRAME_ERROR);
  expect_message(f, "{}");
  expect_kind(f, JSONRPC_FRAME_NONE);
  /* A line without a colon. */
  feed(f, "Hello there\r\n\r\nContent-Length: 1\r\n\r\n1");
  expect_kind(f, JSONRPC_FRAME_ERROR);
  expect_message(f, "1");
  /* Trailing spaces after the number are fine; a sign is not. */
  feed(f, "Content-Length:  3 \r\n\r\nabc");
  expect_message(f, "abc");
  feed(f, "Content-Length: -3\r\n\r\n");
  expect_kind(f, JSONRPC_FRAME_ERROR);
  jsonrpc_framer_destroy(f);
}

static void test_framer_cap_skips_body(void **state) {
  (void)state;
  struct jsonrpc_framer *f = make_framer(16);
  feed(f, "Content-Length: 40\r\n\r\n0123456789");
  expect_kind(f, JSONRPC_FRAME_ERROR);
  assert_int_equal(jsonrpc_framer_pending(f), 0);
  feed(f, "0123456789012345678901234567890123456789"); /* the last 30 of the body + 10 more */
  /* The 10 extra bytes are not a header and have no terminator: nothing yet. */
  expect_kind(f, JSONRPC_FRAME_NONE);
  jsonrpc_framer_destroy(f);

  f = make_framer(16);
  char big[100];
  snprintf(big, sizeof big, "Content-Length: %zu\r\n\r\n", (size_t)17);
  feed(f, big);
  expect_kind(f, JSONRPC_FRAME_ERROR);
  feed(f, "01234567890123456Content-Length: 2\r\n\r\n{}");
  expect_message(f, "{}");
  /* A length that overflows 64 bits is refused without trusting it. */
  feed(f, "Content-Length: 99999999999999999999999\r\n\r\nContent-Length: 2\r\n\r\n[]");
  expect_kind(f, JSONRPC_FRAME_ERROR);
  expect_message(f, "[]");
  jsonrpc_framer_destroy(f);
}

static void test_framer_header_without_end(void **state) {
  (void)state;
  struct jsonrpc_framer *f = make_framer(0);
  char junk[9000];
  memset(junk, 'x', sizeof junk - 1);
  junk[sizeof junk - 1] = '\0';
  feed(f, junk);
  expect_kind(f, JSONRPC_FRAME_ERROR);
  assert_int_equal(jsonrpc_framer_pending(f), 0);
  jsonrpc_framer_destroy(f);
}

static int parse(const char *body, struct jsonrpc_message *m, json_t **id) {
  int code = 0;
  struct aug_err err = {0};
  int rc = jsonrpc_parse(body, strlen(body), m, &code, id, &err);
  if (rc == 0) return 0;
  assert_true(strlen(err.msg) > 0);
  return code;
}

static void test_parse_classifies(void **state) {
  (void)state;
  struct jsonrpc_message m;
  json_t *id = NULL;
  assert_int_equal(
      parse("{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"initialize\",\"params\":{}}", &m, &id), 0);
  assert_int_equal(m.kind, JSONRPC_REQUEST);
  assert_string_equal(m.method, "initialize");
  assert_int_equal(json_integer_value(m.id), 3);
  json_decref(id);
  json_decref(m.root);

  assert_int_equal(parse("{\"jsonrpc\":\"2.0\",\"method\":\"exit\"}", &m, &id), 0);
  assert_int_equal(m.kind, JSONRPC_NOTIFICATION);
  assert_null(m.params);
  json_decref(id);
  json_decref(m.root);

  assert_int_equal(parse("{\"jsonrpc\":\"2.0\",\"id\":\"s1\",\"result\":null}", &m, &id), 0);
  assert_int_equal(m.kind, JSONRPC_RESPONSE);
  assert_non_null(m.result);
  json_decref(id);
  json_decref(m.root);

  assert_int_equal(parse("{\"jsonrpc\":\"2.0\",\"id\":\"s1\",\"error\":{\"code\":1}}", &m, &id), 0);
  assert_int_equal(m.kind, JSONRPC_RESPONSE);
  json_decref(id);
  json_decref(m.root);
}

static void test_parse_errors(void **state) {
  (void)state;
  struct jsonrpc_message m;
  json_t *id = NULL;
  assert_int_equal(parse("{\"jsonrpc\":\"2.0\",", &m, &id), JSONRPC_PARSE_ERROR);
  assert_null(id);
  assert_int_equal(parse("[1,2]", &m, &id), JSONRPC_INVALID_REQUEST);
  assert_int_equal(parse("{\"id\":7,\"method\":\"x\"}", &m, &id), JSONRPC_INVALID_REQUEST);
  /* The id was readable, so the error reply can carry it. */
  assert_non_null(id);
  assert_int_equal(json_integer_value(id), 7);
  json_decref(id);
  assert_int_equal(parse("{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":5}", &m, &id),
                   JSONRPC_INVALID_REQUEST);
  json_decref(id);
  assert_int_equal(parse("{\"jsonrpc\":\"2.0\",\"id\":[1],\"method\":\"m\"}", &m, &id),
                   JSONRPC_INVALID_REQUEST);
  assert_null(id);
  assert_int_equal(parse("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"params\":3}", &m, &id),
                   JSONRPC_INVALID_REQUEST);
  json_decref(id);
  assert_int_equal(parse("{\"jsonrpc\":\"2.0\",\"id\":1}", &m, &id), JSONRPC_INVALID_REQUEST);
  json_decref(id);
  assert_int_equal(parse("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":1,\"error\":{}}", &m, &id),
                   JSONRPC_INVALID_REQUEST);
  json_decref(id);
}

static void test_encode_roundtrip(void **state) {
  (void)state;
  json_t *id = json_integer(12);
  json_t *msg = jsonrpc_error_response(id, JSONRPC_METHOD_NOT_FOUND, "method 'x' not found", NULL);
  assert_non_null(msg);
  char *buf = NULL;
  size_t len = 0;
  struct aug_err err = {0};
  assert_int_equal(jsonrpc_encode(msg, &buf, &len, &err), 0);
  struct jsonrpc_framer *f = make_framer(0);
  assert_int_equal(jsonrpc_framer_feed(f, buf, len, &err), 0);
  struct jsonrpc_frame fr;
  jsonrpc_framer_next(f, &fr);
  assert_int_equal(fr.kind, JSONRPC_FRAME_MESSAGE);
  struct jsonrpc_message m;
  json_t *rid = NULL;
  int code = 0;
  assert_int_equal(jsonrpc_parse(fr.body, fr.len, &m, &code, &rid, &err), 0);
  assert_int_equal(m.kind, JSONRPC_RESPONSE);
  assert_int_equal(json_integer_value(json_object_get(m.error, "code")), -32601);
  assert_int_equal(json_integer_value(m.id), 12);
  json_decref(rid);
  json_decref(m.root);
  jsonrpc_framer_destroy(f);
  aug_free(buf);
  json_decref(msg);
  json_decref(id);

  json_t *n = jsonrpc_notification("$/progress", json_pack("{s:s}", "token", "t"));
  assert_int_equal(jsonrpc_encode(n, &buf, &len, &err), 0);
  assert_true(!strncmp(buf, "Content-Length: ", 16));
  aug_free(buf);
  json_decref(n);
}

/* One full round: frame two messages, parse them, build and encode replies. Returns 0 when every
 * step succeeded, a negative code at the first failure (which must be a clean one). */
static int oom_round(void) {
  struct jsonrpc_framer *f = NULL;
  struct aug_err err = {0};
  int rc = jsonrpc_framer_create(0, &f, &err);
  if (rc) return rc;
  const char *in =
      "Content-Length: 52\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"params\":"
      "{}}Content-Length: 3\r\n\r\n{x}";
  rc = jsonrpc_framer_feed(f, in, strlen(in), &err);
  int result = rc;
  for (int i = 0; rc == 0 && i < 3; i++) {
    struct jsonrpc_frame fr;
    jsonrpc_framer_next(f, &fr);
    if (fr.kind != JSONRPC_FRAME_MESSAGE) break;
    struct jsonrpc_message m;
    json_t *id = NULL;
    int code = 0;
    json_t *reply;
    if (jsonrpc_parse(fr.body, fr.len, &m, &code, &id, &err) == 0) {
      reply = jsonrpc_response(m.id, json_pack("{s:[i,s]}", "items", 1, "two"));
      json_decref(m.root);
    } else {
      reply = jsonrpc_error_response(id, code, err.msg, NULL);
    }
    json_decref(id);
    if (!reply) {
      result = AUG_ENOMEM;
      break;
    }
    char *buf = NULL;
    size_t len = 0;
    rc = jsonrpc_encode(reply, &buf, &len, &err);
    if (rc) result = rc;
    aug_free(buf);
    json_decref(reply);
  }
  jsonrpc_framer_destroy(f);
  return result;
}

static void *oom_json_malloc(size_t n) {
  return aug_malloc(n);
}
static void oom_json_free(void *p) {
  aug_free(p);
}

static void test_allocation_failures(void **state) {
  (void)state;
  /* Route jansson through the failing allocator for this test only (the hook is global). */
  json_malloc_t old_malloc;
  json_free_t old_free;
  json_get_alloc_funcs(&old_malloc, &old_free);
  json_set_alloc_funcs(oom_json_malloc, oom_json_free);
  /* Counting happens only while armed: arm beyond reach to count one clean round. */
  aug_alloc_fail_after(LONG_MAX);
  assert_int_equal(oom_round(), 0);
  long total = aug_alloc_fail_reset();
  assert_true(total > 5);
  for (long n = 1; n <= total; n++) {
    aug_alloc_fail_after(n);
    int rc = oom_round();
    aug_alloc_fail_reset();
    /* Either a clean out-of-memory (or a parse error caused by it) or success; leaks are caught by
     * ASan/valgrind on this same test. */
    assert_true(rc == 0 || rc == AUG_ENOMEM || rc == AUG_EINVAL || rc == AUG_EFORMAT);
  }
  json_set_alloc_funcs(old_malloc, old_free);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_framer_whole_and_byte_by_byte),
      cmocka_unit_test(test_framer_malformed_headers_resync),
      cmocka_unit_test(test_framer_cap_skips_body),
      cmocka_unit_test(test_framer_header_without_end),
      cmocka_unit_test(test_parse_classifies),
      cmocka_unit_test(test_parse_errors),
      cmocka_unit_test(test_encode_roundtrip),
      cmocka_unit_test(test_allocation_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
