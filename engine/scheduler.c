/* Engine thread and its queues (see scheduler.h). One mutex guards the three intrusive lists
 * (queued jobs, finished jobs, jobs with a progress note); the condition variable wakes the engine
 * thread, uv_async_send wakes the loop. Delivery swaps the lists out under the lock and calls back
 * without it, so callbacks may submit new jobs. */
#include "engine/scheduler.h"

#include <pthread.h>
#include <string.h>

#include "engine/alloc.h"

struct scheduler {
  uv_loop_t *loop;
  uv_async_t async;
  pthread_t thread;
  pthread_mutex_t mutex;
  pthread_cond_t cond;
  bool stopping;
  struct scheduler_job *queue_head, *queue_tail; /* waiting to run */
  struct scheduler_job *running;                 /* on the engine thread now */
  struct scheduler_job *done_head, *done_tail;   /* finished, not yet delivered */
  struct scheduler_job *progress_head, *progress_tail;
  size_t pending; /* submitted and not yet delivered (loop thread only) */
};

void scheduler_job_init(struct scheduler_job *job, scheduler_run_fn run, scheduler_done_fn done,
                        void *data) {
  memset(job, 0, sizeof *job);
  job->run = run;
  job->done = done;
  job->data = data;
  atomic_init(&job->cancel, false);
}

static void *engine_thread_main(void *arg) {
  struct scheduler *s = arg;
  pthread_mutex_lock(&s->mutex);
  for (;;) {
    while (!s->stopping && !s->queue_head)
      pthread_cond_wait(&s->cond, &s->mutex);
    if (s->stopping) break;
    struct scheduler_job *job = s->queue_head;
    s->queue_head = job->next;
    if (!s->queue_head) s->queue_tail = NULL;
    job->next = NULL;
    s->running = job;
    pthread_mutex_unlock(&s->mutex);
    job->run(job);
    pthread_mutex_lock(&s->mutex);
    s->running = NULL;
    job->ran = true;
    if (s->done_tail)
      s->done_tail->next = job;
    else
      s->done_head = job;
    s->done_tail = job;
    uv_async_send(&s->async);
  }
  pthread_mutex_unlock(&s->mutex);
  return NULL;
}

/* Loop thread: delivers progress notes, then finished jobs. */
static void deliver(struct scheduler *s) {
  pthread_mutex_lock(&s->mutex);
  struct scheduler_job *progress = s->progress_head, *done = s->done_head;
  s->progress_head = s->progress_tail = NULL;
  s->done_head = s->done_tail = NULL;
  for (struct scheduler_job *j = progress; j; j = j->progress_next)
    j->progress_queued = false;
  pthread_mutex_unlock(&s->mutex);
  while (progress) {
    struct scheduler_job *next = progress->progress_next;
    progress->progress_next = NULL;
    if (progress->progress) progress->progress(progress);
    progress = next;
  }
  while (done) {
    struct scheduler_job *next = done->next;
    done->next = NULL;
    s->pending--;
    done->done(done); /* may free the job */
    done = next;
  }
}

static void async_cb(uv_async_t *handle) {
  deliver(handle->data);
}

static void closed_cb(uv_handle_t *handle) {
  aug_free(handle->data);
}

int scheduler_create(uv_loop_t *loop, struct scheduler **out, struct aug_err *err) {
  *out = NULL;
  struct scheduler *s = aug_calloc(1, sizeof *s);
  if (!s) return aug_err_set(err, AUG_ENOMEM, "scheduler: out of memory");
  s->loop = loop;
  int rc = uv_async_init(loop, &s->async, async_cb);
  if (rc) {
    aug_free(s);
    return aug_err_set(err, AUG_EIO, "scheduler: uv_async_init: %s", uv_strerror(rc));
  }
  s->async.data = s;
  pthread_mutex_init(&s->mutex, NULL);
  pthread_cond_init(&s->cond, NULL);
  rc = pthread_create(&s->thread, NULL, engine_thread_main, s);
  if (rc) {
    pthread_mutex_destroy(&s->mutex);
    pthread_cond_destroy(&s->cond);
    uv_close((uv_handle_t *)&s->async, closed_cb);
    return aug_err_set(err, AUG_EIO, "scheduler: cannot start the engine thread (error %d)", rc);
  }
  *out = s;
  return 0;
}

void scheduler_submit(struct scheduler *s, struct scheduler_job *job) {
  job->owner = s;
  job->next = NULL;
  job->ran = false;
  s->pending++;
  pthread_mutex_lock(&s->mutex);
  if (s->queue_tail)
    s->queue_tail->next = job;
  else
    s->queue_head = job;
  s->queue_tail = job;
  pthread_cond_signal(&s->cond);
  pthread_mutex_unlock(&s->mutex);
}

void scheduler_cancel_all(struct scheduler *s) {
  pthread_mutex_lock(&s->mutex);
  for (struct scheduler_job *j = s->queue_head; j; j = j->next)
    atomic_store(&j->cancel, true);
  if (s->running) atomic_store(&s->running->cancel, true);
  pthread_mutex_unlock(&s->mutex);
}

size_t scheduler_pending(struct scheduler *s) {
  return s->pending;
}

void scheduler_job_progress(struct scheduler_job *job) {
  struct scheduler *s = job->owner;
  pthread_mutex_lock(&s->mutex);
  if (!job->progress_queued) {
    job->progress_queued = true;
    job->progress_next = NULL;
    if (s->progress_tail)
      s->progress_tail->progress_next = job;
    else
      s->progress_head = job;
    s->progress_tail = job;
  }
  pthread_mutex_unlock(&s->mutex);
  uv_async_send(&s->async);
}

void scheduler_destroy(struct scheduler *s) {
  if (!s) return;
  scheduler_cancel_all(s);
  pthread_mutex_lock(&s->mutex);
  s->stopping = true;
  pthread_cond_signal(&s->cond);
  pthread_mutex_unlock(&s->mutex);
  pthread_join(s->thread, NULL);
  /* The thread is gone: finished jobs are delivered, queued ones are handed back unrun. */
  deliver(s);
  struct scheduler_job *j = s->queue_head;
  s->queue_head = s->queue_tail = NULL;
  while (j) {
    struct scheduler_job *next = j->next;
    j->next = NULL;
    s->pending--;
    j->done(j);
    j = next;
  }
  pthread_mutex_destroy(&s->mutex);
  pthread_cond_destroy(&s->cond);
  uv_close((uv_handle_t *)&s->async, closed_cb);
}
