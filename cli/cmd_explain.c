/* augury explain: explains lines L1-L2 (1-based, inclusive) of a file with the model's chat
 * format, streaming the text to stdout as it is generated; timings on stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "lsp/config.h"
#include "lsp/documents.h"
#include "plugins/generate.h"

static void explain_stream(void *user, const char *text, size_t len) {
  fwrite(text, 1, len, stdout);
  fflush(stdout);
}

static void explain_warn(void *user, const char *message) {
  fprintf(stderr, "%s\n", message);
}

int cli_cmd_explain(int argc, char **argv) {
  const char *model = NULL, *gpu_layers = NULL;
  int64_t max_tokens = 384, threads = 0, ctx = 0, seed = 0;
  double temp = 0.2;
  struct cli_load_options load = cli_load_options_default();
  const struct cli_option opts[] = {
      CLI_OPT_STRING("model", 'm', &model, "PATH", "GGUF model (default: the server's lookup)"),
      CLI_OPT_INT("max-tokens", 'n', &max_tokens, "N", "token budget (default 384)", 1, 8192),
      CLI_OPT_FLOAT("temp", 0, &temp, "T", "temperature (default 0.2; 0 = greedy)", 0, 2),
      CLI_OPT_INT("seed", 's', &seed, "S", "random seed (default 0)", 0, INT64_MAX),
      CLI_OPT_INT("threads", 't', &threads, "N", "compute threads", 0, 1024),
      CLI_OPT_INT("ctx", 'c', &ctx, "N", "context length", 0, 1 << 20),
      CLI_OPT_STRING("gpu-layers", 0, &gpu_layers, "N|all|auto", CLI_GPU_LAYERS_HELP),
      CLI_LOAD_OPTIONS(&load),
  };
  const struct cli_args args = {opts, sizeof opts / sizeof opts[0],
                                "explain -m MODEL [options] FILE:L1-L2"};
  struct aug_err err = {0};
  const char *pos[1];
  size_t n_pos = 0;
  int rc = cli_args_parse(&args, argc, argv, pos, 1, &n_pos, &err);
  if (rc == CLI_ARGS_HELP) {
    cli_args_usage(&args, stdout);
    return 0;
  }
  if (rc < 0) return cli_args_fail(&args, &err);
  int32_t n_gpu_layers = 0;
  if (gpu_layers && cli_args_parse_gpu_layers(gpu_layers, &n_gpu_layers, &err))
    return cli_args_fail(&args, &err);
  struct engine_params ep = engine_params_default();
  if (cli_load_options_apply(&load, &ep, &err)) return cli_args_fail(&args, &err);
  char target[4096];
  long l1 = 0, l2 = 0;
  char *colon = NULL;
  if (n_pos == 1) {
    snprintf(target, sizeof target, "%s", pos[0]);
    colon = strrchr(target, ':');
  }
  if (!colon || sscanf(colon + 1, "%ld-%ld", &l1, &l2) != 2 || l1 < 1 || l2 < l1) {
    aug_err_set(&err, AUG_EINVAL, "FILE:L1-L2 (1-based, L1 <= L2) is required");
    return cli_args_fail(&args, &err);
  }
  *colon = '\0';
  const char *ext = strrchr(target, '.');
  ext = ext && !strchr(ext, '/') ? ext + 1 : NULL;

  struct config cfg;
  if (config_init(&cfg, &err)) return 1;
  struct config_env env = config_env_from_process();
  config_load_file(&cfg, &env, explain_warn, NULL);
  char model_path[4096];
  const char *found_by = NULL;
  int status = 1;
  char *out = NULL;
  struct document_text doc = {0};
  struct generator *g = NULL;
  if (model) {
    snprintf(model_path, sizeof model_path, "%s", model);
  } else if (config_find_model(&cfg, &env, model_path, sizeof model_path, &found_by, &err)) {
    fprintf(stderr, "augury explain: %s\n", err.msg);
    goto done;
  }
  if (document_text_load(&doc, target, &err)) {
    fprintf(stderr, "augury explain: %s\n", err.msg);
    goto done;
  }
  if ((size_t)l1 > doc.n_lines) {
    fprintf(stderr, "augury explain: %s has %zu lines, not %ld-%ld\n", target, doc.n_lines, l1, l2);
    goto done;
  }
  size_t first_start, first_end, last_start, last_end;
  document_text_line(&doc, (size_t)l1 - 1, &first_start, &first_end);
  document_text_line(&doc, (size_t)(l2 < (long)doc.n_lines ? l2 : (long)doc.n_lines) - 1,
                     &last_start, &last_end);
  const char *sel = doc.data + first_start;
  size_t n = last_end - first_start;
  ep.model_path = model_path;
  ep.n_threads = (int)threads;
  ep.n_ctx = (uint32_t)ctx;
  ep.gpu_layers = n_gpu_layers;
  if (generator_create(&ep, &g, &err)) {
    fprintf(stderr, "augury explain: loading %s: %s\n", model_path, err.msg);
    goto done;
  }
  cli_load_options_report("explain", generator_engine(g), stderr);
  size_t out_cap = 65536, out_len = 0;
  out = malloc(out_cap);
  if (!out) goto done;
  struct explain_request req = {sel, n, ext, (int)max_tokens, (float)temp, (uint64_t)seed};
  struct generation_stats st;
  if (generator_explain(g, &req, NULL, explain_stream, NULL, out, out_cap, &out_len, &st, &err)) {
    fprintf(stderr, "\naugury explain: %s\n", err.msg);
    goto done;
  }
  fputc('\n', stdout);
  fflush(stdout);
  fprintf(stderr, "prompt: %zu tokens %.1f ms | generated: %zu tokens %.1f ms | stop: %s\n",
          st.n_prompt, st.prompt_ms, st.n_generated, st.generate_ms, st.stop);
  status = 0;
done:
  document_text_free(&doc);
  free(out);
  generator_destroy(g);
  config_free(&cfg);
  return status;
}
