/* Tests for the CPU backend's compute pool (backends/cpu/cpu_threadpool.c): every thread runs
 * every task exactly once with its own index, results are visible to the caller when run()
 * returns, workers that went to sleep wake up, and create/destroy does not leak or hang. */
#include "tests/unit/test_support.h"

#include <stdatomic.h>
#include <time.h>

#include "backends/cpu/cpu_threadpool.h"

struct count_task {
  int counts[8];
  int nth_seen[8];
  atomic_int total;
};

static void count_run(void *arg, int ith, int nth) {
  struct count_task *t = arg;
  t->counts[ith]++; /* plain write: run() must publish it to the caller */
  t->nth_seen[ith] = nth;
  atomic_fetch_add(&t->total, 1);
}

static void test_every_thread_runs_each_task_once(void **state) {
  for (int n = 1; n <= 5; n++) {
    struct cpu_threadpool *pool;
    struct aug_err err;
    assert_int_equal(cpu_threadpool_create(n, &pool, &err), 0);
    assert_int_equal(cpu_threadpool_size(pool), n);
    struct count_task t = {0};
    int reps = n <= 2 ? 2000 : 200; /* more threads than this machine's cores: slow by design */
    for (int rep = 0; rep < reps; rep++)
      cpu_threadpool_run(pool, count_run, &t);
    for (int i = 0; i < n; i++) {
      assert_int_equal(t.counts[i], reps);
      assert_int_equal(t.nth_seen[i], n);
    }
    assert_int_equal(atomic_load(&t.total), reps * n);
    cpu_threadpool_destroy(pool);
  }
  cpu_threadpool_destroy(NULL);
}

static void test_sleeping_workers_wake(void **state) {
  struct cpu_threadpool *pool;
  struct aug_err err;
  assert_int_equal(cpu_threadpool_create(3, &pool, &err), 0);
  struct count_task t = {0};
  for (int rep = 0; rep < 3; rep++) {
    /* 30 ms idle: far past the spin phase, so the workers block on the condition variable */
    struct timespec ts = {0, 30 * 1000 * 1000};
    nanosleep(&ts, NULL);
    cpu_threadpool_run(pool, count_run, &t);
  }
  for (int i = 0; i < 3; i++)
    assert_int_equal(t.counts[i], 3);
  cpu_threadpool_destroy(pool);
}

static void test_rejects_bad_sizes(void **state) {
  struct cpu_threadpool *pool = (struct cpu_threadpool *)&pool;
  struct aug_err err;
  assert_int_equal(cpu_threadpool_create(0, &pool, &err), AUG_EINVAL);
  assert_null(pool);
  assert_non_null(strstr(err.msg, "0"));
  assert_int_equal(cpu_threadpool_create(5000, &pool, &err), AUG_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_thread_runs_each_task_once),
      cmocka_unit_test(test_sleeping_workers_wake),
      cmocka_unit_test(test_rejects_bad_sizes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
