/* Per-sample timing for the syntax benchmarks: thread CPU time (what the syntax check's budgets
 * count; the machines these run on are shared, and wall time there measures the neighbours as
 * much as the check) with wall time beside it, and one line of percentiles per measurement; and
 * reading the file benchmarked, with its line starts. */
#ifndef AUGURY_TESTS_BENCH_SYNTAX_TIMING_H
#define AUGURY_TESTS_BENCH_SYNTAX_TIMING_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

struct bench_timing {
  double *cpu, *wall; /* ms, [cap] */
  size_t n, cap;
  double cpu0, wall0;
};

static inline double bench_clock_ms(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static inline double bench_cpu_ms(void) {
  return bench_clock_ms(CLOCK_THREAD_CPUTIME_ID);
}

/* Room for cap samples; exits on out of memory (a benchmark has nothing better to do). */
static inline struct bench_timing bench_timing_new(size_t cap) {
  struct bench_timing t = {
      malloc(cap * sizeof(double)), malloc(cap * sizeof(double)), 0, cap, 0, 0};
  if (!t.cpu || !t.wall) {
    fprintf(stderr, "bench: out of memory for %zu samples\n", cap);
    exit(1);
  }
  return t;
}

static inline void bench_timing_free(struct bench_timing *t) {
  free(t->cpu);
  free(t->wall);
}

static inline void bench_timing_start(struct bench_timing *t) {
  t->wall0 = bench_clock_ms(CLOCK_MONOTONIC);
  t->cpu0 = bench_cpu_ms();
}

/* Ends the sample begun by bench_timing_start (dropped when the timing is full). */
static inline void bench_timing_stop(struct bench_timing *t) {
  if (t->n == t->cap) return;
  t->cpu[t->n] = bench_cpu_ms() - t->cpu0;
  t->wall[t->n] = bench_clock_ms(CLOCK_MONOTONIC) - t->wall0;
  t->n++;
}

/* Copies the last sample of from into to (a subset reported on its own). */
static inline void bench_timing_copy_last(struct bench_timing *to,
                                          const struct bench_timing *from) {
  if (from->n == 0 || to->n == to->cap) return;
  to->cpu[to->n] = from->cpu[from->n - 1];
  to->wall[to->n++] = from->wall[from->n - 1];
}

static inline int bench_compare_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* One line: median, p90, p99 and max CPU ms, median and p99 wall ms. Sorts the samples. */
static inline void bench_timing_report(const char *what, struct bench_timing *t) {
  size_t n = t->n;
  if (n == 0) return;
  qsort(t->cpu, n, sizeof *t->cpu, bench_compare_double);
  qsort(t->wall, n, sizeof *t->wall, bench_compare_double);
  printf("  %-34s n=%-3zu cpu ms: median %.3f  p90 %.3f  p99 %.3f  max %.3f | wall ms: median "
         "%.3f  p99 %.3f\n",
         what, n, t->cpu[n / 2], t->cpu[n * 9 / 10], t->cpu[n * 99 / 100], t->cpu[n - 1],
         t->wall[n / 2], t->wall[n * 99 / 100]);
}

/* The whole file, NUL-terminated (*length bytes), or NULL. */
static inline char *bench_read_file(const char *path, size_t *length) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *text = n >= 0 ? malloc((size_t)n + 1) : NULL;
  if (!text || fread(text, 1, (size_t)n, f) != (size_t)n) {
    free(text);
    fclose(f);
    return NULL;
  }
  text[n] = '\0';
  fclose(f);
  *length = (size_t)n;
  return text;
}

/* Offsets of the line starts of text, with text's length after the last; *count lines. */
static inline size_t *bench_line_starts(const char *text, size_t length, size_t *count) {
  size_t n = 1;
  for (size_t i = 0; i < length; i++)
    n += text[i] == '\n';
  size_t *starts = malloc((n + 1) * sizeof *starts);
  if (!starts) return NULL;
  size_t k = 0;
  starts[k++] = 0;
  for (size_t i = 0; i < length; i++)
    if (text[i] == '\n') starts[k++] = i + 1;
  starts[k] = length;
  *count = k;
  return starts;
}

#endif
