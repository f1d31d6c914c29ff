/* Memory-bandwidth probe for the decode ceiling (tests/bench/peer-cpu): a read pass (sum of a
 * large array, what a matvec over the weights does) and a STREAM-style triad a = b + s * c,
 * each over buffers far larger than the caches, on N threads, best of R repetitions.
 * Prints one JSON object: {"threads": N, "read_gbs": x, "triad_gbs": y} (GB = 1e9 bytes).
 * Build: cc -O2 -pthread tests/bench/membw.c -o membw; run: ./membw [threads] [MiB per array]. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

struct membw_job {
  double *a, *b, *c;
  size_t begin, end;
  int kind; /* 0 read, 1 triad */
  double sum;
};

static double membw_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void *membw_run(void *arg) {
  struct membw_job *j = arg;
  if (j->kind == 0) {
    /* Four independent sums so the loop is bound by loads, not by the add latency. */
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = j->begin;
    for (; i + 4 <= j->end; i += 4) {
      s0 += j->a[i];
      s1 += j->a[i + 1];
      s2 += j->a[i + 2];
      s3 += j->a[i + 3];
    }
    for (; i < j->end; i++)
      s0 += j->a[i];
    j->sum = s0 + s1 + s2 + s3;
  } else {
    for (size_t i = j->begin; i < j->end; i++)
      j->a[i] = j->b[i] + 3.0 * j->c[i];
  }
  return NULL;
}

/* Runs one pass on n_threads threads over n elements; returns seconds. */
static double membw_pass(double *a, double *b, double *c, size_t n, int n_threads, int kind,
                         double *sink) {
  pthread_t tid[64];
  struct membw_job jobs[64];
  double t0 = membw_now();
  for (int t = 0; t < n_threads; t++) {
    jobs[t] = (struct membw_job){a, b, c, n * t / n_threads, n * (t + 1) / n_threads, kind, 0};
    pthread_create(&tid[t], NULL, membw_run, &jobs[t]);
  }
  for (int t = 0; t < n_threads; t++) {
    pthread_join(tid[t], NULL);
    *sink += jobs[t].sum;
  }
  return membw_now() - t0;
}

int main(int argc, char **argv) {
  int n_threads = argc > 1 ? atoi(argv[1]) : 2;
  size_t mib = argc > 2 ? (size_t)atol(argv[2]) : 256;
  if (n_threads < 1 || n_threads > 64 || mib < 16) {
    fprintf(stderr, "usage: membw [threads 1..64] [MiB per array >= 16]\n");
    return 2;
  }
  size_t n = mib * 1024 * 1024 / sizeof(double);
  double *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *c = malloc(n * sizeof *c);
  if (!a || !b || !c) {
    fprintf(stderr, "membw: cannot allocate 3 x %zu MiB\n", mib);
    return 1;
  }
  for (size_t i = 0; i < n; i++) { /* touch every page before timing */
    a[i] = 1.0;
    b[i] = 2.0;
    c[i] = 0.5;
  }
  double sink = 0, best_read = 1e30, best_triad = 1e30;
  for (int r = 0; r < 5; r++) {
    double t = membw_pass(a, b, c, n, n_threads, 0, &sink);
    if (t < best_read) best_read = t;
    t = membw_pass(a, b, c, n, n_threads, 1, &sink);
    if (t < best_triad) best_triad = t;
  }
  double bytes = (double)n * sizeof(double);
  printf("{\"threads\": %d, \"read_gbs\": %.2f, \"triad_gbs\": %.2f, \"check\": %.0f}\n", n_threads,
         bytes / best_read / 1e9, 3.0 * bytes / best_triad / 1e9, sink > 0 ? 1.0 : 0.0);
  free(a);
  free(b);
  free(c);
  return 0;
}
