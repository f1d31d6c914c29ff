/* Persistent compute pool (see cpu_threadpool.h). Invariants: `generation` only grows and is
 * written by the owner only; a worker runs the task of each generation exactly once, then
 * decrements `pending`. The sleep protocol is Dekker-style: a worker announces itself in
 * `sleepers` under the mutex before re-checking `generation`, and the owner reads `sleepers` after
 * publishing the generation (both seq_cst), so no wake-up is lost. */
#include "backends/cpu/cpu_threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "engine/alloc.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_PAUSE() _mm_pause()
#else
#define CPU_PAUSE() ((void)0)
#endif

/* How long a worker spins before it sleeps: longer than the gap between two ops of one token,
 * much shorter than the gap between requests. Measured in time, not iterations: a pause costs
 * 10 ns on one CPU and 50+ ns on another (or under a hypervisor). */
#define POOL_SPIN_NS 100000
/* Pauses between clock reads while spinning. */
#define POOL_SPIN_CHECK 16

static int64_t pool_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

struct cpu_threadpool;

struct pool_worker {
  struct cpu_threadpool *pool;
  pthread_t thread;
  int ith;
};

struct cpu_threadpool {
  int n_threads;
  struct pool_worker *workers; /* [n_threads - 1] */
  cpu_task_fn fn;              /* written by the owner before a generation is published */
  void *ctx;
  bool stop;
  atomic_uint generation;
  atomic_int pending; /* workers still running the current generation */
  atomic_int sleepers;
  pthread_mutex_t mutex;
  pthread_cond_t wake;
};

static void *pool_worker_main(void *arg) {
  struct pool_worker *w = arg;
  struct cpu_threadpool *pool = w->pool;
  unsigned seen = 0;
  for (;;) {
    unsigned gen;
    int spins = 0;
    int64_t spin_start = 0;
    while ((gen = atomic_load_explicit(&pool->generation, memory_order_acquire)) == seen) {
      CPU_PAUSE();
      if (++spins % POOL_SPIN_CHECK) continue;
      int64_t now = pool_now_ns();
      if (spin_start == 0) spin_start = now;
      if (now - spin_start < POOL_SPIN_NS) continue;
      pthread_mutex_lock(&pool->mutex);
      atomic_fetch_add(&pool->sleepers, 1);
      while ((gen = atomic_load(&pool->generation)) == seen)
        pthread_cond_wait(&pool->wake, &pool->mutex);
      atomic_fetch_sub(&pool->sleepers, 1);
      pthread_mutex_unlock(&pool->mutex);
      break;
    }
    seen = gen;
    if (pool->stop) break;
    pool->fn(pool->ctx, w->ith, pool->n_threads);
    atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_release);
  }
  return NULL;
}

static void pool_publish(struct cpu_threadpool *pool) {
  atomic_store_explicit(&pool->pending, pool->n_threads - 1, memory_order_relaxed);
  atomic_fetch_add(&pool->generation, 1); /* seq_cst: pairs with the sleepers check below */
  if (atomic_load(&pool->sleepers) > 0) {
    pthread_mutex_lock(&pool->mutex);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mutex);
  }
}

static void pool_wait(struct cpu_threadpool *pool) {
  int spins = 0;
  int64_t spin_start = 0;
  while (atomic_load_explicit(&pool->pending, memory_order_acquire) != 0) {
    CPU_PAUSE();
    if (++spins % POOL_SPIN_CHECK) continue;
    int64_t now = pool_now_ns();
    if (spin_start == 0) spin_start = now;
    /* A worker descheduled on a busy (or oversubscribed) machine needs our core: give it. */
    if (now - spin_start > POOL_SPIN_NS / 4) sched_yield();
  }
}

static void pool_stop_and_join(struct cpu_threadpool *pool, int started) {
  pool->stop = true;
  pool->fn = NULL;
  pool_publish(pool);
  for (int i = 0; i < started; i++)
    pthread_join(pool->workers[i].thread, NULL);
}

int cpu_threadpool_create(int n_threads, struct cpu_threadpool **out, struct aug_err *err) {
  *out = NULL;
  if (n_threads < 1 || n_threads > 1024) {
    return aug_err_set(err, AUG_EINVAL, "cpu: thread count %d is outside [1, 1024]", n_threads);
  }
  struct cpu_threadpool *pool = aug_calloc(1, sizeof *pool);
  if (!pool) return aug_err_set(err, AUG_ENOMEM, "cpu: cannot allocate the thread pool");
  pool->n_threads = n_threads;
  atomic_init(&pool->generation, 0);
  atomic_init(&pool->pending, 0);
  atomic_init(&pool->sleepers, 0);
  pthread_mutex_init(&pool->mutex, NULL);
  pthread_cond_init(&pool->wake, NULL);
  if (n_threads > 1) {
    pool->workers = aug_calloc((size_t)n_threads - 1, sizeof *pool->workers);
    if (!pool->workers) {
      cpu_threadpool_destroy(pool);
      return aug_err_set(err, AUG_ENOMEM, "cpu: cannot allocate %d workers", n_threads - 1);
    }
  }
  for (int i = 0; i < n_threads - 1; i++) {
    pool->workers[i].pool = pool;
    pool->workers[i].ith = i + 1;
    int rc = pthread_create(&pool->workers[i].thread, NULL, pool_worker_main, &pool->workers[i]);
    if (rc != 0) {
      pool_stop_and_join(pool, i);
      aug_free(pool->workers);
      pool->workers = NULL;
      pool->n_threads = 1;
      cpu_threadpool_destroy(pool);
      return aug_err_set(err, AUG_ENOMEM, "cpu: cannot start compute thread %d of %d (error %d)",
                         i + 1, n_threads - 1, rc);
    }
  }
  *out = pool;
  return 0;
}

void cpu_threadpool_destroy(struct cpu_threadpool *pool) {
  if (!pool) return;
  if (pool->workers) pool_stop_and_join(pool, pool->n_threads - 1);
  pthread_mutex_destroy(&pool->mutex);
  pthread_cond_destroy(&pool->wake);
  aug_free(pool->workers);
  aug_free(pool);
}

int cpu_threadpool_size(const struct cpu_threadpool *pool) {
  return pool->n_threads;
}

void cpu_threadpool_run(struct cpu_threadpool *pool, cpu_task_fn fn, void *ctx) {
  if (pool->n_threads == 1) {
    fn(ctx, 0, 1);
    return;
  }
  pool->fn = fn;
  pool->ctx = ctx;
  pool_publish(pool);
  fn(ctx, 0, pool->n_threads);
  pool_wait(pool);
}
