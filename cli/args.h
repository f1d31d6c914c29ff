/* A small command-line option parser shared by the augury subcommands. A command describes its
 * options in a table of struct cli_option (each pointing at the variable it fills), calls
 * cli_args_parse, and gets its positional arguments back in order. Accepted forms: `--name VALUE`,
 * `--name=VALUE`, `-n VALUE`, `-nVALUE`, flags `--name` / `-n`, `--` ends options, a lone `-` is a
 * positional (stdin by convention). `-h` / `--help` returns CLI_ARGS_HELP.
 *
 * Example (the CLI_OPT_* macros fill a table entry with designated initializers, so -Wextra's
 * missing-field-initializers stays quiet):
 *   const char *model = NULL; bool json = false; int64_t n = 128;
 *   const struct cli_option opts[] = {
 *       CLI_OPT_STRING("model", 'm', &model, "PATH", "model file"),
 *       CLI_OPT_FLAG("json", 0, &json, "print JSON"),
 *       CLI_OPT_INT("n-predict", 'n', &n, "N", "tokens to generate", 1, 4096),
 *   };
 *   const struct cli_args args = {opts, sizeof opts / sizeof opts[0],
 *                                 "generate -m MODEL [options] PROMPT"};
 *   const char *pos[1]; size_t n_pos; struct aug_err err = {0};
 *   int rc = cli_args_parse(&args, argc, argv, pos, 1, &n_pos, &err);
 *   if (rc == CLI_ARGS_HELP) { cli_args_usage(&args, stdout); return 0; }
 *   if (rc < 0) return cli_args_fail(&args, &err);   // prints message + usage, returns 2
 */
#ifndef AUGURY_CLI_ARGS_H
#define AUGURY_CLI_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "engine/error.h"

enum cli_arg_kind {
  CLI_ARG_FLAG,   /* no value; sets *(bool *)value = true */
  CLI_ARG_SET,    /* no value; sets *(int *)value = set_to (e.g. --bos 1 / --no-bos 0 on one int) */
  CLI_ARG_STRING, /* *(const char **)value = the argv string (not copied) */
  CLI_ARG_INT,    /* *(int64_t *)value, decimal or 0x hex, checked against min..max when min<max */
  CLI_ARG_FLOAT,  /* *(double *)value, checked against fmin..fmax when fmin < fmax */
  CLI_ARG_BYTES,  /* *(uint64_t *)value: "4096", "512K", "1.5G", "8GiB", "300MB" (1K = 1024) */
};

struct cli_option {
  const char *long_name; /* without the leading "--"; NULL for short-only */
  char short_name;       /* 0 for long-only */
  enum cli_arg_kind kind;
  void *value;         /* where the result goes; type depends on kind */
  const char *metavar; /* "PATH", "N" in usage; NULL for flags */
  const char *help;    /* one line */
  int set_to;          /* CLI_ARG_SET only */
  int64_t min, max;    /* CLI_ARG_INT only: inclusive bounds when min < max */
  double fmin, fmax;   /* CLI_ARG_FLOAT only: inclusive bounds when fmin < fmax */
};

struct cli_args {
  const struct cli_option *options;
  size_t n_options;
  const char *synopsis; /* "tokenize -m MODEL [options] TEXT", printed after "usage: augury " */
};

/* Table entries. LONG is the name without "--" (or NULL), SHORT a char (or 0). */
#define CLI_OPT_FLAG(LONG, SHORT, PTR, HELP)                                                       \
  {                                                                                                \
    .long_name = (LONG), .short_name = (SHORT), .kind = CLI_ARG_FLAG, .value = (PTR),              \
    .help = (HELP)                                                                                 \
  }
#define CLI_OPT_SET(LONG, SHORT, PTR, VALUE, HELP)                                                 \
  {                                                                                                \
    .long_name = (LONG), .short_name = (SHORT), .kind = CLI_ARG_SET, .value = (PTR),               \
    .set_to = (VALUE), .help = (HELP)                                                              \
  }
#define CLI_OPT_STRING(LONG, SHORT, PTR, METAVAR, HELP)                                            \
  {                                                                                                \
    .long_name = (LONG), .short_name = (SHORT), .kind = CLI_ARG_STRING, .value = (PTR),            \
    .metavar = (METAVAR), .help = (HELP)                                                           \
  }
#define CLI_OPT_INT(LONG, SHORT, PTR, METAVAR, HELP, MIN, MAX)                                     \
  {                                                                                                \
    .long_name = (LONG), .short_name = (SHORT), .kind = CLI_ARG_INT, .value = (PTR),               \
    .metavar = (METAVAR), .help = (HELP), .min = (MIN), .max = (MAX)                               \
  }
#define CLI_OPT_FLOAT(LONG, SHORT, PTR, METAVAR, HELP, MIN, MAX)                                   \
  {                                                                                                \
    .long_name = (LONG), .short_name = (SHORT), .kind = CLI_ARG_FLOAT, .value = (PTR),             \
    .metavar = (METAVAR), .help = (HELP), .fmin = (MIN), .fmax = (MAX)                             \
  }
#define CLI_OPT_BYTES(LONG, SHORT, PTR, METAVAR, HELP)                                             \
  {                                                                                                \
    .long_name = (LONG), .short_name = (SHORT), .kind = CLI_ARG_BYTES, .value = (PTR),             \
    .metavar = (METAVAR), .help = (HELP)                                                           \
  }

#define CLI_ARGS_HELP 1

/* Parses argv[1..argc) (argv[0] is the command name). Positional arguments are stored in order
 * into positional[0..max_positional); more than that is a usage error, as are unknown options,
 * missing values and values that do not parse or are out of range (err names the option and the
 * value). Returns 0, CLI_ARGS_HELP, or AUG_EINVAL. Variables not mentioned keep their values,
 * so callers set defaults first. */
int cli_args_parse(const struct cli_args *args, int argc, char **argv, const char **positional,
                   size_t max_positional, size_t *n_positional, struct aug_err *err);

/* Prints "usage: augury SYNOPSIS" and one line per option. */
void cli_args_usage(const struct cli_args *args, FILE *out);

/* For usage errors: prints "augury: MESSAGE" and the usage to stderr; returns 2 (the exit status
 * for usage errors). */
int cli_args_fail(const struct cli_args *args, const struct aug_err *err);

/* Parses a byte size as CLI_ARG_BYTES does; returns 0 or AUG_EINVAL. */
int cli_args_parse_bytes(const char *text, uint64_t *out);

/* --gpu-layers N|all|auto, in engine_params.gpu_layers' encoding (engine/engine.h); err names
 * the value. The help line commands print for it: */
#define CLI_GPU_LAYERS_HELP "layers on the GPU: N (the last N; one more = the head too), all, auto"
int cli_args_parse_gpu_layers(const char *text, int32_t *out, struct aug_err *err);
#define CLI_GPU_OPTIONS_HELP                                                                       \
  "GPU backend options, e.g. device=1 (see backends/vulkan/vulkan_backend.h)"

/* The model-loading options the commands that load a model share (generate, complete, explain,
 * bench): --kv-type f16|q8_0|q4_0 and --mlock. A command keeps a struct cli_load_options
 * (defaults: cli_load_options_default), lists CLI_LOAD_OPTIONS(&lo) in its table, and after
 * parsing calls cli_load_options_apply, which fills engine_params (err names a bad value). When
 * the engine is up, cli_load_options_report prints the note engine_mlock_note returns, if any,
 * as a warning: a refused mlock is not fatal. */
struct engine_params;
struct engine;
struct cli_load_options {
  const char *kv_type; /* "f16", "q8_0" or "q4_0" */
  bool mlock;
};
#define CLI_KV_TYPE_HELP "KV cache type: f16 (default), q8_0 (53% of f16), q4_0 (28%, lossy)"
#define CLI_MLOCK_HELP "lock the model weights in RAM (mlock) so the OS cannot page them out"
#define CLI_LOAD_OPTIONS(LO)                                                                       \
  CLI_OPT_STRING("kv-type", 0, &(LO)->kv_type, "f16|q8_0|q4_0", CLI_KV_TYPE_HELP),                 \
      CLI_OPT_FLAG("mlock", 0, &(LO)->mlock, CLI_MLOCK_HELP)
struct cli_load_options cli_load_options_default(void);
int cli_load_options_apply(const struct cli_load_options *lo, struct engine_params *params,
                           struct aug_err *err);
/* "augury COMMAND: warning: ..." on out when the engine's mlock was refused; nothing otherwise. */
void cli_load_options_report(const char *command, const struct engine *engine, FILE *out);

#endif
