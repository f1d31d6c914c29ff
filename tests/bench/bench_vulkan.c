/* Vulkan op benchmark: the ops of one decode step on the real models' shapes, each timed alone
 * (N dispatches, then one synchronize, best of a few rounds), in microseconds and, for matmul, GB/s
 * of weight bytes; plus the cost of an empty synchronize. Finds which op a slow device spends its
 * time in, and is the figure to compare shader changes by (run it before and after).
 * Usage: bench_vulkan [vulkan options, e.g. subgroups=0 or device=1] [rounds=3]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backends/backend.h"
#include "tests/unit/backends/cpu_test_util.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* CPU time of the whole process: on a CPU implementation (lavapipe) the work itself, which other
 * jobs on a shared machine disturb far less than the wall clock. */
static double cpu_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double last_cpu; /* the best round's CPU time per call, set by TIME_OP */

static const struct backend_ops *ops;
static struct backend *be;
static int rounds = 3;

static void sync_or_die(void) {
  struct aug_err err = {0};
  if (ops->synchronize(be, &err)) {
    fprintf(stderr, "bench_vulkan: %s\n", err.msg);
    exit(1);
  }
}

static struct backend_buffer *device_buffer(size_t size, const void *bytes) {
  struct backend_buffer *buf = NULL;
  struct aug_err err = {0};
  if (ops->buffer_alloc(be, BACKEND_BUFFER_COMPUTE, size, &buf, &err)) {
    fprintf(stderr, "bench_vulkan: %zu bytes: %s\n", size, err.msg);
    exit(1);
  }
  if (bytes && ops->upload(be, buf, 0, bytes, size)) exit(1);
  return buf;
}

static struct backend_tensor tensor(struct backend_buffer *buf, uint32_t type, int64_t ne0,
                                    int64_t ne1, int64_t ne2, size_t offset) {
  struct backend_tensor t = {.type = type, .ne = {ne0, ne1, ne2, 1}, .buffer = buf};
  t.row_stride = quant_row_size(type, (uint64_t)ne0);
  t.offset = offset;
  return t;
}

/* Best per-call time of `reps` calls of op between two synchronizes. */
#define TIME_OP(reps, call)                                                                        \
  ({                                                                                               \
    double best_ = 1e30, cpu_best_ = 1e30;                                                         \
    for (int r_ = 0; r_ < rounds; r_++) {                                                          \
      sync_or_die();                                                                               \
      double t_ = now_s(), c_ = cpu_s();                                                           \
      for (int i_ = 0; i_ < (reps); i_++) {                                                        \
        if (call) {                                                                                \
          fprintf(stderr, "bench_vulkan: %s failed\n", #call);                                     \
          exit(1);                                                                                 \
        }                                                                                          \
      }                                                                                            \
      sync_or_die();                                                                               \
      t_ = (now_s() - t_) / (reps);                                                                \
      c_ = (cpu_s() - c_) / (reps);                                                                \
      if (t_ < best_) best_ = t_;                                                                  \
      if (c_ < cpu_best_) cpu_best_ = c_;                                                          \
    }                                                                                              \
    last_cpu = cpu_best_;                                                                          \
    best_;                                                                                         \
  })

static void report(const char *what, double t) {
  printf("%-34s %10.1f us %10.1f cpu us\n", what, t * 1e6, last_cpu * 1e6);
}

static void bench_matmul(const char *what, uint32_t type, int64_t k, int64_t n, int64_t m) {
  size_t w_bytes = quant_row_size(type, (uint64_t)k) * (size_t)n;
  void *host = malloc(w_bytes);
  uint64_t seed = 7;
  if (!host || !test_fill_weights(type, host, k, n, &seed)) exit(1);
  struct backend_buffer *wb = device_buffer(w_bytes, host);
  free(host);
  struct backend_buffer *xb = device_buffer((size_t)(k + n) * (size_t)m * sizeof(float), NULL);
  struct backend_tensor w = tensor(wb, type, k, n, 1, 0);
  struct backend_tensor x = tensor(xb, QUANT_F32, k, m, 1, 0);
  struct backend_tensor y = tensor(xb, QUANT_F32, n, m, 1, (size_t)(k * m) * sizeof(float));
  double t = TIME_OP(4, ops->matmul(be, &w, &x, &y));
  printf("%-34s %-6s %6lld x %-6lld m=%-3lld %10.1f us %8.2f GB/s %10.1f cpu us\n", what,
         quant_type_name(type), (long long)k, (long long)n, (long long)m, t * 1e6,
         (double)w_bytes / t * 1e-9, last_cpu * 1e6);
  ops->buffer_free(be, wb);
  ops->buffer_free(be, xb);
}

static void bench_small_ops(int64_t dim, int64_t ffn, int64_t hd, int64_t n_head, int64_t n_head_kv,
                            int32_t n_kv) {
  size_t kv_bytes = quant_row_size(QUANT_F16, (uint64_t)hd) * (size_t)(n_head_kv * n_kv);
  size_t f32s = (size_t)(4 * dim + 2 * ffn + 2 * hd * n_head) * sizeof(float);
  struct backend_buffer *b = device_buffer(2 * kv_bytes + f32s + 4096, NULL);
  size_t at = 2 * kv_bytes;
  struct backend_tensor x = tensor(b, QUANT_F32, dim, 1, 1, at);
  struct backend_tensor nw = tensor(b, QUANT_F32, dim, 1, 1, at + (size_t)dim * 4);
  struct backend_tensor o = tensor(b, QUANT_F32, dim, 1, 1, at + (size_t)dim * 8);
  struct backend_tensor g = tensor(b, QUANT_F32, ffn, 1, 1, at + (size_t)dim * 16);
  struct backend_tensor u = tensor(b, QUANT_F32, ffn, 1, 1, at + (size_t)(dim * 16 + ffn * 4));
  size_t q_at = at + (size_t)(dim * 16 + ffn * 8);
  struct backend_tensor q = tensor(b, QUANT_F32, hd, n_head, 1, q_at);
  struct backend_tensor qo = tensor(b, QUANT_F32, hd, n_head, 1, q_at + (size_t)(hd * n_head) * 4);
  struct backend_tensor tk = tensor(b, QUANT_F16, hd, n_head_kv, n_kv, 0);
  struct backend_tensor tv = tensor(b, QUANT_F16, hd, n_head_kv, n_kv, kv_bytes);
  int32_t pos = n_kv - 1;
  struct backend_rope_params rp = {
      .n_rot = (int)hd, .layout = BACKEND_ROPE_NEOX, .freq_base = 1e6f, .freq_scale = 1.0f};
  struct backend_attention_params ap = {.scale = 0.088f, .n_kv = n_kv, .q_pos = &pos};
  report("rms_norm", TIME_OP(16, ops->rms_norm(be, &x, &nw, 1e-6f, &o)));
  report("rope (q heads)", TIME_OP(16, ops->rope(be, &q, &pos, &rp)));
  report("silu_mul", TIME_OP(16, ops->silu_mul(be, &g, &u, &g)));
  report("add", TIME_OP(16, ops->add(be, &x, &o, &x)));
  char what[64];
  snprintf(what, sizeof what, "attention (1 token, n_kv %d)", n_kv);
  report(what, TIME_OP(8, ops->attention(be, &q, &tk, &tv, &ap, &qo)));
  ops->buffer_free(be, b);
}

int main(int argc, char **argv) {
  const char *options = argc > 1 ? argv[1] : NULL;
  if (argc > 2) rounds = atoi(argv[2]) > 0 ? atoi(argv[2]) : 3;
  struct aug_err err = {0};
  if (backend_find("vulkan", &ops, &err) || ops->create(options, &be, &err)) {
    fprintf(stderr, "bench_vulkan: %s\n", err.msg);
    return 1;
  }
  struct backend_device_info info;
  ops->device_info(be, &info);
  printf("device: %s, options: %s\n\n", info.name, options ? options : "(none)");
  double t = TIME_OP(16, (ops->synchronize(be, &err), 0));
  report("empty synchronize", t);
  /* qwen2.5-coder 0.5B (dim 896, ffn 4864) and 1.5B (1536, 8960) decode matmuls */
  bench_matmul("0.5B attn q/o", QUANT_Q5_0, 896, 896, 1);
  bench_matmul("0.5B ffn gate/up", QUANT_Q5_0, 896, 4864, 1);
  bench_matmul("0.5B ffn down", QUANT_Q8_0, 4864, 896, 1);
  bench_matmul("1.5B attn q/o", QUANT_Q4_K, 1536, 1536, 1);
  bench_matmul("1.5B ffn gate/up", QUANT_Q4_K, 1536, 8960, 1);
  bench_matmul("1.5B ffn down", QUANT_Q6_K, 8960, 1536, 1);
  bench_matmul("1.5B ffn gate/up, 8-token verify", QUANT_Q4_K, 1536, 8960, 8);
  bench_matmul("1.5B ffn gate/up, 64-token batch", QUANT_Q4_K, 1536, 8960, 64);
  printf("\n");
  bench_small_ops(1536, 8960, 128, 12, 2, 1024);
  ops->destroy(be);
  return 0;
}
