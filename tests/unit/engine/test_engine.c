/* Engine tests on a 2-layer synthetic Qwen2.5-Coder-0.5B-shaped model (engine/synth.h, built-in
 * vocabulary): longest-common-prefix reuse gives the same logits as a fresh evaluation and reports
 * what it reused, a prompt that is a prefix of the resident one re-evaluates only its last token,
 * push/truncate keep the resident sequence and the cache in step, cancellation leaves a valid
 * prefix (also inside the stable part of engine_set_prompt_stable, which keeps whole chunks), and
 * the argument checks; engine_push_tokens keeps every row, bit-identical to one-token decode, and
 * a truncation after it keeps the rows still resident. Runs in seconds, also under ASan. */
#include <math.h>
#include <grp.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/synth.h"
#include "tests/unit/test_support.h"

struct fixture {
  char path[64];
  struct engine *engine;
};

/* Writes a synthetic Qwen2.5-Coder-0.5B-shaped model (Q8_0, 1024-token vocabulary) to a fresh
 * temporary path and creates an engine on it with 2 threads. */
static struct engine *synth_engine(char path[64], uint32_t n_layers, uint64_t seed, uint32_t n_ctx,
                                   uint32_t n_batch) {
  snprintf(path, 64, "/tmp/augury-engine-XXXXXX"); /* mkstemp's template, not a placeholder */
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  struct synth_params sp = synth_params_default();
  sp.like = "qwen2.5-coder-0.5b";
  sp.type = SYNTH_TYPE_Q8_0;
  sp.n_layers = n_layers;
  sp.n_vocab = 1024;
  sp.seed = seed;
  struct aug_err err = {0};
  if (synth_write(&sp, path, &err)) fail_msg("synth_write: %s", err.msg);
  struct engine_params ep = engine_params_default();
  ep.model_path = path;
  ep.n_threads = 2;
  ep.n_ctx = n_ctx;
  ep.n_batch = n_batch;
  struct engine *e = NULL;
  if (engine_create(&ep, &e, &err)) fail_msg("engine_create: %s", err.msg);
  return e;
}

static int setup(void **state) {
  struct fixture *f = calloc(1, sizeof *f);
  assert_non_null(f);
  f->engine = synth_engine(f->path, 2, 5, 64, 16);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fixture *f = *state;
  engine_destroy(f->engine);
  engine_destroy(NULL);
  unlink(f->path);
  free(f);
  return 0;
}

static void tokens_for(int32_t *t, size_t n, uint32_t seed) {
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1664525u + 1013904223u;
    t[i] = (int32_t)((seed >> 8) % 1024);
  }
}

static float *copy_logits(struct engine *e) {
  size_t nv = engine_model(e)->hp.n_vocab;
  const float *l = engine_logits(e);
  assert_non_null(l);
  float *c = malloc(nv * sizeof *c);
  assert_non_null(c);
  memcpy(c, l, nv * sizeof *c);
  return c;
}

static double diff(const float *a, const float *b, size_t n) {
  double m = 0.0;
  for (size_t i = 0; i < n; i++)
    if (fabs((double)a[i] - b[i]) > m) m = fabs((double)a[i] - b[i]);
  return m;
}

static void test_prefix_reuse_equals_fresh(void **state) {
  struct fixture *f = *state;
  struct engine *e = f->engine;
  size_t nv = engine_model(e)->hp.n_vocab;
  assert_int_equal(nv, 1024);
  struct aug_err err = {0};
  struct engine_eval_stats st;
  int32_t a[40], b[40];
  tokens_for(a, 40, 1);
  memcpy(b, a, sizeof a);
  tokens_for(b + 25, 15, 2); /* b shares 25 tokens with a */

  assert_int_equal(engine_set_prompt(e, a, 40, NULL, &st, &err), 0);
  assert_int_equal(st.n_reused, 0);
  assert_int_equal(st.n_evaluated, 40);
  assert_int_equal(engine_n_resident(e), 40);
  assert_memory_equal(engine_resident_tokens(e), a, sizeof a);
  float *la = copy_logits(e);

  /* The same prompt again: nothing to evaluate, same logits. */
  assert_int_equal(engine_set_prompt(e, a, 40, NULL, &st, &err), 0);
  assert_int_equal(st.n_reused, 40);
  assert_int_equal(st.n_evaluated, 0);
  assert_true(diff(la, engine_logits(e), nv) == 0.0);

  /* Shared prefix of 25: only 15 evaluated. */
  assert_int_equal(engine_set_prompt(e, b, 40, NULL, &st, &err), 0);
  assert_int_equal(st.n_reused, 25);
  assert_int_equal(st.n_evaluated, 15);
  float *reused = copy_logits(e);
  assert_true(diff(reused, la, nv) > 0.0);

  /* Fresh evaluation of b. */
  engine_truncate(e, 0);
  assert_int_equal(engine_n_resident(e), 0);
  assert_null(engine_logits(e));
  assert_int_equal(engine_set_prompt(e, b, 40, NULL, &st, &err), 0);
  assert_int_equal(st.n_reused, 0);
  double d = diff(reused, engine_logits(e), nv);
  print_message("LCP reuse vs fresh: max |diff| %.2e\n", d);
  assert_true(d < 1e-4);

  /* A prompt that is a prefix of the resident one: its last token is re-evaluated for logits. */
  assert_int_equal(engine_set_prompt(e, b, 30, NULL, &st, &err), 0);
  assert_int_equal(st.n_reused, 29);
  assert_int_equal(st.n_evaluated, 1);
  assert_int_equal(engine_n_resident(e), 30);
  free(la);
  free(reused);
}

static void test_push_truncate(void **state) {
  struct fixture *f = *state;
  struct engine *e = f->engine;
  size_t nv = engine_model(e)->hp.n_vocab;
  struct aug_err err = {0};
  int32_t a[12];
  tokens_for(a, 12, 7);
  assert_int_equal(engine_set_prompt(e, a, 10, NULL, NULL, &err), 0);
  assert_int_equal(engine_push(e, a[10], NULL, &err), 0);
  assert_int_equal(engine_push(e, a[11], NULL, &err), 0);
  assert_int_equal(engine_n_resident(e), 12);
  assert_memory_equal(engine_resident_tokens(e), a, sizeof a);
  float *pushed = copy_logits(e);
  /* Same tokens as one prompt after dropping the last two. */
  assert_int_equal(engine_truncate(e, 10), 0);
  assert_int_equal(engine_n_resident(e), 10);
  assert_null(engine_logits(e));
  struct engine_eval_stats st;
  assert_int_equal(engine_set_prompt(e, a, 12, NULL, &st, &err), 0);
  assert_int_equal(st.n_reused, 10);
  assert_true(diff(pushed, engine_logits(e), nv) < 1e-4);
  assert_int_equal(engine_truncate(e, 100), 0); /* beyond the end: no-op */
  assert_int_equal(engine_n_resident(e), 12);
  assert_non_null(engine_logits(e));
  free(pushed);
}

static void test_ranges_and_cancel(void **state) {
  struct fixture *f = *state;
  struct engine *e = f->engine;
  struct aug_err err = {0};
  static int32_t many[65];
  assert_int_equal(engine_n_ctx(e), 64);
  assert_int_equal(engine_set_prompt(e, many, 0, NULL, NULL, &err), AUG_ERANGE);
  assert_int_equal(engine_set_prompt(e, many, 65, NULL, NULL, &err), AUG_ERANGE);
  assert_int_equal(engine_set_prompt(e, many, 64, NULL, NULL, &err), 0);
  assert_int_equal(engine_push(e, 1, NULL, &err), AUG_ERANGE); /* full */
  int32_t a[40];
  tokens_for(a, 40, 9);
  atomic_bool cancel;
  atomic_init(&cancel, true);
  engine_truncate(e, 0);
  assert_int_equal(engine_set_prompt(e, a, 40, &cancel, NULL, &err), AUG_ECANCELED);
  assert_true(engine_n_resident(e) < 40);
  assert_memory_equal(engine_resident_tokens(e), a, engine_n_resident(e) * sizeof *a);
  assert_null(engine_logits(e));
  atomic_store(&cancel, false);
  struct engine_eval_stats st;
  assert_int_equal(engine_set_prompt(e, a, 40, &cancel, &st, &err), 0);
  assert_int_equal(st.n_reused + st.n_evaluated, 40);
  assert_true(engine_kv_bytes(e) > 0);
  assert_non_null(strstr(engine_device_name(e), "CPU"));
  assert_int_equal(engine_n_threads(e), 2);
}

static void test_push_tokens(void **state) {
  struct fixture *f = *state;
  struct engine *e = f->engine;
  size_t nv = engine_model(e)->hp.n_vocab;
  struct aug_err err = {0};
  int32_t a[30];
  tokens_for(a, 30, 21);
  /* One-token decode of a[10..30) after a prompt of 10. */
  assert_int_equal(engine_set_prompt(e, a, 10, NULL, NULL, &err), 0);
  assert_non_null(engine_logits_at(e, 0)); /* row 0 = the last token */
  assert_null(engine_logits_at(e, 1));
  float *seq = malloc(20 * nv * sizeof *seq);
  for (int i = 0; i < 20; i++) {
    assert_int_equal(engine_push(e, a[10 + i], NULL, &err), 0);
    memcpy(seq + (size_t)i * nv, engine_logits(e), nv * sizeof *seq);
  }
  /* The same 20 tokens as pushes of 16 and 4 (16 crosses the n_batch of 16: one batch). */
  engine_truncate(e, 10);
  assert_null(engine_logits(e));
  assert_int_equal(engine_push_tokens(e, a + 10, 0, NULL, &err), AUG_ERANGE);
  assert_int_equal(engine_push_tokens(e, a + 10, ENGINE_MAX_VERIFY + 1, NULL, &err), AUG_ERANGE);
  assert_int_equal(engine_push_tokens(e, a + 10, 16, NULL, &err), 0);
  assert_int_equal(engine_n_resident(e), 26);
  double worst = 0.0;
  for (int i = 0; i < 16; i++) {
    double d = diff(engine_logits_at(e, (size_t)i), seq + (size_t)i * nv, nv);
    if (d > worst) worst = d;
  }
  assert_null(engine_logits_at(e, 16));
  assert_ptr_equal(engine_logits(e), engine_logits_at(e, 15));
  /* Accept 5 of 16: the logits of the new last token are row 4, and no evaluation is needed. */
  assert_int_equal(engine_truncate(e, 15), 0);
  assert_ptr_equal(engine_logits(e), engine_logits_at(e, 4));
  assert_null(engine_logits_at(e, 5));
  struct engine_eval_stats st;
  assert_int_equal(engine_set_prompt(e, a, 15, NULL, &st, &err), 0);
  assert_int_equal(st.n_reused, 15);
  assert_int_equal(st.n_evaluated, 0);
  assert_int_equal(engine_push_tokens(e, a + 15, 15, NULL, &err), 0);
  for (int i = 0; i < 15; i++) {
    double d = diff(engine_logits_at(e, (size_t)i), seq + (size_t)(5 + i) * nv, nv);
    if (d > worst) worst = d;
  }
  print_message("push_tokens rows vs one-token decode: max |diff| %.2e\n", worst);
  assert_true(worst == 0.0); /* verify batches run in one-token summation order */
  /* A cancelled push evaluates nothing; a full context refuses. */
  atomic_bool cancel;
  atomic_init(&cancel, true);
  engine_truncate(e, 10);
  assert_int_equal(engine_push_tokens(e, a + 10, 4, &cancel, &err), AUG_ECANCELED);
  assert_int_equal(engine_n_resident(e), 10);
  assert_null(engine_logits_at(e, 0));
  static int32_t zeros[64];
  assert_int_equal(engine_set_prompt(e, zeros, 60, NULL, NULL, &err), 0);
  assert_int_equal(engine_push_tokens(e, zeros, 5, NULL, &err), AUG_ERANGE);
  assert_int_equal(engine_push_tokens(e, zeros, 4, NULL, &err), 0);
  free(seq);
}

/* A cancellation inside the stable part keeps every whole chunk evaluated so far, and the next
 * call picks up from there. */
static void test_stable_prompt_cancel(void **state) {
  (void)state;
  char path[64];
  struct engine *e = synth_engine(path, 1, 7, 4 * ENGINE_STABLE_CHUNK, 0);
  struct aug_err err = {0};
  int32_t a[3 * ENGINE_STABLE_CHUNK + 8];
  size_t n = sizeof a / sizeof a[0], stable = 2 * ENGINE_STABLE_CHUNK + 5;
  tokens_for(a, n, 33);
  atomic_bool cancel;
  atomic_init(&cancel, true);
  struct engine_eval_stats st;
  /* Raised before the call: the first chunk is not interruptible, then the check stops it. */
  assert_int_equal(engine_set_prompt_stable(e, a, n, stable, &cancel, &st, &err), AUG_ECANCELED);
  assert_int_equal(engine_n_resident(e), ENGINE_STABLE_CHUNK);
  assert_int_equal(st.n_evaluated, ENGINE_STABLE_CHUNK);
  assert_memory_equal(engine_resident_tokens(e), a, ENGINE_STABLE_CHUNK * sizeof *a);
  atomic_store(&cancel, false);
  assert_int_equal(engine_set_prompt_stable(e, a, n, stable, &cancel, &st, &err), 0);
  assert_int_equal(st.n_reused, ENGINE_STABLE_CHUNK);
  assert_int_equal(st.n_evaluated, n - ENGINE_STABLE_CHUNK);
  assert_int_equal(engine_n_resident(e), n);
  assert_non_null(engine_logits(e));
  engine_destroy(e);
  unlink(path);
}

static void test_bad_params(void **state) {
  (void)state;
  struct engine *e = NULL;
  struct aug_err err = {0};
  struct engine_params ep = engine_params_default();
  assert_int_equal(engine_create(&ep, &e, &err), AUG_EINVAL);
  ep.model_path = "/nonexistent/model.gguf";
  assert_true(engine_create(&ep, &e, &err) < 0);
  assert_non_null(strstr(err.msg, "/nonexistent/model.gguf"));
  assert_null(e);
}

/* The engine as the child of test_mlock_refused sees it: created with mlock under an
 * RLIMIT_MEMLOCK of 0, it must load anyway, report the refusal as a note naming the limit, its
 * value and how to raise it (printing nothing itself), and still evaluate. Exit 0 when all of
 * that holds, 77 when the child cannot shed root's CAP_IPC_LOCK (which ignores the limit), 78
 * when mlock is granted anyway (not the kernel's), else the number of the failed check. */
static int mlock_refused_child(const char *path) {
  struct rlimit zero = {0, 0};
  if (setrlimit(RLIMIT_MEMLOCK, &zero) != 0) return 77;
  if (geteuid() == 0 && (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0))
    return 77; /* nobody: the limit applies */
  struct engine_params ep = engine_params_default();
  ep.model_path = path;
  ep.n_threads = 1;
  ep.n_ctx = 32;
  ep.mlock = true;
  struct engine *e = NULL;
  struct aug_err err = {0};
  if (engine_create(&ep, &e, &err) != 0) {
    fprintf(stderr, "mlock child: engine_create: %s\n", err.msg);
    return 1;
  }
  const char *note = engine_mlock_note(e);
  fprintf(stderr, "mlock child: note: %s\n", note);
  int rc = 0;
  /* granted under a limit of 0 without root: this mlock is not the kernel's (ASan's interceptor
   * makes it a no-op that succeeds), so the refusal cannot be provoked */
  if (engine_memory_locked(e))
    rc = 78;
  else if (!strstr(note, "RLIMIT_MEMLOCK is 0 KiB"))
    rc = 3;
  else if (!strstr(note, "ulimit -l"))
    rc = 4;
  else if (!strstr(note, path))
    rc = 5;
  int32_t tokens[3] = {1, 2, 3};
  struct engine_eval_stats st;
  if (rc == 0 && engine_set_prompt(e, tokens, 3, NULL, &st, &err) != 0) rc = 6;
  engine_destroy(e);
  return rc;
}

/* --mlock: granted, the weights are locked and there is no note; refused by RLIMIT_MEMLOCK (in a
 * child that sets it to 0 and, when root, becomes nobody), a warning value, not a failure. */
static void test_mlock(void **state) {
  (void)state;
  char path[64];
  struct engine *e = synth_engine(path, 1, 9, 32, 16);
  engine_destroy(e);
  chmod(path, 0644); /* readable by the child once it is nobody */
  struct engine_params ep = engine_params_default();
  assert_false(ep.mlock);
  ep.model_path = path;
  ep.n_threads = 1;
  ep.n_ctx = 32;
  ep.mlock = true;
  struct aug_err err = {0};
  assert_int_equal(engine_create(&ep, &e, &err), 0);
  /* root (CAP_IPC_LOCK) is always granted; otherwise it depends on the limit, but the note is
   * there exactly when the lock is not */
  if (geteuid() == 0) assert_true(engine_memory_locked(e));
  assert_true(engine_memory_locked(e) == (engine_mlock_note(e)[0] == '\0'));
  engine_destroy(e);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) _exit(mlock_refused_child(path));
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  unlink(path);
  assert_true(WIFEXITED(status));
  if (WEXITSTATUS(status) == 77 || WEXITSTATUS(status) == 78) {
    print_message("[  SKIPPED ] %s\n", WEXITSTATUS(status) == 77
                                            ? "cannot drop CAP_IPC_LOCK in the child"
                                            : "mlock succeeds under RLIMIT_MEMLOCK 0 (a sanitizer "
                                              "build's no-op interceptor)");
    skip();
  }
  assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_prefix_reuse_equals_fresh, setup, teardown),
      cmocka_unit_test_setup_teardown(test_push_truncate, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ranges_and_cancel, setup, teardown),
      cmocka_unit_test_setup_teardown(test_push_tokens, setup, teardown),
      cmocka_unit_test(test_stable_prompt_cancel),
      cmocka_unit_test(test_bad_params),
      cmocka_unit_test(test_mlock),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
