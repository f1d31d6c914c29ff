/* A persistent compute pool for the CPU backend: n - 1 worker threads plus the calling thread run
 * one task at a time, fn(ctx, ith, nth) for ith in [0, nth). Dispatch is a generation counter the
 * workers spin on (then sleep on a condition variable when idle for a while), so per-op overhead
 * is a few microseconds: decode issues hundreds of ops per token.
 * Only one thread (the owner, usually the engine thread) may call cpu_threadpool_run. */
#ifndef AUGURY_BACKENDS_CPU_CPU_THREADPOOL_H
#define AUGURY_BACKENDS_CPU_CPU_THREADPOOL_H

#include "engine/error.h"

struct cpu_threadpool;

typedef void (*cpu_task_fn)(void *ctx, int ith, int nth);

/* n_threads >= 1 counts the caller; n_threads == 1 starts no thread. */
int cpu_threadpool_create(int n_threads, struct cpu_threadpool **out, struct aug_err *err);
void cpu_threadpool_destroy(struct cpu_threadpool *pool); /* NULL: no-op; joins the workers */
int cpu_threadpool_size(const struct cpu_threadpool *pool);

/* Runs fn on every thread (the caller is ith 0) and returns when all have finished. */
void cpu_threadpool_run(struct cpu_threadpool *pool, cpu_task_fn fn, void *ctx);

#endif
