/* GGUF reader (see gguf.h; format per ggml's docs/gguf.md, versions 2 and 3). The whole file is
 * parsed and validated once at open: every length, count, type, dimension and offset is checked
 * against the bytes that are really there before it is used, so the accessors never re-check.
 * Invariants after open: keys and tensor names are unique, NUL-free and copied into one pool;
 * every tensor lies inside the file, aligned, without overlap; string arrays have per-element
 * offsets so element i is found in O(1). */
#include "engine/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/alloc.h"
#include "engine/quant.h"

/* Smallest encodings, used to bound counts by the bytes left before anything is allocated:
 * a kv is key length (8) + one key byte + value type (4) + one value byte; a tensor info is name
 * length (8) + one name byte + n_dims (4) + one dimension (8) + type (4) + offset (8). */
#define GGUF_HEADER_BYTES 24u
#define GGUF_MIN_KV_BYTES 14u
#define GGUF_MIN_TENSOR_INFO_BYTES 33u
#define GGUF_MIN_NESTED_ARRAY_BYTES 12u /* element type (4) + count (8) */
/* Index slots are 32-bit; no real file comes near this many entries. */
#define GGUF_MAX_ENTRIES 0x7fffffffu

struct gguf_kv {
  const char *key;     /* in the name pool, NUL-terminated */
  uint64_t key_offset; /* file offset of the key bytes (used until the pool is built) */
  uint64_t key_len;
  enum gguf_value_type type;
  enum gguf_value_type array_type; /* GGUF_TYPE_COUNT unless type is ARRAY */
  uint64_t array_count;
  uint64_t value_offset;    /* file offset of the value (after the type field) */
  uint64_t value_size;      /* bytes the encoded value occupies */
  uint64_t *string_offsets; /* string arrays: file offset of each element's length field */
};

struct gguf_tensor_entry {
  struct gguf_tensor tensor;
  uint64_t name_offset; /* file offset of the name bytes (used until the pool is built) */
  uint64_t name_len;
};

/* Open-addressing hash index: slots hold entry index + 1, 0 = empty; capacity a power of two. */
struct gguf_index {
  uint32_t *slots;
  uint64_t mask;
};

struct gguf_file {
  const uint8_t *base;
  uint64_t size;
  void *mapping; /* mmap'd region (size bytes) or NULL */
  void *buffer;  /* read() fallback, owned, or NULL */
  char *path;
  bool locked; /* gguf_lock_memory succeeded: munlock before unmapping or freeing */
  uint32_t version;
  uint32_t alignment;
  uint64_t data_offset;
  size_t n_kv;
  size_t n_tensors;
  struct gguf_kv *kvs;
  struct gguf_tensor_entry *tensors;
  char *names; /* pool of NUL-terminated keys and tensor names */
  struct gguf_index key_index;
  struct gguf_index tensor_index;
};

/* Parse cursor over the file bytes. */
struct gguf_reader {
  struct gguf_file *file;
  uint64_t pos;
  struct aug_err *err;
};

static const size_t value_type_sizes[GGUF_TYPE_COUNT] = {
    [GGUF_TYPE_UINT8] = 1,   [GGUF_TYPE_INT8] = 1,  [GGUF_TYPE_UINT16] = 2,  [GGUF_TYPE_INT16] = 2,
    [GGUF_TYPE_UINT32] = 4,  [GGUF_TYPE_INT32] = 4, [GGUF_TYPE_FLOAT32] = 4, [GGUF_TYPE_BOOL] = 1,
    [GGUF_TYPE_STRING] = 0,  [GGUF_TYPE_ARRAY] = 0, [GGUF_TYPE_UINT64] = 8,  [GGUF_TYPE_INT64] = 8,
    [GGUF_TYPE_FLOAT64] = 8,
};

const char *gguf_type_name(enum gguf_value_type type) {
  /* The names gguf-py's GGUFValueType uses. */
  static const char *const names[GGUF_TYPE_COUNT] = {
      [GGUF_TYPE_UINT8] = "UINT8",     [GGUF_TYPE_INT8] = "INT8",     [GGUF_TYPE_UINT16] = "UINT16",
      [GGUF_TYPE_INT16] = "INT16",     [GGUF_TYPE_UINT32] = "UINT32", [GGUF_TYPE_INT32] = "INT32",
      [GGUF_TYPE_FLOAT32] = "FLOAT32", [GGUF_TYPE_BOOL] = "BOOL",     [GGUF_TYPE_STRING] = "STRING",
      [GGUF_TYPE_ARRAY] = "ARRAY",     [GGUF_TYPE_UINT64] = "UINT64", [GGUF_TYPE_INT64] = "INT64",
      [GGUF_TYPE_FLOAT64] = "FLOAT64",
  };
  return (unsigned)type < GGUF_TYPE_COUNT ? names[type] : "unknown";
}

/* Fixed size of a scalar of this type, 0 for STRING/ARRAY/unknown. */
static size_t value_type_size(uint32_t type) {
  return type < GGUF_TYPE_COUNT ? value_type_sizes[type] : 0;
}

/* ---- little-endian loads (the format is little-endian; loads by bytes work on any host) ---- */

static uint16_t load_u16(const uint8_t *p) {
  return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t load_u32(const uint8_t *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint64_t load_u64(const uint8_t *p) {
  return (uint64_t)load_u32(p) | ((uint64_t)load_u32(p + 4) << 32);
}

/* ---- errors ---------------------------------------------------------------------------------- */

static int format_error(struct gguf_reader *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int format_error(struct gguf_reader *r, const char *fmt, ...) {
  if (r->err) {
    char what[AUG_ERR_MSG_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    aug_err_set(r->err, AUG_EFORMAT, "gguf: %s: %s", r->file->path, what);
  }
  return AUG_EFORMAT;
}

static int nomem_error(struct gguf_reader *r, uint64_t bytes, const char *what) {
  return aug_err_set(r->err, AUG_ENOMEM,
                     "gguf: %s: out of memory allocating %" PRIu64 " bytes for %s", r->file->path,
                     bytes, what);
}

static uint64_t bytes_left(const struct gguf_reader *r) {
  return r->file->size - r->pos;
}

/* Fails with a truncation message naming field unless n bytes remain. */
static int need(struct gguf_reader *r, uint64_t n, const char *field) {
  if (n <= bytes_left(r)) return 0;
  return format_error(r,
                      "truncated: %s needs %" PRIu64 " bytes at offset %" PRIu64
                      " but the file ends %" PRIu64 " bytes later",
                      field, n, r->pos, bytes_left(r));
}

static int read_u32(struct gguf_reader *r, const char *field, uint32_t *out) {
  int rc = need(r, 4, field);
  if (rc) return rc;
  *out = load_u32(r->file->base + r->pos);
  r->pos += 4;
  return 0;
}

static int read_u64(struct gguf_reader *r, const char *field, uint64_t *out) {
  int rc = need(r, 8, field);
  if (rc) return rc;
  *out = load_u64(r->file->base + r->pos);
  r->pos += 8;
  return 0;
}

/* Keys and names are printed through this so that a hostile one cannot flood the message. */
#define NAME_FMT "'%.*s%s'"
#define NAME_ARGS(ptr, len)                                                                        \
  (int)((len) > 80 ? 80 : (len)), (const char *)(ptr), (len) > 80 ? "..." : ""

/* ---- key/value section ----------------------------------------------------------------------- */

/* Reads a name: u64 length then bytes, 1..max_len bytes, no NUL inside. what is "kv[3] key" or
 * "tensor[5] name". */
static int read_name(struct gguf_reader *r, const char *what, uint64_t max_len, uint64_t *offset,
                     uint64_t *len) {
  char field[64];
  snprintf(field, sizeof field, "%.48s length", what);
  int rc = read_u64(r, field, len);
  if (rc) return rc;
  if (*len == 0) return format_error(r, "%s is empty", what);
  if (*len > max_len)
    return format_error(r, "%s length %" PRIu64 " exceeds the limit of %" PRIu64 " bytes", what,
                        *len, max_len);
  if (*len > bytes_left(r))
    return format_error(r,
                        "%s length %" PRIu64 " runs past the end of the file (%" PRIu64
                        " bytes left at offset %" PRIu64 ")",
                        what, *len, bytes_left(r), r->pos);
  const uint8_t *p = r->file->base + r->pos;
  if (memchr(p, 0, (size_t)*len))
    return format_error(r, "%s " NAME_FMT " contains a NUL byte", what, NAME_ARGS(p, *len));
  *offset = r->pos;
  r->pos += *len;
  return 0;
}

/* Context for the errors of one kv value: which key we are in. */
struct kv_context {
  size_t index;
  const uint8_t *key;
  uint64_t key_len;
};

#define KV_FMT "kv[%zu] " NAME_FMT
#define KV_ARGS(c) (c)->index, NAME_ARGS((c)->key, (c)->key_len)

static int read_kv_u64(struct gguf_reader *r, const struct kv_context *c, const char *what,
                       uint64_t *out) {
  if (bytes_left(r) < 8)
    return format_error(r,
                        "truncated: " KV_FMT ": %s needs 8 bytes at offset %" PRIu64
                        " but the file ends %" PRIu64 " bytes later",
                        KV_ARGS(c), what, r->pos, bytes_left(r));
  *out = load_u64(r->file->base + r->pos);
  r->pos += 8;
  return 0;
}

static int read_kv_u32(struct gguf_reader *r, const struct kv_context *c, const char *what,
                       uint32_t *out) {
  if (bytes_left(r) < 4)
    return format_error(r,
                        "truncated: " KV_FMT ": %s needs 4 bytes at offset %" PRIu64
                        " but the file ends %" PRIu64 " bytes later",
                        KV_ARGS(c), what, r->pos, bytes_left(r));
  *out = load_u32(r->file->base + r->pos);
  r->pos += 4;
  return 0;
}

/* A string value: u64 length then that many bytes (any bytes: values are not names). */
static int skip_string(struct gguf_reader *r, const struct kv_context *c, const char *what) {
  uint64_t len = 0;
  int rc = read_kv_u64(r, c, what, &len);
  if (rc) return rc;
  if (len > bytes_left(r))
    return format_error(r,
                        KV_FMT ": %s length %" PRIu64 " runs past the end of the file (%" PRIu64
                               " bytes left at offset %" PRIu64 ")",
                        KV_ARGS(c), what, len, bytes_left(r), r->pos);
  r->pos += len;
  return 0;
}

/* An array value (after its ARRAY type tag): element type, count, elements. depth counts the
 * arrays this one is nested in (0 for a kv's own array); top is the kv when this is its own
 * array, so that string arrays get their element offsets. */
static int parse_array(struct gguf_reader *r, const struct kv_context *c, unsigned depth,
                       struct gguf_kv *top) {
  uint32_t elem_type = 0;
  uint64_t count = 0;
  int rc = read_kv_u32(r, c, "array element type", &elem_type);
  if (rc) return rc;
  if (elem_type >= GGUF_TYPE_COUNT)
    return format_error(r, KV_FMT ": array element type %" PRIu32 " is unknown", KV_ARGS(c),
                        elem_type);
  rc = read_kv_u64(r, c, "array count", &count);
  if (rc) return rc;
  if (top) {
    top->array_type = (enum gguf_value_type)elem_type;
    top->array_count = count;
  }
  size_t elem_size = value_type_size(elem_type);
  if (elem_size) {
    if (count > bytes_left(r) / elem_size)
      return format_error(
          r,
          KV_FMT ": array count %" PRIu64 " of %s (%zu bytes each) runs past "
                 "the end of the file (%" PRIu64 " bytes left at offset %" PRIu64 ")",
          KV_ARGS(c), count, gguf_type_name(elem_type), elem_size, bytes_left(r), r->pos);
    r->pos += count * elem_size;
    return 0;
  }
  if (elem_type == GGUF_TYPE_STRING) {
    if (count > bytes_left(r) / 8)
      return format_error(r,
                          KV_FMT ": array count %" PRIu64 " of STRING runs past the end of the "
                                 "file (%" PRIu64 " bytes left at offset %" PRIu64 ")",
                          KV_ARGS(c), count, bytes_left(r), r->pos);
    if (top && count) {
      top->string_offsets = aug_malloc(count * sizeof *top->string_offsets);
      if (!top->string_offsets)
        return nomem_error(r, count * sizeof *top->string_offsets, "string array offsets");
    }
    for (uint64_t i = 0; i < count; i++) {
      if (top) top->string_offsets[i] = r->pos;
      rc = skip_string(r, c, "array string");
      if (rc) return rc;
    }
    return 0;
  }
  /* Arrays of arrays: each element is itself an element type, a count and elements. */
  if (depth + 1 >= GGUF_MAX_ARRAY_DEPTH)
    return format_error(r, KV_FMT ": arrays nested deeper than %d", KV_ARGS(c),
                        GGUF_MAX_ARRAY_DEPTH);
  if (count > bytes_left(r) / GGUF_MIN_NESTED_ARRAY_BYTES)
    return format_error(r,
                        KV_FMT ": array count %" PRIu64 " of ARRAY runs past the end of the "
                               "file (%" PRIu64 " bytes left at offset %" PRIu64 ")",
                        KV_ARGS(c), count, bytes_left(r), r->pos);
  for (uint64_t i = 0; i < count; i++) {
    rc = parse_array(r, c, depth + 1, NULL);
    if (rc) return rc;
  }
  return 0;
}

static int parse_alignment(struct gguf_reader *r, const struct gguf_kv *kv) {
  if (kv->type != GGUF_TYPE_UINT32)
    return format_error(r, "general.alignment has type %s, expected UINT32",
                        gguf_type_name(kv->type));
  uint32_t alignment = load_u32(r->file->base + kv->value_offset);
  if (alignment == 0 || (alignment & (alignment - 1)) != 0)
    return format_error(r, "general.alignment %" PRIu32 " is not a nonzero power of two",
                        alignment);
  r->file->alignment = alignment;
  return 0;
}

static int parse_kv(struct gguf_reader *r, size_t index) {
  struct gguf_kv *kv = &r->file->kvs[index];
  kv->array_type = GGUF_TYPE_COUNT;
  char what[48];
  snprintf(what, sizeof what, "kv[%zu] key", index);
  int rc = read_name(r, what, GGUF_MAX_KEY_LENGTH, &kv->key_offset, &kv->key_len);
  if (rc) return rc;
  struct kv_context c = {index, r->file->base + kv->key_offset, kv->key_len};
  uint32_t type = 0;
  rc = read_kv_u32(r, &c, "value type", &type);
  if (rc) return rc;
  if (type >= GGUF_TYPE_COUNT)
    return format_error(r, KV_FMT ": value type %" PRIu32 " is unknown", KV_ARGS(&c), type);
  kv->type = (enum gguf_value_type)type;
  kv->value_offset = r->pos;
  size_t size = value_type_size(type);
  if (size) {
    if (bytes_left(r) < size)
      return format_error(r,
                          "truncated: " KV_FMT ": %s value needs %zu bytes at offset %" PRIu64
                          " but the file ends %" PRIu64 " bytes later",
                          KV_ARGS(&c), gguf_type_name(kv->type), size, r->pos, bytes_left(r));
    r->pos += size;
  } else if (type == GGUF_TYPE_STRING) {
    rc = skip_string(r, &c, "string");
  } else {
    rc = parse_array(r, &c, 0, kv);
  }
  if (rc) return rc;
  kv->value_size = r->pos - kv->value_offset;
  static const char alignment_key[] = "general.alignment";
  if (kv->key_len == sizeof alignment_key - 1 &&
      !memcmp(c.key, alignment_key, sizeof alignment_key - 1))
    return parse_alignment(r, kv);
  return 0;
}

/* ---- tensor infos ---------------------------------------------------------------------------- */

#define TENSOR_FMT "tensor " NAME_FMT
#define TENSOR_ARGS(e) NAME_ARGS(r->file->base + (e)->name_offset, (e)->name_len)

static int parse_tensor_info(struct gguf_reader *r, size_t index) {
  struct gguf_tensor_entry *e = &r->file->tensors[index];
  struct gguf_tensor *t = &e->tensor;
  char field[GGUF_MAX_TENSOR_NAME_LENGTH + 64];
  snprintf(field, sizeof field, "tensor[%zu] name", index);
  int rc = read_name(r, field, GGUF_MAX_TENSOR_NAME_LENGTH, &e->name_offset, &e->name_len);
  if (rc) return rc;
  snprintf(field, sizeof field, "tensor '%.*s' n_dims", (int)e->name_len,
           (const char *)r->file->base + e->name_offset);
  rc = read_u32(r, field, &t->n_dims);
  if (rc) return rc;
  if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS)
    return format_error(r, TENSOR_FMT ": n_dims %" PRIu32 " is not in 1..%d", TENSOR_ARGS(e),
                        t->n_dims, GGUF_MAX_DIMS);
  uint64_t n_elements = 1;
  for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
    if (d >= t->n_dims) {
      t->ne[d] = 1;
      continue;
    }
    snprintf(field, sizeof field, "tensor '%.*s' ne[%" PRIu32 "]", (int)e->name_len,
             (const char *)r->file->base + e->name_offset, d);
    rc = read_u64(r, field, &t->ne[d]);
    if (rc) return rc;
    if (t->ne[d] == 0)
      return format_error(r, TENSOR_FMT ": ne[%" PRIu32 "] is 0", TENSOR_ARGS(e), d);
    /* Element counts are int64_t downstream (quant rows, backends): keep them below 2^63. */
    if (t->ne[d] > (uint64_t)INT64_MAX / n_elements)
      return format_error(r, TENSOR_FMT ": element count overflows at ne[%" PRIu32 "] = %" PRIu64,
                          TENSOR_ARGS(e), d, t->ne[d]);
    n_elements *= t->ne[d];
  }
  t->n_elements = n_elements;
  snprintf(field, sizeof field, "tensor '%.*s' type", (int)e->name_len,
           (const char *)r->file->base + e->name_offset);
  rc = read_u32(r, field, &t->type);
  if (rc) return rc;
  const struct quant_type_traits *traits = quant_traits(t->type);
  if (!traits || traits->block_size == 0)
    return format_error(r, TENSOR_FMT ": type %" PRIu32 " is unknown", TENSOR_ARGS(e), t->type);
  if (t->ne[0] % traits->block_size != 0)
    return format_error(
        r, TENSOR_FMT ": ne[0] %" PRIu64 " is not a multiple of the block size %" PRIu32 " of %s",
        TENSOR_ARGS(e), t->ne[0], traits->block_size, traits->name);
  /* bytes = blocks per row * block bytes * rows, each step checked. */
  uint64_t size = t->ne[0] / traits->block_size;
  uint64_t factors[GGUF_MAX_DIMS] = {traits->type_size, t->ne[1], t->ne[2], t->ne[3]};
  for (int i = 0; i < GGUF_MAX_DIMS; i++) {
    if (factors[i] && size > UINT64_MAX / factors[i])
      return format_error(r, TENSOR_FMT ": byte size of %" PRIu64 " elements of %s overflows",
                          TENSOR_ARGS(e), n_elements, traits->name);
    size *= factors[i];
  }
  t->size = size;
  snprintf(field, sizeof field, "tensor '%.*s' offset", (int)e->name_len,
           (const char *)r->file->base + e->name_offset);
  rc = read_u64(r, field, &t->offset);
  if (rc) return rc;
  if (t->offset % r->file->alignment != 0)
    return format_error(r, TENSOR_FMT ": offset %" PRIu64 " is not aligned to %" PRIu32,
                        TENSOR_ARGS(e), t->offset, r->file->alignment);
  return 0;
}

/* ---- indexes --------------------------------------------------------------------------------- */

static uint64_t hash_bytes(const char *s, size_t n) {
  /* FNV-1a, 64-bit. */
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; i++) {
    h ^= (uint8_t)s[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

static int index_init(struct gguf_reader *r, struct gguf_index *index, size_t n, const char *what) {
  uint64_t capacity = 8;
  while (capacity < 2 * (uint64_t)n)
    capacity *= 2;
  index->slots = aug_calloc(capacity, sizeof *index->slots);
  if (!index->slots) return nomem_error(r, capacity * sizeof *index->slots, what);
  index->mask = capacity - 1;
  return 0;
}

/* Returns the slot where name lives or should go. name_of(i) gives entry i's NUL-terminated name.
 */
static uint64_t index_probe(const struct gguf_index *index, const char *name, size_t len,
                            const char *(*name_of)(const struct gguf_file *, size_t),
                            const struct gguf_file *file) {
  uint64_t slot = hash_bytes(name, len) & index->mask;
  while (index->slots[slot]) {
    const char *other = name_of(file, index->slots[slot] - 1);
    if (!strncmp(other, name, len) && other[len] == '\0') break;
    slot = (slot + 1) & index->mask;
  }
  return slot;
}

static const char *kv_name_of(const struct gguf_file *file, size_t i) {
  return file->kvs[i].key;
}

static const char *tensor_name_of(const struct gguf_file *file, size_t i) {
  return file->tensors[i].tensor.name;
}

static int build_indexes(struct gguf_reader *r) {
  struct gguf_file *f = r->file;
  int rc = index_init(r, &f->key_index, f->n_kv, "the key index");
  if (rc) return rc;
  for (size_t i = 0; i < f->n_kv; i++) {
    const struct gguf_kv *kv = &f->kvs[i];
    uint64_t slot = index_probe(&f->key_index, kv->key, kv->key_len, kv_name_of, f);
    if (f->key_index.slots[slot])
      return format_error(r, "kv[%zu]: duplicate key " NAME_FMT " (first at kv[%" PRIu32 "])", i,
                          NAME_ARGS(kv->key, kv->key_len), f->key_index.slots[slot] - 1);
    f->key_index.slots[slot] = (uint32_t)i + 1;
  }
  rc = index_init(r, &f->tensor_index, f->n_tensors, "the tensor index");
  if (rc) return rc;
  for (size_t i = 0; i < f->n_tensors; i++) {
    const struct gguf_tensor_entry *e = &f->tensors[i];
    uint64_t slot = index_probe(&f->tensor_index, e->tensor.name, e->name_len, tensor_name_of, f);
    if (f->tensor_index.slots[slot])
      return format_error(
          r, "tensor[%zu]: duplicate tensor name " NAME_FMT " (first at tensor[%" PRIu32 "])", i,
          NAME_ARGS(e->tensor.name, e->name_len), f->tensor_index.slots[slot] - 1);
    f->tensor_index.slots[slot] = (uint32_t)i + 1;
  }
  return 0;
}

/* Copies every key and tensor name into one pool so the accessors hand out C strings. */
static int build_name_pool(struct gguf_reader *r) {
  struct gguf_file *f = r->file;
  uint64_t total = 1; /* the bounds at open keep this far below the file size */
  for (size_t i = 0; i < f->n_kv; i++)
    total += f->kvs[i].key_len + 1;
  for (size_t i = 0; i < f->n_tensors; i++)
    total += f->tensors[i].name_len + 1;
  f->names = aug_malloc(total);
  if (!f->names) return nomem_error(r, total, "key and tensor names");
  char *p = f->names;
  for (size_t i = 0; i < f->n_kv; i++) {
    struct gguf_kv *kv = &f->kvs[i];
    memcpy(p, f->base + kv->key_offset, kv->key_len);
    p[kv->key_len] = '\0';
    kv->key = p;
    p += kv->key_len + 1;
  }
  for (size_t i = 0; i < f->n_tensors; i++) {
    struct gguf_tensor_entry *e = &f->tensors[i];
    memcpy(p, f->base + e->name_offset, e->name_len);
    p[e->name_len] = '\0';
    e->tensor.name = p;
    p += e->name_len + 1;
  }
  return 0;
}

/* ---- data section ---------------------------------------------------------------------------- */

static int compare_by_offset(const void *a, const void *b) {
  const struct gguf_tensor *x = *(const struct gguf_tensor *const *)a;
  const struct gguf_tensor *y = *(const struct gguf_tensor *const *)b;
  return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static int check_data_section(struct gguf_reader *r) {
  struct gguf_file *f = r->file;
  /* The data section starts at the first multiple of the alignment after the tensor infos. */
  uint64_t end = r->pos;
  f->data_offset = end + (f->alignment - end % f->alignment) % f->alignment;
  if (f->data_offset > f->size) {
    if (f->n_tensors == 0) {
      /* A metadata-only file may stop right after its header (llama.cpp accepts this). */
      f->data_offset = f->size;
      return 0;
    }
    return format_error(r,
                        "data section starts at offset %" PRIu64 " (aligned to %" PRIu32
                        "), past the end of the file (%" PRIu64 " bytes)",
                        f->data_offset, f->alignment, f->size);
  }
  uint64_t data_size = f->size - f->data_offset;
  for (size_t i = 0; i < f->n_tensors; i++) {
    struct gguf_tensor *t = &f->tensors[i].tensor;
    if (t->offset > data_size || t->size > data_size - t->offset)
      return format_error(r,
                          "tensor '%s': data at offset %" PRIu64 " (%" PRIu64 " bytes) runs "
                          "past the end of the file (data section of %" PRIu64 " bytes at %" PRIu64
                          ")",
                          t->name, t->offset, t->size, data_size, f->data_offset);
    t->file_offset = f->data_offset + t->offset;
    t->data = f->base + t->file_offset;
  }
  if (f->n_tensors < 2) return 0;
  const struct gguf_tensor **sorted = aug_malloc(f->n_tensors * sizeof *sorted);
  if (!sorted) return nomem_error(r, f->n_tensors * sizeof *sorted, "the overlap check");
  for (size_t i = 0; i < f->n_tensors; i++)
    sorted[i] = &f->tensors[i].tensor;
  qsort(sorted, f->n_tensors, sizeof *sorted, compare_by_offset);
  int rc = 0;
  for (size_t i = 1; i < f->n_tensors && !rc; i++) {
    const struct gguf_tensor *a = sorted[i - 1], *b = sorted[i];
    if (a->offset + a->size > b->offset)
      rc = format_error(r,
                        "tensor '%s': data at offset %" PRIu64
                        " overlaps tensor '%s' (offset %" PRIu64 ", %" PRIu64 " bytes)",
                        b->name, b->offset, a->name, a->offset, a->size);
  }
  aug_free((void *)sorted);
  return rc;
}

/* ---- open ------------------------------------------------------------------------------------ */

static int parse_header(struct gguf_reader *r) {
  struct gguf_file *f = r->file;
  uint32_t magic = 0;
  int rc = read_u32(r, "magic", &magic);
  if (rc) return rc;
  if (magic != GGUF_MAGIC)
    return format_error(r, "bad magic 0x%08" PRIx32 " (expected 0x%08x, \"GGUF\")", magic,
                        GGUF_MAGIC);
  rc = read_u32(r, "version", &f->version);
  if (rc) return rc;
  if (f->version == 1)
    return format_error(r, "version 1 is not supported (32-bit counts; only versions 2 and 3)");
  if (f->version != 2 && f->version != 3) {
    uint32_t swapped = __builtin_bswap32(f->version);
    return format_error(r, "version %" PRIu32 " is unknown (expected 2 or 3)%s", f->version,
                        swapped == 2 || swapped == 3 ? "; a big-endian file?" : "");
  }
  uint64_t n_tensors = 0, n_kv = 0;
  rc = read_u64(r, "n_tensors", &n_tensors);
  if (rc) return rc;
  rc = read_u64(r, "n_kv", &n_kv);
  if (rc) return rc;
  /* Bound both counts by the bytes that follow, so nothing is allocated for entries that cannot
   * be there. */
  uint64_t left = bytes_left(r);
  if (n_kv > left / GGUF_MIN_KV_BYTES || n_kv > GGUF_MAX_ENTRIES)
    return format_error(r,
                        "n_kv %" PRIu64 " cannot fit in the %" PRIu64 " bytes after the header"
                        " (each kv takes at least %u)",
                        n_kv, left, GGUF_MIN_KV_BYTES);
  if (n_tensors > left / GGUF_MIN_TENSOR_INFO_BYTES || n_tensors > GGUF_MAX_ENTRIES)
    return format_error(r,
                        "n_tensors %" PRIu64 " cannot fit in the %" PRIu64 " bytes after the "
                        "header (each tensor info takes at least %u)",
                        n_tensors, left, GGUF_MIN_TENSOR_INFO_BYTES);
  if (n_kv * GGUF_MIN_KV_BYTES + n_tensors * GGUF_MIN_TENSOR_INFO_BYTES > left)
    return format_error(r,
                        "n_kv %" PRIu64 " and n_tensors %" PRIu64
                        " cannot fit together in the %" PRIu64 " bytes after the header",
                        n_kv, n_tensors, left);
  f->n_kv = (size_t)n_kv;
  f->n_tensors = (size_t)n_tensors;
  return 0;
}

static int parse(struct gguf_reader *r) {
  struct gguf_file *f = r->file;
  int rc = parse_header(r);
  if (rc) return rc;
  f->kvs = aug_calloc(f->n_kv ? f->n_kv : 1, sizeof *f->kvs);
  if (!f->kvs) return nomem_error(r, f->n_kv * sizeof *f->kvs, "the kv table");
  for (size_t i = 0; i < f->n_kv; i++) {
    rc = parse_kv(r, i);
    if (rc) return rc;
  }
  f->tensors = aug_calloc(f->n_tensors ? f->n_tensors : 1, sizeof *f->tensors);
  if (!f->tensors) return nomem_error(r, f->n_tensors * sizeof *f->tensors, "the tensor table");
  for (size_t i = 0; i < f->n_tensors; i++) {
    rc = parse_tensor_info(r, i);
    if (rc) return rc;
  }
  rc = build_name_pool(r);
  if (rc) return rc;
  rc = build_indexes(r);
  if (rc) return rc;
  return check_data_section(r);
}

static int file_create(const char *name, struct gguf_file **out, struct aug_err *err) {
  struct gguf_file *f = aug_calloc(1, sizeof *f);
  if (!f)
    return aug_err_set(err, AUG_ENOMEM, "gguf: %s: out of memory allocating %zu bytes", name,
                       sizeof *f);
  f->path = aug_strndup(name, strlen(name));
  if (!f->path) {
    aug_free(f);
    return aug_err_set(err, AUG_ENOMEM, "gguf: %s: out of memory copying the path", name);
  }
  f->alignment = GGUF_DEFAULT_ALIGNMENT;
  *out = f;
  return 0;
}

static int parse_or_close(struct gguf_file *f, struct gguf_file **out, struct aug_err *err) {
  struct gguf_reader r = {f, 0, err};
  int rc = parse(&r);
  if (rc) {
    gguf_close(f);
    return rc;
  }
  *out = f;
  return 0;
}

struct gguf_open_params gguf_open_params_default(void) {
  return (struct gguf_open_params){.use_mmap = true};
}

int gguf_open_memory(const void *buf, size_t size, const char *name, struct gguf_file **out,
                     struct aug_err *err) {
  if (!out || (!buf && size)) return aug_err_set(err, AUG_EINVAL, "gguf: no buffer or output");
  *out = NULL;
  struct gguf_file *f = NULL;
  int rc = file_create(name ? name : "<memory>", &f, err);
  if (rc) return rc;
  f->base = size ? buf : (const uint8_t *)"";
  f->size = size;
  return parse_or_close(f, out, err);
}

static int read_whole(int fd, struct gguf_file *f, struct aug_err *err) {
  f->buffer = aug_malloc(f->size ? f->size : 1);
  if (!f->buffer)
    return aug_err_set(err, AUG_ENOMEM, "gguf: %s: out of memory reading %" PRIu64 " bytes",
                       f->path, f->size);
  uint64_t done = 0;
  while (done < f->size) {
    ssize_t n = read(fd, (uint8_t *)f->buffer + done, f->size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      return aug_err_set(err, AUG_EIO, "gguf: %s: read failed at offset %" PRIu64 ": %s", f->path,
                         done, strerror(errno));
    if (n == 0)
      return aug_err_set(err, AUG_EIO,
                         "gguf: %s: file shrank to %" PRIu64 " bytes while reading "
                         "(expected %" PRIu64 ")",
                         f->path, done, f->size);
    done += (uint64_t)n;
  }
  f->base = f->buffer;
  return 0;
}

int gguf_open(const char *path, const struct gguf_open_params *params, struct gguf_file **out,
              struct aug_err *err) {
  if (!path || !out) return aug_err_set(err, AUG_EINVAL, "gguf: no path or output");
  *out = NULL;
  struct gguf_open_params defaults = gguf_open_params_default();
  if (!params) params = &defaults;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return aug_err_set(err, AUG_EIO, "gguf: %s: cannot open: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    return aug_err_set(err, AUG_EIO, "gguf: %s: cannot stat: %s", path, strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return aug_err_set(err, AUG_EIO, "gguf: %s: not a regular file", path);
  }
  struct gguf_file *f = NULL;
  int rc = file_create(path, &f, err);
  if (rc) {
    close(fd);
    return rc;
  }
  f->size = (uint64_t)st.st_size;
  if (params->use_mmap && f->size > 0) {
    void *map = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map != MAP_FAILED) {
      f->mapping = map;
      f->base = map;
    }
  }
  if (!f->base) {
    /* Reading is the fallback where mapping is refused or not wanted. */
    rc = read_whole(fd, f, err);
    if (rc) {
      close(fd);
      gguf_close(f);
      return rc;
    }
  }
  close(fd);
  return parse_or_close(f, out, err);
}

void gguf_close(struct gguf_file *file) {
  if (!file) return;
  if (file->kvs) {
    for (size_t i = 0; i < file->n_kv; i++)
      aug_free(file->kvs[i].string_offsets);
  }
  aug_free(file->kvs);
  aug_free(file->tensors);
  aug_free(file->names);
  aug_free(file->key_index.slots);
  aug_free(file->tensor_index.slots);
  if (file->locked) munlock(file->base, file->size);
  if (file->mapping) munmap(file->mapping, file->size);
  aug_free(file->buffer);
  aug_free(file->path);
  aug_free(file);
}

/* RLIMIT_MEMLOCK as the shell's `ulimit -l` shows it: KiB or "unlimited". */
static void gguf_format_memlock(rlim_t v, char *out, size_t size) {
  if (v == RLIM_INFINITY)
    snprintf(out, size, "unlimited");
  else
    snprintf(out, size, "%llu KiB", (unsigned long long)(v / 1024));
}

int gguf_lock_memory(struct gguf_file *file, struct aug_err *err) {
  if (file->locked || file->size == 0) return 0;
  /* mlock(2) faults every page in and pins it, so the weights are never evicted under memory
   * pressure and the first token after an idle spell does not wait for the disk. */
  if (mlock(file->base, file->size) == 0) {
    file->locked = true;
    return 0;
  }
  int e = errno;
  struct rlimit rl = {0, 0};
  char soft[32] = "unknown", hard[32] = "unknown";
  if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0) {
    gguf_format_memlock(rl.rlim_cur, soft, sizeof soft);
    gguf_format_memlock(rl.rlim_max, hard, sizeof hard);
  }
  unsigned long long need_kib = (unsigned long long)((file->size + 1023) / 1024);
  if (e == ENOMEM || e == EPERM || e == EAGAIN)
    return aug_err_set(err, AUG_ENOMEM,
                       "gguf: %s: cannot lock %llu KiB of weights in memory (mlock: %s): "
                       "RLIMIT_MEMLOCK is %s (hard limit %s); raise it to at least %llu KiB "
                       "with `ulimit -l unlimited` in the shell that starts augury, a `memlock` "
                       "line in /etc/security/limits.conf, or LimitMEMLOCK=infinity for a "
                       "systemd service; the model still runs, unlocked",
                       file->path, need_kib, strerror(e), soft, hard, need_kib);
  return aug_err_set(err, AUG_EIO,
                     "gguf: %s: cannot lock %llu KiB of weights in memory (mlock: %s); the model "
                     "still runs, unlocked",
                     file->path, need_kib, strerror(e));
}

bool gguf_memory_locked(const struct gguf_file *file) {
  return file->locked;
}

/* ---- accessors ------------------------------------------------------------------------------- */

uint32_t gguf_version(const struct gguf_file *file) {
  return file->version;
}
uint32_t gguf_alignment(const struct gguf_file *file) {
  return file->alignment;
}
uint64_t gguf_data_offset(const struct gguf_file *file) {
  return file->data_offset;
}
uint64_t gguf_file_size(const struct gguf_file *file) {
  return file->size;
}
const char *gguf_path(const struct gguf_file *file) {
  return file->path;
}
size_t gguf_kv_count(const struct gguf_file *file) {
  return file->n_kv;
}
size_t gguf_tensor_count(const struct gguf_file *file) {
  return file->n_tensors;
}

int64_t gguf_find_key(const struct gguf_file *file, const char *key) {
  if (!key) return -1;
  uint64_t slot = index_probe(&file->key_index, key, strlen(key), kv_name_of, file);
  return (int64_t)file->key_index.slots[slot] - 1;
}

const char *gguf_kv_key(const struct gguf_file *file, size_t index) {
  return index < file->n_kv ? file->kvs[index].key : NULL;
}

enum gguf_value_type gguf_kv_type(const struct gguf_file *file, size_t index) {
  return index < file->n_kv ? file->kvs[index].type : GGUF_TYPE_COUNT;
}

enum gguf_value_type gguf_kv_array_type(const struct gguf_file *file, size_t index) {
  return index < file->n_kv ? file->kvs[index].array_type : GGUF_TYPE_COUNT;
}

uint64_t gguf_kv_array_count(const struct gguf_file *file, size_t index) {
  return index < file->n_kv ? file->kvs[index].array_count : 0;
}

const struct gguf_tensor *gguf_tensor_at(const struct gguf_file *file, size_t index) {
  return index < file->n_tensors ? &file->tensors[index].tensor : NULL;
}

const struct gguf_tensor *gguf_find_tensor(const struct gguf_file *file, const char *name) {
  if (!name) return NULL;
  uint64_t slot = index_probe(&file->tensor_index, name, strlen(name), tensor_name_of, file);
  uint32_t entry = file->tensor_index.slots[slot];
  return entry ? &file->tensors[entry - 1].tensor : NULL;
}

/* Finds key or fails with AUG_ENOTFOUND naming it. */
static const struct gguf_kv *lookup(const struct gguf_file *file, const char *key,
                                    struct aug_err *err) {
  int64_t index = gguf_find_key(file, key);
  if (index < 0) {
    aug_err_set(err, AUG_ENOTFOUND, "gguf: %s: key '%s' not found", file->path, key ? key : "");
    return NULL;
  }
  return &file->kvs[index];
}

static int type_mismatch(const struct gguf_file *file, const struct gguf_kv *kv,
                         const char *expected, struct aug_err *err) {
  return aug_err_set(err, AUG_EFORMAT, "gguf: %s: key '%s' has type %s, expected %s", file->path,
                     kv->key, gguf_type_name(kv->type), expected);
}

/* Reads an integer kv as a sign and magnitude; false when kv is not an integer type. */
static bool load_integer(const struct gguf_file *file, const struct gguf_kv *kv, bool *negative,
                         uint64_t *magnitude) {
  const uint8_t *p = file->base + kv->value_offset;
  int64_t s;
  switch (kv->type) {
  case GGUF_TYPE_UINT8: *negative = false, *magnitude = p[0]; return true;
  case GGUF_TYPE_UINT16: *negative = false, *magnitude = load_u16(p); return true;
  case GGUF_TYPE_UINT32: *negative = false, *magnitude = load_u32(p); return true;
  case GGUF_TYPE_UINT64: *negative = false, *magnitude = load_u64(p); return true;
  case GGUF_TYPE_INT8: s = (int8_t)p[0]; break;
  case GGUF_TYPE_INT16: s = (int16_t)load_u16(p); break;
  case GGUF_TYPE_INT32: s = (int32_t)load_u32(p); break;
  case GGUF_TYPE_INT64: s = (int64_t)load_u64(p); break;
  default: return false;
  }
  *negative = s < 0;
  *magnitude = s < 0 ? (uint64_t)0 - (uint64_t)s : (uint64_t)s;
  return true;
}

int gguf_get_uint(const struct gguf_file *file, const char *key, uint64_t *out,
                  struct aug_err *err) {
  const struct gguf_kv *kv = lookup(file, key, err);
  if (!kv) return AUG_ENOTFOUND;
  bool negative;
  uint64_t magnitude;
  if (!load_integer(file, kv, &negative, &magnitude))
    return type_mismatch(file, kv, "an unsigned integer", err);
  if (negative)
    return aug_err_set(err, AUG_ERANGE,
                       "gguf: %s: key '%s' is -%" PRIu64 ", expected a "
                       "non-negative integer",
                       file->path, key, magnitude);
  *out = magnitude;
  return 0;
}

int gguf_get_int(const struct gguf_file *file, const char *key, int64_t *out, struct aug_err *err) {
  const struct gguf_kv *kv = lookup(file, key, err);
  if (!kv) return AUG_ENOTFOUND;
  bool negative;
  uint64_t magnitude;
  if (!load_integer(file, kv, &negative, &magnitude))
    return type_mismatch(file, kv, "an integer", err);
  if (!negative && magnitude > (uint64_t)INT64_MAX)
    return aug_err_set(err, AUG_ERANGE, "gguf: %s: key '%s' is %" PRIu64 ", more than INT64_MAX",
                       file->path, key, magnitude);
  *out = negative ? (int64_t)(0 - magnitude) : (int64_t)magnitude;
  return 0;
}

int gguf_get_float(const struct gguf_file *file, const char *key, double *out,
                   struct aug_err *err) {
  const struct gguf_kv *kv = lookup(file, key, err);
  if (!kv) return AUG_ENOTFOUND;
  const uint8_t *p = file->base + kv->value_offset;
  if (kv->type == GGUF_TYPE_FLOAT32) {
    uint32_t bits = load_u32(p);
    float v;
    memcpy(&v, &bits, sizeof v);
    *out = v;
  } else if (kv->type == GGUF_TYPE_FLOAT64) {
    uint64_t bits = load_u64(p);
    memcpy(out, &bits, sizeof *out);
  } else {
    return type_mismatch(file, kv, "FLOAT32 or FLOAT64", err);
  }
  return 0;
}

int gguf_get_bool(const struct gguf_file *file, const char *key, bool *out, struct aug_err *err) {
  const struct gguf_kv *kv = lookup(file, key, err);
  if (!kv) return AUG_ENOTFOUND;
  if (kv->type != GGUF_TYPE_BOOL) return type_mismatch(file, kv, "BOOL", err);
  *out = file->base[kv->value_offset] != 0;
  return 0;
}

int gguf_get_string(const struct gguf_file *file, const char *key, const char **str, size_t *len,
                    struct aug_err *err) {
  const struct gguf_kv *kv = lookup(file, key, err);
  if (!kv) return AUG_ENOTFOUND;
  if (kv->type != GGUF_TYPE_STRING) return type_mismatch(file, kv, "STRING", err);
  *len = (size_t)load_u64(file->base + kv->value_offset);
  *str = (const char *)file->base + kv->value_offset + 8;
  return 0;
}

int gguf_get_array(const struct gguf_file *file, const char *key, enum gguf_value_type *elem_type,
                   uint64_t *count, const void **data, struct aug_err *err) {
  const struct gguf_kv *kv = lookup(file, key, err);
  if (!kv) return AUG_ENOTFOUND;
  if (kv->type != GGUF_TYPE_ARRAY) return type_mismatch(file, kv, "ARRAY", err);
  *elem_type = kv->array_type;
  *count = kv->array_count;
  /* Past the element type (4) and count (8). For STRING and ARRAY elements this is the first
   * encoded element; use gguf_get_array_string for strings. */
  *data = file->base + kv->value_offset + 12;
  return 0;
}

int gguf_get_array_string(const struct gguf_file *file, size_t key_index, uint64_t i,
                          const char **str, size_t *len) {
  if (key_index >= file->n_kv) return AUG_EINVAL;
  const struct gguf_kv *kv = &file->kvs[key_index];
  if (kv->type != GGUF_TYPE_ARRAY || kv->array_type != GGUF_TYPE_STRING) return AUG_EINVAL;
  if (i >= kv->array_count) return AUG_ERANGE;
  const uint8_t *p = file->base + kv->string_offsets[i];
  *len = (size_t)load_u64(p);
  *str = (const char *)p + 8;
  return 0;
}

/* ---- for the writer ----------------------------------------------------------------------------
 */

int gguf_kv_raw_value(const struct gguf_file *file, size_t index, const void **data,
                      uint64_t *size) {
  if (index >= file->n_kv) return AUG_EINVAL;
  *data = file->base + file->kvs[index].value_offset;
  *size = file->kvs[index].value_size;
  return 0;
}
