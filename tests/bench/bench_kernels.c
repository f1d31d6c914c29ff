/* CPU kernel benchmark: matvec (decode) and batched matmul (prompt) on the real model's weight
 * shapes, in GB/s of weight bytes and GFLOP/s, next to the machine's read bandwidth measured by a
 * plain read loop on the same thread count, plus the pool's per-op dispatch cost. Decode is
 * memory-bound, so matvec GB/s / read GB/s is the figure of merit.
 * Usage: bench_kernels [threads=2] [batch=128] [extra backend options, e.g. avx512=0 or scalar=1]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backends/cpu/cpu_internal.h"
#include "tests/unit/backends/cpu_test_util.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

struct read_task {
  const uint64_t *data;
  size_t n;
  uint64_t sums[64];
};

static void read_task_run(void *arg, int ith, int nth) {
  struct read_task *t = arg;
  size_t per = t->n / (size_t)nth;
  const uint64_t *p = t->data + per * (size_t)ith;
  uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (size_t i = 0; i + 4 <= per; i += 4) {
    s0 += p[i];
    s1 += p[i + 1];
    s2 += p[i + 2];
    s3 += p[i + 3];
  }
  t->sums[ith] = s0 + s1 + s2 + s3;
}

/* Busy-waits about 2 us per slot: long enough that a worker woken by the dispatch takes its
 * slot, short enough that the dispatch cost shows. */
static void busy_task(void *arg, int ith, int nth) {
  (void)arg;
  (void)ith;
  (void)nth;
  double end = now_s() + 2e-6;
  while (now_s() < end) {
  }
}

/* Best time of one call over `budget` seconds of calls: this machine is shared, and the minimum is
 * the figure least disturbed by other processes. */
static double time_best(const struct backend_ops *ops, struct backend *be,
                        const struct backend_tensor *w, const struct backend_tensor *x,
                        struct backend_tensor *y, double budget) {
  double best = 1e30, start = now_s();
  do {
    double t = now_s();
    ops->matmul(be, w, x, y);
    t = now_s() - t;
    if (t < best) best = t;
  } while (now_s() - start < budget);
  return best;
}

struct shape {
  const char *what;
  uint32_t type;
  int64_t k, n;
};

/* Attention of the 1.5B model's shape (12 query heads, 2 KV heads, head_dim 128, F16 cache):
 * one decode token over n_kv cached positions, and a 64-token batch at the end of the cache. */
static void bench_attention(const struct backend_ops *ops, struct backend *be, uint64_t *seed) {
  const int64_t hd = 128, n_head = 12, n_head_kv = 2, n_ctx = 4096, n_tok = 64;
  size_t kv_bytes = quant_row_size(QUANT_F16, hd) * (size_t)(n_head_kv * n_ctx);
  size_t q_bytes = sizeof(float) * (size_t)(hd * n_head * n_tok);
  struct test_buffer b = test_buffer_make(ops, be, 2 * kv_bytes + 2 * q_bytes);
  quant_f16 *kv = b.data;
  for (size_t i = 0; i < 2 * kv_bytes / sizeof(quant_f16); i++) /* K then V */
    kv[i] = quant_f32_to_f16(test_rng_float(seed));
  float *q = (float *)((char *)b.data + 2 * kv_bytes);
  for (int64_t i = 0; i < hd * n_head * n_tok; i++)
    q[i] = test_rng_float(seed);
  struct backend_tensor tk = test_tensor(&b, QUANT_F16, hd, n_head_kv, n_ctx, 0);
  struct backend_tensor tv = test_tensor(&b, QUANT_F16, hd, n_head_kv, n_ctx, kv_bytes);
  int32_t pos[64];
  printf("\n%-32s %8s %10s\n", "attention (12/2 heads, hd 128, F16)", "n_kv", "us");
  const int32_t lens[3] = {512, 2048, 4096};
  for (int l = 0; l < 3; l++) {
    for (int tokens = 1; tokens <= 64; tokens += 63) {
      struct backend_tensor tq = test_tensor(&b, QUANT_F32, hd, n_head, tokens, 2 * kv_bytes);
      struct backend_tensor to =
          test_tensor(&b, QUANT_F32, hd, n_head, tokens, 2 * kv_bytes + q_bytes);
      for (int i = 0; i < tokens; i++)
        pos[i] = lens[l] - tokens + i;
      struct backend_attention_params ap = {.scale = 0.088f, .n_kv = lens[l], .q_pos = pos};
      double best = 1e30, start = now_s();
      do {
        double t = now_s();
        ops->attention(be, &tq, &tk, &tv, &ap, &to);
        t = now_s() - t;
        if (t < best) best = t;
      } while (now_s() - start < 0.2);
      printf("%-32s %8d %10.1f\n", tokens == 1 ? "  decode (1 token)" : "  batch of 64 tokens",
             lens[l], best * 1e6);
    }
  }
  ops->buffer_free(be, b.buf);
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 2;
  int batch = argc > 2 ? atoi(argv[2]) : 128;
  char options[128];
  snprintf(options, sizeof options, "threads=%d%s%s", threads, argc > 3 ? "," : "",
           argc > 3 ? argv[3] : "");
  const struct backend_ops *ops = backend_cpu_ops();
  struct backend *be;
  struct aug_err err;
  if (ops->create(options, &be, &err)) {
    fprintf(stderr, "bench_kernels: %s\n", err.msg);
    return 1;
  }
  struct backend_device_info info;
  ops->device_info(be, &info);
  printf("device: %s\n", info.name);

  /* Dispatch cost: tasks of 2 us per slot; with perfect parallelism one takes 2 us, so the
   * excess is the cost of waking, claiming and joining. */
  int reps = 20000;
  double t0 = now_s();
  for (int i = 0; i < reps; i++)
    cpu_threadpool_run(be->pool, busy_task, NULL);
  double per_op = (now_s() - t0) / reps * 1e6;
  printf("pool: task of %d x 2 us slots: %.2f us per op (compare with threads=1: the excess is "
         "the dispatch cost)\n",
         threads, per_op);

  /* Read bandwidth: 512 MiB read as 8 slices of 64 MiB (each twice the L3), best slice over
   * 4 rounds: on a shared machine the best short window is the least disturbed one. */
  size_t bw_bytes = (size_t)512 << 20, slice = (size_t)64 << 20;
  unsigned char *bw_data = malloc(bw_bytes);
  memset(bw_data, 1, bw_bytes);
  double best_bw = 0;
  for (int r = 0; r < 4; r++) {
    for (size_t off = 0; off < bw_bytes; off += slice) {
      struct read_task rt = {.data = (const uint64_t *)(bw_data + off), .n = slice / 8};
      t0 = now_s();
      cpu_threadpool_run(be->pool, read_task_run, &rt);
      double dt = now_s() - t0;
      if (slice / dt / 1e9 > best_bw) best_bw = slice / dt / 1e9;
    }
  }
  printf("read bandwidth (%d threads): %.1f GB/s\n\n", threads, best_bw);
  free(bw_data);

  const struct shape shapes[] = {
      {"attn q/o (1.5B)", QUANT_Q4_K, 1536, 1536}, {"ffn gate/up (1.5B)", QUANT_Q4_K, 1536, 8960},
      {"ffn down (1.5B)", QUANT_Q6_K, 8960, 1536}, {"ffn up (0.5B)", QUANT_Q5_0, 896, 4864},
      {"ffn down (0.5B)", QUANT_Q8_0, 4864, 896},  {"output head (1.5B)", QUANT_Q6_K, 1536, 151936},
  };
  printf("%-20s %-5s %6s %7s | %8s %7s %6s | %6s %8s\n", "shape", "type", "K", "N", "matvec us",
         "GB/s", "of bw", "M", "GFLOP/s");
  uint64_t seed = 1;
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    const struct shape *sh = &shapes[s];
    size_t row = quant_row_size(sh->type, (uint64_t)sh->k);
    size_t w_bytes = row * (size_t)sh->n;
    void *wdata = malloc(w_bytes);
    test_fill_weights(sh->type, wdata, sh->k, sh->n, &seed);
    struct backend_buffer *wb;
    ops->buffer_from_host(be, wdata, w_bytes, &wb, &err);
    int64_t m_max = batch;
    struct test_buffer xb = test_buffer_make(ops, be, sizeof(float) * (size_t)(sh->k * m_max));
    struct test_buffer yb = test_buffer_make(ops, be, sizeof(float) * (size_t)(sh->n * m_max));
    for (int64_t i = 0; i < sh->k * m_max; i++)
      ((float *)xb.data)[i] = test_rng_float(&seed);
    struct backend_tensor w = {
        .type = sh->type, .ne = {sh->k, sh->n, 1, 1}, .row_stride = row, .buffer = wb};
    struct backend_tensor x1 = test_tensor(&xb, QUANT_F32, sh->k, 1, 1, 0);
    struct backend_tensor y1 = test_tensor(&yb, QUANT_F32, sh->n, 1, 1, 0);
    struct backend_tensor xm = test_tensor(&xb, QUANT_F32, sh->k, m_max, 1, 0);
    struct backend_tensor ym = test_tensor(&yb, QUANT_F32, sh->n, m_max, 1, 0);
    /* matvec: repeat for >= 0.3 s after a warm-up; weights larger than the L3 stream from RAM,
     * smaller ones partly from L3 (as in decode, where the 1.5B model's 1 GB cycles through). */
    ops->matmul(be, &w, &x1, &y1);
    double mv = time_best(ops, be, &w, &x1, &y1, 0.3);
    ops->matmul(be, &w, &xm, &ym);
    double mm = time_best(ops, be, &w, &xm, &ym, 0.5);
    printf("%-20s %-5s %6lld %7lld | %8.1f %7.1f %5.0f%% | %6d %8.1f\n", sh->what,
           quant_type_name(sh->type), (long long)sh->k, (long long)sh->n, mv * 1e6,
           w_bytes / mv / 1e9, w_bytes / mv / 1e9 / best_bw * 100, batch,
           2.0 * sh->k * sh->n * batch / mm / 1e9);
    ops->buffer_free(be, wb);
    ops->buffer_free(be, xb.buf);
    ops->buffer_free(be, yb.buf);
    free(wdata);
  }
  bench_attention(ops, be, &seed);
  ops->destroy(be);
  return 0;
}
