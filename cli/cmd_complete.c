/* augury complete: the completion the language server would give at FILE:LINE:COL (1-based line,
 * 1-based byte column), printed to stdout, with a timings line on stderr. --repeat runs it again on
 * the resident model to show prompt reuse. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/args.h"
#include "lsp/config.h"
#include "lsp/documents.h"
#include "plugins/generate.h"
#include "plugins/prompt.h"

#define COMPLETE_SNAP_LINES 32

/* Splits "FILE:LINE:COL" from the right (file names may contain ':'). */
static int complete_parse_target(char *arg, long *line, long *col) {
  char *c2 = strrchr(arg, ':');
  if (!c2 || c2 == arg) return -1;
  *c2 = '\0';
  char *c1 = strrchr(arg, ':');
  if (!c1 || c1 == arg) return -1;
  *c1 = '\0';
  char *end;
  *line = strtol(c1 + 1, &end, 10);
  if (*end || *line < 1) return -1;
  *col = strtol(c2 + 1, &end, 10);
  if (*end || *col < 1) return -1;
  return 0;
}

static void complete_warn(void *user, const char *message) {
  fprintf(stderr, "%s\n", message);
}

int cli_cmd_complete(int argc, char **argv) {
  const char *model = NULL, *gpu_layers = NULL;
  int64_t max_tokens = -1, threads = -1, ctx = -1, repeat = 1;
  double time_budget = -1;
  bool classic_layout = false;
  int64_t draft = -1;
  bool no_token_healing = false;
  struct cli_load_options load = cli_load_options_default();
  load.kv_type = NULL; /* unset: the config file's kvCacheType */
  const struct cli_option opts[] = {
      CLI_OPT_STRING("model", 'm', &model, "PATH", "GGUF model (default: the server's lookup)"),
      CLI_OPT_INT("max-tokens", 'n', &max_tokens, "N", "token budget (default 128)", 1, 4096),
      CLI_OPT_FLOAT("time-budget", 0, &time_budget, "MS",
                    "time budget once a line is done (default 1500)", 0, 600000),
      CLI_OPT_INT("threads", 't', &threads, "N", "compute threads", 0, 1024),
      CLI_OPT_INT("ctx", 'c', &ctx, "N", "context length", 0, 1 << 20),
      CLI_OPT_STRING("gpu-layers", 0, &gpu_layers, "N|all|auto", CLI_GPU_LAYERS_HELP),
      CLI_OPT_FLAG("classic-layout", 0, &classic_layout,
                   "cursor line at the end of the prefix, not after <|fim_middle|>"),
      CLI_OPT_FLAG("no-token-healing", 0, &no_token_healing,
                   "heal only trailing blanks at the cursor, not the last token"),
      CLI_OPT_INT("repeat", 'r', &repeat, "R", "complete R times on the resident model", 1, 100),
      CLI_OPT_INT("draft", 0, &draft, "N", "prompt-lookup draft tokens (default 0 = off)", 0, 15),
      CLI_LOAD_OPTIONS(&load),
  };
  const struct cli_args args = {opts, sizeof opts / sizeof opts[0],
                                "complete -m MODEL [options] FILE:LINE:COL"};
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
  struct engine_params loaded = engine_params_default();
  if (load.kv_type && cli_load_options_apply(&load, &loaded, &err))
    return cli_args_fail(&args, &err);
  if (n_pos != 1) {
    aug_err_set(&err, AUG_EINVAL, "FILE:LINE:COL is required");
    return cli_args_fail(&args, &err);
  }
  char target[4096];
  snprintf(target, sizeof target, "%s", pos[0]);
  long line, col;
  if (complete_parse_target(target, &line, &col)) {
    aug_err_set(&err, AUG_EINVAL, "'%s' is not FILE:LINE:COL (1-based)", pos[0]);
    return cli_args_fail(&args, &err);
  }

  struct config cfg;
  if (config_init(&cfg, &err)) {
    fprintf(stderr, "augury complete: %s\n", err.msg);
    return 1;
  }
  struct config_env env = config_env_from_process();
  config_load_file(&cfg, &env, complete_warn, NULL);
  if (max_tokens > 0) cfg.max_tokens = max_tokens;
  if (time_budget >= 0) cfg.time_budget_ms = time_budget;
  if (threads >= 0) cfg.n_threads = threads;
  if (ctx >= 0) cfg.n_ctx = ctx;
  if (draft >= 0) cfg.prompt_lookup = draft;
  char model_path[4096];
  const char *found_by = NULL;
  int status = 1;
  char *out = NULL;
  struct document_text doc = {0};
  struct generator *g = NULL;
  if (model) {
    snprintf(model_path, sizeof model_path, "%s", model);
  } else if (config_find_model(&cfg, &env, model_path, sizeof model_path, &found_by, &err)) {
    fprintf(stderr, "augury complete: %s\n", err.msg);
    goto done;
  }
  size_t cursor;
  struct lsp_position p = {line - 1, col - 1};
  if (document_text_load(&doc, target, &err) ||
      document_text_offset(&doc, p, POSITION_ENCODING_UTF8, &cursor, &err)) {
    fprintf(stderr, "augury complete: %s:%ld:%ld: %s\n", target, line, col, err.msg);
    goto done;
  }
  struct engine_params ep = engine_params_default();
  ep.model_path = model_path;
  ep.n_threads = (int)cfg.n_threads;
  ep.n_ctx = (uint32_t)cfg.n_ctx;
  ep.gpu_layers = n_gpu_layers;
  ep.kv_type = load.kv_type ? loaded.kv_type : (enum engine_kv_type)cfg.kv_type;
  ep.mlock = load.mlock || cfg.mlock;
  if (generator_create(&ep, &g, &err)) {
    fprintf(stderr, "augury complete: loading %s: %s\n", model_path, err.msg);
    goto done;
  }
  cli_load_options_report("complete", generator_engine(g), stderr);
  size_t prefix_start, suffix_end;
  const char *text = doc.data;
  prompt_window(text, doc.len, cursor, (size_t)cfg.prefix_lines, (size_t)cfg.suffix_lines,
                COMPLETE_SNAP_LINES, &prefix_start, &suffix_end);
  char cwd[4096];
  const char *repo = NULL;
  if (getcwd(cwd, sizeof cwd)) {
    repo = strrchr(cwd, '/');
    repo = repo && repo[1] ? repo + 1 : cwd;
  }
  struct completion_request req = {.prefix = text + prefix_start,
                                   .prefix_len = cursor - prefix_start,
                                   .suffix = text + cursor,
                                   .suffix_len = suffix_end - cursor,
                                   .repo_name = repo,
                                   .path = target,
                                   .prefix_tokens = (size_t)cfg.prefix_tokens,
                                   .suffix_tokens = (size_t)cfg.suffix_tokens,
                                   .snap_lines = COMPLETE_SNAP_LINES,
                                   .max_tokens = (int)cfg.max_tokens,
                                   .time_budget_ms = cfg.time_budget_ms,
                                   .cursor_line_in_middle = !classic_layout,
                                   .draft_max = (size_t)cfg.prompt_lookup,
                                   .no_token_healing = no_token_healing};
  size_t cap = 16384, out_len = 0;
  out = malloc(cap);
  if (!out) goto done;
  for (int64_t i = 0; i < repeat; i++) {
    struct generation_stats st;
    if (generator_complete(g, &req, NULL, out, cap, &out_len, &st, &err)) {
      fprintf(stderr, "augury complete: %s\n", err.msg);
      goto done;
    }
    if (i == 0) {
      fwrite(out, 1, out_len, stdout);
      fputc('\n', stdout);
      fflush(stdout);
    }
    fprintf(stderr,
            "prompt: %zu tokens (%zu reused, %zu evaluated) %.1f ms | generated: %zu tokens "
            "%.1f ms (%zu drafted, %zu accepted) | total %.1f ms | stop: %s\n",
            st.n_prompt, st.n_reused, st.n_evaluated, st.prompt_ms, st.n_generated, st.generate_ms,
            st.n_drafted, st.n_accepted, st.total_ms, st.stop);
  }
  status = 0;
done:
  free(out);
  document_text_free(&doc);
  generator_destroy(g);
  config_free(&cfg);
  return status;
}
