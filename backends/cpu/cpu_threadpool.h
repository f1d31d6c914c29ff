/* A persistent compute pool for the CPU backend: n - 1 worker threads plus the calling thread run
 * one task at a time: fn(ctx, ith, nth) runs exactly once for each slot ith in [0, nth), each
 * slot on one thread (usually slot i on thread i; the caller takes over slots of workers that
 * are slow to wake, so a task must not assume which thread runs which slot, only that a slot's
 * scratch is its own). Dispatch is a generation counter the workers spin on (then sleep on a
 * condition variable when idle for a while), so per-op overhead is a few microseconds: decode
 * issues hundreds of ops per token.
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

/* Runs fn for every slot and returns when all slots have finished. */
void cpu_threadpool_run(struct cpu_threadpool *pool, cpu_task_fn fn, void *ctx);

#endif
