/* Offload planner tests (engine/plan.c) on simulated devices with the shapes of real models, the
 * expected values taken from published user reports:
 *  - a 4 GB AMD card (Vulkan) with DeepSeek-R1-Distill-Qwen-7B (Qwen2.5-7B shapes, 28 blocks +
 *    head = "29 layers"): the Q4_K_M sweep 12.6 / 15.9 / 17.8 tok/s at 7 / 16 / 20 layers
 *    calibrates both bandwidths, and the IQ3_XS full offload (measured 31.9 tok/s) is predicted
 *    within 20% (dajai.io, "The Smaller Quant Won", and the same log on hellcatblondie.io);
 *  - an RTX 4060 (272 GB/s) with dual-channel DDR5-4800 and Qwen2.5-32B IQ4_XS (64 blocks + head),
 *    measured 10.8 t/s with 60 layers, 65 running out of memory (dev.to, "Running Qwen2.5-32B on
 *    RTX 4060 8GB"). See test_rtx4060_32b for why that case is simulated as a 16 GiB card.
 * Also: the KV arithmetic, from_model agreeing with from_hparams on a written file, the edge cases
 * (no memory, a huge card, a GPU slower than the host) and hostile shapes. */
#include <math.h>
#include <unistd.h>

#include "engine/model.h"
#include "engine/plan.h"
#include "engine/quant.h"
#include "engine/synth.h"
#include "tests/unit/test_support.h"

#define GIB (1024.0 * 1024.0 * 1024.0)

static double rel_err(double got, double want) {
  return fabs(got - want) / want;
}

/* ---- simulated models ------------------------------------------------------------------------ */

static const enum model_tensor_role role_of[PLAN_TENSOR_COUNT] = {
    [PLAN_TENSOR_ATTN_Q] = MODEL_TENSOR_ATTN_Q,
    [PLAN_TENSOR_ATTN_K] = MODEL_TENSOR_ATTN_K,
    [PLAN_TENSOR_ATTN_V] = MODEL_TENSOR_ATTN_V,
    [PLAN_TENSOR_ATTN_OUTPUT] = MODEL_TENSOR_ATTN_OUTPUT,
    [PLAN_TENSOR_FFN_GATE] = MODEL_TENSOR_FFN_GATE,
    [PLAN_TENSOR_FFN_UP] = MODEL_TENSOR_FFN_UP,
    [PLAN_TENSOR_FFN_DOWN] = MODEL_TENSOR_FFN_DOWN,
};

/* Q4_K_M exactly as synth (and llama.cpp's llama_tensor_get_type) assigns it. */
static uint32_t q4_k_m_type(int32_t il, enum plan_tensor t, void *user) {
  const struct model_hparams *hp = user;
  struct model_tensor_spec spec = {.n_dims = 2, .layer = il};
  if (il == PLAN_TYPE_TOKEN_EMBD) {
    spec.role = MODEL_TENSOR_TOKEN_EMBD;
    spec.ne[0] = hp->n_embd;
  } else if (il == PLAN_TYPE_OUTPUT) {
    spec.role = MODEL_TENSOR_OUTPUT;
    spec.ne[0] = hp->n_embd;
  } else {
    spec.role = role_of[t];
    spec.ne[0] = t == PLAN_TENSOR_FFN_DOWN ? hp->n_ff : hp->n_embd;
  }
  return synth_tensor_type(SYNTH_TYPE_Q4_K_M, hp, &spec);
}

/* IQ3_XS as llama.cpp mixes it for a GQA model: IQ3_S by default, IQ3_XXS for ffn_gate/up in the
 * middle 3/4 of the blocks, Q4_K for attn_v (n_gqa >= 4), a Q4_K embedding and a Q6_K head. That
 * mix of Qwen2.5-7B comes to 3.196 GiB, the "3.19GB" file of the report (which, like its "4.4GB"
 * Q4_K_M = 4.36 GiB, counts in GiB); test_shapes checks both totals. */
static uint32_t iq3_xs_type(int32_t il, enum plan_tensor t, void *user) {
  const struct model_hparams *hp = user;
  if (il == PLAN_TYPE_TOKEN_EMBD) return QUANT_Q4_K;
  if (il == PLAN_TYPE_OUTPUT) return QUANT_Q6_K;
  int32_t n = (int32_t)hp->n_layer;
  if (t == PLAN_TENSOR_ATTN_V) return QUANT_Q4_K;
  if ((t == PLAN_TENSOR_FFN_GATE || t == PLAN_TENSOR_FFN_UP) && il >= n / 8 && il < 7 * n / 8)
    return QUANT_IQ3_XXS;
  return QUANT_IQ3_S;
}

/* IQ4_XS for a GQA model: IQ4_XS throughout, Q5_K for attn_v, a Q6_K head (17.69 GB for
 * Qwen2.5-32B, the size of the published IQ4_XS files). */
static uint32_t iq4_xs_type(int32_t il, enum plan_tensor t, void *user) {
  (void)user;
  if (il == PLAN_TYPE_OUTPUT) return QUANT_Q6_K;
  if (il >= 0 && t == PLAN_TENSOR_ATTN_V) return QUANT_Q5_K;
  return QUANT_IQ4_XS;
}

static struct model_hparams hparams_7b(void) {
  struct synth_params p = synth_params_default();
  p.like = "qwen2.5-coder-7b"; /* Qwen2.5-7B's shapes, which R1-Distill-Qwen-7B shares */
  struct model_hparams hp;
  assert_int_equal(synth_hparams(&p, &hp, NULL), 0);
  return hp;
}

static struct model_hparams hparams_32b(void) {
  struct model_hparams hp = hparams_7b();
  hp.n_vocab = 152064;
  hp.n_embd = 5120;
  hp.n_layer = 64;
  hp.n_head = 40;
  hp.n_head_kv = 8;
  hp.head_dim = 128;
  hp.n_ff = 27648;
  return hp;
}

/* The struct is ~50 KiB: tests keep them on the heap. */
static struct plan_model *make_model(const struct model_hparams *hp, plan_type_fn fn,
                                     const char *quant) {
  struct plan_model *m = malloc(sizeof *m);
  assert_non_null(m);
  struct aug_err err = {0};
  int rc = plan_model_from_hparams(hp, fn, (void *)hp, quant, m, &err);
  if (rc) fail_msg("%s", err.msg);
  return m;
}

static struct plan_device device(const char *name, double gib, double gb_per_s, bool is_host) {
  struct plan_device d = {
      .memory_bytes = (uint64_t)(gib * GIB), .bandwidth = gb_per_s * 1e9, .is_host = is_host};
  snprintf(d.name, sizeof d.name, "%s", name);
  return d;
}

static void test_kv_bytes(void **state) {
  (void)state;
  struct model_hparams hp = hparams_7b();
  struct plan_model *m = make_model(&hp, q4_k_m_type, "Q4_K_M");
  /* 4 KV heads x 128 = 512 values for K and for V. */
  assert_int_equal(plan_kv_bytes_per_token_layer(m, QUANT_F16), 2 * 512 * 2);
  assert_int_equal(plan_kv_bytes_per_token_layer(m, QUANT_Q8_0), 2 * 16 * 34);
  assert_int_equal(plan_kv_bytes_per_token_layer(m, QUANT_Q4_0), 2 * 16 * 18);
  assert_int_equal(plan_kv_bytes_per_token_layer(m, QUANT_Q4_K), 0);
  m->head_dim = 100; /* 400 values: no whole q8_0 blocks */
  assert_int_equal(plan_kv_bytes_per_token_layer(m, QUANT_Q8_0), 0);
  free(m);
}

static void test_shapes(void **state) {
  (void)state;
  struct model_hparams hp = hparams_7b();
  struct plan_model *q4 = make_model(&hp, q4_k_m_type, "Q4_K_M");
  struct plan_model *iq3 = make_model(&hp, iq3_xs_type, "IQ3_XS");
  assert_int_equal(q4->n_layer, 28);
  assert_false(q4->tied_output);
  assert_true(rel_err(plan_model_bytes(q4) / GIB, 4.4) < 0.02);
  assert_true(rel_err(plan_model_bytes(iq3) / GIB, 3.19) < 0.02);
  /* Q4_K_M's layers differ: attn_v and ffn_down are Q6_K in the use_more_bits blocks. */
  assert_int_equal(q4->layers[0].type[PLAN_TENSOR_FFN_DOWN], QUANT_Q6_K);
  assert_int_equal(q4->layers[4].type[PLAN_TENSOR_FFN_DOWN], QUANT_Q4_K);
  assert_true(plan_layer_bytes(&q4->layers[0]) > plan_layer_bytes(&q4->layers[4]));
  assert_int_equal(q4->output_type, QUANT_Q6_K);
  struct model_hparams hp32 = hparams_32b();
  struct plan_model *m32 = make_model(&hp32, iq4_xs_type, "IQ4_XS");
  assert_true(rel_err((double)plan_model_bytes(m32), 17.69e9) < 0.02);
  free(q4);
  free(iq3);
  free(m32);
}

/* ---- the 4 GB card ----------------------------------------------------------------------------
 */

/* The card's type speeds: on AMD under Vulkan, llama.cpp's IQ3 matvec streams ~0.89 of Q4_K's
 * bytes per second (Radeon 780M, llama.cpp PR 11595: q4_K 274 and iq3_xxs 358 GFLOPS for a
 * 4096 x 14336 matvec, i.e. 154 vs 137 GB/s of weights). IQ3_S is taken to be the same. Without
 * this prior the pure bandwidth model predicts 38.8 tok/s for the IQ3_XS full offload, +22%. */
static void amd_type_speeds(struct plan_device *gpu) {
  gpu->type_speed[QUANT_IQ3_XXS] = 0.89f;
  gpu->type_speed[QUANT_IQ3_S] = 0.89f;
}

static void test_4gb_card_7b(void **state) {
  (void)state;
  struct model_hparams hp = hparams_7b();
  struct plan_model *q4 = make_model(&hp, q4_k_m_type, "Q4_K_M");
  struct plan_model *iq3 = make_model(&hp, iq3_xs_type, "IQ3_XS");
  struct plan_options opt = plan_options_default();
  struct plan_device gpu = device("4 GB AMD card (Vulkan)", 4.0, 100, false);
  struct plan_device host = device("host", 16.0, 30, true);
  amd_type_speeds(&gpu);
  struct aug_err err = {0};

  const struct plan_sample sweep[] = {{7, 12.6}, {16, 15.9}, {20, 17.8}};
  int rc = plan_calibrate(q4, &opt, sweep, 3, &gpu, &host, &err);
  if (rc) fail_msg("%s", err.msg);
  assert_true(gpu.bandwidth_measured && host.bandwidth_measured);
  /* A card of the RX 6500 XT class (144 GB/s nominal) and a DDR4 desktop. */
  print_message("calibrated: GPU %.1f GB/s, host %.1f GB/s\n", gpu.bandwidth / 1e9,
                host.bandwidth / 1e9);
  assert_true(gpu.bandwidth > 80e9 && gpu.bandwidth < 200e9);
  assert_true(host.bandwidth > 25e9 && host.bandwidth < 80e9);
  /* The fit reproduces the sweep it came from. */
  for (size_t i = 0; i < 3; i++) {
    struct plan_result r;
    assert_int_equal(plan_evaluate(q4, &opt, &gpu, &host, sweep[i].n_gpu_layers, &r, &err), 0);
    assert_true(rel_err(r.tokens_per_s, sweep[i].tokens_per_s) < 0.03);
  }

  /* IQ3_XS: all 29 layers fit, within 20% of the measured 31.9 tok/s. */
  struct plan_result full;
  assert_int_equal(plan_choose(iq3, &opt, &gpu, &host, &full, &err), 0);
  print_message("IQ3_XS: %u layers, %.1f tok/s (measured 31.9), GPU %.2f GiB\n", full.n_gpu_layers,
                full.tokens_per_s, plan_memory_total(&full.gpu) / GIB);
  assert_int_equal(full.n_gpu_layers, 29);
  assert_true(full.output_on_gpu);
  assert_int_equal(full.gpu_blocks, 28);
  assert_true(rel_err(full.tokens_per_s, 31.9) < 0.20);
  assert_true(plan_memory_total(&full.gpu) <= gpu.memory_bytes);
  /* The embedding stays on the host even at full offload. */
  assert_int_equal(full.host.weights, iq3->token_embd_bytes);

  /* Q4_K_M does not fit whole; the plan takes what fits, and the sentence compares. */
  struct plan_result q4_best, q4_20;
  assert_int_equal(plan_choose(q4, &opt, &gpu, &host, &q4_best, &err), 0);
  print_message("Q4_K_M: %u layers fit, %.1f tok/s\n", q4_best.n_gpu_layers, q4_best.tokens_per_s);
  assert_true(q4_best.n_gpu_layers >= 20 && q4_best.n_gpu_layers < 29);
  assert_int_equal(q4_best.max_fit, q4_best.n_gpu_layers);
  assert_int_equal(plan_evaluate(q4, &opt, &gpu, &host, 20, &q4_20, &err), 0);
  char text[256];
  plan_compare_text(q4, &q4_20, iq3, &full, text, sizeof text);
  print_message("%s\n", text);
  double ratio = full.tokens_per_s / q4_20.tokens_per_s;
  char want[256];
  snprintf(want, sizeof want,
           "all 29 layers fit at IQ3_XS: expect ~%.1fx the tokens/s of Q4_K_M with 20 layers",
           ratio);
  assert_string_equal(text, want);
  assert_true(ratio > 1.6 && ratio < 2.2); /* measured: 31.9 / 17.8 = 1.79 */
  free(q4);
  free(iq3);
}

/* ---- the RTX 4060 and a 32B model ------------------------------------------------------------ */

/* The report's card is an "RTX 4060 Laptop, 8GB". Its figures do not fit 8 GB: 60 of this
 * model's 260 MB blocks are 15.6 GB of weights alone, and 10.8 t/s is what 60 blocks at 272
 * GB/s plus 4 blocks and the head at DDR5 speed give, not what ~28 blocks on the card give
 * (~5 t/s). So the report's placement is tested on a 16 GiB card with its bandwidth, and the
 * 8 GiB card is tested for what the arithmetic says it can do. The host: DDR5-4800 dual channel
 * is 76.8 GB/s nominal; 60 GB/s is taken as the effective decode rate. */
static void test_rtx4060_32b(void **state) {
  (void)state;
  struct model_hparams hp = hparams_32b();
  struct plan_model *m = make_model(&hp, iq4_xs_type, "IQ4_XS");
  struct plan_device gpu = device("RTX 4060 (272 GB/s), 16 GiB", 16.0, 272, false);
  struct plan_device host = device("DDR5-4800 dual channel", 32.0, 60, true);
  struct plan_options opt = plan_options_default();
  struct aug_err err = {0};
  struct plan_result r;
  assert_int_equal(plan_choose(m, &opt, &gpu, &host, &r, &err), 0);
  print_message("32B IQ4_XS, ctx 4096 f16: %u layers, %.1f t/s (measured 10.8), GPU %.2f GiB\n",
                r.n_gpu_layers, r.tokens_per_s, plan_memory_total(&r.gpu) / GIB);
  assert_true(r.n_gpu_layers >= 58 && r.n_gpu_layers <= 62);
  assert_false(r.output_on_gpu);
  assert_true(rel_err(r.tokens_per_s, 10.8) < 0.25);
  /* 65 (everything) needs more than the card has: the out-of-memory of the report. */
  struct plan_result all;
  assert_int_equal(plan_evaluate(m, &opt, &gpu, &host, 65, &all, &err), 0);
  assert_true(plan_memory_total(&all.gpu) > gpu.memory_bytes);

  /* q4_0 KV at 16k context: 60 layers still fit. */
  opt.n_ctx = 16384;
  opt.kv_type = QUANT_Q4_0;
  struct plan_result q4kv;
  assert_int_equal(plan_choose(m, &opt, &gpu, &host, &q4kv, &err), 0);
  print_message("ctx 16384 q4_0: %u layers, KV %.2f GiB on the GPU\n", q4kv.n_gpu_layers,
                q4kv.gpu.kv / GIB);
  assert_true(q4kv.n_gpu_layers >= 60);
  /* Against f16 at 16k, the same 60 layers' KV shrinks from 4.0 to 1.1 GB. */
  struct plan_result f16kv;
  opt.kv_type = QUANT_F16;
  assert_int_equal(plan_evaluate(m, &opt, &gpu, &host, 60, &f16kv, &err), 0);
  assert_int_equal(f16kv.gpu.kv, 60ull * 16384 * 4096);
  assert_int_equal(plan_evaluate(m, &opt, &gpu, &host, q4kv.n_gpu_layers, &q4kv, &err), 0);
  opt.kv_type = QUANT_Q4_0;
  struct plan_result q4kv60;
  assert_int_equal(plan_evaluate(m, &opt, &gpu, &host, 60, &q4kv60, &err), 0);
  assert_int_equal(q4kv60.gpu.kv, 60ull * 16384 * 1152);
  assert_true(plan_choose(m, &opt, &gpu, &host, &q4kv, &err) == 0 && q4kv.n_gpu_layers >= 60);

  /* The 8 GiB card the report names: about 28 layers, about 5 t/s. */
  opt = plan_options_default();
  gpu = device("RTX 4060 Laptop, 8 GiB", 8.0, 272, false);
  assert_int_equal(plan_choose(m, &opt, &gpu, &host, &r, &err), 0);
  print_message("on 8 GiB: %u layers, %.1f t/s\n", r.n_gpu_layers, r.tokens_per_s);
  assert_true(r.n_gpu_layers >= 26 && r.n_gpu_layers <= 30);
  assert_true(r.tokens_per_s > 4.0 && r.tokens_per_s < 7.0);
  free(m);
}

/* ---- edges -------------------------------------------------------------------------------------
 */

static void test_edges(void **state) {
  (void)state;
  struct model_hparams hp = hparams_7b();
  struct plan_model *m = make_model(&hp, q4_k_m_type, "Q4_K_M");
  struct plan_options opt = plan_options_default();
  struct plan_device host = device("host", 64.0, 40, true);
  struct aug_err err = {0};
  struct plan_result r;

  /* No GPU memory: nothing goes there. */
  struct plan_device none = device("empty", 0.0, 500, false);
  assert_int_equal(plan_choose(m, &opt, &none, &host, &r, &err), 0);
  assert_int_equal(r.n_gpu_layers, 0);
  assert_int_equal(r.max_fit, 0);
  assert_int_equal(plan_memory_total(&r.gpu), 0);
  assert_true(r.host_fits);
  double cpu_only = r.tokens_per_s;
  /* No GPU at all: the same. */
  assert_int_equal(plan_choose(m, &opt, NULL, &host, &r, &err), 0);
  assert_int_equal(r.n_gpu_layers, 0);
  assert_true(fabs(r.tokens_per_s - cpu_only) < 1e-9);
  /* Host-only speed is the model's bytes over the host's bandwidth. */
  assert_true(rel_err(cpu_only, 40e9 / (double)r.host_read_bytes) < 1e-9);

  /* A huge card: every block and the head. */
  struct plan_device huge = device("huge", 1024.0, 3000, false);
  assert_int_equal(plan_choose(m, &opt, &huge, &host, &r, &err), 0);
  assert_int_equal(r.n_gpu_layers, 29);
  assert_true(r.output_on_gpu);
  assert_int_equal(r.host.kv, 0);
  assert_true(r.tokens_per_s > 10 * cpu_only);

  /* A GPU no faster than the host (lavapipe is the CPU): nothing to gain, nothing offloaded. */
  struct plan_device slow = device("lavapipe", 1024.0, 40, false);
  assert_int_equal(plan_choose(m, &opt, &slow, &host, &r, &err), 0);
  assert_int_equal(r.n_gpu_layers, 0);
  assert_int_equal(r.max_fit, 29);

  /* The retry after a failed allocation: a cap below the last attempt. */
  opt.max_gpu_layers = 12;
  assert_int_equal(plan_choose(m, &opt, &huge, &host, &r, &err), 0);
  assert_int_equal(r.n_gpu_layers, 12);
  assert_int_equal(r.gpu_blocks, 12);
  assert_false(r.output_on_gpu);
  opt.max_gpu_layers = 0;
  assert_int_equal(plan_choose(m, &opt, &huge, &host, &r, &err), 0);
  assert_int_equal(r.n_gpu_layers, 0);
  opt = plan_options_default();

  /* Memory per device adds up: every weight, KV cell and margin counted once. */
  assert_int_equal(plan_evaluate(m, &opt, &huge, &host, 10, &r, &err), 0);
  assert_int_equal(r.gpu.weights + r.host.weights, plan_model_bytes(m));
  assert_int_equal(r.gpu.kv + r.host.kv, 28ull * 4096 * 2048);
  assert_int_equal(r.gpu.kv, 10ull * 4096 * 2048);
  assert_int_equal(r.gpu.margin, opt.margin_bytes);
  assert_true(r.gpu.scratch > 0 && r.host.scratch > r.gpu.scratch);
  uint64_t last10 = 0;
  for (uint32_t il = 18; il < 28; il++)
    last10 += plan_layer_bytes(&m->layers[il]);
  assert_int_equal(r.gpu.weights, last10);
  free(m);
}

static void test_hostile(void **state) {
  (void)state;
  struct model_hparams hp = hparams_7b();
  struct plan_model *m = make_model(&hp, q4_k_m_type, "Q4_K_M");
  struct plan_model *bad = malloc(sizeof *bad);
  struct plan_options opt = plan_options_default();
  struct plan_device gpu = device("gpu", 8.0, 300, false);
  struct plan_device host = device("host", 16.0, 40, true);
  struct aug_err err = {0};
  struct plan_result r;

  *bad = *m;
  bad->n_layer = 0;
  assert_int_equal(plan_choose(bad, &opt, &gpu, &host, &r, &err), AUG_EINVAL);
  assert_non_null(strstr(err.msg, "0 layers"));
  bad->n_layer = 100000;
  assert_int_equal(plan_choose(bad, &opt, &gpu, &host, &r, &err), AUG_ERANGE);
  assert_non_null(strstr(err.msg, "100000 layers"));

  *bad = *m;
  bad->layers[3].bytes[PLAN_TENSOR_FFN_UP] = UINT64_MAX / 2;
  bad->layers[4].bytes[PLAN_TENSOR_FFN_UP] = UINT64_MAX / 2;
  assert_int_equal(plan_choose(bad, &opt, &gpu, &host, &r, &err), AUG_ERANGE);
  assert_non_null(strstr(err.msg, "overflow"));

  *bad = *m;
  bad->n_embd = 0;
  assert_int_equal(plan_choose(bad, &opt, &gpu, &host, &r, &err), AUG_EINVAL);
  assert_non_null(strstr(err.msg, "n_embd is 0"));
  bad->n_embd = 1u << 30;
  assert_int_equal(plan_choose(bad, &opt, &gpu, &host, &r, &err), AUG_ERANGE);

  /* A KV cache too large to count. */
  *bad = *m;
  bad->n_head = 1;
  bad->n_head_kv = bad->head_dim = (1u << 23);
  opt.n_ctx = UINT32_MAX;
  assert_int_equal(plan_choose(bad, &opt, &gpu, &host, &r, &err), AUG_ERANGE);
  opt = plan_options_default();

  opt.kv_type = QUANT_Q4_K;
  assert_int_equal(plan_choose(m, &opt, &gpu, &host, &r, &err), AUG_EINVAL);
  assert_non_null(strstr(err.msg, "Q4_K"));
  opt = plan_options_default();
  opt.n_ctx = 0;
  assert_int_equal(plan_choose(m, &opt, &gpu, &host, &r, &err), AUG_EINVAL);
  opt = plan_options_default();

  struct plan_device broken = gpu;
  broken.bandwidth = 0;
  assert_int_equal(plan_choose(m, &opt, &broken, &host, &r, &err), AUG_EINVAL);
  assert_non_null(strstr(err.msg, "bandwidth"));
  broken = gpu;
  broken.type_speed[QUANT_Q4_K] = NAN;
  assert_int_equal(plan_choose(m, &opt, &broken, &host, &r, &err), AUG_EINVAL);
  assert_int_equal(plan_choose(m, &opt, &gpu, NULL, &r, &err), AUG_EINVAL);
  assert_int_equal(plan_evaluate(m, &opt, &gpu, &host, 30, &r, &err), AUG_EINVAL);
  assert_int_equal(plan_evaluate(m, &opt, NULL, &host, 3, &r, &err), AUG_EINVAL);

  /* Shapes a type cannot block, and layer counts out of range, from hparams. */
  struct model_hparams odd = hp;
  odd.n_embd = 100;
  odd.head_dim = 10;
  odd.n_head = odd.n_head_kv = 10;
  assert_int_equal(plan_model_from_hparams(&odd, q4_k_m_type, &odd, NULL, bad, &err), AUG_EINVAL);
  assert_non_null(strstr(err.msg, "block"));
  odd = hp;
  odd.n_layer = 0;
  assert_int_equal(plan_model_from_hparams(&odd, q4_k_m_type, &odd, NULL, bad, &err), AUG_EINVAL);
  odd.n_layer = 513;
  assert_int_equal(plan_model_from_hparams(&odd, q4_k_m_type, &odd, NULL, bad, &err), AUG_ERANGE);

  /* Calibration that cannot be done. */
  const struct plan_sample one[] = {{10, 15.0}};
  assert_int_equal(plan_calibrate(m, &opt, one, 1, &gpu, &host, &err), AUG_EINVAL);
  const struct plan_sample same[] = {{10, 15.0}, {10, 15.5}};
  assert_int_equal(plan_calibrate(m, &opt, same, 2, &gpu, &host, &err), AUG_EINVAL);
  assert_non_null(strstr(err.msg, "different placements"));
  /* 20 layers 20x faster than none: the 8 blocks and head left on the host alone take longer. */
  const struct plan_sample too_fast[] = {{0, 5.0}, {20, 100.0}};
  assert_int_equal(plan_calibrate(m, &opt, too_fast, 2, &gpu, &host, &err), AUG_EINVAL);
  assert_non_null(strstr(err.msg, "no positive bandwidths"));
  /* Slower with more GPU layers is a GPU slower than the host (lavapipe), and fits. */
  const struct plan_sample slower[] = {{0, 20.0}, {20, 5.0}};
  assert_int_equal(plan_calibrate(m, &opt, slower, 2, &gpu, &host, &err), 0);
  assert_true(gpu.bandwidth < host.bandwidth);
  const struct plan_sample zero[] = {{0, 0.0}, {20, 5.0}};
  assert_int_equal(plan_calibrate(m, &opt, zero, 2, &gpu, &host, &err), AUG_EINVAL);
  free(bad);
  free(m);
}

/* ---- from a file -------------------------------------------------------------------------------
 */

/* A written model read back gives the shapes plan_model_from_hparams predicts for its types. */
static void test_from_model(void **state) {
  (void)state;
  char dir[] = "/tmp/augury-test-plan-XXXXXX", path[128];
  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/m.gguf", dir);
  struct synth_params p = synth_params_default();
  p.like = "qwen2.5-coder-0.5b";
  p.type = SYNTH_TYPE_Q4_K_M;
  p.n_layers = 3;
  p.n_vocab = 512;
  struct aug_err err = {0};
  if (synth_write(&p, path, &err)) fail_msg("%s", err.msg);
  struct model *model = NULL;
  if (model_load(path, &model, &err)) fail_msg("%s", err.msg);
  struct plan_model *got = malloc(sizeof *got);
  if (plan_model_from_model(model, got, &err)) fail_msg("%s", err.msg);
  struct plan_model *want = make_model(&model->hp, q4_k_m_type, "Q4_K_M");
  assert_string_equal(got->arch, "qwen2");
  assert_string_equal(got->quant, "Q4_K_M");
  assert_int_equal(got->n_layer, 3);
  assert_int_equal(got->tied_output, model->hp.tied_output);
  assert_true(got->tied_output); /* Qwen2.5-Coder-0.5B ties its head to the embedding */
  assert_int_equal(got->token_embd_bytes, want->token_embd_bytes);
  assert_int_equal(got->output_bytes, want->output_bytes);
  assert_int_equal(got->token_embd_type, want->token_embd_type);
  for (uint32_t il = 0; il < 3; il++)
    for (int t = 0; t < PLAN_TENSOR_COUNT; t++) {
      assert_int_equal(got->layers[il].bytes[t], want->layers[il].bytes[t]);
      assert_int_equal(got->layers[il].type[t], want->layers[il].type[t]);
    }
  /* Tied: the head's copy is not counted twice on the host. */
  uint64_t total = plan_model_bytes(got);
  struct plan_options opt = plan_options_default();
  struct plan_device host = device("host", 8.0, 20, true), gpu = device("gpu", 8.0, 200, false);
  struct plan_result r;
  assert_int_equal(plan_evaluate(got, &opt, &gpu, &host, 0, &r, &err), 0);
  assert_int_equal(r.host.weights, total);
  assert_int_equal(plan_evaluate(got, &opt, &gpu, &host, 4, &r, &err), 0);
  assert_int_equal(r.host.weights, got->token_embd_bytes);
  assert_int_equal(r.gpu.weights + r.host.weights, total + got->output_bytes);
  model_destroy(model);
  free(got);
  free(want);
  unlink(path);
  rmdir(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_kv_bytes),    cmocka_unit_test(test_shapes),
      cmocka_unit_test(test_4gb_card_7b), cmocka_unit_test(test_rtx4060_32b),
      cmocka_unit_test(test_edges),       cmocka_unit_test(test_hostile),
      cmocka_unit_test(test_from_model),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
