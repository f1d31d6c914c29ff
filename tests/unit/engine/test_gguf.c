/* Tests for engine/gguf.c and engine/gguf_write.c: the malformed-file corpus (every file rejected
 * with its field named, through mmap, read() and memory), the writer (round trip, a golden file
 * that gguf-py's listing also describes, refusals), every getter, allocation failures at every
 * step, and the real models against gguf-py's listing of every tensor and key. */
#include "tests/unit/test_support.h"

#include <dirent.h>
#include <stdbool.h>
#include <time.h>
#include <unistd.h>

#include "engine/alloc.h"
#include "engine/gguf.h"
#include "engine/quant.h"

enum open_mode { OPEN_MMAP, OPEN_READ, OPEN_MEMORY, OPEN_MODE_COUNT };
static const char *const open_mode_names[] = {"mmap", "read", "memory"};

/* Reads path into a buffer of exactly its size (so ASan sees any read past the end). */
static uint8_t *read_exact(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  if (!f) fail_msg("cannot open %s", path);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
  assert_non_null(buf);
  assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  *size = (size_t)n;
  return buf;
}

static void fixture_path(char *out, size_t size, const char *relative) {
  snprintf(out, size, "%s/%s", AUGURY_FIXTURES_DIR, relative);
}

/* Opens path in one of the three ways; buf keeps the memory copy alive (caller frees). */
static int open_as(enum open_mode mode, const char *path, struct gguf_file **out, uint8_t **buf,
                   struct aug_err *err) {
  *buf = NULL;
  if (mode == OPEN_MEMORY) {
    size_t size;
    *buf = read_exact(path, &size);
    return gguf_open_memory(size ? *buf : NULL, size, path, out, err);
  }
  struct gguf_open_params params = gguf_open_params_default();
  params.use_mmap = mode == OPEN_MMAP;
  return gguf_open(path, &params, out, err);
}

static char *temp_path(const char *stem) {
  char *path = malloc(4096);
  assert_non_null(path);
  snprintf(path, 4096, "%s/%s-XXXXXX", AUGURY_BINARY_DIR, stem);
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  return path;
}

/* ---- the malformed corpus -------------------------------------------------------------------- */

static void test_bad_corpus(void **state) {
  (void)state;
  char *tsv = test_read_fixture("bad-gguf/expected.tsv", NULL);
  size_t n_files = 0;
  char *save = NULL;
  for (char *line = strtok_r(tsv, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    if (line[0] == '#') continue;
    char *tab = strchr(line, '\t');
    assert_non_null(tab);
    *tab = '\0';
    const char *name = line, *expected = tab + 1;
    char path[4096], relative[512];
    snprintf(relative, sizeof relative, "bad-gguf/%s", name);
    fixture_path(path, sizeof path, relative);
    for (int mode = 0; mode < OPEN_MODE_COUNT; mode++) {
      struct gguf_file *file = (struct gguf_file *)&file; /* must be reset to NULL */
      struct aug_err err = {0};
      uint8_t *buf;
      int rc = open_as(mode, path, &file, &buf, &err);
      if (rc != AUG_EFORMAT || !strstr(err.msg, expected) || !strstr(err.msg, name))
        fail_msg("%s (%s): rc %d, message \"%s\", expected AUG_EFORMAT and \"%s\"", name,
                 open_mode_names[mode], rc, err.msg, expected);
      assert_null(file);
      assert_int_equal(err.code, AUG_EFORMAT);
      free(buf);
    }
    n_files++;
  }
  assert_true(n_files >= 30);
  free(tsv);
  /* Every file in the directory is listed, so none goes untested. */
  char dir_path[4096];
  fixture_path(dir_path, sizeof dir_path, "bad-gguf");
  DIR *dir = opendir(dir_path);
  assert_non_null(dir);
  size_t n_present = 0;
  for (struct dirent *e = readdir(dir); e; e = readdir(dir)) {
    size_t len = strlen(e->d_name);
    if (len > 5 && !strcmp(e->d_name + len - 5, ".gguf")) n_present++;
  }
  closedir(dir);
  assert_int_equal(n_present, n_files);
}

/* Every prefix of a valid file: rejected (with a message naming the file) while any tensor's
 * data is cut, accepted once all of it is there. Exact-size buffers let ASan see overreads. */
static void test_every_truncation(void **state) {
  (void)state;
  char path[4096];
  fixture_path(path, sizeof path, "gguf/writer-small.gguf");
  size_t size;
  uint8_t *whole = read_exact(path, &size);
  struct aug_err err = {0};
  struct gguf_file *f = NULL;
  assert_int_equal(gguf_open_memory(whole, size, path, &f, &err), 0);
  uint64_t data_end = 0;
  for (size_t i = 0; i < gguf_tensor_count(f); i++) {
    const struct gguf_tensor *t = gguf_tensor_at(f, i);
    if (t->file_offset + t->size > data_end) data_end = t->file_offset + t->size;
  }
  gguf_close(f);
  for (size_t len = 0; len < size; len++) {
    uint8_t *prefix = malloc(len ? len : 1);
    memcpy(prefix, whole, len);
    f = NULL;
    int rc = gguf_open_memory(len ? prefix : NULL, len, "cut.gguf", &f, &err);
    if (len < data_end) {
      if (rc != AUG_EFORMAT || !strstr(err.msg, "cut.gguf"))
        fail_msg("prefix of %zu bytes: rc %d (%s)", len, rc, rc ? err.msg : "opened");
      assert_null(f);
    } else {
      if (rc) fail_msg("prefix of %zu bytes (all tensor data present): %s", len, err.msg);
      gguf_close(f);
    }
    free(prefix);
  }
  free(whole);
}

/* Each byte of a valid file set to 0x00, 0xff and its value + 1: the reader either opens the
 * result (then every tensor lies inside it) or rejects it with AUG_EFORMAT. */
static void test_every_byte_changed(void **state) {
  (void)state;
  char path[4096];
  fixture_path(path, sizeof path, "gguf/writer-small.gguf");
  size_t size;
  uint8_t *buf = read_exact(path, &size);
  size_t opened = 0, rejected = 0;
  for (size_t i = 0; i < size; i++) {
    uint8_t saved = buf[i];
    const uint8_t values[3] = {0x00, 0xff, (uint8_t)(saved + 1)};
    for (int v = 0; v < 3; v++) {
      buf[i] = values[v];
      struct gguf_file *f = NULL;
      struct aug_err err = {0};
      int rc = gguf_open_memory(buf, size, "changed.gguf", &f, &err);
      if (rc == 0) {
        for (size_t k = 0; k < gguf_tensor_count(f); k++) {
          const struct gguf_tensor *t = gguf_tensor_at(f, k);
          assert_true(t->file_offset + t->size <= size);
        }
        gguf_close(f);
        opened++;
      } else {
        if (rc != AUG_EFORMAT) fail_msg("byte %zu = 0x%02x: rc %d (%s)", i, values[v], rc, err.msg);
        rejected++;
      }
    }
    buf[i] = saved;
  }
  /* Data bytes and many values change nothing structural; header bytes mostly do. */
  assert_true(opened > 0 && rejected > 0);
  free(buf);
}

/* ---- the defect-free base of the corpus --------------------------------------------------------
 */

static void check_base(const struct gguf_file *f) {
  struct aug_err err = {0};
  assert_int_equal(gguf_version(f), 3);
  assert_int_equal(gguf_alignment(f), 32);
  assert_int_equal(gguf_kv_count(f), 5);
  assert_int_equal(gguf_tensor_count(f), 2);
  assert_int_equal(gguf_data_offset(f) % 32, 0);
  const char *s;
  size_t len;
  assert_int_equal(gguf_get_string(f, "general.architecture", &s, &len, &err), 0);
  assert_int_equal(len, 4);
  assert_memory_equal(s, "test", 4);
  uint64_t u;
  assert_int_equal(gguf_get_uint(f, "test.block_count", &u, &err), 0);
  assert_int_equal(u, 2);
  double d;
  assert_int_equal(gguf_get_float(f, "test.ratio", &d, &err), 0);
  assert_true(d == 0.5);
  int64_t tokens = gguf_find_key(f, "tokenizer.ggml.tokens");
  assert_int_equal(tokens, 3);
  assert_string_equal(gguf_kv_key(f, 3), "tokenizer.ggml.tokens");
  assert_int_equal(gguf_kv_type(f, 3), GGUF_TYPE_ARRAY);
  assert_int_equal(gguf_kv_array_type(f, 3), GGUF_TYPE_STRING);
  assert_int_equal(gguf_kv_array_count(f, 3), 3);
  const char *expected[] = {"a", "bc", "def"};
  for (uint64_t i = 0; i < 3; i++) {
    assert_int_equal(gguf_get_array_string(f, 3, i, &s, &len), 0);
    assert_int_equal(len, strlen(expected[i]));
    assert_memory_equal(s, expected[i], len);
  }
  enum gguf_value_type et;
  uint64_t count;
  const void *data;
  assert_int_equal(gguf_get_array(f, "tokenizer.ggml.scores", &et, &count, &data, &err), 0);
  assert_int_equal(et, GGUF_TYPE_FLOAT32);
  assert_int_equal(count, 3);
  float scores[3];
  memcpy(scores, data, sizeof scores);
  assert_true(scores[0] == 0.0f && scores[1] == -1.0f && scores[2] == -2.0f);

  const struct gguf_tensor *w = gguf_find_tensor(f, "w"), *q = gguf_find_tensor(f, "q");
  assert_ptr_equal(w, gguf_tensor_at(f, 0));
  assert_ptr_equal(q, gguf_tensor_at(f, 1));
  assert_null(gguf_tensor_at(f, 2));
  assert_null(gguf_find_tensor(f, "x"));
  assert_null(gguf_find_tensor(f, "ww"));
  assert_string_equal(w->name, "w");
  assert_int_equal(w->type, QUANT_F32);
  assert_int_equal(w->n_dims, 2);
  assert_int_equal(w->ne[0], 8);
  assert_int_equal(w->ne[1], 2);
  assert_int_equal(w->ne[2], 1);
  assert_int_equal(w->ne[3], 1);
  assert_int_equal(w->n_elements, 16);
  assert_int_equal(w->size, 64);
  assert_int_equal(q->type, QUANT_Q8_0);
  assert_int_equal(q->size, 68);
  assert_int_equal(q->offset, 64);
  assert_int_equal(q->file_offset, gguf_data_offset(f) + 64);
  assert_int_equal(gguf_data_offset(f) + 132, gguf_file_size(f));
  /* make_bad_gguf.py fills the data section with (i * 7 + 3) & 0xff. */
  const uint8_t *bytes = q->data;
  for (size_t i = 0; i < q->size; i++)
    assert_int_equal(bytes[i], ((64 + i) * 7 + 3) & 0xff);
}

static void test_base_opens(void **state) {
  (void)state;
  char path[4096];
  fixture_path(path, sizeof path, "gguf/bad-gguf-base.gguf");
  for (int mode = 0; mode < OPEN_MODE_COUNT; mode++) {
    struct gguf_file *f = NULL;
    struct aug_err err = {0};
    uint8_t *buf;
    int rc = open_as(mode, path, &f, &buf, &err);
    if (rc) fail_msg("%s: %s", open_mode_names[mode], err.msg);
    assert_string_equal(gguf_path(f), path);
    check_base(f);
    gguf_close(f);
    free(buf);
  }
}

static void test_version_2(void **state) {
  (void)state;
  char path[4096];
  fixture_path(path, sizeof path, "gguf/bad-gguf-base.gguf");
  size_t size;
  uint8_t *buf = read_exact(path, &size);
  buf[4] = 2; /* version 2 has the same layout as 3 (3 only added big-endian files) */
  struct gguf_file *f = NULL;
  struct aug_err err = {0};
  assert_int_equal(gguf_open_memory(buf, size, "v2.gguf", &f, &err), 0);
  assert_int_equal(gguf_version(f), 2);
  assert_string_equal(gguf_path(f), "v2.gguf");
  gguf_close(f);
  free(buf);
}

/* Appends little-endian integers and GGUF strings to a byte buffer. */
struct bytes {
  uint8_t data[1024];
  size_t len;
};

static void put_u32(struct bytes *b, uint32_t v) {
  for (int i = 0; i < 4; i++)
    b->data[b->len++] = (uint8_t)(v >> (8 * i));
}

static void put_u64(struct bytes *b, uint64_t v) {
  for (int i = 0; i < 8; i++)
    b->data[b->len++] = (uint8_t)(v >> (8 * i));
}

static void put_str(struct bytes *b, const char *s) {
  put_u64(b, strlen(s));
  memcpy(b->data + b->len, s, strlen(s));
  b->len += strlen(s);
}

static void put_header(struct bytes *b, uint64_t n_tensors, uint64_t n_kv) {
  put_u32(b, GGUF_MAGIC);
  put_u32(b, 3);
  put_u64(b, n_tensors);
  put_u64(b, n_kv);
}

static void test_metadata_only_without_padding(void **state) {
  (void)state;
  struct bytes b = {.len = 0};
  put_header(&b, 0, 1);
  put_str(&b, "general.name");
  put_u32(&b, GGUF_TYPE_STRING);
  put_str(&b, "x");
  assert_true(b.len % 32 != 0);
  uint8_t *buf = malloc(b.len);
  memcpy(buf, b.data, b.len);
  struct gguf_file *f = NULL;
  struct aug_err err = {0};
  assert_int_equal(gguf_open_memory(buf, b.len, "meta.gguf", &f, &err), 0);
  assert_int_equal(gguf_tensor_count(f), 0);
  assert_int_equal(gguf_data_offset(f), b.len);
  gguf_close(f);
  free(buf);
}

/* Arrays of arrays: GGUF_MAX_ARRAY_DEPTH levels are accepted (deeper is in the corpus). */
static void test_nested_arrays(void **state) {
  (void)state;
  struct bytes b = {.len = 0};
  put_header(&b, 0, 1);
  put_str(&b, "nested");
  put_u32(&b, GGUF_TYPE_ARRAY);
  for (int level = 1; level < GGUF_MAX_ARRAY_DEPTH; level++) {
    put_u32(&b, GGUF_TYPE_ARRAY);
    put_u64(&b, 1);
  }
  put_u32(&b, GGUF_TYPE_STRING);
  put_u64(&b, 2);
  put_str(&b, "in");
  put_str(&b, "ner");
  uint8_t *buf = malloc(b.len);
  memcpy(buf, b.data, b.len);
  struct gguf_file *f = NULL;
  struct aug_err err = {0};
  int rc = gguf_open_memory(buf, b.len, "nested.gguf", &f, &err);
  if (rc) fail_msg("%s", err.msg);
  assert_int_equal(gguf_kv_array_type(f, 0), GGUF_TYPE_ARRAY);
  assert_int_equal(gguf_kv_array_count(f, 0), 1);
  const char *s;
  size_t len;
  assert_int_equal(gguf_get_array_string(f, 0, 0, &s, &len), AUG_EINVAL);
  enum gguf_value_type et;
  uint64_t count;
  const void *data;
  assert_int_equal(gguf_get_array(f, "nested", &et, &count, &data, &err), 0);
  assert_int_equal(et, GGUF_TYPE_ARRAY);
  const void *raw;
  uint64_t raw_size;
  assert_int_equal(gguf_kv_raw_value(f, 0, &raw, &raw_size), 0);
  assert_int_equal(raw_size, b.len - 24 - 8 - 6 - 4);

  /* The writer copies it verbatim. */
  struct gguf_writer *w = NULL;
  assert_int_equal(gguf_writer_create(&w, &err), 0);
  assert_int_equal(gguf_writer_copy_kv(w, f, 0), 0);
  char *path = temp_path("nested");
  assert_int_equal(gguf_writer_write(w, path, &err), 0);
  struct gguf_file *copy = NULL;
  assert_int_equal(gguf_open(path, NULL, &copy, &err), 0);
  const void *raw2;
  uint64_t raw2_size;
  assert_int_equal(gguf_kv_raw_value(copy, 0, &raw2, &raw2_size), 0);
  assert_int_equal(raw2_size, raw_size);
  assert_memory_equal(raw2, raw, raw_size);
  gguf_close(copy);
  gguf_writer_destroy(w);
  unlink(path);
  free(path);
  gguf_close(f);
  free(buf);
}

/* ---- the writer ---------------------------------------------------------------------------- */

static const char *const small_tokens[] = {"<s>", "", "a\0b", "\xc3\xbc"};
static const size_t small_token_lens[] = {3, 0, 3, 2};

/* The contents of tests/fixtures/gguf/writer-small.gguf: every scalar type the writer offers,
 * arrays (empty too), strings with NUL bytes, tensors of three types with odd sizes. */
static int build_small(struct gguf_writer *w, uint8_t *q8_data) {
  int rc = 0;
  const uint8_t u8s[] = {1, 2, 3};
  const int16_t i16s[] = {-1, 300};
  const double f64s[] = {0.25, -1e300};
  const bool bools[] = {true, false, true};
  float fdata[12];
  for (int i = 0; i < 12; i++)
    fdata[i] = (float)i * 0.5f;
  const uint16_t hdata[5] = {0xc000, 0xbc00, 0x0000, 0x3c00, 0x4000}; /* -2, -1, 0, 1, 2 in f16 */
  float cube[8];
  for (int i = 0; i < 8; i++)
    cube[i] = (float)-i;
  for (size_t i = 0; i < 4 * 34; i++)
    q8_data[i] = (uint8_t)(i * 13 + 1);
  rc = rc ? rc : gguf_writer_add_string(w, "general.architecture", "test", 4);
  rc = rc ? rc : gguf_writer_set_alignment(w, 64);
  rc = rc ? rc : gguf_writer_add_uint32(w, "test.block_count", 2);
  rc = rc ? rc : gguf_writer_add_int32(w, "test.negative", -7);
  rc = rc ? rc : gguf_writer_add_uint64(w, "test.big", (1ull << 40) + 5);
  rc = rc ? rc : gguf_writer_add_float32(w, "test.eps", 1e-6f);
  rc = rc ? rc : gguf_writer_add_bool(w, "test.flag", true);
  rc = rc ? rc : gguf_writer_add_string(w, "test.with_nul", "a\0b", 3);
  rc = rc ? rc : gguf_writer_add_string(w, "test.empty", "", 0);
  rc = rc ? rc : gguf_writer_add_array(w, "test.u8s", GGUF_TYPE_UINT8, u8s, 3);
  rc = rc ? rc : gguf_writer_add_array(w, "test.i16s", GGUF_TYPE_INT16, i16s, 2);
  rc = rc ? rc : gguf_writer_add_array(w, "test.f64s", GGUF_TYPE_FLOAT64, f64s, 2);
  rc = rc ? rc : gguf_writer_add_array(w, "test.bools", GGUF_TYPE_BOOL, bools, 3);
  rc = rc ? rc : gguf_writer_add_array(w, "test.none", GGUF_TYPE_UINT32, NULL, 0);
  rc = rc ? rc
          : gguf_writer_add_string_array(w, "tokenizer.ggml.tokens", small_tokens, small_token_lens,
                                         4);
  const uint64_t ne_w[] = {4, 3}, ne_q[] = {64, 2}, ne_h[] = {5}, ne_cube[] = {2, 2, 2};
  rc = rc ? rc : gguf_writer_add_tensor(w, "w", QUANT_F32, 2, ne_w, fdata, sizeof fdata);
  rc = rc ? rc : gguf_writer_add_tensor(w, "h", QUANT_F16, 1, ne_h, hdata, sizeof hdata);
  rc = rc ? rc : gguf_writer_add_tensor(w, "blk.0.q", QUANT_Q8_0, 2, ne_q, q8_data, 4 * 34);
  rc = rc ? rc : gguf_writer_add_tensor(w, "cube", QUANT_F32, 3, ne_cube, cube, sizeof cube);
  return rc;
}

static void check_small(const struct gguf_file *f, const uint8_t *q8_data) {
  struct aug_err err = {0};
  assert_int_equal(gguf_version(f), 3);
  assert_int_equal(gguf_alignment(f), 64);
  assert_int_equal(gguf_data_offset(f) % 64, 0);
  assert_int_equal(gguf_kv_count(f), 15);
  assert_int_equal(gguf_tensor_count(f), 4);
  assert_string_equal(gguf_kv_key(f, 1), "general.alignment");
  uint64_t u;
  int64_t i;
  double d;
  bool b;
  const char *s;
  size_t len;
  assert_int_equal(gguf_get_uint(f, "general.alignment", &u, &err), 0);
  assert_int_equal(u, 64);
  assert_int_equal(gguf_get_uint(f, "test.big", &u, &err), 0);
  assert_true(u == (1ull << 40) + 5);
  assert_int_equal(gguf_get_int(f, "test.negative", &i, &err), 0);
  assert_int_equal(i, -7);
  assert_int_equal(gguf_get_int(f, "test.block_count", &i, &err), 0);
  assert_int_equal(i, 2);
  assert_int_equal(gguf_get_float(f, "test.eps", &d, &err), 0);
  assert_true((float)d == 1e-6f);
  assert_int_equal(gguf_get_bool(f, "test.flag", &b, &err), 0);
  assert_true(b);
  assert_int_equal(gguf_get_string(f, "test.with_nul", &s, &len, &err), 0);
  assert_int_equal(len, 3);
  assert_memory_equal(s, "a\0b", 3);
  assert_int_equal(gguf_get_string(f, "test.empty", &s, &len, &err), 0);
  assert_int_equal(len, 0);
  enum gguf_value_type et;
  uint64_t count;
  const void *data;
  assert_int_equal(gguf_get_array(f, "test.i16s", &et, &count, &data, &err), 0);
  assert_int_equal(et, GGUF_TYPE_INT16);
  assert_int_equal(count, 2);
  int16_t i16s[2];
  memcpy(i16s, data, sizeof i16s);
  assert_int_equal(i16s[0], -1);
  assert_int_equal(i16s[1], 300);
  assert_int_equal(gguf_get_array(f, "test.f64s", &et, &count, &data, &err), 0);
  double f64s[2];
  memcpy(f64s, data, sizeof f64s);
  assert_true(f64s[0] == 0.25 && f64s[1] == -1e300);
  assert_int_equal(gguf_get_array(f, "test.none", &et, &count, &data, &err), 0);
  assert_int_equal(et, GGUF_TYPE_UINT32);
  assert_int_equal(count, 0);
  int64_t tokens = gguf_find_key(f, "tokenizer.ggml.tokens");
  assert_true(tokens >= 0);
  assert_int_equal(gguf_kv_array_count(f, (size_t)tokens), 4);
  for (uint64_t k = 0; k < 4; k++) {
    assert_int_equal(gguf_get_array_string(f, (size_t)tokens, k, &s, &len), 0);
    assert_int_equal(len, small_token_lens[k]);
    assert_memory_equal(s, small_tokens[k], len);
  }
  assert_int_equal(gguf_get_array_string(f, (size_t)tokens, 4, &s, &len), AUG_ERANGE);

  const struct gguf_tensor *t = gguf_find_tensor(f, "w");
  assert_non_null(t);
  const float *fw = t->data;
  for (int k = 0; k < 12; k++)
    assert_true(fw[k] == (float)k * 0.5f);
  t = gguf_find_tensor(f, "h");
  assert_int_equal(t->type, QUANT_F16);
  assert_int_equal(t->size, 10);
  assert_int_equal(t->offset % 64, 0);
  t = gguf_find_tensor(f, "blk.0.q");
  assert_int_equal(t->size, 4 * 34);
  assert_int_equal(t->offset % 64, 0);
  assert_memory_equal(t->data, q8_data, 4 * 34);
  t = gguf_find_tensor(f, "cube");
  assert_int_equal(t->n_dims, 3);
  assert_int_equal(t->ne[2], 2);
  assert_int_equal(t->n_elements, 8);
  assert_ptr_equal(gguf_tensor_at(f, 3), t);
}

static void test_writer_round_trip(void **state) {
  (void)state;
  struct gguf_writer *w = NULL;
  struct aug_err err = {0};
  uint8_t q8[4 * 34];
  assert_int_equal(gguf_writer_create(&w, &err), 0);
  assert_int_equal(build_small(w, q8), 0);
  char *path = temp_path("writer");
  int rc = gguf_writer_write(w, path, &err);
  if (rc) fail_msg("%s", err.msg);
  for (int mode = 0; mode < OPEN_MODE_COUNT; mode++) {
    struct gguf_file *f = NULL;
    uint8_t *buf;
    rc = open_as(mode, path, &f, &buf, &err);
    if (rc) fail_msg("%s: %s", open_mode_names[mode], err.msg);
    check_small(f, q8);
    gguf_close(f);
    free(buf);
  }
  /* The output is deterministic: it must equal the committed file (which gguf-py's listing in
   * writer-small.*.tsv describes and the fuzzer uses as a seed). AUGURY_UPDATE_FIXTURES=1
   * rewrites the committed file instead. */
  char golden[4096];
  fixture_path(golden, sizeof golden, "gguf/writer-small.gguf");
  const char *update = getenv("AUGURY_UPDATE_FIXTURES");
  if (update && !strcmp(update, "1")) assert_int_equal(gguf_writer_write(w, golden, &err), 0);
  size_t n_written, n_golden;
  uint8_t *written = read_exact(path, &n_written);
  uint8_t *expected = read_exact(golden, &n_golden);
  assert_int_equal(n_written, n_golden);
  assert_memory_equal(written, expected, n_golden);
  free(written);
  free(expected);
  gguf_writer_destroy(w);
  unlink(path);
  free(path);
}

static void test_writer_rejects(void **state) {
  (void)state;
  struct gguf_writer *w = NULL;
  struct aug_err err = {0};
  assert_int_equal(gguf_writer_create(&w, &err), 0);
  float data[64] = {0};
  const uint64_t ne[] = {4, 2}, ne_zero[] = {4, 0}, ne_q[] = {33, 1};
  char long_name[GGUF_MAX_TENSOR_NAME_LENGTH + 2];
  memset(long_name, 'n', sizeof long_name - 1);
  long_name[sizeof long_name - 1] = '\0';

  assert_int_equal(gguf_writer_add_uint32(w, "k", 1), 0);
  assert_int_equal(gguf_writer_add_uint32(w, "k", 2), AUG_EINVAL);     /* duplicate */
  assert_int_equal(gguf_writer_add_string(w, "", "x", 1), AUG_EINVAL); /* empty key */
  assert_int_equal(gguf_writer_add_uint32(w, NULL, 1), AUG_EINVAL);
  assert_int_equal(gguf_writer_set_alignment(w, 0), AUG_EINVAL);
  assert_int_equal(gguf_writer_set_alignment(w, 48), AUG_EINVAL);
  assert_int_equal(gguf_writer_add_uint64(w, "general.alignment", 64), AUG_EINVAL);
  assert_int_equal(gguf_writer_add_uint32(w, "general.alignment", 24), AUG_EINVAL);
  assert_int_equal(gguf_writer_add_array(w, "a", GGUF_TYPE_STRING, data, 1), AUG_EINVAL);
  assert_int_equal(gguf_writer_add_array(w, "a", GGUF_TYPE_ARRAY, data, 1), AUG_EINVAL);
  assert_int_equal(gguf_writer_add_array(w, "a", GGUF_TYPE_COUNT, data, 1), AUG_EINVAL);
  assert_int_equal(gguf_writer_add_array(w, "a", GGUF_TYPE_UINT8, NULL, 1), AUG_EINVAL);
  assert_int_equal(gguf_writer_add_array(w, "a", GGUF_TYPE_UINT64, data, UINT64_MAX / 4),
                   AUG_EINVAL);

  assert_int_equal(gguf_writer_add_tensor(w, "t", QUANT_F32, 2, ne, data, 32), 0);
  assert_int_equal(gguf_writer_add_tensor(w, "t", QUANT_F32, 2, ne, data, 32), AUG_EINVAL);
  assert_int_equal(gguf_writer_add_tensor(w, "u", QUANT_F32, 2, ne, data, 31), AUG_EINVAL);
  assert_int_equal(gguf_writer_add_tensor(w, "", QUANT_F32, 2, ne, data, 32), AUG_EINVAL);
  assert_int_equal(gguf_writer_add_tensor(w, long_name, QUANT_F32, 2, ne, data, 32), AUG_EINVAL);
  long_name[GGUF_MAX_TENSOR_NAME_LENGTH] = '\0';
  assert_int_equal(gguf_writer_add_tensor(w, long_name, QUANT_F32, 2, ne, data, 32), 0);
  assert_int_equal(gguf_writer_add_tensor(w, "u", QUANT_F32, 0, ne, data, 4), AUG_EINVAL);
  assert_int_equal(gguf_writer_add_tensor(w, "u", QUANT_F32, 5, ne, data, 32), AUG_EINVAL);
  assert_int_equal(gguf_writer_add_tensor(w, "u", QUANT_F32, 2, ne_zero, data, 0), AUG_EINVAL);
  assert_int_equal(gguf_writer_add_tensor(w, "u", 4, 2, ne, data, 32), AUG_EINVAL);
  assert_int_equal(gguf_writer_add_tensor(w, "u", 99, 2, ne, data, 32), AUG_EINVAL);
  assert_int_equal(gguf_writer_add_tensor(w, "u", QUANT_Q8_0, 2, ne_q, data, 34), AUG_EINVAL);

  /* What was accepted still writes a file the reader takes. */
  char *path = temp_path("rejects");
  assert_int_equal(gguf_writer_write(w, path, &err), 0);
  struct gguf_file *f = NULL;
  assert_int_equal(gguf_open(path, NULL, &f, &err), 0);
  assert_int_equal(gguf_kv_count(f), 1);
  assert_int_equal(gguf_tensor_count(f), 2);
  assert_non_null(gguf_find_tensor(f, long_name));
  gguf_close(f);
  unlink(path);
  free(path);
  assert_int_equal(gguf_writer_write(w, "/nonexistent-dir/x.gguf", &err), AUG_EIO);
  assert_non_null(strstr(err.msg, "/nonexistent-dir/x.gguf"));
  gguf_writer_destroy(w);
  gguf_writer_destroy(NULL);
}

/* Copies every kv of the golden file into a new writer: the values come back byte for byte. */
static void test_writer_copy_kv(void **state) {
  (void)state;
  char golden[4096];
  fixture_path(golden, sizeof golden, "gguf/writer-small.gguf");
  struct aug_err err = {0};
  struct gguf_file *src = NULL;
  assert_int_equal(gguf_open(golden, NULL, &src, &err), 0);
  struct gguf_writer *w = NULL;
  assert_int_equal(gguf_writer_create(&w, &err), 0);
  for (size_t i = 0; i < gguf_kv_count(src); i++)
    assert_int_equal(gguf_writer_copy_kv(w, src, i), 0);
  assert_int_equal(gguf_writer_copy_kv(w, src, 0), AUG_EINVAL); /* already there */
  assert_int_equal(gguf_writer_copy_kv(w, src, gguf_kv_count(src)), AUG_EINVAL);
  char *path = temp_path("copy");
  assert_int_equal(gguf_writer_write(w, path, &err), 0);
  struct gguf_file *copy = NULL;
  assert_int_equal(gguf_open(path, NULL, &copy, &err), 0);
  assert_int_equal(gguf_kv_count(copy), gguf_kv_count(src));
  assert_int_equal(gguf_alignment(copy), 64); /* general.alignment came along */
  for (size_t i = 0; i < gguf_kv_count(src); i++) {
    assert_string_equal(gguf_kv_key(copy, i), gguf_kv_key(src, i));
    assert_int_equal(gguf_kv_type(copy, i), gguf_kv_type(src, i));
    const void *a, *b;
    uint64_t na, nb;
    assert_int_equal(gguf_kv_raw_value(src, i, &a, &na), 0);
    assert_int_equal(gguf_kv_raw_value(copy, i, &b, &nb), 0);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);
  }
  gguf_close(copy);
  gguf_close(src);
  gguf_writer_destroy(w);
  unlink(path);
  free(path);
}

/* ---- getters: absent keys, wrong types, ranges ---------------------------------------------- */

static void test_getter_errors(void **state) {
  (void)state;
  char golden[4096];
  fixture_path(golden, sizeof golden, "gguf/writer-small.gguf");
  struct aug_err err = {0};
  struct gguf_file *f = NULL;
  assert_int_equal(gguf_open(golden, NULL, &f, &err), 0);
  uint64_t u;
  int64_t i;
  double d;
  bool b;
  const char *s;
  size_t len;
  enum gguf_value_type et;
  uint64_t count;
  const void *data;
  assert_int_equal(gguf_find_key(f, "nope"), -1);
  assert_int_equal(gguf_find_key(f, NULL), -1);
  assert_int_equal(gguf_find_key(f, "test"), -1); /* a prefix of keys */
  assert_int_equal(gguf_get_uint(f, "nope", &u, &err), AUG_ENOTFOUND);
  assert_non_null(strstr(err.msg, "'nope'"));
  assert_int_equal(gguf_get_uint(f, "test.negative", &u, &err), AUG_ERANGE);
  assert_non_null(strstr(err.msg, "-7"));
  assert_int_equal(gguf_get_uint(f, "test.eps", &u, &err), AUG_EFORMAT);
  assert_non_null(strstr(err.msg, "'test.eps' has type FLOAT32"));
  assert_int_equal(gguf_get_int(f, "general.architecture", &i, &err), AUG_EFORMAT);
  assert_non_null(strstr(err.msg, "STRING"));
  assert_int_equal(gguf_get_float(f, "test.block_count", &d, &err), AUG_EFORMAT);
  assert_non_null(strstr(err.msg, "UINT32"));
  assert_int_equal(gguf_get_bool(f, "test.block_count", &b, &err), AUG_EFORMAT);
  assert_int_equal(gguf_get_string(f, "test.flag", &s, &len, &err), AUG_EFORMAT);
  assert_non_null(strstr(err.msg, "BOOL"));
  assert_int_equal(gguf_get_array(f, "test.flag", &et, &count, &data, &err), AUG_EFORMAT);
  assert_int_equal(gguf_get_array(f, "missing", &et, &count, &data, &err), AUG_ENOTFOUND);
  assert_int_equal(gguf_get_array_string(f, 0, 0, &s, &len), AUG_EINVAL);   /* not an array */
  assert_int_equal(gguf_get_array_string(f, 999, 0, &s, &len), AUG_EINVAL); /* no such key */
  int64_t u8s = gguf_find_key(f, "test.u8s");
  assert_int_equal(gguf_get_array_string(f, (size_t)u8s, 0, &s, &len), AUG_EINVAL);
  assert_null(gguf_kv_key(f, 999));
  assert_int_equal(gguf_kv_type(f, 999), GGUF_TYPE_COUNT);
  assert_int_equal(gguf_kv_array_type(f, 0), GGUF_TYPE_COUNT);
  assert_int_equal(gguf_kv_array_count(f, 0), 0);
  assert_int_equal(gguf_kv_array_count(f, 999), 0);
  assert_null(gguf_find_tensor(f, NULL));
  assert_string_equal(gguf_type_name(GGUF_TYPE_FLOAT64), "FLOAT64");
  assert_string_equal(gguf_type_name(GGUF_TYPE_COUNT), "unknown");
  gguf_close(f);
  gguf_close(NULL);

  /* An UINT64 above INT64_MAX does not fit get_int. */
  struct gguf_writer *w = NULL;
  assert_int_equal(gguf_writer_create(&w, &err), 0);
  assert_int_equal(gguf_writer_add_uint64(w, "huge", UINT64_MAX), 0);
  char *path = temp_path("getters");
  assert_int_equal(gguf_writer_write(w, path, &err), 0);
  assert_int_equal(gguf_open(path, NULL, &f, &err), 0);
  assert_int_equal(gguf_get_int(f, "huge", &i, &err), AUG_ERANGE);
  assert_int_equal(gguf_get_uint(f, "huge", &u, &err), 0);
  assert_true(u == UINT64_MAX);
  gguf_close(f);
  gguf_writer_destroy(w);
  unlink(path);
  free(path);
}

static void test_open_errors(void **state) {
  (void)state;
  struct aug_err err = {0};
  struct gguf_file *f = NULL;
  assert_int_equal(gguf_open("/nonexistent/model.gguf", NULL, &f, &err), AUG_EIO);
  assert_non_null(strstr(err.msg, "/nonexistent/model.gguf"));
  assert_null(f);
  assert_int_equal(gguf_open(AUGURY_FIXTURES_DIR, NULL, &f, &err), AUG_EIO);
  assert_non_null(strstr(err.msg, "not a regular file"));
  assert_int_equal(gguf_open(NULL, NULL, &f, &err), AUG_EINVAL);
  assert_int_equal(gguf_open_memory(NULL, 5, "x", &f, &err), AUG_EINVAL);
}

/* ---- allocation failures ----------------------------------------------------------------- */

/* Fails the n-th allocation for n = 1, 2, ... until open succeeds: each failure must be a clean
 * AUG_ENOMEM with no file returned (ASan reports any leak). */
static void check_open_alloc_failures(const char *path, enum open_mode mode) {
  size_t size;
  uint8_t *copy = read_exact(path, &size);
  long n;
  for (n = 1;; n++) {
    struct gguf_file *f = (struct gguf_file *)&f;
    struct aug_err err = {0};
    int rc;
    aug_alloc_fail_after(n);
    if (mode == OPEN_MEMORY) {
      rc = gguf_open_memory(copy, size, path, &f, &err);
    } else {
      struct gguf_open_params params = {.use_mmap = mode == OPEN_MMAP};
      rc = gguf_open(path, &params, &f, &err);
    }
    long made = aug_alloc_fail_reset();
    if (rc == 0) {
      assert_true(made < n);
      gguf_close(f);
      break;
    }
    if (rc != AUG_ENOMEM)
      fail_msg("%s: failing allocation %ld gave %d (%s)", open_mode_names[mode], n, rc, err.msg);
    assert_null(f);
    assert_non_null(strstr(err.msg, "out of memory"));
    assert_true(n < 100);
  }
  /* file, path, kv table, string offsets, tensor table, names, two indexes, overlap check */
  assert_true(n > 8);
  free(copy);
}

static void test_open_alloc_failures(void **state) {
  (void)state;
  char path[4096];
  fixture_path(path, sizeof path, "gguf/writer-small.gguf");
  for (int mode = 0; mode < OPEN_MODE_COUNT; mode++)
    check_open_alloc_failures(path, mode);
}

static void test_writer_alloc_failures(void **state) {
  (void)state;
  char *path = temp_path("oom");
  long n;
  for (n = 1;; n++) {
    struct gguf_writer *w = NULL;
    struct aug_err err = {0};
    uint8_t q8[4 * 34];
    aug_alloc_fail_after(n);
    int rc = gguf_writer_create(&w, &err);
    if (rc == 0) rc = build_small(w, q8);
    if (rc == 0) rc = gguf_writer_write(w, path, &err);
    long made = aug_alloc_fail_reset();
    gguf_writer_destroy(w);
    if (rc == 0) {
      assert_true(made < n);
      break;
    }
    assert_int_equal(rc, AUG_ENOMEM);
    assert_true(n < 200);
  }
  assert_true(n > 20);
  unlink(path);
  free(path);
}

/* ---- against gguf-py's listing ------------------------------------------------------------ */

/* Undoes make_tensor_listing.py's escaping (\\ and \xNN) in place; returns the length. */
static size_t unescape(char *s) {
  char *out = s;
  for (const char *p = s; *p;) {
    if (p[0] == '\\' && p[1] == '\\') {
      *out++ = '\\';
      p += 2;
    } else if (p[0] == '\\' && p[1] == 'x') {
      char hex[3] = {p[2], p[3], 0};
      *out++ = (char)strtoul(hex, NULL, 16);
      p += 4;
    } else {
      *out++ = *p++;
    }
  }
  return (size_t)(out - s);
}

/* Checks one encoded scalar (p points at it in the file) against the listing's text. */
static void check_scalar(const char *key, enum gguf_value_type type, const uint8_t *p,
                         char *expected) {
  uint64_t u = 0;
  int64_t s = 0;
  switch (type) {
  case GGUF_TYPE_UINT8: u = p[0]; break;
  case GGUF_TYPE_UINT16: u = (uint64_t)p[0] | (uint64_t)p[1] << 8; break;
  case GGUF_TYPE_UINT32: {
    uint32_t v;
    memcpy(&v, p, 4);
    u = v;
    break;
  }
  case GGUF_TYPE_UINT64: memcpy(&u, p, 8); break;
  case GGUF_TYPE_INT8: s = (int8_t)p[0]; break;
  case GGUF_TYPE_INT16: {
    int16_t v;
    memcpy(&v, p, 2);
    s = v;
    break;
  }
  case GGUF_TYPE_INT32: {
    int32_t v;
    memcpy(&v, p, 4);
    s = v;
    break;
  }
  case GGUF_TYPE_INT64: memcpy(&s, p, 8); break;
  case GGUF_TYPE_FLOAT32: {
    float v;
    memcpy(&v, p, 4);
    if (v != (float)strtod(expected, NULL)) fail_msg("%s: %.9g != %s", key, v, expected);
    return;
  }
  case GGUF_TYPE_FLOAT64: {
    double v;
    memcpy(&v, p, 8);
    if (v != strtod(expected, NULL)) fail_msg("%s: %.17g != %s", key, v, expected);
    return;
  }
  case GGUF_TYPE_BOOL: assert_string_equal(p[0] ? "true" : "false", expected); return;
  case GGUF_TYPE_STRING: {
    uint64_t len;
    memcpy(&len, p, 8);
    size_t n = unescape(expected);
    if (len != n || memcmp(p + 8, expected, n)) fail_msg("%s: string differs", key);
    return;
  }
  default: fail_msg("%s: unexpected type %d", key, type);
  }
  if (type == GGUF_TYPE_UINT8 || type == GGUF_TYPE_UINT16 || type == GGUF_TYPE_UINT32 ||
      type == GGUF_TYPE_UINT64) {
    if (u != strtoull(expected, NULL, 10))
      fail_msg("%s: %llu != %s", key, (unsigned long long)u, expected);
  } else if (s != strtoll(expected, NULL, 10)) {
    fail_msg("%s: %lld != %s", key, (long long)s, expected);
  }
}

static size_t split_tabs(char *line, char **fields, size_t max) {
  size_t n = 0;
  char *p = line;
  while (n < max) {
    fields[n++] = p;
    char *tab = strchr(p, '\t');
    if (!tab) break;
    *tab = '\0';
    p = tab + 1;
  }
  return n;
}

/* Compares every kv of f with <stem>.kvs.tsv. */
static void compare_kvs(const struct gguf_file *f, const char *stem) {
  char relative[512];
  snprintf(relative, sizeof relative, "gguf/%s.kvs.tsv", stem);
  char *tsv = test_read_fixture(relative, NULL);
  size_t n = 0;
  char *save = NULL;
  for (char *line = strtok_r(tsv, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    if (line[0] == '#') continue;
    char *c[6] = {0};
    size_t nc = split_tabs(line, c, 6);
    assert_true(nc >= 3);
    int64_t index = gguf_find_key(f, c[0]);
    if (index < 0) fail_msg("key %s missing", c[0]);
    assert_int_equal((size_t)index, n); /* file order */
    assert_string_equal(gguf_type_name(gguf_kv_type(f, (size_t)index)), c[1]);
    const void *raw;
    uint64_t raw_size;
    assert_int_equal(gguf_kv_raw_value(f, (size_t)index, &raw, &raw_size), 0);
    if (gguf_kv_type(f, (size_t)index) != GGUF_TYPE_ARRAY) {
      check_scalar(c[0], gguf_kv_type(f, (size_t)index), raw, c[2]);
    } else {
      assert_int_equal(nc, 6);
      enum gguf_value_type et = gguf_kv_array_type(f, (size_t)index);
      uint64_t count = gguf_kv_array_count(f, (size_t)index);
      assert_string_equal(gguf_type_name(et), c[2]);
      assert_int_equal(count, strtoull(c[3], NULL, 10));
      if (count && et == GGUF_TYPE_STRING) {
        const char *s;
        size_t len;
        for (int end = 0; end < 2; end++) {
          assert_int_equal(gguf_get_array_string(f, (size_t)index, end ? count - 1 : 0, &s, &len),
                           0);
          char *expected = c[4 + end];
          size_t n_expected = unescape(expected);
          if (len != n_expected || memcmp(s, expected, len))
            fail_msg("%s[%s]: '%.*s' != '%s'", c[0], end ? "last" : "0", (int)len, s, expected);
        }
      } else if (count && et != GGUF_TYPE_ARRAY) {
        enum gguf_value_type t2;
        uint64_t count2;
        const void *data;
        struct aug_err err = {0};
        assert_int_equal(gguf_get_array(f, c[0], &t2, &count2, &data, &err), 0);
        size_t elem = raw_size > 12 ? (size_t)((raw_size - 12) / count) : 0;
        check_scalar(c[0], et, data, c[4]);
        check_scalar(c[0], et, (const uint8_t *)data + elem * (count - 1), c[5]);
      }
    }
    n++;
  }
  assert_int_equal(n, gguf_kv_count(f));
  free(tsv);
}

/* Compares every tensor of f with <stem>.tensors.tsv. */
static void compare_tensors(const struct gguf_file *f, const char *stem) {
  char relative[512];
  snprintf(relative, sizeof relative, "gguf/%s.tensors.tsv", stem);
  char *tsv = test_read_fixture(relative, NULL);
  const char *at = strstr(tsv, "data section at ");
  assert_non_null(at);
  assert_int_equal(gguf_data_offset(f), strtoull(at + strlen("data section at "), NULL, 10));
  size_t n = 0;
  char *save = NULL;
  for (char *line = strtok_r(tsv, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    if (line[0] == '#') continue;
    char *c[9] = {0};
    assert_int_equal(split_tabs(line, c, 9), 9);
    const struct gguf_tensor *t = gguf_tensor_at(f, n);
    assert_non_null(t);
    assert_string_equal(t->name, c[0]);
    assert_ptr_equal(gguf_find_tensor(f, c[0]), t);
    assert_int_equal(t->type, strtoul(c[1], NULL, 10));
    assert_int_equal(t->n_dims, strtoul(c[2], NULL, 10));
    for (int d = 0; d < 4; d++)
      assert_int_equal(t->ne[d], strtoull(c[3 + d], NULL, 10));
    assert_int_equal(t->offset, strtoull(c[7], NULL, 10));
    assert_int_equal(t->size, strtoull(c[8], NULL, 10));
    assert_int_equal(t->file_offset, gguf_data_offset(f) + t->offset);
    assert_int_equal((const uint8_t *)t->data - (const uint8_t *)gguf_tensor_at(f, 0)->data,
                     (int64_t)(t->file_offset - gguf_tensor_at(f, 0)->file_offset));
    n++;
  }
  assert_int_equal(n, gguf_tensor_count(f));
  free(tsv);
}

static void test_writer_matches_gguf_py(void **state) {
  (void)state;
  char golden[4096];
  fixture_path(golden, sizeof golden, "gguf/writer-small.gguf");
  struct aug_err err = {0};
  struct gguf_file *f = NULL;
  assert_int_equal(gguf_open(golden, NULL, &f, &err), 0);
  compare_kvs(f, "writer-small");
  compare_tensors(f, "writer-small");
  gguf_close(f);
}

static double seconds_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void check_model(enum test_model which, const char *stem) {
  const char *path = test_model_path(which);
  if (!path) return;
  struct aug_err err = {0};
  struct gguf_file *f = NULL;
  double start = seconds_now();
  int rc = gguf_open(path, NULL, &f, &err);
  double elapsed = seconds_now() - start;
  if (rc) fail_msg("%s", err.msg);
  print_message("gguf_open(%s): %.1f ms\n", stem, elapsed * 1e3);
  /* The budget is 100 ms on an idle machine; this bound only catches a lost index or an
   * accidental pass over the tensor data, and holds under ASan on a busy machine. */
  assert_true(elapsed < 2.0);
  compare_kvs(f, stem);
  compare_tensors(f, stem);
  gguf_close(f);
}

static void test_default_model(void **state) {
  (void)state;
  check_model(TEST_MODEL_DEFAULT, "qwen2.5-coder-1.5b-instruct-q4_k_m");
}

static void test_small_model(void **state) {
  (void)state;
  check_model(TEST_MODEL_SMALL, "qwen2.5-coder-0.5b-instruct-q4_k_m");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bad_corpus),
      cmocka_unit_test(test_every_truncation),
      cmocka_unit_test(test_every_byte_changed),
      cmocka_unit_test(test_base_opens),
      cmocka_unit_test(test_version_2),
      cmocka_unit_test(test_metadata_only_without_padding),
      cmocka_unit_test(test_nested_arrays),
      cmocka_unit_test(test_writer_round_trip),
      cmocka_unit_test(test_writer_rejects),
      cmocka_unit_test(test_writer_copy_kv),
      cmocka_unit_test(test_getter_errors),
      cmocka_unit_test(test_open_errors),
      cmocka_unit_test(test_open_alloc_failures),
      cmocka_unit_test(test_writer_alloc_failures),
      cmocka_unit_test(test_writer_matches_gguf_py),
      cmocka_unit_test(test_default_model),
      cmocka_unit_test(test_small_model),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
