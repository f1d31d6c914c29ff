/* The planner's measurements of this machine (engine/plan.h): free host memory, a host memory-read
 * benchmark, and per-backend decode matvec bandwidth, per-type streaming speeds and the fixed cost
 * of a layer's small ops. Kept apart from the pure core (plan.c) so that tests of the core stay
 * deterministic. Every figure is a best of a few runs (the least disturbed by other processes). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backends/backend.h"
#include "engine/alloc.h"
#include "engine/plan.h"
#include "engine/quant.h"

#define MEASURE_HOST_BYTES ((size_t)256 << 20) /* streamed per run: well past any cache */
#define MEASURE_HOST_RUNS 4
#define MEASURE_BUFFER_BYTES ((uint64_t)96 << 20) /* under lavapipe's 128 MiB binding */
#define MEASURE_BUFFERS 3
#define MEASURE_RUNS 3
#define MEASURE_K 4096 /* row length of the test weights: a multiple of every block size */
/* Ops of one block in engine/forward.c: 2 rms_norm, 4 + 3 matmuls, 3 bias adds, 2 rope, 2 KV
 * copies, attention, 2 residual adds, silu_mul. */
#define MEASURE_OPS_PER_LAYER 20

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- host -------------------------------------------------------------------------------------
 */

/* MemAvailable (Linux 3.14+): what can be allocated without swapping, page cache included. */
uint64_t plan_host_available_bytes(void) {
  FILE *f = fopen("/proc/meminfo", "r");
  if (!f) return 0;
  char line[256];
  unsigned long long kib = 0;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "MemAvailable: %llu kB", &kib) == 1) break;
  fclose(f);
  return (uint64_t)kib * 1024;
}

struct read_job {
  const uint64_t *data;
  size_t n;
  uint64_t sum; /* returned, so the reads cannot be optimised away */
};

static void *read_job_run(void *arg) {
  struct read_job *job = arg;
  uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  size_t i = 0;
  for (; i + 4 <= job->n; i += 4) {
    s0 += job->data[i];
    s1 += job->data[i + 1];
    s2 += job->data[i + 2];
    s3 += job->data[i + 3];
  }
  for (; i < job->n; i++)
    s0 += job->data[i];
  job->sum = s0 + s1 + s2 + s3;
  return NULL;
}

int plan_measure_host(int threads, struct plan_device *out, struct aug_err *err) {
  memset(out, 0, sizeof *out);
  if (threads < 1) threads = 1;
  if (threads > 256) threads = 256;
  out->is_host = true;
  out->memory_bytes = plan_host_available_bytes();
  uint64_t *data = aug_malloc(MEASURE_HOST_BYTES);
  struct read_job *jobs = aug_calloc((size_t)threads, sizeof *jobs);
  pthread_t *ids = aug_calloc((size_t)threads, sizeof *ids);
  if (!data || !jobs || !ids) {
    aug_free(data);
    aug_free(jobs);
    aug_free(ids);
    return aug_err_set(err, AUG_ENOMEM, "plan: %zu bytes for the host read benchmark",
                       MEASURE_HOST_BYTES);
  }
  /* Written first, so the pages exist (untouched pages all map the zero page, which caches). */
  for (size_t i = 0; i < MEASURE_HOST_BYTES / sizeof *data; i++)
    data[i] = i * 0x9e3779b97f4a7c15ull;
  size_t words = MEASURE_HOST_BYTES / sizeof *data, per = words / (size_t)threads;
  double best = 0;
  uint64_t sink = 0;
  int rc = 0;
  for (int run = 0; run < MEASURE_HOST_RUNS && rc == 0; run++) {
    double t0 = now_s();
    int started = 0;
    for (int t = 0; t < threads; t++) {
      jobs[t] =
          (struct read_job){data + (size_t)t * per, t == threads - 1 ? words - t * per : per, 0};
      if (t > 0 && pthread_create(&ids[t], NULL, read_job_run, &jobs[t]) != 0) {
        rc = aug_err_set(err, AUG_EINVAL, "plan: cannot start benchmark thread %d", t);
        break;
      }
      if (t > 0) started = t;
    }
    if (rc == 0) read_job_run(&jobs[0]);
    for (int t = 1; t <= started; t++)
      pthread_join(ids[t], NULL);
    double dt = now_s() - t0;
    for (int t = 0; t < threads; t++)
      sink += jobs[t].sum;
    if (rc == 0 && dt > 0 && MEASURE_HOST_BYTES / dt > best) best = MEASURE_HOST_BYTES / dt;
  }
  aug_free(data);
  aug_free(jobs);
  aug_free(ids);
  if (rc < 0) return rc;
  snprintf(out->name, sizeof out->name, "host memory (%d thread%s)", threads,
           threads == 1 ? "" : "s");
  out->bandwidth = best;
  out->bandwidth_measured = true;
  volatile uint64_t keep = sink; /* the sums are used, so the reads happen */
  (void)keep;
  return 0;
}

/* ---- a backend ----------------------------------------------------------------------------------
 */

struct measure_set {
  const struct backend_ops *ops;
  struct backend *be;
  struct backend_buffer *w[MEASURE_BUFFERS], *x, *y;
  uint32_t n_w;
  uint64_t rows;
};

static void measure_set_free(struct measure_set *s) {
  for (uint32_t i = 0; i < s->n_w; i++)
    s->ops->buffer_free(s->be, s->w[i]);
  if (s->x) s->ops->buffer_free(s->be, s->x);
  if (s->y) s->ops->buffer_free(s->be, s->y);
  memset(s->w, 0, sizeof s->w);
  s->x = s->y = NULL;
  s->n_w = 0;
}

/* Fills a buffer with zero bytes (valid blocks of every type: all scales 0). */
static int measure_zero(struct measure_set *s, struct backend_buffer *buf, uint64_t size,
                        const void *zeros, uint64_t zeros_size) {
  void *host = s->ops->buffer_host_ptr ? s->ops->buffer_host_ptr(s->be, buf) : NULL;
  if (host) {
    memset(host, 0, (size_t)size);
    return 0;
  }
  for (uint64_t done = 0; done < size; done += zeros_size) {
    uint64_t n = size - done < zeros_size ? size - done : zeros_size;
    int rc = s->ops->upload(s->be, buf, (size_t)done, zeros, (size_t)n);
    if (rc < 0) return rc;
  }
  return 0;
}

/* Allocates n_buffers weight buffers of type, each about per_buffer bytes of MEASURE_K-long rows,
 * and x, y for one column. */
static int measure_set_alloc(struct measure_set *s, uint32_t type, uint32_t n_buffers,
                             uint64_t per_buffer, const void *zeros, struct aug_err *err) {
  size_t row = quant_row_size(type, MEASURE_K);
  s->rows = per_buffer / row;
  if (s->rows < 64)
    return aug_err_set(err, AUG_ENOMEM, "plan: too little device memory to measure (%llu bytes)",
                       (unsigned long long)per_buffer);
  int rc = 0;
  for (uint32_t i = 0; i < n_buffers && rc == 0; i++) {
    rc = s->ops->buffer_alloc(s->be, BACKEND_BUFFER_WEIGHTS, s->rows * row, &s->w[i], err);
    if (rc == 0) {
      s->n_w++;
      rc = measure_zero(s, s->w[i], s->rows * row, zeros, MEASURE_BUFFER_BYTES);
    }
  }
  if (rc == 0)
    rc = s->ops->buffer_alloc(s->be, BACKEND_BUFFER_COMPUTE, MEASURE_K * sizeof(float), &s->x, err);
  if (rc == 0) rc = measure_zero(s, s->x, MEASURE_K * sizeof(float), zeros, MEASURE_BUFFER_BYTES);
  if (rc == 0)
    rc = s->ops->buffer_alloc(s->be, BACKEND_BUFFER_COMPUTE, s->rows * sizeof(float), &s->y, err);
  if (rc < 0) {
    aug_err_prefix(err, "plan: measuring %s on %s", quant_type_name(type), s->ops->name);
    measure_set_free(s);
  }
  return rc;
}

/* Best time of a pass of one-column matmuls over the weight buffers (after a warm-up pass). */
static int measure_pass(struct measure_set *s, uint32_t type, int runs, double *best,
                        struct aug_err *err) {
  size_t row = quant_row_size(type, MEASURE_K);
  struct backend_tensor x = {.type = QUANT_F32,
                             .ne = {MEASURE_K, 1, 1, 1},
                             .row_stride = MEASURE_K * sizeof(float),
                             .buffer = s->x};
  struct backend_tensor y = {.type = QUANT_F32,
                             .ne = {(int64_t)s->rows, 1, 1, 1},
                             .row_stride = s->rows * sizeof(float),
                             .buffer = s->y};
  *best = 0;
  for (int run = 0; run <= runs; run++) {
    double t0 = now_s();
    for (uint32_t i = 0; i < s->n_w; i++) {
      struct backend_tensor w = {.type = type,
                                 .ne = {MEASURE_K, (int64_t)s->rows, 1, 1},
                                 .row_stride = row,
                                 .buffer = s->w[i]};
      int rc = s->ops->matmul(s->be, &w, &x, &y);
      if (rc < 0)
        return aug_err_set(err, rc, "plan: %s matmul on %s failed: %s", quant_type_name(type),
                           s->ops->name, aug_strerror(rc));
    }
    int rc = s->ops->synchronize(s->be, err);
    if (rc < 0) return rc;
    double dt = now_s() - t0;
    if (run > 0 && (*best == 0 || dt < *best)) *best = dt;
  }
  return 0;
}

/* A probe on one small buffer first sizes the real measurement to about MEASURE_TARGET_S per
 * pass, so that a slow device (lavapipe: ~0.1 GB/s through its shaders) is measured in a fraction
 * of a second and a fast one on enough bytes (up to MEASURE_BUFFERS x 96 MiB) to leave the
 * caches behind. */
#define MEASURE_PROBE_BYTES ((uint64_t)8 << 20)
#define MEASURE_TARGET_S 0.05
static int measure_type(struct measure_set *s, uint32_t type, uint64_t budget, const void *zeros,
                        double *bandwidth, struct aug_err *err) {
  size_t row = quant_row_size(type, MEASURE_K);
  int rc = measure_set_alloc(s, type, 1, MEASURE_PROBE_BYTES, zeros, err);
  double t = 0;
  if (rc == 0) rc = measure_pass(s, type, 1, &t, err);
  double probe = rc == 0 ? (double)(s->rows * row) / t : 0;
  measure_set_free(s);
  if (rc < 0) return rc;
  uint64_t total = (uint64_t)(probe * MEASURE_TARGET_S);
  if (total > budget) total = budget;
  if (total > MEASURE_BUFFERS * MEASURE_BUFFER_BYTES)
    total = MEASURE_BUFFERS * MEASURE_BUFFER_BYTES;
  if (total <= 2 * MEASURE_PROBE_BYTES) { /* a slow device: the probe is the measurement */
    *bandwidth = probe;
    return 0;
  }
  rc = measure_set_alloc(s, type, MEASURE_BUFFERS, total / MEASURE_BUFFERS, zeros, err);
  if (rc == 0) rc = measure_pass(s, type, MEASURE_RUNS, &t, err);
  if (rc == 0) *bandwidth = (double)(s->n_w * s->rows * row) / t;
  measure_set_free(s);
  return rc;
}

/* The fixed cost of one op: one-column matmuls of a tiny weight (8 rows of 256 F32, 8 KiB), so
 * the time is the dispatch (and, on a GPU, the barrier between dependent ops). */
static int measure_op_overhead(struct measure_set *s, const void *zeros, double *per_op,
                               struct aug_err *err) {
  enum { K = 256, ROWS = 8, N_OPS = 64 };
  int rc =
      s->ops->buffer_alloc(s->be, BACKEND_BUFFER_WEIGHTS, ROWS * K * sizeof(float), &s->w[0], err);
  if (rc < 0) return rc;
  s->n_w = 1;
  rc = measure_zero(s, s->w[0], ROWS * K * sizeof(float), zeros, MEASURE_BUFFER_BYTES);
  if (rc == 0)
    rc = s->ops->buffer_alloc(s->be, BACKEND_BUFFER_COMPUTE, K * sizeof(float), &s->x, err);
  if (rc == 0) rc = measure_zero(s, s->x, K * sizeof(float), zeros, MEASURE_BUFFER_BYTES);
  if (rc == 0)
    rc = s->ops->buffer_alloc(s->be, BACKEND_BUFFER_COMPUTE, ROWS * sizeof(float), &s->y, err);
  struct backend_tensor w = {
      .type = QUANT_F32, .ne = {K, ROWS, 1, 1}, .row_stride = K * sizeof(float), .buffer = s->w[0]};
  struct backend_tensor x = {
      .type = QUANT_F32, .ne = {K, 1, 1, 1}, .row_stride = K * sizeof(float), .buffer = s->x};
  struct backend_tensor y = {
      .type = QUANT_F32, .ne = {ROWS, 1, 1, 1}, .row_stride = ROWS * sizeof(float), .buffer = s->y};
  double best = 0;
  for (int run = 0; run <= MEASURE_RUNS && rc == 0; run++) {
    double t0 = now_s();
    for (int i = 0; i < N_OPS && rc == 0; i++)
      rc = s->ops->matmul(s->be, &w, &x, &y);
    if (rc == 0) rc = s->ops->synchronize(s->be, err);
    double dt = now_s() - t0;
    if (run > 0 && (best == 0 || dt < best)) best = dt;
  }
  measure_set_free(s);
  if (rc < 0) return aug_err_set(err, rc, "plan: small matmuls on %s failed", s->ops->name);
  *per_op = best / N_OPS;
  return 0;
}

int plan_measure_backend(const struct backend_ops *ops, struct backend *be, const uint32_t *types,
                         size_t n_types, struct plan_device *out, struct aug_err *err) {
  memset(out, 0, sizeof *out);
  struct backend_device_info info;
  memset(&info, 0, sizeof info);
  if (ops->device_info && ops->device_info(be, &info) < 0)
    return aug_err_set(err, AUG_EDEVICE, "plan: %s: no device information", ops->name);
  snprintf(out->name, sizeof out->name, "%s", info.name[0] ? info.name : ops->name);
  out->memory_bytes = info.free_memory;
  out->is_host = !strcmp(ops->name, "cpu");
  /* Use at most a quarter of what is free (and a fraction of RAM for host-visible devices). */
  uint64_t budget =
      info.free_memory ? info.free_memory / 4 : MEASURE_BUFFERS * MEASURE_BUFFER_BYTES;
  if (budget > MEASURE_BUFFERS * MEASURE_BUFFER_BYTES)
    budget = MEASURE_BUFFERS * MEASURE_BUFFER_BYTES;
  void *zeros = aug_calloc(1, MEASURE_BUFFER_BYTES);
  if (!zeros) return aug_err_set(err, AUG_ENOMEM, "plan: no memory for the measurement");
  struct measure_set s = {.ops = ops, .be = be};
  double q4k = 0;
  int rc = measure_type(&s, QUANT_Q4_K, budget, zeros, &q4k, err);
  double per_op = 0;
  if (rc == 0) rc = measure_op_overhead(&s, zeros, &per_op, err);
  for (size_t i = 0; i < n_types && rc == 0; i++) {
    uint32_t t = types[i];
    if (t == QUANT_Q4_K || t >= QUANT_TYPE_COUNT || out->type_speed[t] > 0) continue;
    if (!quant_traits(t) || quant_row_size(t, MEASURE_K) == 0) continue;
    if (ops->supports_op && !ops->supports_op(be, BACKEND_OP_MATMUL, t)) continue;
    double bw = 0;
    struct aug_err type_err = {0};
    /* A type the device cannot run is left at 1 (unknown), not a failure of the measurement. */
    if (measure_type(&s, t, budget, zeros, &bw, &type_err) == 0 && q4k > 0)
      out->type_speed[t] = (float)(bw / q4k);
  }
  aug_free(zeros);
  if (rc < 0) return rc;
  out->bandwidth = q4k;
  out->layer_overhead_s = per_op * MEASURE_OPS_PER_LAYER;
  out->bandwidth_measured = true;
  return 0;
}
