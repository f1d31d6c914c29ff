/* Persistent compute pool (see cpu_threadpool.h). A task has n_threads slots; the owner and the
 * workers claim slots from `claim` = (generation << 32 | next slot) with a CAS, run them, and
 * count them in `completed`. The owner keeps claiming until no slot is left, so a worker that is
 * asleep or descheduled (a busy, shared machine) delays nothing: the owner runs its slot. A worker
 * that wakes late finds the generation moved on and claims nothing; it reads fn/ctx only after a
 * successful claim, and the owner does not return (so ctx stays alive) before every slot is
 * completed.
 * Sleep protocol (Dekker-style): a worker announces itself in `sleepers` under the mutex before
 * re-checking `generation`, and the owner reads `sleepers` after publishing the generation (both
 * seq_cst), so no wake-up is lost. */
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
};

struct cpu_threadpool {
  int n_threads;
  struct pool_worker *workers; /* [n_threads - 1] */
  cpu_task_fn fn;              /* written by the owner before a generation is published */
  void *ctx;
  atomic_bool stop;         /* read by workers that may be late for a generation: atomic */
  uint32_t last_generation; /* owner only */
  atomic_uint generation;   /* what workers wait on */
  atomic_ullong claim;      /* generation << 32 | next unclaimed slot */
  atomic_int completed;     /* slots finished in the current generation */
  atomic_int sleepers;
  pthread_mutex_t mutex;
  pthread_cond_t wake;
};

/* Claims and runs slots of generation gen until none is left (or gen is over). */
static void pool_run_slots(struct cpu_threadpool *pool, uint32_t gen) {
  for (;;) {
    unsigned long long v = atomic_load_explicit(&pool->claim, memory_order_acquire);
    for (;;) {
      if ((uint32_t)(v >> 32) != gen || (int)(v & 0xffffffffu) >= pool->n_threads) return;
      if (atomic_compare_exchange_weak_explicit(&pool->claim, &v, v + 1, memory_order_acq_rel,
                                                memory_order_acquire)) {
        break;
      }
    }
    pool->fn(pool->ctx, (int)(v & 0xffffffffu), pool->n_threads);
    atomic_fetch_add_explicit(&pool->completed, 1, memory_order_release);
  }
}

static void *pool_worker_main(void *arg) {
  struct pool_worker *w = arg;
  struct cpu_threadpool *pool = w->pool;
  uint32_t seen = 0;
  for (;;) {
    uint32_t gen;
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
    if (atomic_load_explicit(&pool->stop, memory_order_acquire)) break;
    pool_run_slots(pool, gen);
  }
  return NULL;
}

static void pool_publish(struct cpu_threadpool *pool, uint32_t gen) {
  atomic_store_explicit(&pool->completed, 0, memory_order_relaxed);
  atomic_store_explicit(&pool->claim, (unsigned long long)gen << 32, memory_order_release);
  atomic_store(&pool->generation, gen); /* seq_cst: pairs with the sleepers check below */
  if (atomic_load(&pool->sleepers) > 0) {
    pthread_mutex_lock(&pool->mutex);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mutex);
  }
}

static void pool_wait(struct cpu_threadpool *pool) {
  int spins = 0;
  int64_t spin_start = 0;
  while (atomic_load_explicit(&pool->completed, memory_order_acquire) != pool->n_threads) {
    CPU_PAUSE();
    if (++spins % POOL_SPIN_CHECK) continue;
    int64_t now = pool_now_ns();
    if (spin_start == 0) spin_start = now;
    /* A worker descheduled mid-slot on a busy machine needs a core: give it ours. */
    if (now - spin_start > POOL_SPIN_NS / 4) sched_yield();
  }
}

static void pool_stop_and_join(struct cpu_threadpool *pool, int started) {
  atomic_store_explicit(&pool->stop, true, memory_order_release);
  pool_publish(pool, ++pool->last_generation);
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
  atomic_init(&pool->claim, 0);
  atomic_init(&pool->completed, 0);
  atomic_init(&pool->sleepers, 0);
  atomic_init(&pool->stop, false);
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
  uint32_t gen = ++pool->last_generation;
  if (gen == 0) gen = ++pool->last_generation; /* 0 is what workers start out having seen */
  pool_publish(pool, gen);
  pool_run_slots(pool, gen);
  pool_wait(pool);
}
