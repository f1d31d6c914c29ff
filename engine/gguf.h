/* GGUF reader (format versions 2 and 3; see ggml's docs/gguf.md). The file is mapped read-only
 * (read() into a buffer when mmap is unavailable) and every count, length, type, dimension and
 * offset is validated before anything is used: after gguf_open succeeds, every accessor is safe.
 * A rejection names the file, the field and the offending value. Read-only after open, so one
 * struct gguf_file may be shared by threads. */
#ifndef AUGURY_ENGINE_GGUF_H
#define AUGURY_ENGINE_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/error.h"

#define GGUF_MAGIC 0x46554747u /* "GGUF" little-endian */
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_DIMS 4

enum gguf_value_type {
  GGUF_TYPE_UINT8 = 0,
  GGUF_TYPE_INT8 = 1,
  GGUF_TYPE_UINT16 = 2,
  GGUF_TYPE_INT16 = 3,
  GGUF_TYPE_UINT32 = 4,
  GGUF_TYPE_INT32 = 5,
  GGUF_TYPE_FLOAT32 = 6,
  GGUF_TYPE_BOOL = 7,
  GGUF_TYPE_STRING = 8,
  GGUF_TYPE_ARRAY = 9,
  GGUF_TYPE_UINT64 = 10,
  GGUF_TYPE_INT64 = 11,
  GGUF_TYPE_FLOAT64 = 12,
  GGUF_TYPE_COUNT
};

struct gguf_file; /* opaque */

struct gguf_tensor {
  const char *name;      /* NUL-terminated, owned by the file */
  uint32_t type;         /* enum quant_type (engine/quant.h) */
  uint32_t n_dims;       /* 1..4 */
  uint64_t ne[GGUF_MAX_DIMS]; /* elements per dimension, ne[0] innermost; unused dims are 1 */
  uint64_t n_elements;
  uint64_t offset;       /* from the start of the data section, as stored */
  uint64_t file_offset;  /* from the start of the file */
  uint64_t size;         /* bytes */
  const void *data;      /* points into the mapping */
};

struct gguf_open_params {
  bool use_mmap;         /* default true; false reads the whole file into memory */
};

struct gguf_open_params gguf_open_params_default(void);

/* Opens and validates path. On success *out owns the mapping; release with gguf_close. */
int gguf_open(const char *path, const struct gguf_open_params *params, struct gguf_file **out,
              struct aug_err *err);
/* Same over a caller-owned buffer (fuzzing, tests); buf must outlive the file. */
int gguf_open_memory(const void *buf, size_t size, const char *name, struct gguf_file **out,
                     struct aug_err *err);
void gguf_close(struct gguf_file *file); /* NULL is a no-op */
/* Pins the file's bytes (the mapping, or the read() copy) in RAM with mlock(2) so that the OS
 * cannot page the weights out (--mlock, llama.cpp's flag of the same name); gguf_close unlocks.
 * A failure is not fatal to the caller: the file stays usable, unlocked. AUG_ENOMEM when the
 * RLIMIT_MEMLOCK limit refuses it (the message names the limit's soft and hard values, the size
 * needed and how to raise it), AUG_EIO for another mlock error. */
int gguf_lock_memory(struct gguf_file *file, struct aug_err *err);
bool gguf_memory_locked(const struct gguf_file *file);

uint32_t gguf_version(const struct gguf_file *file);
uint32_t gguf_alignment(const struct gguf_file *file);
uint64_t gguf_data_offset(const struct gguf_file *file); /* start of the data section in the file */
uint64_t gguf_file_size(const struct gguf_file *file);
const char *gguf_path(const struct gguf_file *file);

/* Metadata. Keys are looked up by exact name; indices are 0..gguf_kv_count-1. */
size_t gguf_kv_count(const struct gguf_file *file);
int64_t gguf_find_key(const struct gguf_file *file, const char *key); /* -1 when absent */
const char *gguf_kv_key(const struct gguf_file *file, size_t index);
enum gguf_value_type gguf_kv_type(const struct gguf_file *file, size_t index);
/* For arrays: element type and count (0 and GGUF_TYPE_COUNT for non-arrays). */
enum gguf_value_type gguf_kv_array_type(const struct gguf_file *file, size_t index);
uint64_t gguf_kv_array_count(const struct gguf_file *file, size_t index);

/* Typed getters by key. They return AUG_ENOTFOUND when the key is absent and AUG_EFORMAT (with a
 * message naming the key and both types) when its type does not fit. get_uint accepts any
 * non-negative integer type, get_int any integer type, get_float FLOAT32/FLOAT64. */
int gguf_get_uint(const struct gguf_file *file, const char *key, uint64_t *out, struct aug_err *err);
int gguf_get_int(const struct gguf_file *file, const char *key, int64_t *out, struct aug_err *err);
int gguf_get_float(const struct gguf_file *file, const char *key, double *out, struct aug_err *err);
int gguf_get_bool(const struct gguf_file *file, const char *key, bool *out, struct aug_err *err);
/* String values are not NUL-terminated in the file: use the length. */
int gguf_get_string(const struct gguf_file *file, const char *key, const char **str, size_t *len,
                    struct aug_err *err);
/* Arrays of fixed-size elements: *data points at count little-endian elements of elem_type. */
int gguf_get_array(const struct gguf_file *file, const char *key, enum gguf_value_type *elem_type,
                   uint64_t *count, const void **data, struct aug_err *err);
/* Element i of a string array (by key index; O(1) after open). */
int gguf_get_array_string(const struct gguf_file *file, size_t key_index, uint64_t i,
                          const char **str, size_t *len);

/* Tensors, in file order. */
size_t gguf_tensor_count(const struct gguf_file *file);
const struct gguf_tensor *gguf_tensor_at(const struct gguf_file *file, size_t index);
const struct gguf_tensor *gguf_find_tensor(const struct gguf_file *file, const char *name);

const char *gguf_type_name(enum gguf_value_type type);

/* ---- Writer (synth, tests, the bad-file corpus) ----------------------------------------------
 * Collects metadata and tensors in memory order and writes a version-3 file. Tensor data is
 * copied at gguf_writer_add_tensor time. */
struct gguf_writer; /* opaque */

int gguf_writer_create(struct gguf_writer **out, struct aug_err *err);
void gguf_writer_destroy(struct gguf_writer *writer);
int gguf_writer_set_alignment(struct gguf_writer *w, uint32_t alignment);
int gguf_writer_add_uint32(struct gguf_writer *w, const char *key, uint32_t value);
int gguf_writer_add_int32(struct gguf_writer *w, const char *key, int32_t value);
int gguf_writer_add_uint64(struct gguf_writer *w, const char *key, uint64_t value);
int gguf_writer_add_float32(struct gguf_writer *w, const char *key, float value);
int gguf_writer_add_bool(struct gguf_writer *w, const char *key, bool value);
int gguf_writer_add_string(struct gguf_writer *w, const char *key, const char *value, size_t len);
/* Array of fixed-size elements (not strings, not arrays). */
int gguf_writer_add_array(struct gguf_writer *w, const char *key, enum gguf_value_type elem_type,
                          const void *data, uint64_t count);
int gguf_writer_add_string_array(struct gguf_writer *w, const char *key, const char *const *strs,
                                 const size_t *lens, uint64_t count);
/* Copy the key/value at key_index of src (any type, arrays included) into w. */
int gguf_writer_copy_kv(struct gguf_writer *w, const struct gguf_file *src, size_t key_index);
/* data holds quant_row_size(type, ne[0]) * rows bytes. */
int gguf_writer_add_tensor(struct gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                           const uint64_t *ne, const void *data, size_t size);
int gguf_writer_write(struct gguf_writer *w, const char *path, struct aug_err *err);

/* ---- Limits and helpers added with the implementation ------------------------------------------ */
#define GGUF_MAX_KEY_LENGTH 65535        /* bytes; longer keys are rejected */
#define GGUF_MAX_TENSOR_NAME_LENGTH 255  /* bytes; longer tensor names are rejected */
#define GGUF_MAX_ARRAY_DEPTH 4           /* a kv's array plus up to 3 levels of arrays inside it */

/* Notes on the getters above: gguf_get_array also answers for arrays of STRING or ARRAY elements
 * (elem_type says which); then *data points at the first encoded element, and string elements are
 * read with gguf_get_array_string. BOOL values read as true when their byte is nonzero. */

/* The encoded bytes of the value at key_index (after its type field; for arrays this starts at the
 * element type). Used by gguf_writer_copy_kv; AUG_EINVAL when key_index is out of range. */
int gguf_kv_raw_value(const struct gguf_file *file, size_t key_index, const void **data,
                      uint64_t *size);

#endif
