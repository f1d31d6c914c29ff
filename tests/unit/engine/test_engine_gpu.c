/* Hybrid placement (engine_params.gpu_layers) on the Vulkan backend, which runs here on Mesa's
 * lavapipe: 0, half and all layers (and the head) give the same greedy tokens and logits within
 * the op harness's tolerance, weights spread over several buffers when the device limits one
 * buffer, the KV cache survives truncation on the GPU, and the failure paths say what happened.
 * Skipped when this build has no Vulkan backend. */
#include <math.h>
#include <unistd.h>

#include "../test_support.h"
#include "backends/backend.h"
#include "engine/engine.h"
#include "engine/synth.h"
#include "tests/unit/engine/greedy_common.h"

#define N_LAYERS 4
#define N_PROMPT 24
#define N_GEN 8

struct fixture {
  char path[64];
};

static bool have_vulkan(void) {
  const struct backend_ops *ops = NULL;
  struct aug_err err = {0};
  return backend_find("vulkan", &ops, &err) == 0;
}

static int setup(void **state) {
  if (!have_vulkan()) return 0;
  struct fixture *f = calloc(1, sizeof *f);
  assert_non_null(f);
  snprintf(f->path, sizeof f->path, "/tmp/augury-gpu-XXXXXX"); /* mkstemp's template */
  int fd = mkstemp(f->path);
  assert_true(fd >= 0);
  close(fd);
  struct synth_params sp = synth_params_default();
  sp.like = "qwen2.5-coder-0.5b";
  sp.type = SYNTH_TYPE_Q8_0;
  sp.n_layers = N_LAYERS;
  sp.n_vocab = 1024;
  sp.seed = 11;
  struct aug_err err = {0};
  if (synth_write(&sp, f->path, &err)) fail_msg("synth_write: %s", err.msg);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fixture *f = *state;
  if (f) unlink(f->path);
  free(f);
  return 0;
}

static struct engine_params params(const struct fixture *f, int32_t gpu_layers,
                                   const char *gpu_options) {
  struct engine_params ep = engine_params_default();
  ep.model_path = f->path;
  ep.n_threads = 2;
  ep.n_ctx = 64;
  ep.n_batch = 16;
  ep.gpu_layers = gpu_layers;
  ep.gpu_options = gpu_options;
  return ep;
}

/* Greedy continuation of a fixed prompt, teacher-forced with force[] when given (random weights
 * leave near ties, so one flipped argmax would otherwise send the runs apart); the logits of
 * every step go to logits[N_GEN][n_vocab]. */
static void run(struct engine *e, const int32_t *force, int32_t out[N_GEN], float *logits) {
  size_t nv = engine_model(e)->hp.n_vocab;
  int32_t prompt[N_PROMPT];
  uint32_t seed = 7;
  for (size_t i = 0; i < N_PROMPT; i++) {
    seed = seed * 1664525u + 1013904223u;
    prompt[i] = (int32_t)((seed >> 8) % nv);
  }
  struct aug_err err = {0};
  struct engine_eval_stats st;
  if (engine_set_prompt(e, prompt, N_PROMPT, NULL, &st, &err)) fail_msg("prompt: %s", err.msg);
  for (size_t i = 0; i < N_GEN; i++) {
    const float *l = engine_logits(e);
    assert_non_null(l);
    memcpy(logits + i * nv, l, nv * sizeof *l);
    out[i] = argmax(l, nv);
    int32_t next = force ? force[i] : out[i];
    if (i + 1 < N_GEN && engine_push(e, next, NULL, &err)) fail_msg("push: %s", err.msg);
  }
}

static double nmse(const float *a, const float *ref, size_t n) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < n; i++) {
    num += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]);
    den += (double)ref[i] * ref[i];
  }
  return den > 0.0 ? num / den : num;
}

static void test_zero_half_all_agree(void **state) {
  struct fixture *f = *state;
  if (!f) skip();
  const int32_t counts[] = {0, N_LAYERS / 2, ENGINE_GPU_LAYERS_ALL};
  /* max_buffer forces the GPU's weights over several buffers (each layer is ~14 MB at Q8_0). */
  const char *options[] = {NULL, NULL, "max_buffer=8388608"};
  int32_t tokens[3][N_GEN];
  float *logits[3];
  size_t nv = 0;
  for (int c = 0; c < 3; c++) {
    struct engine_params ep = params(f, counts[c], options[c]);
    struct engine *e = NULL;
    struct aug_err err = {0};
    if (engine_create(&ep, &e, &err)) fail_msg("gpu_layers %d: %s", counts[c], err.msg);
    nv = engine_model(e)->hp.n_vocab;
    bool head = false;
    uint32_t on_gpu = engine_gpu_layers(e, &head);
    print_message("gpu_layers %d: %s\n", counts[c], engine_placement_note(e));
    assert_int_equal(on_gpu, c == 0 ? 0 : c == 1 ? N_LAYERS / 2 : N_LAYERS);
    assert_true(head == (c == 2));
    assert_true(c == 0 || strstr(engine_device_name(e), " + ") != NULL);
    logits[c] = malloc(N_GEN * nv * sizeof(float));
    assert_non_null(logits[c]);
    run(e, c == 0 ? NULL : tokens[0], tokens[c], logits[c]);
    if (c > 0) {
      /* the KV cache on the GPU after a truncation: the same step again gives the same logits */
      struct aug_err terr = {0};
      assert_int_equal(engine_truncate(e, N_PROMPT), 0);
      if (engine_push(e, tokens[0][0], NULL, &terr)) fail_msg("push: %s", terr.msg);
      double again = nmse(engine_logits(e), logits[c] + nv, nv);
      assert_true(again < 1e-12);
    }
    engine_destroy(e);
  }
  for (int c = 1; c < 3; c++) {
    double worst = 0.0;
    int agree = 0;
    for (size_t i = 0; i < N_GEN; i++) {
      double d = nmse(logits[c] + i * nv, logits[0] + i * nv, nv);
      if (d > worst) worst = d;
      agree += tokens[c][i] == tokens[0][i];
    }
    print_message("gpu_layers %d vs CPU: worst NMSE %.3g, top-1 %d of %d\n", counts[c], worst,
                  agree, N_GEN);
    /* the op harness's bound for matmul; the CPU rounds activations to Q8 for its dot products */
    assert_true(worst <= 5e-4);
    assert_true(agree >= N_GEN - 1);
  }
  for (int c = 0; c < 3; c++)
    free(logits[c]);
}

static void test_auto_leaves_a_cpu_device_alone(void **state) {
  struct fixture *f = *state;
  if (!f) skip();
  struct engine_params ep = params(f, ENGINE_GPU_LAYERS_AUTO, NULL);
  struct engine *e = NULL;
  struct aug_err err = {0};
  if (engine_create(&ep, &e, &err)) fail_msg("auto: %s", err.msg);
  print_message("auto: %s\n", engine_placement_note(e));
  /* lavapipe is a CPU implementation: offloading to it would only be slower */
  assert_int_equal(engine_gpu_layers(e, NULL), 0);
  assert_non_null(strstr(engine_placement_note(e), "CPU only"));
  engine_destroy(e);
}

static void test_auto_plans_for_a_gpu(void **state) {
  struct fixture *f = *state;
  if (!f) skip();
  /* lavapipe posing as a GPU: the planner measures both sides and places by predicted speed */
  struct engine_params ep = params(f, ENGINE_GPU_LAYERS_AUTO, "as_gpu=1");
  struct engine *e = NULL;
  struct aug_err err = {0};
  if (engine_create(&ep, &e, &err)) fail_msg("auto: %s", err.msg);
  bool head = false;
  uint32_t n = engine_gpu_layers(e, &head);
  print_message("auto as a GPU: %s\n", engine_placement_note(e));
  assert_true(n <= N_LAYERS);
  assert_true(!head || n == N_LAYERS);
  int32_t tokens[N_GEN];
  float *logits = malloc(N_GEN * engine_model(e)->hp.n_vocab * sizeof(float));
  assert_non_null(logits);
  run(e, NULL, tokens, logits); /* whatever it chose evaluates */
  free(logits);
  engine_destroy(e);
}

static void test_explicit_layers_without_a_backend_fail_clearly(void **state) {
  struct fixture *f = *state;
  if (!f) skip();
  struct engine_params ep = params(f, 2, NULL);
  ep.gpu_backend = "no-such-backend";
  struct engine *e = NULL;
  struct aug_err err = {0};
  assert_true(engine_create(&ep, &e, &err) < 0);
  assert_null(e);
  assert_non_null(strstr(err.msg, "no-such-backend"));
  ep.gpu_layers = ENGINE_GPU_LAYERS_AUTO; /* auto: the CPU, and the note says why */
  aug_err_clear(&err);
  if (engine_create(&ep, &e, &err)) fail_msg("auto without a backend: %s", err.msg);
  assert_int_equal(engine_gpu_layers(e, NULL), 0);
  assert_non_null(strstr(engine_placement_note(e), "no-such-backend"));
  engine_destroy(e);
  ep.gpu_layers = -5;
  assert_true(engine_create(&ep, &e, &err) < 0);
}

static void test_oversized_tensor_is_refused_by_name(void **state) {
  struct fixture *f = *state;
  if (!f) skip();
  /* 64 KiB buffers: a 896 x 4864 Q8_0 matrix (4.6 MB) cannot fit one, and the error says which */
  struct engine_params ep = params(f, ENGINE_GPU_LAYERS_ALL, "max_buffer=65536");
  struct engine *e = NULL;
  struct aug_err err = {0};
  assert_true(engine_create(&ep, &e, &err) < 0);
  print_message("%s\n", err.msg);
  assert_non_null(strstr(err.msg, "exceeds the largest buffer"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_zero_half_all_agree),
      cmocka_unit_test(test_auto_leaves_a_cpu_device_alone),
      cmocka_unit_test(test_auto_plans_for_a_gpu),
      cmocka_unit_test(test_explicit_layers_without_a_backend_fail_clearly),
      cmocka_unit_test(test_oversized_tensor_is_refused_by_name),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
