/* libFuzzer target for the GGUF reader: any input either is rejected with AUG_EFORMAT and a
 * message, or opens, and then every accessor is walked and the invariants gguf.h promises are
 * checked (tensors inside the buffer, lookups finding what iteration finds). Kvs are also copied
 * into a writer, which exercises gguf_kv_raw_value on every value. Seeds:
 * tests/fuzz/fuzz_gguf.seeds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/gguf.h"

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond)) __builtin_trap();                                                                 \
  } while (0)

/* Reads every byte of [p, p + n) so that ASan sees any pointer outside the input. */
static uint8_t touch(const void *p, uint64_t n) {
  const uint8_t *b = p;
  uint8_t x = 0;
  for (uint64_t i = 0; i < n; i++)
    x ^= b[i];
  return x;
}

static void walk_kv(const struct gguf_file *f, size_t i, const uint8_t *data, size_t size) {
  struct aug_err err;
  const char *key = gguf_kv_key(f, i);
  CHECK(key && key[0]);
  CHECK(gguf_find_key(f, key) == (int64_t)i);
  enum gguf_value_type type = gguf_kv_type(f, i);
  CHECK(type < GGUF_TYPE_COUNT);
  const void *raw;
  uint64_t raw_size;
  CHECK(gguf_kv_raw_value(f, i, &raw, &raw_size) == 0);
  CHECK((const uint8_t *)raw >= data && raw_size <= size &&
        (uint64_t)((const uint8_t *)raw - data) <= size - raw_size);
  uint64_t u;
  int64_t s;
  double d;
  bool b;
  const char *str;
  size_t len;
  enum gguf_value_type et;
  uint64_t count;
  const void *elems;
  /* Each getter either fits the type or says why; none may read outside the value. */
  (void)gguf_get_uint(f, key, &u, &err);
  (void)gguf_get_int(f, key, &s, &err);
  (void)gguf_get_float(f, key, &d, &err);
  (void)gguf_get_bool(f, key, &b, &err);
  if (gguf_get_string(f, key, &str, &len, &err) == 0) {
    CHECK(type == GGUF_TYPE_STRING);
    touch(str, len);
  }
  if (gguf_get_array(f, key, &et, &count, &elems, &err) == 0) {
    CHECK(type == GGUF_TYPE_ARRAY && et == gguf_kv_array_type(f, i));
    CHECK(count == gguf_kv_array_count(f, i));
    if (et == GGUF_TYPE_STRING) {
      for (uint64_t k = 0; k < count; k++) {
        CHECK(gguf_get_array_string(f, i, k, &str, &len) == 0);
        touch(str, len);
      }
      CHECK(gguf_get_array_string(f, i, count, &str, &len) == AUG_ERANGE);
    }
  } else {
    CHECK(type != GGUF_TYPE_ARRAY);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct gguf_file *f = NULL;
  struct aug_err err = {0};
  int rc = gguf_open_memory(data, size, "fuzz.gguf", &f, &err);
  if (rc) {
    CHECK(f == NULL && err.msg[0] != '\0' && strstr(err.msg, "fuzz.gguf"));
    CHECK(rc == AUG_EFORMAT || rc == AUG_ENOMEM);
    return 0;
  }
  CHECK(gguf_version(f) == 2 || gguf_version(f) == 3);
  uint32_t alignment = gguf_alignment(f);
  CHECK(alignment && !(alignment & (alignment - 1)));
  CHECK(gguf_data_offset(f) <= size && gguf_file_size(f) == size);
  for (size_t i = 0; i < gguf_kv_count(f); i++)
    walk_kv(f, i, data, size);
  CHECK(gguf_kv_key(f, gguf_kv_count(f)) == NULL);

  for (size_t i = 0; i < gguf_tensor_count(f); i++) {
    const struct gguf_tensor *t = gguf_tensor_at(f, i);
    CHECK(t && t->name[0] && strlen(t->name) <= GGUF_MAX_TENSOR_NAME_LENGTH);
    CHECK(gguf_find_tensor(f, t->name) == t);
    CHECK(t->n_dims >= 1 && t->n_dims <= GGUF_MAX_DIMS && t->size > 0);
    CHECK(t->offset % alignment == 0);
    CHECK(t->file_offset == gguf_data_offset(f) + t->offset);
    CHECK(t->file_offset <= size && t->size <= size - t->file_offset);
    CHECK((const uint8_t *)t->data == data + t->file_offset);
    uint64_t n = 1;
    for (int d = 0; d < GGUF_MAX_DIMS; d++)
      n *= t->ne[d];
    CHECK(n == t->n_elements);
    /* First and last byte: a full touch of big tensors would only slow the fuzzer down. */
    touch(t->data, 1);
    touch((const uint8_t *)t->data + t->size - 1, 1);
  }
  CHECK(gguf_tensor_at(f, gguf_tensor_count(f)) == NULL);

  struct gguf_writer *w = NULL;
  if (gguf_writer_create(&w, &err) == 0) {
    for (size_t i = 0; i < gguf_kv_count(f); i++)
      CHECK(gguf_writer_copy_kv(w, f, i) == 0);
    gguf_writer_destroy(w);
  }
  gguf_close(f);
  return 0;
}
