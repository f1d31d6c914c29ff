/* Tests for engine/scheduler.c: FIFO order on one engine thread, progress delivered before done,
 * cancellation of running and queued jobs, and shutdown handing back unrun jobs. */
#include "../test_support.h"

#include <pthread.h>
#include <unistd.h>

#include "engine/scheduler.h"

struct probe {
  struct scheduler_job job;
  int index;
  int *order; /* shared log of done calls */
  int *n_order;
  int progress_calls;
  atomic_int steps_run; /* how many 1 ms "tokens" run performed */
  bool saw_cancel;
  bool done_after_progress;
  pthread_t thread;
};

static void probe_run(struct scheduler_job *job) {
  struct probe *p = job->data;
  p->thread = pthread_self();
  for (int i = 0; i < 200; i++) {
    if (atomic_load(&job->cancel)) {
      p->saw_cancel = true;
      return;
    }
    if (i == 2 && job->progress) scheduler_job_progress(job);
    p->steps_run++;
    usleep(1000);
  }
}

static void probe_progress(struct scheduler_job *job) {
  struct probe *p = job->data;
  p->progress_calls++;
}

static void probe_done(struct scheduler_job *job) {
  struct probe *p = job->data;
  p->order[(*p->n_order)++] = p->index;
  p->done_after_progress = p->progress_calls > 0;
}

static void test_fifo_progress_cancel(void **state) {
  (void)state;
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  struct scheduler *s = NULL;
  struct aug_err err = {0};
  assert_int_equal(scheduler_create(&loop, &s, &err), 0);
  int order[8], n_order = 0;
  struct probe probes[3];
  for (int i = 0; i < 3; i++) {
    memset(&probes[i], 0, sizeof probes[i]);
    scheduler_job_init(&probes[i].job, probe_run, probe_done, &probes[i]);
    probes[i].index = i;
    probes[i].order = order;
    probes[i].n_order = &n_order;
  }
  probes[0].job.progress = probe_progress;
  /* Job 1 is cancelled before it starts: it runs, sees the flag at once, and is still delivered. */
  atomic_store(&probes[1].job.cancel, true);
  for (int i = 0; i < 3; i++)
    scheduler_submit(s, &probes[i].job);
  assert_int_equal(scheduler_pending(s), 3);
  while (n_order < 3)
    uv_run(&loop, UV_RUN_ONCE);
  assert_int_equal(order[0], 0);
  assert_int_equal(order[1], 1);
  assert_int_equal(order[2], 2);
  assert_int_equal(probes[0].progress_calls, 1);
  assert_true(probes[0].done_after_progress);
  assert_true(probes[1].saw_cancel);
  assert_int_equal(probes[1].steps_run, 0);
  assert_int_equal(probes[2].steps_run, 200);
  assert_true(probes[0].job.ran);
  assert_false(pthread_equal(probes[0].thread, pthread_self()));
  assert_true(pthread_equal(probes[0].thread, probes[2].thread));
  assert_int_equal(scheduler_pending(s), 0);
  scheduler_destroy(s);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_destroy_cancels_and_returns_jobs(void **state) {
  (void)state;
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  struct scheduler *s = NULL;
  struct aug_err err = {0};
  assert_int_equal(scheduler_create(&loop, &s, &err), 0);
  int order[8], n_order = 0;
  struct probe probes[3];
  for (int i = 0; i < 3; i++) {
    memset(&probes[i], 0, sizeof probes[i]);
    scheduler_job_init(&probes[i].job, probe_run, probe_done, &probes[i]);
    probes[i].index = i;
    probes[i].order = order;
    probes[i].n_order = &n_order;
    scheduler_submit(s, &probes[i].job);
  }
  while (probes[0].steps_run == 0)
    usleep(1000);
  /* Job 0 is running: destroy cancels it mid-way and hands back 1 and 2 without running them. */
  scheduler_destroy(s);
  assert_int_equal(n_order, 3);
  assert_true(probes[0].saw_cancel);
  assert_true(probes[0].steps_run < 200);
  assert_true(probes[0].job.ran);
  assert_false(probes[1].job.ran);
  assert_false(probes[2].job.ran);
  assert_int_equal(probes[1].steps_run, 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  scheduler_destroy(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fifo_progress_cancel),
      cmocka_unit_test(test_destroy_cancels_and_returns_jobs),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
