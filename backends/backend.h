/* The one compute-backend interface. The forward pass (engine/forward.c) is written once against
 * it; cpu/, vulkan/ and cuda/ implement it. A backend is a table of function pointers registered at
 * start-up (ggml-backend's design): callers never include a backend's internals and never test a
 * build flag. The table carries abi_version and struct_size; slots only ever grow at the end, and
 * slots marked (optional) may be NULL.
 *
 * Tensors are plain descriptors over a backend buffer: row-major with ne[0] innermost and
 * contiguous rows (row stride given in bytes so that views of a KV cache or of a batch are cheap).
 * Shapes in comments are written [ne0, ne1, ...]. Ops are enqueued in order on the backend's
 * stream; backend_synchronize waits for all of them. On the CPU backend ops run synchronously. */
#ifndef AUGURY_BACKENDS_BACKEND_H
#define AUGURY_BACKENDS_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/error.h"
#include "engine/quant.h"

#define BACKEND_ABI_VERSION 1

struct backend;        /* opaque instance, created by backend_ops.create */
struct backend_buffer; /* opaque */

struct backend_tensor {
  uint32_t type;       /* enum quant_type: weights any supported type; activations F32 */
  int64_t ne[4];       /* elements per dimension; unused = 1 */
  size_t row_stride;   /* bytes between consecutive ne[1] rows */
  size_t plane_stride; /* bytes between consecutive ne[2] planes (0 = ne[1] * row_stride) */
  struct backend_buffer *buffer;
  size_t offset; /* bytes from the start of buffer */
};

enum backend_buffer_kind {
  BACKEND_BUFFER_WEIGHTS = 0, /* written once by upload (or mapped from the file), then read-only */
  BACKEND_BUFFER_COMPUTE = 1, /* activations and scratch */
  BACKEND_BUFFER_KV = 2,      /* the KV cache */
};

struct backend_device_info {
  char name[128]; /* "CPU (AVX2, 2 threads)", "NVIDIA H100 80GB HBM3" */
  uint64_t total_memory;
  uint64_t free_memory;
  bool host_visible; /* buffer memory is host memory: backend_buffer_host_ptr works */
  /* Largest buffer buffer_alloc accepts (0 = no limit of its own): drivers often refuse single
   * allocations over 1-4 GiB, so the forward pass spreads a device's weights over buffers of at
   * most this size. */
  uint64_t max_buffer_size;
  /* The device is a CPU implementation (Mesa's lavapipe): correct, but offloading to it gains
   * nothing over the CPU backend, so automatic placement leaves it alone. */
  bool cpu_device;
};

enum backend_op {
  BACKEND_OP_MATMUL,
  BACKEND_OP_RMS_NORM,
  BACKEND_OP_ROPE,
  BACKEND_OP_ATTENTION,
  BACKEND_OP_SILU_MUL,
  BACKEND_OP_ADD,
  BACKEND_OP_GET_ROWS,
  BACKEND_OP_SOFTMAX,
  BACKEND_OP_COPY,
  BACKEND_OP_COUNT
};

enum backend_rope_layout { BACKEND_ROPE_NORMAL = 0, BACKEND_ROPE_NEOX = 1 };

struct backend_rope_params {
  int n_rot; /* rotated dims per head (<= head dim) */
  enum backend_rope_layout layout;
  float freq_base;
  float freq_scale;
  const float *freq_factors; /* n_rot/2 divisors (llama 3.1 rope_freqs), or NULL; host memory */
};

struct backend_attention_params {
  float scale;          /* usually 1/sqrt(head_dim) */
  int32_t n_kv;         /* attend to KV cache entries [0, n_kv) */
  const int32_t *q_pos; /* n_tokens positions of the queries (host memory): causal mask
                           lets query i see cache entries j <= q_pos[i] */
};

struct backend_ops {
  uint32_t abi_version; /* BACKEND_ABI_VERSION the table was built against */
  uint32_t struct_size; /* sizeof(struct backend_ops) the table was built with */
  const char *name;     /* "cpu", "vulkan", "cuda" */

  int (*create)(const char *options, struct backend **out, struct aug_err *err);
  void (*destroy)(struct backend *be);
  int (*device_info)(struct backend *be, struct backend_device_info *info);

  /* Buffers. */
  int (*buffer_alloc)(struct backend *be, enum backend_buffer_kind kind, size_t size,
                      struct backend_buffer **out, struct aug_err *err);
  /* (optional) Wrap host memory the caller keeps alive (an mmapped GGUF) without copying. */
  int (*buffer_from_host)(struct backend *be, const void *ptr, size_t size,
                          struct backend_buffer **out, struct aug_err *err);
  void (*buffer_free)(struct backend *be, struct backend_buffer *buf);
  /* (optional) Host address of a host-visible buffer, NULL otherwise. */
  void *(*buffer_host_ptr)(struct backend *be, struct backend_buffer *buf);
  int (*upload)(struct backend *be, struct backend_buffer *buf, size_t offset, const void *src,
                size_t size);
  int (*download)(struct backend *be, struct backend_buffer *buf, size_t offset, void *dst,
                  size_t size);

  bool (*supports_op)(struct backend *be, enum backend_op op, uint32_t weight_type);

  /* y[N, M] = W[K, N]^T-applied-to x[K, M]: for each token m and output row n,
   * y[n, m] = dot(W row n (K elements, type W.type), x[:, m]). x and y are F32. */
  int (*matmul)(struct backend *be, const struct backend_tensor *w, const struct backend_tensor *x,
                struct backend_tensor *y);
  /* y[n, m] = x[n, m] / sqrt(mean_n(x[:, m]^2) + eps) * w[n]; w F32 [K]. In place allowed. */
  int (*rms_norm)(struct backend *be, const struct backend_tensor *x,
                  const struct backend_tensor *w, float eps, struct backend_tensor *y);
  /* In place on x[head_dim, n_head, n_tokens] with positions pos[n_tokens] (host memory). */
  int (*rope)(struct backend *be, struct backend_tensor *x, const int32_t *pos,
              const struct backend_rope_params *params);
  /* out[head_dim, n_head, n_tokens] = softmax(q k^T * scale + causal mask) v, for each query head
   * h using KV head h / (n_head / n_head_kv) (GQA). q F32 [head_dim, n_head, n_tokens];
   * k, v the cache [head_dim, n_head_kv, n_ctx] of type F16, Q8_0, Q4_0 or F32 (supports_op
   * with BACKEND_OP_ATTENTION and the cache type says which a backend reads). */
  int (*attention)(struct backend *be, const struct backend_tensor *q,
                   const struct backend_tensor *k, const struct backend_tensor *v,
                   const struct backend_attention_params *params, struct backend_tensor *out);
  /* out = silu(gate) * up, elementwise, all F32 same shape. */
  int (*silu_mul)(struct backend *be, const struct backend_tensor *gate,
                  const struct backend_tensor *up, struct backend_tensor *out);
  /* out = a + b; b may have ne[1] == 1 and is then broadcast over rows (bias). */
  int (*add)(struct backend *be, const struct backend_tensor *a, const struct backend_tensor *b,
             struct backend_tensor *out);
  /* out[:, i] = dequantized row ids[i] of table[K, rows]; ids host memory. */
  int (*get_rows)(struct backend *be, const struct backend_tensor *table, const int32_t *ids,
                  int64_t n_ids, struct backend_tensor *out);
  /* In place, over ne[0] of each row. */
  int (*softmax)(struct backend *be, struct backend_tensor *x);
  /* dst = src converted to dst.type (F32 -> F16/Q8_0/Q4_0/F32 for KV stores; same shapes). */
  int (*copy)(struct backend *be, const struct backend_tensor *src, struct backend_tensor *dst);

  int (*synchronize)(struct backend *be, struct aug_err *err);

  /* (optional) While on, every token of a batch is computed in the summation order the backend
   * uses for a batch of one token, so a batch verifying drafts yields bit for bit the logits of
   * one-token decode (exact prompt-lookup decoding); off, batches take their faster batched
   * order. A backend without it cannot promise that. */
  void (*set_decode_order)(struct backend *be, bool on);
};

/* The backends compiled in, as a constant table (no registration state). Lookup refuses a table
 * whose abi_version or struct_size does not match this header, with both versions in the message.
 */
int backend_find(const char *name, const struct backend_ops **out, struct aug_err *err);
size_t backend_count(void);
const struct backend_ops *backend_at(size_t index);
/* 0 when ops was built against this header (abi_version and struct_size), else
 * AUG_EUNSUPPORTED with both versions in the message. backend_find applies it. */
int backend_check_abi(const struct backend_ops *ops, struct aug_err *err);

/* The CPU backend's table (always compiled in). options, comma-separated: "threads=N" (0 or
 * absent = physical cores), "scalar=1" (force the portable scalar kernels: the reference the fast
 * path is tested against), "avx512=0" (use the AVX2 kernels even where AVX512-VNNI exists). */
const struct backend_ops *backend_cpu_ops(void);

/* Helpers for descriptors. */
static inline int64_t backend_tensor_nelements(const struct backend_tensor *t) {
  return t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
}

#endif
