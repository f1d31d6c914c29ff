/* Matmul driver: y[N, M] = W[K, N] x[K, M]. The activations are quantized once per call (to Q8_0
 * or Q8_K, whichever the weight type's kernel takes), then the (rows x tokens) output is cut into
 * chunks that the pool's threads claim from an atomic counter. Inside a chunk the kernel is
 * called for one weight row and up to CPU_MATMUL_TILE_TOKENS tokens at once, so a weight block
 * is decoded once per 4 tokens (batched prompt processing) instead of once per token.
 * Types without a direct kernel are dequantized a row at a time (engine/quant.c) into per-thread
 * scratch and dotted in f32 with every token of the chunk. */
#include <stdatomic.h>

#include "backends/cpu/cpu_internal.h"

/* Rows and tokens per chunk for batches: 16 rows of the largest weight rows (Q6_K, K = 8960:
 * 7.3 KB each) stay in L2 while 64 tokens of activations stream past them. */
#define MATMUL_CHUNK_ROWS 16
#define MATMUL_CHUNK_TOKENS 64

uint32_t cpu_matmul_act_type(uint32_t weight_type) {
  switch (weight_type) {
  case QUANT_Q4_0:
  case QUANT_Q5_0:
  case QUANT_Q8_0: return QUANT_Q8_0;
  case QUANT_Q4_K:
  case QUANT_Q6_K:
  case QUANT_IQ3_XXS:
  case QUANT_IQ3_S: return QUANT_Q8_K;
  default: return QUANT_F32;
  }
}

size_t cpu_matmul_act_row_size(uint32_t act_type, int64_t k) {
  if (act_type == QUANT_Q8_0) {
    return k % QK8_0 ? 0 : (size_t)(k / QK8_0) * sizeof(struct cpu_block_q8_0x);
  }
  return quant_row_size(act_type, (uint64_t)k);
}

/* Tokens [0, n) of a batch of m that llama.cpp's CPU backend multiplies with its batched kernels,
 * whose summation order differs from its one-token kernels (cpu_kernels.dot_gemm): repacked
 * Q4_K runs whole groups of 4 through gemm once a batch has 4; Q6_K goes to the tiled matmul
 * from 8 tokens. */
static int64_t matmul_gemm_tokens(uint32_t weight_type, int64_t m) {
  switch (weight_type) {
  case QUANT_Q4_K: return m > 3 ? m - m % 4 : 0;
  case QUANT_Q6_K: return m >= 8 ? m : 0;
  default: return 0;
  }
}

struct matmul_task {
  const struct cpu_kernels *kernels;
  struct backend *be;
  cpu_dot_fn dot;              /* NULL: generic dequantize path */
  cpu_dot_fn dot_gemm;         /* tokens [0, m_gemm): llama.cpp's gemm order */
  cpu_dot8_fn dot8, dot8_gemm; /* 8-row versions, or NULL */
  cpu_pack8_fn pack8;          /* batches: 8-row groups repacked per chunk, or NULL */
  cpu_dot8_packed_fn dot8_packed;
  int64_t m_gemm;
  uint32_t w_type;
  const unsigned char *w; /* row n at w + n * w_stride */
  size_t w_stride;
  const unsigned char *act; /* token m at act + m * act_stride */
  size_t act_stride;
  float *y;        /* y[n, m] at y[m * y_stride + n] */
  size_t y_stride; /* floats */
  int64_t k, n, m;
  int64_t chunk_rows, chunk_tokens, n_row_chunks, n_chunks;
  atomic_llong next_chunk;
  atomic_int failed;
  /* activation quantization step */
  const unsigned char *x;
  size_t x_stride;
  uint32_t act_type;
};

static void matmul_quantize_task(void *arg, int ith, int nth) {
  struct matmul_task *t = arg;
  for (int64_t m = ith; m < t->m; m += nth) {
    const float *xr = (const float *)(t->x + m * t->x_stride); /* [K] */
    void *dst = (void *)(t->act + m * t->act_stride);
    if (t->act_type == QUANT_Q8_0) {
      t->kernels->quantize_q8_0x(xr, dst, t->k);
    } else {
      t->kernels->quantize_q8_k(xr, dst, t->k);
    }
  }
}

static void matmul_chunk_direct(struct matmul_task *t, int64_t n0, int64_t n1, int64_t m0,
                                int64_t m1) {
  for (int64_t m = m0; m < m1; m += CPU_MATMUL_TILE_TOKENS) {
    int nr = (int)(m1 - m < CPU_MATMUL_TILE_TOKENS ? m1 - m : CPU_MATMUL_TILE_TOKENS);
    const unsigned char *act = t->act + m * t->act_stride;
    /* tiles start at multiples of 4 and m_gemm is one (or the whole batch): a tile is all gemm
     * or all gemv */
    cpu_dot_fn dot = m < t->m_gemm ? t->dot_gemm : t->dot;
    cpu_dot8_fn dot8 = m < t->m_gemm ? t->dot8_gemm : t->dot8;
    int64_t n = n0;
    for (; dot8 && n + 8 <= n1; n += 8) {
      dot8(t->k, t->w + n * t->w_stride, t->w_stride, act, t->act_stride, nr,
           t->y + m * t->y_stride + n, t->y_stride);
    }
    for (; n < n1; n++) {
      dot(t->k, t->w + n * t->w_stride, act, t->act_stride, nr, t->y + m * t->y_stride + n,
          t->y_stride);
    }
  }
}

/* A batched chunk with packed 8-row groups: each group is repacked once (into this thread's
 * scratch) and used by every token tile of the chunk; leftover rows take matmul_chunk_direct. */
static void matmul_chunk_packed(struct matmul_task *t, void *pack, int64_t n0, int64_t n1,
                                int64_t m0, int64_t m1) {
  int64_t n = n0;
  for (; n + 8 <= n1; n += 8) {
    t->pack8(t->w + n * t->w_stride, t->w_stride, t->k, pack);
    for (int64_t m = m0; m < m1; m += CPU_MATMUL_TILE_TOKENS) {
      int nr = (int)(m1 - m < CPU_MATMUL_TILE_TOKENS ? m1 - m : CPU_MATMUL_TILE_TOKENS);
      t->dot8_packed(t->k, pack, t->act + m * t->act_stride, t->act_stride, nr,
                     t->y + m * t->y_stride + n, t->y_stride, m < t->m_gemm);
    }
  }
  if (n < n1) matmul_chunk_direct(t, n, n1, m0, m1);
}

static void matmul_chunk_generic(struct matmul_task *t, float *row, int64_t n0, int64_t n1,
                                 int64_t m0, int64_t m1) {
  for (int64_t n = n0; n < n1; n++) {
    if (quant_dequantize_row(t->w_type, t->w + n * t->w_stride, row, t->k) != 0) {
      atomic_store(&t->failed, 1);
      return;
    }
    for (int64_t m = m0; m < m1; m++) {
      const float *xr = (const float *)(t->act + m * t->act_stride);
      t->y[m * t->y_stride + n] = t->kernels->dot_f32(row, xr, t->k);
    }
  }
}

static void matmul_task_run(void *arg, int ith, int nth) {
  struct matmul_task *t = arg;
  float *row = t->dot ? NULL : t->be->thread_scratch[ith].data; /* [K] for the generic path */
  for (;;) {
    int64_t c = atomic_fetch_add_explicit(&t->next_chunk, 1, memory_order_relaxed);
    if (c >= t->n_chunks) break;
    int64_t rc = c % t->n_row_chunks, tc = c / t->n_row_chunks;
    int64_t n0 = rc * t->chunk_rows, n1 = n0 + t->chunk_rows < t->n ? n0 + t->chunk_rows : t->n;
    int64_t m0 = tc * t->chunk_tokens,
            m1 = m0 + t->chunk_tokens < t->m ? m0 + t->chunk_tokens : t->m;
    if (t->pack8) {
      matmul_chunk_packed(t, t->be->thread_scratch[ith].data, n0, n1, m0, m1);
    } else if (t->dot) {
      matmul_chunk_direct(t, n0, n1, m0, m1);
    } else {
      matmul_chunk_generic(t, row, n0, n1, m0, m1);
    }
  }
}

int cpu_matmul(struct backend *be, const struct backend_tensor *w, const struct backend_tensor *x,
               struct backend_tensor *y) {
  if (cpu_tensor_check(w) || cpu_tensor_check(x) || cpu_tensor_check(y)) return AUG_EINVAL;
  if (x->type != QUANT_F32 || y->type != QUANT_F32) return AUG_EINVAL;
  int64_t k = w->ne[0], n = w->ne[1], m = x->ne[1];
  if (x->ne[0] != k || y->ne[0] != n || y->ne[1] != m) return AUG_EINVAL;
  if (w->ne[2] * w->ne[3] != 1 || x->ne[2] * x->ne[3] != 1 || y->ne[2] * y->ne[3] != 1) {
    return AUG_EINVAL;
  }
  if (m > 1 && (x->row_stride % sizeof(float) || y->row_stride % sizeof(float))) return AUG_EINVAL;

  const struct cpu_kernels *kernels = be->kernels;
  struct matmul_task t = {
      .kernels = kernels,
      .be = be,
      .dot = kernels->dot[w->type],
      .dot_gemm = kernels->dot_gemm[w->type] ? kernels->dot_gemm[w->type] : kernels->dot[w->type],
      .dot8 = kernels->dot8[w->type],
      .dot8_gemm =
          kernels->dot8_gemm[w->type] ? kernels->dot8_gemm[w->type] : kernels->dot8[w->type],
      .m_gemm = be->decode_order ? 0 : matmul_gemm_tokens(w->type, m),
      .w_type = w->type,
      .w = cpu_tensor_row(w, 0, 0, 0),
      .w_stride = w->row_stride,
      .y = (float *)cpu_tensor_row(y, 0, 0, 0),
      .y_stride = m > 1 ? y->row_stride / sizeof(float) : 0,
      .k = k,
      .n = n,
      .m = m,
      .x = cpu_tensor_row(x, 0, 0, 0),
      .x_stride = x->row_stride,
      .act_type = cpu_matmul_act_type(w->type),
  };
  if (m > 1 && t.dot && kernels->pack8[w->type] && k % QK_K == 0 &&
      (!kernels->pack_gemm_only[w->type] || t.m_gemm == m)) {
    t.pack8 = kernels->pack8[w->type];
    t.dot8_packed = kernels->dot8_packed[w->type];
    size_t pack_bytes = (size_t)(k / QK_K) * kernels->pack_size[w->type];
    if (cpu_thread_scratch_reserve(be, pack_bytes)) return AUG_ENOMEM;
  }
  if (!t.dot) {
    const struct quant_type_traits *tr = quant_traits(w->type);
    if (!tr || !(tr->can_dequantize || w->type == QUANT_F32)) return AUG_EUNSUPPORTED;
    if (cpu_thread_scratch_reserve(be, (size_t)k * sizeof(float))) return AUG_ENOMEM;
  }
  if (t.dot && t.act_type != QUANT_F32) {
    size_t act_row = cpu_matmul_act_row_size(t.act_type, k);
    if (act_row == 0) return AUG_EINVAL; /* K not a multiple of the activation block */
    if (cpu_scratch_reserve(&be->act, act_row * (size_t)m)) return AUG_ENOMEM;
    t.act = be->act.data;
    t.act_stride = act_row;
    if (m == 1) {
      matmul_quantize_task(&t, 0, 1);
    } else {
      cpu_threadpool_run(be->pool, matmul_quantize_task, &t);
    }
  } else {
    t.act = t.x;
    t.act_stride = t.x_stride;
  }

  int nth = be->n_threads;
  if (m == 1) {
    /* Decode: enough chunks per thread to even out a thread that was descheduled. */
    t.chunk_tokens = 1;
    t.chunk_rows = n / (nth * 16) / 8 * 8; /* a multiple of 8 for the 8-row kernels */
    if (t.chunk_rows < 8) t.chunk_rows = 8;
  } else {
    t.chunk_tokens = MATMUL_CHUNK_TOKENS;
    t.chunk_rows = MATMUL_CHUNK_ROWS;
  }
  t.n_row_chunks = (n + t.chunk_rows - 1) / t.chunk_rows;
  t.n_chunks = t.n_row_chunks * ((m + t.chunk_tokens - 1) / t.chunk_tokens);
  atomic_init(&t.next_chunk, 0);
  atomic_init(&t.failed, 0);
  cpu_threadpool_run(be->pool, matmul_task_run, &t);
  return atomic_load(&t.failed) ? AUG_EUNSUPPORTED : 0;
}
