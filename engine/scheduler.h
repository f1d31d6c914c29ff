/* The engine thread: one FIFO job queue served by one thread that owns the model (DESIGN.md
 * "Threads"). Jobs are submitted from the libuv loop thread; their run function executes on the
 * engine thread; progress notes and completion are posted back with uv_async_send and delivered on
 * the loop thread, progress always before done. Cancellation is an atomic flag in the job that run
 * functions check every token. The scheduler never allocates per job: jobs are caller-owned. */
#ifndef AUGURY_ENGINE_SCHEDULER_H
#define AUGURY_ENGINE_SCHEDULER_H

#include <stdatomic.h>
#include <stdbool.h>

#include <uv.h>

#include "engine/error.h"

struct scheduler; /* opaque */
struct scheduler_job;

typedef void (*scheduler_run_fn)(struct scheduler_job *job);      /* engine thread */
typedef void (*scheduler_done_fn)(struct scheduler_job *job);     /* loop thread */
typedef void (*scheduler_progress_fn)(struct scheduler_job *job); /* loop thread */

/* Caller-owned; must stay valid until done has been called. Initialise with scheduler_job_init. */
struct scheduler_job {
  scheduler_run_fn run;
  scheduler_done_fn done;         /* called exactly once per submitted job */
  scheduler_progress_fn progress; /* (optional) after scheduler_job_progress */
  void *data;
  atomic_bool cancel; /* raised by the loop thread; read by run every token */
  bool ran;           /* set when done follows a run (false: dropped at shutdown) */
  /* Private to the scheduler. */
  struct scheduler *owner;
  struct scheduler_job *next, *progress_next;
  bool progress_queued;
};

void scheduler_job_init(struct scheduler_job *job, scheduler_run_fn run, scheduler_done_fn done,
                        void *data);

/* Starts the engine thread; results are delivered on loop. */
int scheduler_create(uv_loop_t *loop, struct scheduler **out, struct aug_err *err);
/* Cancels the running and queued jobs, joins the thread, calls done for every job not yet
 * delivered (queued ones with ran = false), and closes its libuv handle (the loop must run once
 * more to finish closing). NULL is a no-op. */
void scheduler_destroy(struct scheduler *s);

/* Loop thread: queues a job (FIFO). */
void scheduler_submit(struct scheduler *s, struct scheduler_job *job);
/* Loop thread: raises the cancel flag of every queued and running job. */
void scheduler_cancel_all(struct scheduler *s);
/* Jobs queued or running (loop thread). */
size_t scheduler_pending(struct scheduler *s);

/* Engine thread, from inside run: asks for job->progress to be called on the loop thread soon
 * (requests made before the previous one was delivered are merged into one call). */
void scheduler_job_progress(struct scheduler_job *job);

#endif
