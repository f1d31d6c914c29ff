/* augury generate: plain text generation from a prompt, streamed to stdout as tokens arrive,
 * with a timings line on stderr (prompt and generated tokens, ms, tokens/s). For debugging and
 * reference checks against llama.cpp; greedy unless --temp is given. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "engine/engine.h"
#include "engine/sampler.h"
#include "engine/clock.h"

static int generate_fail(const char *what, const struct aug_err *err) {
  fprintf(stderr, "augury generate: %s: %s\n", what,
          err->msg[0] ? err->msg : aug_strerror(err->code));
  return 1;
}

int cli_cmd_generate(int argc, char **argv) {
  const char *model = NULL, *prompt = NULL, *gpu_layers = NULL, *gpu_options = NULL;
  struct cli_load_options load = cli_load_options_default();
  int64_t n_predict = 128, top_k = 40, seed = 0, threads = 0, ctx = 0, repeat_last_n = 64;
  double temp = 0.0, top_p = 0.95, min_p = 0.05, repeat_penalty = 1.0;
  bool special = false, ignore_eos = false;
  const struct cli_option opts[] = {
      CLI_OPT_STRING("model", 'm', &model, "PATH", "GGUF model file"),
      CLI_OPT_STRING("prompt", 'p', &prompt, "TEXT", "prompt text"),
      CLI_OPT_INT("n-predict", 'n', &n_predict, "N", "tokens to generate (default 128)", 0,
                  1 << 20),
      CLI_OPT_FLOAT("temp", 0, &temp, "T", "temperature; 0 = greedy (default)", 0.0, 100.0),
      CLI_OPT_INT("top-k", 0, &top_k, "K", "top-k when sampling; 0 = off (default 40)", 0, 1 << 30),
      CLI_OPT_FLOAT("top-p", 0, &top_p, "P", "top-p when sampling; 1 = off (default 0.95)", 0.0,
                    1.0),
      CLI_OPT_FLOAT("min-p", 0, &min_p, "P", "min-p when sampling; 0 = off (default 0.05)", 0.0,
                    1.0),
      CLI_OPT_FLOAT("repeat-penalty", 0, &repeat_penalty, "R", "repetition penalty; 1 = off", 0.01,
                    100.0),
      CLI_OPT_INT("repeat-last-n", 0, &repeat_last_n, "N", "penalty window (default 64)", 0,
                  1 << 20),
      CLI_OPT_INT("seed", 's', &seed, "S", "random seed (default 0)", 0, INT64_MAX),
      CLI_OPT_INT("threads", 't', &threads, "N", "compute threads (default: physical cores)", 0,
                  1024),
      CLI_OPT_INT("ctx", 'c', &ctx, "N", "context length (default min(4096, trained))", 0, 1 << 24),
      CLI_LOAD_OPTIONS(&load),
      CLI_OPT_STRING("gpu-layers", 0, &gpu_layers, "N|all|auto", CLI_GPU_LAYERS_HELP),
      CLI_OPT_STRING("gpu-options", 0, &gpu_options, "K=V,...", CLI_GPU_OPTIONS_HELP),
      CLI_OPT_FLAG("special", 0, &special, "parse control-token texts in the prompt, print them"),
      CLI_OPT_FLAG("ignore-eos", 0, &ignore_eos, "do not stop at end-of-generation tokens"),
  };
  const struct cli_args args = {opts, sizeof opts / sizeof opts[0],
                                "generate -m MODEL -p TEXT [options]"};
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
  if (!model || !prompt) {
    aug_err_set(&err, AUG_EINVAL, "-m MODEL and -p TEXT are required");
    return cli_args_fail(&args, &err);
  }
  struct engine_params ep = engine_params_default();
  ep.model_path = model;
  ep.n_threads = (int)threads;
  ep.n_ctx = (uint32_t)ctx;
  ep.gpu_layers = n_gpu_layers;
  ep.gpu_options = gpu_options;
  if (cli_load_options_apply(&load, &ep, &err)) return cli_args_fail(&args, &err);

  struct engine *engine = NULL;
  struct sampler *sampler = NULL;
  int32_t *tokens = NULL;
  int status = 1;
  if (engine_create(&ep, &engine, &err) < 0) return generate_fail("loading the model", &err);
  cli_load_options_report("generate", engine, stderr);
  const struct tokenizer *tok = engine_tokenizer(engine);
  uint32_t n_ctx = engine_n_ctx(engine);
  tokens = malloc((size_t)n_ctx * sizeof *tokens);
  if (!tokens) {
    fprintf(stderr, "augury generate: out of memory\n");
    goto done;
  }
  size_t n_prompt = 0;
  struct tokenize_options to = {.add_special = true, .parse_special = special};
  if (tokenizer_encode(tok, prompt, strlen(prompt), to, tokens, n_ctx, &n_prompt, &err) < 0) {
    generate_fail("tokenizing the prompt", &err);
    goto done;
  }
  if (n_prompt == 0) {
    fprintf(stderr, "augury generate: the prompt has no tokens\n");
    goto done;
  }
  if (n_prompt + (size_t)n_predict > n_ctx) {
    fprintf(stderr,
            "augury generate: %zu prompt + %lld generated tokens exceed the context of %u\n",
            n_prompt, (long long)n_predict, n_ctx);
    goto done;
  }
  struct sampler_params sp = sampler_params_default();
  sp.temperature = (float)temp;
  sp.top_k = (int32_t)top_k;
  sp.top_p = (float)top_p;
  sp.min_p = (float)min_p;
  sp.repeat_penalty = (float)repeat_penalty;
  sp.repeat_last_n = (int32_t)repeat_last_n;
  sp.seed = (uint64_t)seed;
  if (sampler_create(&sp, (int32_t)engine_model(engine)->hp.n_vocab, &sampler, &err) < 0) {
    generate_fail("sampler", &err);
    goto done;
  }
  for (size_t i = 0; i < n_prompt; i++)
    sampler_accept(sampler, tokens[i]);

  fputs(prompt, stdout);
  fflush(stdout);
  struct engine_eval_stats stats;
  double t_prompt = aug_now_ms();
  if (engine_set_prompt(engine, tokens, n_prompt, NULL, &stats, &err) < 0) {
    generate_fail("evaluating the prompt", &err);
    goto done;
  }
  double prompt_ms = aug_now_ms() - t_prompt;

  struct detokenizer detok;
  detokenizer_init(&detok);
  char piece[256];
  int64_t n_gen = 0;
  double t_gen = aug_now_ms();
  for (; n_gen < n_predict; n_gen++) {
    int32_t t = sampler_sample(sampler, engine_logits(engine));
    sampler_accept(sampler, t);
    if (!ignore_eos && tokenizer_is_eog(tok, t)) break;
    int w = detokenizer_push(&detok, tok, t, special, piece, sizeof piece);
    if (w > 0) fwrite(piece, 1, (size_t)w, stdout);
    fflush(stdout);
    if (n_gen + 1 == n_predict) {
      n_gen++;
      break; /* the last token's successor is not needed */
    }
    if (engine_push(engine, t, NULL, &err) < 0) {
      generate_fail("decoding", &err);
      goto done;
    }
  }
  double gen_ms = aug_now_ms() - t_gen;
  int w = detokenizer_flush(&detok, piece, sizeof piece);
  if (w > 0) fwrite(piece, 1, (size_t)w, stdout);
  fputc('\n', stdout);
  fflush(stdout);
  fprintf(stderr,
          "prompt: %zu tokens, %.1f ms, %.2f t/s | generated: %lld tokens, %.1f ms, %.2f t/s\n",
          n_prompt, prompt_ms, prompt_ms > 0 ? n_prompt * 1e3 / prompt_ms : 0.0, (long long)n_gen,
          gen_ms, gen_ms > 0 ? n_gen * 1e3 / gen_ms : 0.0);
  status = 0;
done:
  free(tokens);
  sampler_destroy(sampler);
  engine_destroy(engine);
  return status;
}
