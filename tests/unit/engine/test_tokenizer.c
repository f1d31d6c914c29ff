/* Tests for engine/tokenizer.c: token ids identical to llama.cpp's on the fixture corpus (both real
 * models, parse_special off and on, and the default vocabulary under every supported
 * pre-tokenizer), token pieces and attributes for every id, special/FIM/EOG ids, the detokenizer
 * round trip and its UTF-8 streaming, a hand-checked SentencePiece vocabulary, and allocation
 * failures at every step of create and encode. Fixtures: tests/fixtures/tokenizer/make_fixtures.py.
 */
#include "tests/unit/test_support.h"

#include <jansson.h>
#include <stdbool.h>
#include <unistd.h>

#include "engine/alloc.h"
#include "engine/gguf.h"
#include "engine/tokenizer.h"

/* ---- fixtures -------------------------------------------------------------------------------- */

struct corpus {
  char **texts;
  size_t *lens;
  bool *valid_utf8; /* entries given as text (hex entries hold malformed bytes) */
  size_t n;
};

static int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

static char *hex_decode(const char *hex, size_t *len) {
  size_t n = strlen(hex) / 2;
  char *out = malloc(n + 1);
  assert_non_null(out);
  for (size_t i = 0; i < n; i++) {
    int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
    assert_true(hi >= 0 && lo >= 0);
    out[i] = (char)(hi * 16 + lo);
  }
  out[n] = '\0';
  *len = n;
  return out;
}

/* Calls fn(line, len, ctx) for each line of a fixture file. */
static void for_each_line(const char *relative, void (*fn)(const char *, size_t, void *),
                          void *ctx) {
  size_t size;
  char *data = test_read_fixture(relative, &size);
  for (char *p = data; p < data + size;) {
    char *nl = memchr(p, '\n', (size_t)(data + size - p));
    size_t len = nl ? (size_t)(nl - p) : (size_t)(data + size - p);
    fn(p, len, ctx);
    p += len + 1;
  }
  free(data);
}

static void corpus_line(const char *line, size_t len, void *ctx) {
  struct corpus *c = ctx;
  json_error_t jerr;
  json_t *obj = json_loadb(line, len, 0, &jerr);
  if (!obj) fail_msg("corpus.jsonl line %zu: %s", c->n + 1, jerr.text);
  c->texts = realloc(c->texts, (c->n + 1) * sizeof *c->texts);
  c->lens = realloc(c->lens, (c->n + 1) * sizeof *c->lens);
  c->valid_utf8 = realloc(c->valid_utf8, (c->n + 1) * sizeof *c->valid_utf8);
  json_t *text = json_object_get(obj, "text");
  if (text) {
    size_t n = json_string_length(text);
    c->texts[c->n] = malloc(n + 1);
    memcpy(c->texts[c->n], json_string_value(text), n + 1);
    c->lens[c->n] = n;
    c->valid_utf8[c->n] = true;
  } else {
    c->texts[c->n] = hex_decode(json_string_value(json_object_get(obj, "hex")), &c->lens[c->n]);
    c->valid_utf8[c->n] = false;
  }
  c->n++;
  json_decref(obj);
}

static struct corpus corpus_load(void) {
  struct corpus c = {0};
  for_each_line("tokenizer/corpus.jsonl", corpus_line, &c);
  assert_true(c.n >= 300);
  return c;
}

static void corpus_free(struct corpus *c) {
  for (size_t i = 0; i < c->n; i++)
    free(c->texts[i]);
  free(c->texts);
  free(c->lens);
  free(c->valid_utf8);
}

struct id_lists {
  json_t **rows; /* one JSON value per line */
  size_t n;
};

static void ids_line(const char *line, size_t len, void *ctx) {
  struct id_lists *l = ctx;
  json_error_t jerr;
  json_t *v = json_loadb(line, len, 0, &jerr);
  if (!v) fail_msg("ids line %zu: %s", l->n + 1, jerr.text);
  l->rows = realloc(l->rows, (l->n + 1) * sizeof *l->rows);
  l->rows[l->n++] = v;
}

static struct id_lists ids_load(const char *relative) {
  struct id_lists l = {0};
  for_each_line(relative, ids_line, &l);
  return l;
}

static void ids_free(struct id_lists *l) {
  for (size_t i = 0; i < l->n; i++)
    json_decref(l->rows[i]);
  free(l->rows);
}

/* ---- helpers --------------------------------------------------------------------------------- */

static struct tokenizer *open_tokenizer(const char *path, struct gguf_file **file) {
  struct aug_err err = {0};
  struct gguf_open_params params = gguf_open_params_default();
  if (gguf_open(path, &params, file, &err) != 0) fail_msg("gguf_open %s: %s", path, err.msg);
  struct tokenizer *tok = NULL;
  if (tokenizer_create(*file, &tok, &err) != 0) fail_msg("tokenizer_create: %s", err.msg);
  return tok;
}

/* Encodes into a malloc'ed array (caller frees). */
static int32_t *encode(const struct tokenizer *tok, const char *text, size_t len, bool add_special,
                       bool parse_special, size_t *n) {
  struct aug_err err = {0};
  struct tokenize_options o = {add_special, parse_special};
  size_t cap = len + 8;
  int32_t *ids = malloc(cap * sizeof *ids);
  int rc = tokenizer_encode(tok, text, len, o, ids, cap, n, &err);
  if (rc == AUG_ERANGE) {
    cap = *n;
    ids = realloc(ids, cap * sizeof *ids);
    rc = tokenizer_encode(tok, text, len, o, ids, cap, n, &err);
  }
  if (rc != 0) fail_msg("tokenizer_encode: %s", err.msg);
  return ids;
}

static bool ids_equal(const int32_t *ids, size_t n, json_t *expected) {
  if (json_array_size(expected) != n) return false;
  for (size_t i = 0; i < n; i++) {
    if (json_integer_value(json_array_get(expected, i)) != ids[i]) return false;
  }
  return true;
}

static void print_mismatch(const char *what, size_t line, const char *text, const int32_t *ids,
                           size_t n, json_t *expected) {
  char *want = json_dumps(expected, JSON_COMPACT);
  printf("# %s: corpus line %zu %.60s\n#   want %.300s\n#   got  [", what, line + 1, text, want);
  for (size_t i = 0; i < n && i < 40; i++)
    printf("%s%d", i ? "," : "", ids[i]);
  printf("]\n");
  free(want);
}

/* Compares every corpus entry; returns the number of identical rows. */
static size_t compare_corpus(const struct tokenizer *tok, const struct corpus *c,
                             const struct id_lists *l, const char *key, bool parse_special,
                             const char *what) {
  assert_int_equal(l->n, c->n);
  size_t same = 0;
  for (size_t i = 0; i < c->n; i++) {
    json_t *expected = key ? json_object_get(l->rows[i], key) : l->rows[i];
    size_t n;
    int32_t *ids = encode(tok, c->texts[i], c->lens[i], false, parse_special, &n);
    if (ids_equal(ids, n, expected))
      same++;
    else
      print_mismatch(what, i, c->texts[i], ids, n, expected);
    free(ids);
  }
  return same;
}

/* ---- real-model tests ------------------------------------------------------------------------ */

static void check_model_corpus(enum test_model which, const char *ids_fixture, const char *name) {
  const char *path = test_model_path(which);
  struct gguf_file *file;
  struct tokenizer *tok = open_tokenizer(path, &file);
  struct corpus c = corpus_load();
  struct id_lists l = ids_load(ids_fixture);
  size_t plain = compare_corpus(tok, &c, &l, "plain", false, "parse_special off");
  size_t special = compare_corpus(tok, &c, &l, "special", true, "parse_special on");
  printf("# %s model: identical ids on %zu/%zu (parse_special off) and %zu/%zu (on) corpus "
         "entries\n",
         name, plain, c.n, special, c.n);
  assert_int_equal(plain, c.n);
  assert_int_equal(special, c.n);
  ids_free(&l);
  corpus_free(&c);
  tokenizer_destroy(tok);
  gguf_close(file);
}

static void test_corpus_default(void **state) {
  (void)state;
  check_model_corpus(TEST_MODEL_DEFAULT, "tokenizer/ids-default.jsonl", "default");
}

static void test_corpus_small(void **state) {
  (void)state;
  check_model_corpus(TEST_MODEL_SMALL, "tokenizer/ids-small.jsonl", "small");
}

struct pieces_check {
  const struct tokenizer *tok;
  int32_t id;
  size_t bad;
};

static void pieces_line(const char *line, size_t len, void *ctx) {
  struct pieces_check *pc = ctx;
  char buf[1024], on_hex[2100], off_hex[2100];
  if (len == 0) return;
  assert_true(len < sizeof buf);
  memcpy(buf, line, len);
  buf[len] = '\0';
  unsigned attr;
  assert_int_equal(sscanf(buf, "%u %2099s %2099s", &attr, on_hex, off_hex), 3);
  size_t on_len = 0, off_len = 0;
  char *on = strcmp(on_hex, "-") ? hex_decode(on_hex, &on_len) : calloc(1, 1);
  char *off;
  if (!strcmp(off_hex, "=")) {
    off = malloc(on_len + 1);
    memcpy(off, on, on_len + 1);
    off_len = on_len;
  } else if (!strcmp(off_hex, "-")) {
    off = calloc(1, 1);
  } else {
    off = hex_decode(off_hex, &off_len);
  }
  char got[1024];
  int n_on = tokenizer_token_bytes(pc->tok, pc->id, true, got, sizeof got);
  bool ok = n_on == (int)on_len && !memcmp(got, on, on_len);
  int n_off = tokenizer_token_bytes(pc->tok, pc->id, false, got, sizeof got);
  ok = ok && n_off == (int)off_len && !memcmp(got, off, off_len);
  ok = ok && tokenizer_token_attr(pc->tok, pc->id) == attr;
  if (!ok && pc->bad++ < 10) {
    printf("# id %d: attr %u (want %u), piece %d/%d bytes (want %zu/%zu)\n", pc->id,
           tokenizer_token_attr(pc->tok, pc->id), attr, n_on, n_off, on_len, off_len);
  }
  free(on);
  free(off);
  pc->id++;
}

static void test_pieces_and_attrs(void **state) {
  (void)state;
  const char *path = test_model_path(TEST_MODEL_DEFAULT);
  struct gguf_file *file;
  struct tokenizer *tok = open_tokenizer(path, &file);
  struct pieces_check pc = {tok, 0, 0};
  for_each_line("tokenizer/pieces-default.txt", pieces_line, &pc);
  assert_int_equal(pc.id, tokenizer_vocab_size(tok));
  printf("# pieces and attributes: %d ids, %zu differ\n", pc.id, pc.bad);
  assert_int_equal(pc.bad, 0);
  assert_int_equal(tokenizer_token_bytes(tok, -1, true, NULL, 0), AUG_ERANGE);
  assert_int_equal(tokenizer_token_bytes(tok, pc.id, true, NULL, 0), AUG_ERANGE);
  tokenizer_destroy(tok);
  gguf_close(file);
}

static int32_t meta_int(json_t *meta, const char *key) {
  json_t *v = json_object_get(meta, key);
  if (!v) fail_msg("meta-default.json has no %s", key);
  return (int32_t)json_integer_value(v);
}

static void test_special_ids(void **state) {
  (void)state;
  const char *path = test_model_path(TEST_MODEL_DEFAULT);
  struct gguf_file *file;
  struct tokenizer *tok = open_tokenizer(path, &file);
  size_t size;
  char *text = test_read_fixture("tokenizer/meta-default.json", &size);
  json_error_t jerr;
  json_t *meta = json_loadb(text, size, 0, &jerr);
  assert_non_null(meta);
  const struct tokenizer_special *sp = tokenizer_special(tok);
  assert_int_equal(tokenizer_vocab_size(tok), meta_int(meta, "n_vocab"));
  assert_int_equal(sp->bos, meta_int(meta, "bos"));
  assert_int_equal(sp->eos, meta_int(meta, "eos"));
  assert_int_equal(sp->eot, meta_int(meta, "eot"));
  assert_int_equal(sp->nl, meta_int(meta, "nl"));
  assert_int_equal(sp->pad, meta_int(meta, "pad"));
  assert_int_equal(sp->fim_prefix, meta_int(meta, "fim_pre"));
  assert_int_equal(sp->fim_suffix, meta_int(meta, "fim_suf"));
  assert_int_equal(sp->fim_middle, meta_int(meta, "fim_mid"));
  assert_int_equal(sp->fim_pad, meta_int(meta, "fim_pad"));
  assert_int_equal(sp->fim_repo, meta_int(meta, "fim_rep"));
  assert_int_equal(sp->fim_sep, meta_int(meta, "fim_sep"));
  assert_int_equal(sp->add_bos, json_is_true(json_object_get(meta, "add_bos")));
  /* the EOG set, id by id */
  json_t *eog = json_object_get(meta, "eog");
  size_t k = 0;
  for (int32_t id = 0; id < tokenizer_vocab_size(tok); id++) {
    bool want = k < json_array_size(eog) && json_integer_value(json_array_get(eog, k)) == id;
    if (want) k++;
    if (tokenizer_is_eog(tok, id) != want)
      fail_msg("id %d: is_eog %d, llama.cpp %d", id, !want, want);
  }
  assert_int_equal(k, json_array_size(eog));
  assert_false(tokenizer_is_eog(tok, -1));
  assert_false(tokenizer_is_eog(tok, tokenizer_vocab_size(tok)));
  /* names and lookups */
  assert_string_equal(tokenizer_model_name(tok), "gpt2");
  assert_string_equal(tokenizer_pre_name(tok), "qwen2");
  assert_int_equal(tokenizer_find(tok, "<|fim_prefix|>"), sp->fim_prefix);
  assert_int_equal(tokenizer_find(tok, "no such token text"), TOKEN_NONE);
  assert_string_equal(tokenizer_token_text(tok, sp->fim_middle), "<|fim_middle|>");
  assert_null(tokenizer_token_text(tok, -1));
  assert_int_equal(tokenizer_token_kind(tok, sp->fim_prefix), TOKEN_KIND_CONTROL);
  assert_int_equal(tokenizer_token_kind(tok, tokenizer_find(tok, "<tool_call>")),
                   TOKEN_KIND_USER_DEFINED);
  assert_int_equal(tokenizer_token_kind(tok, tokenizer_find(tok, "hello")), TOKEN_KIND_NORMAL);
  /* the streaming detokenizer's buffer in cli/cmd_generate.c is 256 bytes */
  assert_int_equal(tokenizer_max_token_bytes(tok), 128);
  assert_true(detokenizer_max_output(tok) <= 256);
  json_decref(meta);
  free(text);
  tokenizer_destroy(tok);
  gguf_close(file);
}

/* Document text never produces control tokens without parse_special; BOS only when asked for. */
static void test_parse_special_and_bos(void **state) {
  (void)state;
  const char *path = test_model_path(TEST_MODEL_DEFAULT);
  struct gguf_file *file;
  struct tokenizer *tok = open_tokenizer(path, &file);
  const struct tokenizer_special *sp = tokenizer_special(tok);
  const char *text = "<|fim_prefix|>a<|fim_suffix|>b<|fim_middle|>";
  size_t n;
  int32_t *ids = encode(tok, text, strlen(text), false, false, &n);
  for (size_t i = 0; i < n; i++) {
    assert_int_not_equal(tokenizer_token_kind(tok, ids[i]), TOKEN_KIND_CONTROL);
  }
  free(ids);
  ids = encode(tok, text, strlen(text), false, true, &n);
  assert_int_equal(n, 5);
  assert_int_equal(ids[0], sp->fim_prefix);
  assert_int_equal(ids[2], sp->fim_suffix);
  assert_int_equal(ids[4], sp->fim_middle);
  free(ids);
  /* Qwen's file says add_bos_token = false: add_special adds nothing */
  assert_false(sp->add_bos);
  size_t n_plain, n_special;
  int32_t *a = encode(tok, "x", 1, false, false, &n_plain);
  int32_t *b = encode(tok, "x", 1, true, false, &n_special);
  assert_int_equal(n_plain, n_special);
  free(a);
  free(b);
  /* too small a buffer: AUG_ERANGE with the count needed */
  struct aug_err err = {0};
  int32_t one[1];
  struct tokenize_options o = {false, false};
  assert_int_equal(tokenizer_encode(tok, "hello world foo", 15, o, one, 1, &n, &err), AUG_ERANGE);
  assert_int_equal(n, 3);
  assert_non_null(strstr(err.msg, "3 tokens"));
  assert_int_equal(tokenizer_encode(tok, "", 0, o, one, 1, &n, &err), 0);
  assert_int_equal(n, 0);
  tokenizer_destroy(tok);
  gguf_close(file);
}

/* detokenize(encode(x)) == x for valid UTF-8, by pieces and through the streaming detokenizer. */
static void test_roundtrip(void **state) {
  (void)state;
  const char *path = test_model_path(TEST_MODEL_DEFAULT);
  struct gguf_file *file;
  struct tokenizer *tok = open_tokenizer(path, &file);
  struct corpus c = corpus_load();
  size_t checked = 0;
  for (size_t i = 0; i < c.n; i++) {
    if (!c.valid_utf8[i]) continue;
    size_t n;
    int32_t *ids = encode(tok, c.texts[i], c.lens[i], false, false, &n);
    size_t bound = detokenizer_max_output(tok);
    char *out = malloc(c.lens[i] + bound);
    size_t len = 0;
    struct detokenizer d;
    detokenizer_init(&d);
    for (size_t k = 0; k < n; k++) {
      int w = detokenizer_push(&d, tok, ids[k], false, out + len, bound);
      assert_true(w >= 0);
      len += (size_t)w;
      /* everything written so far is complete UTF-8: a prefix of the text */
      assert_true(len <= c.lens[i] && !memcmp(out, c.texts[i], len));
    }
    int w = detokenizer_flush(&d, out + len, 16);
    assert_int_equal(w, 0);
    if (len != c.lens[i] || memcmp(out, c.texts[i], len)) fail_msg("round trip of line %zu", i + 1);
    free(out);
    free(ids);
    checked++;
  }
  printf("# detokenize(encode(x)) == x on %zu valid UTF-8 corpus entries\n", checked);
  corpus_free(&c);
  tokenizer_destroy(tok);
  gguf_close(file);
}

/* Byte tokens of a 4-byte character pushed one by one: nothing until the last; a broken
 * sequence becomes U+FFFD; flush replaces what is pending. */
static void test_detokenizer_streaming(void **state) {
  (void)state;
  const char *path = test_model_path(TEST_MODEL_DEFAULT);
  struct gguf_file *file;
  struct tokenizer *tok = open_tokenizer(path, &file);
  /* GPT-2 byte-level texts of the bytes F0 9F 98 80 (U+1F600): U+00F0, U+0141, U+013A, U+0122 */
  int32_t f0 = tokenizer_find(tok, "\xC3\xB0"), b9f = tokenizer_find(tok, "\xC5\x81");
  int32_t b98 = tokenizer_find(tok, "\xC4\xBA"), b80 = tokenizer_find(tok, "\xC4\xA2");
  int32_t a = tokenizer_find(tok, "a");
  assert_true(f0 >= 0 && b9f >= 0 && b98 >= 0 && b80 >= 0 && a >= 0);
  char out[256];
  struct detokenizer d;
  detokenizer_init(&d);
  assert_int_equal(detokenizer_push(&d, tok, f0, false, out, sizeof out), 0);
  assert_int_equal(detokenizer_push(&d, tok, b9f, false, out, sizeof out), 0);
  assert_int_equal(detokenizer_push(&d, tok, b98, false, out, sizeof out), 0);
  assert_int_equal(detokenizer_push(&d, tok, b80, false, out, sizeof out), 4);
  assert_memory_equal(out, "\xF0\x9F\x98\x80", 4);
  /* F0 9F then 'a': the two bytes are one maximal invalid subpart -> one U+FFFD */
  assert_int_equal(detokenizer_push(&d, tok, f0, false, out, sizeof out), 0);
  assert_int_equal(detokenizer_push(&d, tok, b9f, false, out, sizeof out), 0);
  assert_int_equal(detokenizer_push(&d, tok, a, false, out, sizeof out), 4);
  assert_memory_equal(out,
                      "\xEF\xBF\xBD"
                      "a",
                      4);
  /* a stray continuation byte */
  assert_int_equal(detokenizer_push(&d, tok, b80, false, out, sizeof out), 3);
  assert_memory_equal(out, "\xEF\xBF\xBD", 3);
  /* pending at the end */
  assert_int_equal(detokenizer_push(&d, tok, f0, false, out, sizeof out), 0);
  assert_int_equal(detokenizer_flush(&d, out, sizeof out), 3);
  assert_memory_equal(out, "\xEF\xBF\xBD", 3);
  assert_int_equal(detokenizer_flush(&d, out, sizeof out), 0);
  /* control tokens render only with special */
  int32_t im_end = tokenizer_find(tok, "<|im_end|>");
  assert_int_equal(detokenizer_push(&d, tok, im_end, false, out, sizeof out), 0);
  assert_int_equal(detokenizer_push(&d, tok, im_end, true, out, sizeof out), 10);
  assert_memory_equal(out, "<|im_end|>", 10);
  /* too small an output buffer leaves the state alone */
  assert_int_equal(detokenizer_push(&d, tok, im_end, true, out, 4), AUG_ERANGE);
  assert_int_equal(detokenizer_push(&d, tok, -1, true, out, sizeof out), AUG_ERANGE);
  tokenizer_destroy(tok);
  gguf_close(file);
}

/* ---- pre-tokenizer variants: the default vocabulary under another tokenizer.ggml.pre ----------
 */

static char *write_variant(const struct gguf_file *src, const char *pre) {
  struct aug_err err = {0};
  struct gguf_writer *w;
  assert_int_equal(gguf_writer_create(&w, &err), 0);
  for (size_t i = 0; i < gguf_kv_count(src); i++) {
    const char *key = gguf_kv_key(src, i);
    if (!strcmp(key, "tokenizer.ggml.pre") || !strcmp(key, "general.alignment")) continue;
    if (strncmp(key, "tokenizer.", 10) && strcmp(key, "general.architecture")) continue;
    assert_int_equal(gguf_writer_copy_kv(w, src, i), 0);
  }
  if (pre) assert_int_equal(gguf_writer_add_string(w, "tokenizer.ggml.pre", pre, strlen(pre)), 0);
  char *path = malloc(64);
  snprintf(path, 64, "/tmp/augury-test-tokenizer-%d-XXXXXX", (int)getpid());
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  if (gguf_writer_write(w, path, &err) != 0) fail_msg("gguf_writer_write: %s", err.msg);
  gguf_writer_destroy(w);
  return path;
}

static void check_variant(const struct gguf_file *src, const struct corpus *c, const char *pre,
                          const char *fixture_pre, const char *expected_name) {
  char *path = write_variant(src, pre);
  struct gguf_file *file;
  struct tokenizer *tok = open_tokenizer(path, &file);
  assert_string_equal(tokenizer_pre_name(tok), expected_name);
  char fixture[128];
  snprintf(fixture, sizeof fixture, "tokenizer/pre-%s.jsonl", fixture_pre);
  struct id_lists l = ids_load(fixture);
  size_t same = compare_corpus(tok, c, &l, NULL, false, pre ? pre : "(no pre)");
  printf("# pre %s: identical ids on %zu/%zu corpus entries\n", pre ? pre : "(none)", same, c->n);
  assert_int_equal(same, c->n);
  ids_free(&l);
  tokenizer_destroy(tok);
  gguf_close(file);
  unlink(path);
  free(path);
}

static void test_pre_variants(void **state) {
  (void)state;
  const char *path = test_model_path(TEST_MODEL_DEFAULT);
  struct aug_err err = {0};
  struct gguf_open_params params = gguf_open_params_default();
  struct gguf_file *src;
  assert_int_equal(gguf_open(path, &params, &src, &err), 0);
  struct corpus c = corpus_load();
  check_variant(src, &c, "llama-bpe", "llama-bpe", "llama-bpe");
  check_variant(src, &c, "gpt-2", "gpt-2", "gpt-2");
  check_variant(src, &c, "default", "default", "default");
  check_variant(src, &c, "deepseek-coder", "deepseek-coder", "deepseek-coder");
  check_variant(src, &c, "deepseek-llm", "deepseek-llm", "deepseek-llm");
  check_variant(src, &c, "starcoder", "starcoder", "starcoder");
  /* no tokenizer.ggml.pre: llama.cpp's 'default'; an unknown name: GPT-2's split, visibly */
  check_variant(src, &c, NULL, "default", "default");
  check_variant(src, &c, "no-such-pre", "gpt-2", "gpt-2 (fallback for unknown 'no-such-pre')");
  corpus_free(&c);
  gguf_close(src);
}

/* ---- tiny vocabularies built here ------------------------------------------------------------ */

struct vocab_entry {
  const char *text;
  float score;
  int32_t type;
};

static char *write_vocab(const char *model, const char *pre, const struct vocab_entry *v, size_t n,
                         const char *const *merges, size_t n_merges, int32_t bos, int32_t eos,
                         int add_bos, int add_space_prefix) {
  struct aug_err err = {0};
  struct gguf_writer *w;
  assert_int_equal(gguf_writer_create(&w, &err), 0);
  const char **texts = malloc(n * sizeof *texts);
  size_t *lens = malloc(n * sizeof *lens);
  float *scores = malloc(n * sizeof *scores);
  int32_t *types = malloc(n * sizeof *types);
  for (size_t i = 0; i < n; i++) {
    texts[i] = v[i].text;
    lens[i] = strlen(v[i].text);
    scores[i] = v[i].score;
    types[i] = v[i].type;
  }
  assert_int_equal(gguf_writer_add_string(w, "tokenizer.ggml.model", model, strlen(model)), 0);
  if (pre) assert_int_equal(gguf_writer_add_string(w, "tokenizer.ggml.pre", pre, strlen(pre)), 0);
  assert_int_equal(gguf_writer_add_string_array(w, "tokenizer.ggml.tokens", texts, lens, n), 0);
  assert_int_equal(gguf_writer_add_array(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, scores, n),
                   0);
  assert_int_equal(gguf_writer_add_array(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, n),
                   0);
  if (merges) {
    size_t *mlens = malloc(n_merges * sizeof *mlens);
    for (size_t i = 0; i < n_merges; i++)
      mlens[i] = strlen(merges[i]);
    assert_int_equal(
        gguf_writer_add_string_array(w, "tokenizer.ggml.merges", merges, mlens, n_merges), 0);
    free(mlens);
  }
  if (bos >= 0)
    assert_int_equal(gguf_writer_add_uint32(w, "tokenizer.ggml.bos_token_id", (uint32_t)bos), 0);
  if (eos >= 0)
    assert_int_equal(gguf_writer_add_uint32(w, "tokenizer.ggml.eos_token_id", (uint32_t)eos), 0);
  if (add_bos >= 0)
    assert_int_equal(gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", add_bos), 0);
  if (add_space_prefix >= 0) {
    assert_int_equal(gguf_writer_add_bool(w, "tokenizer.ggml.add_space_prefix", add_space_prefix),
                     0);
  }
  char *path = malloc(64);
  snprintf(path, 64, "/tmp/augury-test-vocab-%d-XXXXXX", (int)getpid());
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  if (gguf_writer_write(w, path, &err) != 0) fail_msg("gguf_writer_write: %s", err.msg);
  gguf_writer_destroy(w);
  free(texts);
  free(lens);
  free(scores);
  free(types);
  return path;
}

/* SentencePiece: "<unk>" "<s>" "</s>", the 256 byte tokens, then pieces with scores. Expectations
 * worked out by hand from llama.cpp's algorithm (highest-scoring adjacent pair merges first). */
#define SPM_N_BYTES 256
static const struct vocab_entry spm_pieces[] = {
    {"\xE2\x96\x81", -1.0f, 1}, /* ▁ */
    {"h", -2.0f, 1},
    {"e", -2.0f, 1},
    {"l", -2.0f, 1},
    {"o", -2.0f, 1},
    {"w", -2.0f, 1},
    {"r", -2.0f, 1},
    {"d", -2.0f, 1},
    {"ll", -3.0f, 1},
    {"he", -4.0f, 1},
    {"hell", -5.0f, 1},              /* he + ll */
    {"hello", -6.0f, 1},             /* hell + o */
    {"\xE2\x96\x81h", -7.0f, 1},     /* ▁h: lower than "he", so ▁ + hello wins */
    {"\xE2\x96\x81hello", -1.5f, 1}, /* ▁ + hello */
    {"or", -3.5f, 1},
    {"wor", -4.5f, 1},
    {"world", -8.0f, 1},
    {"\xE2\x96\x81w", -0.5f, 1},
    {"<ctrl>", 0.0f, 3},
};

static char *write_spm_vocab(int add_space_prefix) {
  size_t n_pieces = sizeof spm_pieces / sizeof spm_pieces[0];
  size_t n = 3 + SPM_N_BYTES + n_pieces;
  struct vocab_entry *v = calloc(n, sizeof *v);
  static char byte_texts[SPM_N_BYTES][8];
  v[0] = (struct vocab_entry){"<unk>", 0, 2};
  v[1] = (struct vocab_entry){"<s>", 0, 3};
  v[2] = (struct vocab_entry){"</s>", 0, 3};
  for (int b = 0; b < SPM_N_BYTES; b++) {
    snprintf(byte_texts[b], sizeof byte_texts[b], "<0x%02X>", b);
    v[3 + b] = (struct vocab_entry){byte_texts[b], 0, 6};
  }
  for (size_t i = 0; i < n_pieces; i++)
    v[3 + SPM_N_BYTES + i] = spm_pieces[i];
  char *path = write_vocab("llama", NULL, v, n, NULL, 0, -1, -1, -1, add_space_prefix);
  free(v);
  return path;
}

static int32_t spm_id(const char *text) {
  for (size_t i = 0; i < sizeof spm_pieces / sizeof spm_pieces[0]; i++) {
    if (!strcmp(spm_pieces[i].text, text)) return (int32_t)(3 + SPM_N_BYTES + i);
  }
  fail_msg("no piece %s", text);
  return -1;
}

static void expect_ids(const struct tokenizer *tok, const char *text, bool add_special,
                       bool parse_special, const int32_t *want, size_t n_want) {
  size_t n;
  int32_t *ids = encode(tok, text, strlen(text), add_special, parse_special, &n);
  bool same = n == n_want && !memcmp(ids, want, n * sizeof *ids);
  if (!same) {
    printf("# '%s': got", text);
    for (size_t i = 0; i < n; i++)
      printf(" %d", ids[i]);
    printf(", want");
    for (size_t i = 0; i < n_want; i++)
      printf(" %d", want[i]);
    printf("\n");
  }
  free(ids);
  assert_true(same);
}

static void test_spm_tiny(void **state) {
  (void)state;
  char *path = write_spm_vocab(-1);
  struct gguf_file *file;
  struct tokenizer *tok = open_tokenizer(path, &file);
  assert_string_equal(tokenizer_model_name(tok), "llama");
  assert_string_equal(tokenizer_pre_name(tok), "none");
  const struct tokenizer_special *sp = tokenizer_special(tok);
  /* llama.cpp's SPM defaults: bos 1, eos 2, unk 0, add_bos on, dummy prefix on */
  assert_int_equal(sp->bos, 1);
  assert_int_equal(sp->eos, 2);
  assert_int_equal(sp->unk, 0);
  assert_true(sp->add_bos);
  assert_int_equal(sp->nl, 3 + '\n');
  assert_true(tokenizer_is_eog(tok, 2));
  /* "hello": dummy prefix gives "▁hello"; h+e=he(-4) vs l+l=ll(-3): ll first; then he; then
   * hell (he+ll, -5); then hello (-6); then ▁+hello (-1.5). */
  int32_t want1[] = {spm_id("\xE2\x96\x81hello")};
  expect_ids(tok, "hello", false, false, want1, 1);
  /* BOS with add_special */
  int32_t want2[] = {1, spm_id("\xE2\x96\x81hello")};
  expect_ids(tok, "hello", true, false, want2, 2);
  /* "hello world": ▁w (-0.5) merges first; "world" letters: o+r=or(-3.5), w is taken by ▁w so
   * "wor" never forms; or, l, d stay: ▁w or l d */
  int32_t want3[] = {spm_id("\xE2\x96\x81hello"), spm_id("\xE2\x96\x81w"), spm_id("or"),
                     spm_id("l"), spm_id("d")};
  expect_ids(tok, "hello world", false, false, want3, 5);
  /* unknown characters fall back to bytes: "é" = C3 A9 -> <0xC3> <0xA9> after ▁ */
  int32_t want4[] = {spm_id("\xE2\x96\x81"), 3 + 0xC3, 3 + 0xA9};
  expect_ids(tok, "\xC3\xA9", false, false, want4, 3);
  /* control text is split out only with parse_special; the text after it gets the prefix space
   * again (is_prev_special) */
  int32_t ctrl = spm_id("<ctrl>");
  int32_t want5[] = {ctrl, spm_id("\xE2\x96\x81hello")};
  expect_ids(tok, "<ctrl>hello", false, true, want5, 2);
  /* pieces: ▁ back to a space, byte tokens to their byte, control only with special */
  char buf[16];
  assert_int_equal(tokenizer_token_bytes(tok, spm_id("\xE2\x96\x81hello"), false, buf, sizeof buf),
                   6);
  assert_memory_equal(buf, " hello", 6);
  assert_int_equal(tokenizer_token_bytes(tok, 3 + 0xC3, false, buf, sizeof buf), 1);
  assert_int_equal((unsigned char)buf[0], 0xC3);
  assert_int_equal(tokenizer_token_bytes(tok, ctrl, false, buf, sizeof buf), 0);
  assert_int_equal(tokenizer_token_bytes(tok, ctrl, true, buf, sizeof buf), 6);
  tokenizer_destroy(tok);
  gguf_close(file);
  unlink(path);
  free(path);

  /* tokenizer.ggml.add_space_prefix = false: no dummy prefix, spaces inside still become ▁ */
  path = write_spm_vocab(0);
  tok = open_tokenizer(path, &file);
  int32_t want6[] = {spm_id("hello")};
  expect_ids(tok, "hello", false, false, want6, 1);
  int32_t want7[] = {spm_id("hello"), spm_id("\xE2\x96\x81w"), spm_id("or"), spm_id("l"),
                     spm_id("d")};
  expect_ids(tok, "hello world", false, false, want7, 5);
  tokenizer_destroy(tok);
  gguf_close(file);
  unlink(path);
  free(path);
}

/* A tiny byte-level BPE vocabulary: the 256 byte-level characters, a few merges, one control and
 * one user-defined token. */
static char *write_bpe_vocab(int add_bos) {
  static char byte_texts[256][3];
  struct vocab_entry v[256 + 6];
  int next = 0;
  for (int b = 0; b < 256; b++) {
    bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    unsigned cp = printable ? (unsigned)b : 256u + (unsigned)next++;
    if (cp < 0x80) {
      byte_texts[b][0] = (char)cp;
    } else {
      byte_texts[b][0] = (char)(0xC0 | (cp >> 6));
      byte_texts[b][1] = (char)(0x80 | (cp & 0x3F));
    }
    v[b] = (struct vocab_entry){byte_texts[b], 0, 1};
  }
  v[256] = (struct vocab_entry){"\xC4\xA0t", 0, 1}; /* Ġt */
  v[257] = (struct vocab_entry){"he", 0, 1};
  v[258] = (struct vocab_entry){"\xC4\xA0the", 0, 1};
  v[259] = (struct vocab_entry){"<|endoftext|>", 0, 3};
  v[260] = (struct vocab_entry){"<tool>", 0, 4};
  v[261] = (struct vocab_entry){"<|fim_prefix|>", 0, 4}; /* made control by its text */
  static const char *const merges[] = {"h e", "\xC4\xA0 t", "\xC4\xA0t he"};
  return write_vocab("gpt2", "qwen2", v, 262, merges, 3, 259, 259, add_bos, -1);
}

static void test_bpe_tiny(void **state) {
  (void)state;
  char *path = write_bpe_vocab(1);
  struct gguf_file *file;
  struct tokenizer *tok = open_tokenizer(path, &file);
  const struct tokenizer_special *sp = tokenizer_special(tok);
  assert_true(sp->add_bos);
  assert_int_equal(sp->bos, 259);
  assert_int_equal(sp->fim_prefix, 261);
  assert_int_equal(tokenizer_token_kind(tok, 261), TOKEN_KIND_CONTROL);
  assert_int_equal(sp->eot, 259); /* <|endoftext|> by its text */
  /* " the" -> Ġ t h e -> (h e) rank 0, (Ġ t) rank 1, (Ġt he) rank 2 */
  int32_t want1[] = {258};
  expect_ids(tok, " the", false, false, want1, 1);
  int32_t want2[] = {259, 258};
  expect_ids(tok, " the", true, false, want2, 2);
  /* the user-defined token is split out even without parse_special, the control one only with */
  int32_t want3[] = {260, 'x'};
  expect_ids(tok, "<tool>x", false, false, want3, 2);
  int32_t want4[] = {259};
  expect_ids(tok, "<|endoftext|>", false, true, want4, 1);
  size_t n;
  int32_t *ids = encode(tok, "<|endoftext|>", 13, false, false, &n);
  assert_true(n > 1);
  free(ids);
  tokenizer_destroy(tok);
  gguf_close(file);
  unlink(path);
  free(path);
}

static void test_bad_vocab(void **state) {
  (void)state;
  struct vocab_entry v[] = {{"a", 0, 1}};
  struct aug_err err = {0};
  struct gguf_open_params params = gguf_open_params_default();
  /* gpt2 without merges */
  char *path = write_vocab("gpt2", "qwen2", v, 1, NULL, 0, -1, -1, -1, -1);
  struct gguf_file *file;
  struct tokenizer *tok = NULL;
  assert_int_equal(gguf_open(path, &params, &file, &err), 0);
  assert_int_equal(tokenizer_create(file, &tok, &err), AUG_EFORMAT);
  assert_null(tok);
  assert_non_null(strstr(err.msg, "tokenizer.ggml.merges"));
  gguf_close(file);
  unlink(path);
  free(path);
  /* an unsupported model */
  path = write_vocab("bert", NULL, v, 1, NULL, 0, -1, -1, -1, -1);
  assert_int_equal(gguf_open(path, &params, &file, &err), 0);
  assert_int_equal(tokenizer_create(file, &tok, &err), AUG_EUNSUPPORTED);
  assert_non_null(strstr(err.msg, "'bert'"));
  gguf_close(file);
  unlink(path);
  free(path);
  /* add_bos without a BOS id in range (SPM default bos 1 does not exist in a 1-token vocab) */
  path = write_vocab("llama", NULL, v, 1, NULL, 0, -1, -1, 1, -1);
  assert_int_equal(gguf_open(path, &params, &file, &err), 0);
  assert_int_equal(tokenizer_create(file, &tok, &err), AUG_EFORMAT);
  assert_non_null(strstr(err.msg, "add_bos_token"));
  gguf_close(file);
  unlink(path);
  free(path);
}

/* ---- allocation failures --------------------------------------------------------------------- */

static void alloc_failure_loop(const char *path, const char *text) {
  struct aug_err err = {0};
  struct gguf_open_params params = gguf_open_params_default();
  struct gguf_file *file;
  assert_int_equal(gguf_open(path, &params, &file, &err), 0);
  /* create: fail the n-th allocation for every n until one run succeeds */
  long n = 1;
  for (;; n++) {
    struct tokenizer *tok = NULL;
    aug_alloc_fail_after(n);
    int rc = tokenizer_create(file, &tok, &err);
    aug_alloc_fail_reset();
    if (rc == 0) {
      tokenizer_destroy(tok);
      break;
    }
    assert_int_equal(rc, AUG_ENOMEM);
    assert_null(tok);
    assert_non_null(strstr(err.msg, "out of memory"));
  }
  printf("# tokenizer_create: %ld allocation points, each failing cleanly\n", n - 1);
  assert_true(n > 3);
  struct tokenizer *tok;
  assert_int_equal(tokenizer_create(file, &tok, &err), 0);
  size_t want_n;
  int32_t *want = encode(tok, text, strlen(text), false, true, &want_n);
  int32_t *ids = malloc((want_n + 1) * sizeof *ids);
  struct tokenize_options o = {false, true};
  for (n = 1;; n++) {
    size_t got;
    aug_alloc_fail_after(n);
    int rc = tokenizer_encode(tok, text, strlen(text), o, ids, want_n + 1, &got, &err);
    aug_alloc_fail_reset();
    if (rc == 0) {
      assert_int_equal(got, want_n);
      assert_memory_equal(ids, want, want_n * sizeof *ids);
      break;
    }
    assert_int_equal(rc, AUG_ENOMEM);
  }
  printf("# tokenizer_encode: %ld allocation points, each failing cleanly\n", n - 1);
  assert_true(n > 2);
  free(ids);
  free(want);
  tokenizer_destroy(tok);
  gguf_close(file);
}

/* With a warmed-up scratch, encoding allocates nothing: every allocation fails and it still works.
 */
static void test_scratch_no_alloc(void **state) {
  (void)state;
  const char *path = test_model_path(TEST_MODEL_DEFAULT);
  struct gguf_file *file;
  struct tokenizer *tok = open_tokenizer(path, &file);
  struct corpus c = corpus_load();
  struct tokenizer_scratch *scratch;
  assert_int_equal(tokenizer_scratch_create(&scratch), 0);
  struct aug_err err = {0};
  int32_t ids[8192];
  for (int round = 0; round < 2; round++) {
    if (round == 1) aug_alloc_fail_after(1); /* every allocation from here on fails */
    for (size_t i = 0; i < c.n; i++) {
      size_t n, n_ref;
      for (int special = 0; special < 2; special++) {
        struct tokenize_options o = {false, special};
        assert_int_equal(
            tokenizer_encode_scratch(tok, scratch, c.texts[i], c.lens[i], o, ids, 8192, &n, &err),
            0);
        if (round == 0) {
          aug_alloc_fail_reset();
          int32_t *ref = encode(tok, c.texts[i], c.lens[i], false, special, &n_ref);
          assert_int_equal(n, n_ref);
          assert_memory_equal(ids, ref, n * sizeof *ids);
          free(ref);
        }
      }
    }
  }
  assert_int_equal(aug_alloc_fail_reset(), 0); /* not one allocation was attempted */
  tokenizer_scratch_destroy(scratch);
  tokenizer_scratch_destroy(NULL);
  corpus_free(&c);
  tokenizer_destroy(tok);
  gguf_close(file);
}

static void test_alloc_failures(void **state) {
  (void)state;
  char *path = write_bpe_vocab(0);
  alloc_failure_loop(path, "<|endoftext|> the <tool> the\n\n  x");
  unlink(path);
  free(path);
  path = write_spm_vocab(-1);
  alloc_failure_loop(path, "hello world <ctrl> hello");
  unlink(path);
  free(path);
}

static void test_alloc_failures_real(void **state) {
  (void)state;
  const char *path = test_model_path(TEST_MODEL_DEFAULT);
  alloc_failure_loop(path, "<|fim_prefix|>int main(void) {\n    return 0;\n}<|fim_suffix|>");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_spm_tiny),
      cmocka_unit_test(test_bpe_tiny),
      cmocka_unit_test(test_bad_vocab),
      cmocka_unit_test(test_alloc_failures),
      cmocka_unit_test(test_corpus_default),
      cmocka_unit_test(test_corpus_small),
      cmocka_unit_test(test_pieces_and_attrs),
      cmocka_unit_test(test_special_ids),
      cmocka_unit_test(test_parse_special_and_bos),
      cmocka_unit_test(test_roundtrip),
      cmocka_unit_test(test_detokenizer_streaming),
      cmocka_unit_test(test_pre_variants),
      cmocka_unit_test(test_alloc_failures_real),
      cmocka_unit_test(test_scratch_no_alloc),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
