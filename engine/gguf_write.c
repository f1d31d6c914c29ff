/* GGUF writer (see gguf.h): collects key/values and tensors in memory, then writes a version-3
 * file (ggml's docs/gguf.md): header, kvs in insertion order, tensor infos, padding to the
 * alignment, tensor data each at an aligned offset. Everything the reader would reject is refused
 * when it is added (AUG_EINVAL), so a written file always opens. */
#include "engine/gguf.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "engine/alloc.h"
#include "engine/quant.h"

struct writer_kv {
  char *key;
  enum gguf_value_type type;
  uint8_t *value; /* encoded as in the file (after the type field) */
  size_t value_size;
};

struct writer_tensor {
  char *name;
  uint32_t type;
  uint32_t n_dims;
  uint64_t ne[GGUF_MAX_DIMS];
  void *data;
  size_t size;
  uint64_t offset; /* in the data section, assigned at write time */
};

struct gguf_writer {
  struct writer_kv *kvs;
  size_t n_kv, kv_capacity;
  struct writer_tensor *tensors;
  size_t n_tensors, tensor_capacity;
  uint32_t alignment;
};

static const char alignment_key[] = "general.alignment";

static size_t fixed_size(enum gguf_value_type type) {
  switch (type) {
  case GGUF_TYPE_UINT8:
  case GGUF_TYPE_INT8:
  case GGUF_TYPE_BOOL: return 1;
  case GGUF_TYPE_UINT16:
  case GGUF_TYPE_INT16: return 2;
  case GGUF_TYPE_UINT32:
  case GGUF_TYPE_INT32:
  case GGUF_TYPE_FLOAT32: return 4;
  case GGUF_TYPE_UINT64:
  case GGUF_TYPE_INT64:
  case GGUF_TYPE_FLOAT64: return 8;
  default: return 0;
  }
}

static void store_u32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static void store_u64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static bool is_power_of_two(uint32_t v) {
  return v && !(v & (v - 1));
}

int gguf_writer_create(struct gguf_writer **out, struct aug_err *err) {
  if (!out) return aug_err_set(err, AUG_EINVAL, "gguf writer: no output");
  *out = aug_calloc(1, sizeof **out);
  if (!*out) return aug_err_set(err, AUG_ENOMEM, "gguf writer: out of memory");
  (*out)->alignment = GGUF_DEFAULT_ALIGNMENT;
  return 0;
}

void gguf_writer_destroy(struct gguf_writer *w) {
  if (!w) return;
  for (size_t i = 0; i < w->n_kv; i++) {
    aug_free(w->kvs[i].key);
    aug_free(w->kvs[i].value);
  }
  for (size_t i = 0; i < w->n_tensors; i++) {
    aug_free(w->tensors[i].name);
    aug_free(w->tensors[i].data);
  }
  aug_free(w->kvs);
  aug_free(w->tensors);
  aug_free(w);
}

static struct writer_kv *find_kv(struct gguf_writer *w, const char *key) {
  for (size_t i = 0; i < w->n_kv; i++)
    if (!strcmp(w->kvs[i].key, key)) return &w->kvs[i];
  return NULL;
}

/* Grows *items (of item_size bytes) so that one more fits. */
static int reserve(void **items, size_t *capacity, size_t count, size_t item_size) {
  if (count < *capacity) return 0;
  size_t grown = *capacity ? *capacity * 2 : 16;
  void *p = aug_realloc(*items, grown * item_size);
  if (!p) return AUG_ENOMEM;
  *items = p;
  *capacity = grown;
  return 0;
}

/* Adds key with an encoded value; takes ownership of value (freed on failure too). */
static int add_kv(struct gguf_writer *w, const char *key, enum gguf_value_type type, uint8_t *value,
                  size_t value_size) {
  int rc = AUG_EINVAL;
  size_t key_len = key ? strlen(key) : 0;
  if (!w || key_len == 0 || key_len > GGUF_MAX_KEY_LENGTH || find_kv(w, key)) goto fail;
  if (!strcmp(key, alignment_key)) {
    /* The reader insists on a UINT32 power of two here; keep the writer's layout in step. */
    if (type != GGUF_TYPE_UINT32) goto fail;
    uint32_t alignment = (uint32_t)value[0] | (uint32_t)value[1] << 8 | (uint32_t)value[2] << 16 |
                         (uint32_t)value[3] << 24;
    if (!is_power_of_two(alignment)) goto fail;
    w->alignment = alignment;
  }
  rc = reserve((void **)&w->kvs, &w->kv_capacity, w->n_kv, sizeof *w->kvs);
  if (rc) goto fail;
  char *copy = aug_strndup(key, key_len);
  if (!copy) {
    rc = AUG_ENOMEM;
    goto fail;
  }
  w->kvs[w->n_kv++] = (struct writer_kv){copy, type, value, value_size};
  return 0;
fail:
  aug_free(value);
  return rc;
}

static int add_scalar(struct gguf_writer *w, const char *key, enum gguf_value_type type,
                      uint64_t bits) {
  size_t size = fixed_size(type);
  uint8_t *value = aug_malloc(size);
  if (!value) return AUG_ENOMEM;
  for (size_t i = 0; i < size; i++)
    value[i] = (uint8_t)(bits >> (8 * i));
  return add_kv(w, key, type, value, size);
}

int gguf_writer_set_alignment(struct gguf_writer *w, uint32_t alignment) {
  if (!w || !is_power_of_two(alignment)) return AUG_EINVAL;
  struct writer_kv *kv = find_kv(w, alignment_key);
  if (!kv) return add_scalar(w, alignment_key, GGUF_TYPE_UINT32, alignment);
  store_u32(kv->value, alignment);
  w->alignment = alignment;
  return 0;
}

int gguf_writer_add_uint32(struct gguf_writer *w, const char *key, uint32_t value) {
  return add_scalar(w, key, GGUF_TYPE_UINT32, value);
}

int gguf_writer_add_int32(struct gguf_writer *w, const char *key, int32_t value) {
  return add_scalar(w, key, GGUF_TYPE_INT32, (uint32_t)value);
}

int gguf_writer_add_uint64(struct gguf_writer *w, const char *key, uint64_t value) {
  return add_scalar(w, key, GGUF_TYPE_UINT64, value);
}

int gguf_writer_add_float32(struct gguf_writer *w, const char *key, float value) {
  uint32_t bits;
  memcpy(&bits, &value, sizeof bits);
  return add_scalar(w, key, GGUF_TYPE_FLOAT32, bits);
}

int gguf_writer_add_bool(struct gguf_writer *w, const char *key, bool value) {
  return add_scalar(w, key, GGUF_TYPE_BOOL, value ? 1 : 0);
}

int gguf_writer_add_string(struct gguf_writer *w, const char *key, const char *str, size_t len) {
  if (!str && len) return AUG_EINVAL;
  if (len > SIZE_MAX - 8) return AUG_EINVAL;
  uint8_t *value = aug_malloc(8 + len);
  if (!value) return AUG_ENOMEM;
  store_u64(value, len);
  if (len) memcpy(value + 8, str, len);
  return add_kv(w, key, GGUF_TYPE_STRING, value, 8 + len);
}

int gguf_writer_add_array(struct gguf_writer *w, const char *key, enum gguf_value_type elem_type,
                          const void *data, uint64_t count) {
  size_t elem_size = fixed_size(elem_type);
  if (!elem_size || (!data && count)) return AUG_EINVAL;
  if (count > (SIZE_MAX - 12) / elem_size) return AUG_EINVAL;
  size_t bytes = (size_t)count * elem_size;
  uint8_t *value = aug_malloc(12 + bytes);
  if (!value) return AUG_ENOMEM;
  store_u32(value, (uint32_t)elem_type);
  store_u64(value + 4, count);
  if (bytes) memcpy(value + 12, data, bytes);
  return add_kv(w, key, GGUF_TYPE_ARRAY, value, 12 + bytes);
}

int gguf_writer_add_string_array(struct gguf_writer *w, const char *key, const char *const *strs,
                                 const size_t *lens, uint64_t count) {
  if (!strs && count) return AUG_EINVAL;
  size_t total = 12;
  for (uint64_t i = 0; i < count; i++) {
    if (!strs[i]) return AUG_EINVAL;
    size_t len = lens ? lens[i] : strlen(strs[i]);
    if (len > SIZE_MAX - 8 - total) return AUG_EINVAL;
    total += 8 + len;
  }
  uint8_t *value = aug_malloc(total);
  if (!value) return AUG_ENOMEM;
  store_u32(value, GGUF_TYPE_STRING);
  store_u64(value + 4, count);
  uint8_t *p = value + 12;
  for (uint64_t i = 0; i < count; i++) {
    size_t len = lens ? lens[i] : strlen(strs[i]);
    store_u64(p, len);
    if (len) memcpy(p + 8, strs[i], len);
    p += 8 + len;
  }
  return add_kv(w, key, GGUF_TYPE_ARRAY, value, total);
}

int gguf_writer_copy_kv(struct gguf_writer *w, const struct gguf_file *src, size_t key_index) {
  const void *raw;
  uint64_t size;
  if (!w || !src || gguf_kv_raw_value(src, key_index, &raw, &size) != 0) return AUG_EINVAL;
  uint8_t *value = aug_malloc((size_t)size);
  if (!value) return AUG_ENOMEM;
  memcpy(value, raw, (size_t)size);
  return add_kv(w, gguf_kv_key(src, key_index), gguf_kv_type(src, key_index), value, (size_t)size);
}

int gguf_writer_add_tensor(struct gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                           const uint64_t *ne, const void *data, size_t size) {
  size_t name_len = name ? strlen(name) : 0;
  if (!w || name_len == 0 || name_len > GGUF_MAX_TENSOR_NAME_LENGTH || !ne || !data) {
    return AUG_EINVAL;
  }
  if (n_dims < 1 || n_dims > GGUF_MAX_DIMS || !quant_traits(type)) return AUG_EINVAL;
  for (size_t i = 0; i < w->n_tensors; i++)
    if (!strcmp(w->tensors[i].name, name)) return AUG_EINVAL;
  /* The same limits as the reader: no zero dimension, element count below 2^63, whole rows. */
  uint64_t rows = 1, n_elements = ne[0];
  for (uint32_t d = 0; d < n_dims; d++) {
    if (ne[d] == 0) return AUG_EINVAL;
    if (d > 0) {
      if (ne[d] > (uint64_t)INT64_MAX / n_elements) return AUG_EINVAL;
      n_elements *= ne[d];
      rows *= ne[d];
    }
  }
  if (ne[0] > (uint64_t)INT64_MAX) return AUG_EINVAL;
  size_t row_size = quant_row_size(type, ne[0]);
  if (row_size == 0 || rows > SIZE_MAX / row_size || row_size * rows != size) return AUG_EINVAL;
  int rc = reserve((void **)&w->tensors, &w->tensor_capacity, w->n_tensors, sizeof *w->tensors);
  if (rc) return rc;
  struct writer_tensor t = {.type = type, .n_dims = n_dims, .size = size};
  for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++)
    t.ne[d] = d < n_dims ? ne[d] : 1;
  t.name = aug_strndup(name, name_len);
  t.data = aug_malloc(size);
  if (!t.name || !t.data) {
    aug_free(t.name);
    aug_free(t.data);
    return AUG_ENOMEM;
  }
  memcpy(t.data, data, size);
  w->tensors[w->n_tensors++] = t;
  return 0;
}

/* ---- output ---------------------------------------------------------------------------------- */

struct writer_out {
  FILE *f;
  uint64_t pos;
  bool failed;
  int error; /* errno of the first failure */
};

static void out_bytes(struct writer_out *o, const void *p, size_t n) {
  if (o->failed || n == 0) return;
  if (fwrite(p, 1, n, o->f) != n) {
    o->failed = true;
    o->error = errno;
  }
  o->pos += n;
}

static void out_u32(struct writer_out *o, uint32_t v) {
  uint8_t b[4];
  store_u32(b, v);
  out_bytes(o, b, sizeof b);
}

static void out_u64(struct writer_out *o, uint64_t v) {
  uint8_t b[8];
  store_u64(b, v);
  out_bytes(o, b, sizeof b);
}

static void out_pad(struct writer_out *o, uint32_t alignment) {
  static const uint8_t zeros[256];
  uint64_t pad = (alignment - o->pos % alignment) % alignment;
  while (pad > 0) {
    size_t n = pad < sizeof zeros ? (size_t)pad : sizeof zeros;
    out_bytes(o, zeros, n);
    pad -= n;
  }
}

static uint64_t align_up(uint64_t v, uint32_t alignment) {
  return v + (alignment - v % alignment) % alignment;
}

int gguf_writer_write(struct gguf_writer *w, const char *path, struct aug_err *err) {
  if (!w || !path) return aug_err_set(err, AUG_EINVAL, "gguf writer: no writer or path");
  uint64_t offset = 0;
  for (size_t i = 0; i < w->n_tensors; i++) {
    w->tensors[i].offset = offset;
    offset = align_up(offset + w->tensors[i].size, w->alignment);
  }
  struct writer_out o = {fopen(path, "wb"), 0, false, 0};
  if (!o.f)
    return aug_err_set(err, AUG_EIO, "gguf writer: %s: cannot create: %s", path, strerror(errno));
  out_u32(&o, GGUF_MAGIC);
  out_u32(&o, 3);
  out_u64(&o, w->n_tensors);
  out_u64(&o, w->n_kv);
  for (size_t i = 0; i < w->n_kv; i++) {
    const struct writer_kv *kv = &w->kvs[i];
    size_t key_len = strlen(kv->key);
    out_u64(&o, key_len);
    out_bytes(&o, kv->key, key_len);
    out_u32(&o, kv->type);
    out_bytes(&o, kv->value, kv->value_size);
  }
  for (size_t i = 0; i < w->n_tensors; i++) {
    const struct writer_tensor *t = &w->tensors[i];
    size_t name_len = strlen(t->name);
    out_u64(&o, name_len);
    out_bytes(&o, t->name, name_len);
    out_u32(&o, t->n_dims);
    for (uint32_t d = 0; d < t->n_dims; d++)
      out_u64(&o, t->ne[d]);
    out_u32(&o, t->type);
    out_u64(&o, t->offset);
  }
  out_pad(&o, w->alignment);
  for (size_t i = 0; i < w->n_tensors; i++) {
    out_bytes(&o, w->tensors[i].data, w->tensors[i].size);
    out_pad(&o, w->alignment);
  }
  int saved_errno = o.error;
  bool ok = !o.failed;
  if (fclose(o.f) != 0 && ok) {
    ok = false;
    saved_errno = errno;
  }
  if (!ok) {
    remove(path);
    return aug_err_set(err, AUG_EIO, "gguf writer: %s: write failed: %s", path,
                       strerror(saved_errno));
  }
  return 0;
}
