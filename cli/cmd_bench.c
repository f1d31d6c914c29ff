/* augury bench: prompt-processing and generation speed as llama-bench measures them. pp: evaluate
 * p random tokens into an empty cache; tg: n single-token decode steps from an empty cache. One
 * untimed warm-up of each, then mean ± sample standard deviation of tokens/s over the repetitions.
 * --json prints exactly one object for scripts (tests/bench/peer-cpu). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "engine/engine.h"
#include "engine/clock.h"

static void bench_stats(const double *v, int n, double *mean, double *sd) {
  double s = 0.0, q = 0.0;
  for (int i = 0; i < n; i++)
    s += v[i];
  *mean = s / n;
  for (int i = 0; i < n; i++)
    q += (v[i] - *mean) * (v[i] - *mean);
  *sd = n > 1 ? sqrt(q / (n - 1)) : 0.0;
}

/* Prompt processing from an empty cache; returns tokens/s or a negative code. */
static int bench_pp(struct engine *e, const int32_t *tokens, size_t n, double *tps,
                    struct aug_err *err) {
  engine_truncate(e, 0);
  double t0 = aug_now_ms();
  int rc = engine_set_prompt(e, tokens, n, NULL, NULL, err);
  double ms = aug_now_ms() - t0;
  if (rc < 0) return rc;
  *tps = n * 1e3 / ms;
  return 0;
}

/* n decode steps of one token each from an empty cache. */
static int bench_tg(struct engine *e, const int32_t *tokens, size_t n, double *tps,
                    struct aug_err *err) {
  engine_truncate(e, 0);
  double t0 = aug_now_ms();
  for (size_t i = 0; i < n; i++) {
    int rc = engine_push(e, tokens[i], NULL, err);
    if (rc < 0) return rc;
  }
  double ms = aug_now_ms() - t0;
  *tps = n * 1e3 / ms;
  return 0;
}

static void bench_json_string(FILE *out, const char *s) {
  fputc('"', out);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      fprintf(out, "\\%c", c);
    else if (c < 0x20)
      fprintf(out, "\\u%04x", c);
    else
      fputc(c, out);
  }
  fputc('"', out);
}

int cli_cmd_bench(int argc, char **argv) {
  const char *model = NULL, *gpu_layers = NULL, *gpu_options = NULL;
  int64_t n_prompt = 512, n_gen = 128, threads = 0, reps = 5;
  bool json = false;
  struct cli_load_options load = cli_load_options_default();
  const struct cli_option opts[] = {
      CLI_OPT_STRING("model", 'm', &model, "PATH", "GGUF model file"),
      CLI_OPT_INT("n-prompt", 'p', &n_prompt, "N", "prompt tokens (default 512; 0 skips pp)", 0,
                  1 << 20),
      CLI_OPT_INT("n-gen", 'n', &n_gen, "N", "generated tokens (default 128; 0 skips tg)", 0,
                  1 << 20),
      CLI_OPT_INT("threads", 't', &threads, "N", "compute threads (default: physical cores)", 0,
                  1024),
      CLI_OPT_INT("repetitions", 'r', &reps, "N", "repetitions (default 5)", 1, 1000),
      CLI_OPT_FLAG("json", 0, &json, "print one JSON object"),
      CLI_OPT_STRING("gpu-layers", 0, &gpu_layers, "N|all|auto", CLI_GPU_LAYERS_HELP),
      CLI_OPT_STRING("gpu-options", 0, &gpu_options, "K=V,...", CLI_GPU_OPTIONS_HELP),
      CLI_LOAD_OPTIONS(&load),
  };
  const struct cli_args args = {opts, sizeof opts / sizeof opts[0],
                                "bench -m MODEL [-p 512] [-n 128] [-t N] [-r REPS] [--json]"};
  struct aug_err err = {0};
  size_t n_pos = 0;
  int rc = cli_args_parse(&args, argc, argv, NULL, 0, &n_pos, &err);
  if (rc == CLI_ARGS_HELP) {
    cli_args_usage(&args, stdout);
    return 0;
  }
  if (rc < 0) return cli_args_fail(&args, &err);
  int32_t n_gpu_layers = 0;
  if (gpu_layers && cli_args_parse_gpu_layers(gpu_layers, &n_gpu_layers, &err))
    return cli_args_fail(&args, &err);
  if (!model) {
    aug_err_set(&err, AUG_EINVAL, "-m MODEL is required");
    return cli_args_fail(&args, &err);
  }
  size_t n_tokens = (size_t)(n_prompt > n_gen ? n_prompt : n_gen);
  if (n_tokens == 0) {
    aug_err_set(&err, AUG_EINVAL, "-p and -n are both 0: nothing to measure");
    return cli_args_fail(&args, &err);
  }
  struct engine_params ep = engine_params_default();
  ep.model_path = model;
  ep.n_threads = (int)threads;
  ep.n_ctx = (uint32_t)n_tokens;
  ep.gpu_layers = n_gpu_layers;
  ep.gpu_options = gpu_options;
  if (cli_load_options_apply(&load, &ep, &err)) return cli_args_fail(&args, &err);
  struct engine *engine = NULL;
  if (engine_create(&ep, &engine, &err) < 0) {
    fprintf(stderr, "augury bench: %s\n", err.msg);
    return 1;
  }
  cli_load_options_report("bench", engine, stderr);
  int status = 1;
  int32_t *tokens = malloc(n_tokens * sizeof *tokens);
  double *pp = calloc((size_t)reps, sizeof *pp), *tg = calloc((size_t)reps, sizeof *tg);
  if (!tokens || !pp || !tg) {
    fprintf(stderr, "augury bench: out of memory\n");
    goto done;
  }
  /* Random tokens as llama-bench uses; a fixed LCG keeps runs comparable. */
  uint32_t n_vocab = engine_model(engine)->hp.n_vocab, x = 1;
  for (size_t i = 0; i < n_tokens; i++) {
    x = x * 1103515245u + 12345u;
    tokens[i] = (int32_t)((x >> 8) % n_vocab);
  }
  double warm;
  if (n_prompt > 0 && bench_pp(engine, tokens, (size_t)n_prompt, &warm, &err) < 0) goto fail;
  if (n_gen > 0 && bench_tg(engine, tokens, 1, &warm, &err) < 0) goto fail;
  for (int64_t r = 0; r < reps; r++) {
    if (n_prompt > 0 && bench_pp(engine, tokens, (size_t)n_prompt, &pp[r], &err) < 0) goto fail;
    if (n_gen > 0 && bench_tg(engine, tokens, (size_t)n_gen, &tg[r], &err) < 0) goto fail;
  }
  double pp_mean = 0, pp_sd = 0, tg_mean = 0, tg_sd = 0;
  if (n_prompt > 0) bench_stats(pp, (int)reps, &pp_mean, &pp_sd);
  if (n_gen > 0) bench_stats(tg, (int)reps, &tg_mean, &tg_sd);
  int n_threads = engine_n_threads(engine);
  if (json) {
    printf("{\"model\": ");
    bench_json_string(stdout, model);
    printf(", \"threads\": %d, \"pp_tokens\": %lld, \"pp_tps\": %.3f, \"pp_tps_sd\": %.3f, "
           "\"tg_tokens\": %lld, \"tg_tps\": %.3f, \"tg_tps_sd\": %.3f}\n",
           n_threads, (long long)n_prompt, pp_mean, pp_sd, (long long)n_gen, tg_mean, tg_sd);
  } else {
    printf("model: %s\ndevice: %s\n", model, engine_device_name(engine));
    printf("| %-8s | %7s | %6s | %20s |\n", "test", "threads", "reps", "t/s");
    if (n_prompt > 0)
      printf("| pp%-6lld | %7d | %6lld | %11.2f ± %6.2f |\n", (long long)n_prompt, n_threads,
             (long long)reps, pp_mean, pp_sd);
    if (n_gen > 0)
      printf("| tg%-6lld | %7d | %6lld | %11.2f ± %6.2f |\n", (long long)n_gen, n_threads,
             (long long)reps, tg_mean, tg_sd);
  }
  status = 0;
  goto done;
fail:
  fprintf(stderr, "augury bench: %s\n", err.msg);
done:
  free(tokens);
  free(pp);
  free(tg);
  engine_destroy(engine);
  return status;
}
