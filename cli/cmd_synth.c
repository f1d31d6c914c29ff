/* `augury synth --like NAME --type TYPE -o OUT [--vocab-from GGUF] [--seed N] [--layers N]`:
 * writes a random-weight model with the exact shapes of a published one (engine/synth.h). The
 * way to benchmark speed where a real file cannot travel and to test loaders on every type. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "engine/synth.h"

int cli_cmd_synth(int argc, char **argv);

int cli_cmd_synth(int argc, char **argv) {
  const char *like = NULL, *type_name = NULL, *out = NULL, *vocab_from = NULL;
  int64_t seed = 1, layers = 0, vocab = 0;
  const struct cli_option opts[] = {
      CLI_OPT_STRING("like", 0, &like, "NAME",
                     "qwen2.5-coder-0.5b, qwen2.5-coder-1.5b, qwen2.5-coder-7b, llama-3.2-1b"),
      CLI_OPT_STRING("type", 't', &type_name, "TYPE", "f16, q8_0, q4_0, q4_k_m, q5_k_m or iq3_xs"),
      CLI_OPT_STRING("output", 'o', &out, "OUT", "file to write"),
      CLI_OPT_STRING("vocab-from", 0, &vocab_from, "GGUF",
                     "copy the tokenizer from GGUF (default: small built-in vocabulary)"),
      CLI_OPT_INT("seed", 's', &seed, "N", "random seed (default 1)", 0, INT64_MAX),
      CLI_OPT_INT("layers", 0, &layers, "N", "fewer blocks than NAME has (quick tests)", 1, 512),
      CLI_OPT_INT("n-vocab", 0, &vocab, "N", "fewer tokens than NAME has (quick tests)", 1,
                  1 << 24),
  };
  const struct cli_args args = {
      opts, sizeof opts / sizeof opts[0],
      "synth --like NAME --type TYPE -o OUT [--vocab-from GGUF] [--seed N] [--layers N]"};
  const char *pos[1];
  size_t n_pos = 0;
  struct aug_err err = {0};
  int rc = cli_args_parse(&args, argc, argv, pos, 0, &n_pos, &err);
  if (rc == CLI_ARGS_HELP) {
    cli_args_usage(&args, stdout);
    return 0;
  }
  if (rc < 0) return cli_args_fail(&args, &err);
  struct synth_params params = synth_params_default();
  if (!like || !type_name || !out) {
    aug_err_set(&err, AUG_EINVAL, "synth needs --like, --type and -o");
    return cli_args_fail(&args, &err);
  }
  if (synth_type_from_name(type_name, &params.type) != 0) {
    aug_err_set(&err, AUG_EINVAL,
                "--type: unknown type '%s' (f16, q8_0, q4_0, q4_k_m, q5_k_m, iq3_xs)", type_name);
    return cli_args_fail(&args, &err);
  }
  bool known = false;
  for (size_t i = 0; i < synth_preset_count(); i++)
    known |= !strcmp(synth_preset_name(i), like);
  if (!known) {
    aug_err_set(&err, AUG_EINVAL,
                "--like: unknown model '%s' (qwen2.5-coder-0.5b, qwen2.5-coder-1.5b, "
                "qwen2.5-coder-7b, llama-3.2-1b)",
                like);
    return cli_args_fail(&args, &err);
  }
  params.like = like;
  params.vocab_from = vocab_from;
  params.seed = (uint64_t)seed;
  params.n_layers = (uint32_t)layers;
  params.n_vocab = (uint32_t)vocab;
  struct model_hparams hp;
  if (synth_hparams(&params, &hp, &err) != 0) /* --layers / --n-vocab beyond NAME's */
    return cli_args_fail(&args, &err);
  if (synth_write(&params, out, &err) != 0) {
    fprintf(stderr, "augury: %s\n", err.msg);
    return 1;
  }
  return 0;
}
