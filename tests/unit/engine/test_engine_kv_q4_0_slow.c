/* A q4_0 KV cache end to end on the real small model (qwen2.5-coder-0.5b Q4_K_M, 24 layers, 2 KV
 * heads of 64): greedy continuations of code prompts against an f16 cache, and teacher-forced
 * top-1 agreement (the f16 run's tokens forced into the quantized run) above measured bars; q8_0
 * must keep the first tokens of every continuation too. q4_0 costs this model much more than
 * the op-level NMSE suggests: Qwen2's K carries a bias, so a few channels of K are large, and a
 * 32-value Q4_0 block with such an outlier (step = outlier / 8) flattens its neighbours. The cache
 * takes exactly the bytes per token the planner counts (plan_kv_bytes_per_token_layer x layers: 18
 * bytes per 32 values for q4_0, 28% of f16). Then the same q4_0 cache with every layer on the
 * Vulkan backend (lavapipe) against the CPU's q4_0 run. Slow: the sanitizer pass skips it. */
#include "../test_support.h"
#include "backends/backend.h"
#include "engine/engine.h"
#include "engine/kvcache.h"
#include "engine/plan.h"
#include "engine/tokenizer.h"
#include "tests/unit/engine/greedy_common.h"

#define N_GEN 32
/* q8_0: the first tokens of every greedy continuation must match the f16 run (measured: 4/4, and
 * all 32 tokens on 3 of 4). */
#define N_SAME_PREFIX 8
/* Teacher-forced top-1 agreement with the f16 run over 4 x 32 positions, CPU backend: measured
 * 127/128 (99.2%) for q8_0 and 87/128 (68.0%) for q4_0, where no greedy continuation keeps its
 * first 8 tokens. The bars leave a few positions of room. */
#define MIN_TOP1_PERCENT_Q8_0 95
#define MIN_TOP1_PERCENT_Q4_0 60

static const char *const prompts[] = {
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return",
    "#include <stdio.h>\n\nint main(void) {\n    printf(",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, item):\n",
    "function debounce(fn, ms) {\n  let timer;\n  return function (...args) {\n",
};
#define N_PROMPTS (sizeof prompts / sizeof prompts[0])

static struct engine *open_engine(const char *path, enum engine_kv_type kv, int32_t gpu_layers) {
  struct engine_params ep = engine_params_default();
  ep.model_path = path;
  ep.n_threads = 2;
  ep.n_ctx = 256;
  ep.kv_type = kv;
  ep.gpu_layers = gpu_layers;
  struct engine *e = NULL;
  struct aug_err err = {0};
  if (engine_create(&ep, &e, &err)) fail_msg("engine (kv %d): %s", (int)kv, err.msg);
  return e;
}

/* The cache's bytes per token against the planner's figure for the same model and type. */
static void check_bytes_per_token(struct engine *e, uint32_t quant_type) {
  struct plan_model *pm = malloc(sizeof *pm);
  struct aug_err err = {0};
  assert_non_null(pm);
  assert_int_equal(plan_model_from_model(engine_model(e), pm, &err), 0);
  uint64_t planned = plan_kv_bytes_per_token_layer(pm, quant_type) * pm->n_layer;
  struct kvcache *kv = engine_kvcache(e);
  uint64_t actual = kvcache_bytes(kv) / kvcache_n_ctx(kv);
  print_message("%s KV: %llu bytes per token (planner: %llu)\n", quant_type_name(quant_type),
                (unsigned long long)actual, (unsigned long long)planned);
  assert_int_equal(kvcache_type(kv), quant_type);
  assert_int_equal(actual, planned);
  free(pm);
}

/* Greedy (and, where they part, teacher-forced) agreement of e with ref; returns top-1 hits. */
static unsigned agreement(struct engine *e, int32_t ref[][N_GEN], int n_gen, size_t n_prompts,
                          unsigned *same_prefix, unsigned *same_greedy) {
  unsigned top1 = 0;
  *same_prefix = *same_greedy = 0;
  for (size_t p = 0; p < n_prompts; p++) {
    int32_t got[N_GEN], forced[N_GEN];
    continue_prompt(e, prompts[p], NULL, n_gen, got);
    int prefix = 0;
    while (prefix < n_gen && got[prefix] == ref[p][prefix])
      prefix++;
    *same_prefix += prefix >= (n_gen < N_SAME_PREFIX ? n_gen : N_SAME_PREFIX);
    *same_greedy += prefix == n_gen;
    if (prefix < n_gen) continue_prompt(e, prompts[p], ref[p], n_gen, forced);
    for (int i = 0; i < n_gen; i++)
      top1 += (prefix == n_gen ? got[i] : forced[i]) == ref[p][i];
  }
  return top1;
}

static void test_q4_0_kv_close_to_f16(void **state) {
  (void)state;
  const char *path = test_model_path(TEST_MODEL_SMALL);
  static int32_t ref[N_PROMPTS][N_GEN];
  struct engine *f16 = open_engine(path, ENGINE_KV_F16, 0);
  check_bytes_per_token(f16, QUANT_F16);
  for (size_t p = 0; p < N_PROMPTS; p++)
    continue_prompt(f16, prompts[p], NULL, N_GEN, ref[p]);
  engine_destroy(f16);
  const enum engine_kv_type kinds[] = {ENGINE_KV_Q8_0, ENGINE_KV_Q4_0};
  const uint32_t types[] = {QUANT_Q8_0, QUANT_Q4_0};
  for (size_t k = 0; k < 2; k++) {
    struct engine *e = open_engine(path, kinds[k], 0);
    check_bytes_per_token(e, types[k]);
    unsigned same_prefix, same_greedy;
    unsigned top1 = agreement(e, ref, N_GEN, N_PROMPTS, &same_prefix, &same_greedy);
    unsigned total = N_GEN * (unsigned)N_PROMPTS;
    print_message("%s KV vs f16: first %d tokens identical %u/%zu, all %d identical %u/%zu, "
                  "teacher-forced top-1 %u/%u (%.1f%%)\n",
                  quant_type_name(types[k]), N_SAME_PREFIX, same_prefix, N_PROMPTS, N_GEN,
                  same_greedy, N_PROMPTS, top1, total, 100.0 * top1 / total);
    if (types[k] == QUANT_Q8_0) {
      assert_int_equal(same_prefix, N_PROMPTS);
      assert_true(top1 * 100 >= total * MIN_TOP1_PERCENT_Q8_0);
    } else {
      assert_true(top1 * 100 >= total * MIN_TOP1_PERCENT_Q4_0);
    }
    engine_destroy(e);
  }
}

/* Every layer and its q4_0 cache on the Vulkan backend (copy.comp quantizes, attention.comp
 * reads) against the CPU's q4_0 run: lavapipe runs the 0.5B model at well under a token per
 * second, so two prompts and 6 tokens. Both backends quantize the same K/V bytes alike
 * (test_vulkan_ops), but their matmuls differ in the last bits (the CPU quantizes activations to
 * Q8), and a 4-bit cache turns some of those differences into another level: measured 10/12
 * teacher-forced top-1 (with f16 the same placements agree at every position,
 * test_engine_gpu_real_slow). */
#define N_GEN_GPU 6
#define MIN_TOP1_GPU 9
static void test_q4_0_kv_on_vulkan_matches_cpu(void **state) {
  (void)state;
  const char *path = test_model_path(TEST_MODEL_SMALL);
  const struct backend_ops *ops = NULL;
  struct aug_err err = {0};
  if (backend_find("vulkan", &ops, &err)) {
    print_message("no Vulkan backend in this build: %s\n", err.msg);
    skip();
  }
  static int32_t ref[2][N_GEN];
  struct engine *cpu = open_engine(path, ENGINE_KV_Q4_0, 0);
  for (size_t p = 0; p < 2; p++)
    continue_prompt(cpu, prompts[p], NULL, N_GEN_GPU, ref[p]);
  engine_destroy(cpu);
  struct engine *gpu = open_engine(path, ENGINE_KV_Q4_0, ENGINE_GPU_LAYERS_ALL);
  print_message("%s\n", engine_placement_note(gpu));
  assert_int_equal(engine_gpu_layers(gpu, NULL), engine_model(gpu)->hp.n_layer);
  check_bytes_per_token(gpu, QUANT_Q4_0);
  unsigned same_prefix, same_greedy;
  unsigned top1 = agreement(gpu, ref, N_GEN_GPU, 2, &same_prefix, &same_greedy);
  print_message("q4_0 KV on Vulkan vs CPU: greedy %d-token continuations identical %u/2, "
                "teacher-forced top-1 %u/%u\n",
                N_GEN_GPU, same_greedy, top1, 2 * N_GEN_GPU);
  assert_true(top1 >= MIN_TOP1_GPU);
  engine_destroy(gpu);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_q4_0_kv_close_to_f16),
      cmocka_unit_test(test_q4_0_kv_on_vulkan_matches_cpu),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
