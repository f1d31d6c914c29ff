/* `augury info MODEL [--json]`: what a GGUF holds: architecture and hyper-parameters, tensor count,
 * count and bytes per type, parameter count, file size, vocabulary and special/FIM tokens; --json
 * adds every tensor (name, type, shape, offset in the data section, size). A file the reader or
 * the architecture check rejects exits 1 with the message; a valid file of an architecture this
 * build does not run is still described (without hyper-parameters). */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "engine/quant.h"
#include "engine/tokenizer.h"

int cli_cmd_info(int argc, char **argv);

struct type_stat {
  uint64_t count, bytes;
};

struct info {
  struct gguf_file *file;
  struct model *model;      /* NULL when the architecture is not supported */
  struct aug_err model_err; /* why model is NULL */
  struct tokenizer *tok;    /* NULL when tokenizer_create failed */
  struct aug_err tok_err;   /* why tok is NULL */
  struct type_stat types[QUANT_TYPE_COUNT];
  uint64_t param_count;
};

static void string_key(const struct gguf_file *f, const char *key, char *buf, size_t size) {
  const char *s = NULL;
  size_t len = 0;
  buf[0] = '\0';
  if (gguf_get_string(f, key, &s, &len, NULL) == 0)
    snprintf(buf, size, "%.*s", (int)(len < size ? len : size - 1), s);
}

/* ---- text output -------------------------------------------------------------------------- */

static void print_token(const struct tokenizer *tok, const char *label, int32_t id) {
  if (id == TOKEN_NONE) return;
  const char *text = tokenizer_token_text(tok, id);
  printf("  %-11s %7" PRId32 "  %s\n", label, id, text ? text : "(out of range)");
}

static void print_text(const struct info *in) {
  const struct gguf_file *f = in->file;
  char buf[256];
  printf("file:           %s\n", gguf_path(f));
  printf("file size:      %" PRIu64 " bytes (%.2f MiB)\n", gguf_file_size(f),
         (double)gguf_file_size(f) / (1024.0 * 1024.0));
  printf("gguf:           version %" PRIu32 ", alignment %" PRIu32 ", %zu keys, data at %" PRIu64
         "\n",
         gguf_version(f), gguf_alignment(f), gguf_kv_count(f), gguf_data_offset(f));
  string_key(f, "general.architecture", buf, sizeof buf);
  printf("architecture:   %s%s\n", buf[0] ? buf : "(none)", in->model ? "" : " (not supported)");
  string_key(f, "general.name", buf, sizeof buf);
  if (buf[0]) printf("name:           %s\n", buf);
  uint64_t ftype = 0;
  if (gguf_get_uint(f, "general.file_type", &ftype, NULL) == 0) {
    const char *ft = model_file_type_name(ftype);
    printf("file type:      %s (%" PRIu64 ")\n", ft ? ft : "unknown", ftype);
  }
  if (in->model) {
    const struct model_hparams *hp = &in->model->hp;
    printf("hyper-parameters:\n");
    printf("  n_vocab        %" PRIu32 "\n", hp->n_vocab);
    printf("  n_ctx_train    %" PRIu32 "\n", hp->n_ctx_train);
    printf("  n_embd         %" PRIu32 "\n", hp->n_embd);
    printf("  n_layer        %" PRIu32 "\n", hp->n_layer);
    printf("  n_head         %" PRIu32 "\n", hp->n_head);
    printf("  n_head_kv      %" PRIu32 "\n", hp->n_head_kv);
    printf("  head_dim       %" PRIu32 "\n", hp->head_dim);
    printf("  n_rot          %" PRIu32 "\n", hp->n_rot);
    printf("  n_ff           %" PRIu32 "\n", hp->n_ff);
    printf("  rms_eps        %g\n", (double)hp->rms_eps);
    printf("  rope           %s, freq_base %g, freq_scale %g%s\n",
           hp->rope_layout == ROPE_LAYOUT_NEOX ? "neox" : "normal", (double)hp->rope_freq_base,
           (double)hp->rope_freq_scale, hp->has_rope_freqs ? ", rope_freqs factors" : "");
    printf("  output         %s\n", hp->tied_output ? "tied to token_embd" : "output.weight");
    printf("  qkv bias       %s\n", hp->has_qkv_bias ? "yes" : "no");
  } else {
    printf("model check:    %s\n", in->model_err.msg);
  }
  printf("tensors:        %zu, %" PRIu64 " parameters (%.3f B)\n", gguf_tensor_count(f),
         in->param_count, (double)in->param_count / 1e9);
  printf("  %-8s %6s %16s\n", "type", "count", "bytes");
  for (uint32_t t = 0; t < QUANT_TYPE_COUNT; t++) {
    if (!in->types[t].count) continue;
    printf("  %-8s %6" PRIu64 " %16" PRIu64 "\n", quant_type_name(t), in->types[t].count,
           in->types[t].bytes);
  }
  if (!in->tok) {
    printf("tokenizer:      unavailable: %s\n", in->tok_err.msg);
    return;
  }
  printf("tokenizer:      %s, pre %s, %" PRId32 " tokens\n", tokenizer_model_name(in->tok),
         tokenizer_pre_name(in->tok), tokenizer_vocab_size(in->tok));
  const struct tokenizer_special *sp = tokenizer_special(in->tok);
  printf("special tokens (add_bos %s, add_eos %s):\n", sp->add_bos ? "yes" : "no",
         sp->add_eos ? "yes" : "no");
  print_token(in->tok, "bos", sp->bos);
  print_token(in->tok, "eos", sp->eos);
  print_token(in->tok, "eot", sp->eot);
  print_token(in->tok, "eom", sp->eom);
  print_token(in->tok, "unk", sp->unk);
  print_token(in->tok, "pad", sp->pad);
  print_token(in->tok, "nl", sp->nl);
  const int32_t fim[] = {sp->fim_prefix, sp->fim_suffix, sp->fim_middle,
                         sp->fim_pad,    sp->fim_repo,   sp->fim_sep};
  const char *fim_names[] = {"fim_prefix", "fim_suffix", "fim_middle",
                             "fim_pad",    "fim_repo",   "fim_sep"};
  bool any = false;
  for (size_t i = 0; i < 6; i++)
    any |= fim[i] != TOKEN_NONE;
  printf("fim tokens:%s\n", any ? "" : "     none");
  for (size_t i = 0; i < 6; i++)
    print_token(in->tok, fim_names[i], fim[i]);
}

/* ---- JSON output -------------------------------------------------------------------------- */

static json_t *json_token(const struct tokenizer *tok, int32_t id) {
  if (id == TOKEN_NONE) return json_null();
  const char *text = tokenizer_token_text(tok, id);
  return json_pack("{s:I, s:s?}", "id", (json_int_t)id, "text", text);
}

static json_t *build_json(const struct info *in) {
  const struct gguf_file *f = in->file;
  char arch[128], name[256];
  string_key(f, "general.architecture", arch, sizeof arch);
  string_key(f, "general.name", name, sizeof name);
  json_t *root = json_object();
  json_object_set_new(root, "file", json_string(gguf_path(f)));
  json_object_set_new(root, "file_size", json_integer((json_int_t)gguf_file_size(f)));
  json_object_set_new(root, "gguf_version", json_integer(gguf_version(f)));
  json_object_set_new(root, "alignment", json_integer(gguf_alignment(f)));
  json_object_set_new(root, "data_offset", json_integer((json_int_t)gguf_data_offset(f)));
  json_object_set_new(root, "kv_count", json_integer((json_int_t)gguf_kv_count(f)));
  json_object_set_new(root, "architecture", arch[0] ? json_string(arch) : json_null());
  json_object_set_new(root, "supported", json_boolean(in->model != NULL));
  if (name[0]) json_object_set_new(root, "name", json_string(name));
  uint64_t ftype = 0;
  if (gguf_get_uint(f, "general.file_type", &ftype, NULL) == 0) {
    const char *ft = model_file_type_name(ftype);
    json_object_set_new(root, "file_type", json_integer((json_int_t)ftype));
    json_object_set_new(root, "file_type_name", ft ? json_string(ft) : json_null());
  }
  if (in->model) {
    const struct model_hparams *hp = &in->model->hp;
    json_t *h = json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:s, s:b, s:b, s:b}",
        "n_vocab", (json_int_t)hp->n_vocab, "n_ctx_train", (json_int_t)hp->n_ctx_train, "n_embd",
        (json_int_t)hp->n_embd, "n_layer", (json_int_t)hp->n_layer, "n_head",
        (json_int_t)hp->n_head, "n_head_kv", (json_int_t)hp->n_head_kv, "head_dim",
        (json_int_t)hp->head_dim, "n_rot", (json_int_t)hp->n_rot, "n_ff", (json_int_t)hp->n_ff,
        "rms_eps", (double)hp->rms_eps, "rope_freq_base", (double)hp->rope_freq_base,
        "rope_freq_scale", (double)hp->rope_freq_scale, "rope_layout",
        hp->rope_layout == ROPE_LAYOUT_NEOX ? "neox" : "normal", "rope_freqs",
        (int)hp->has_rope_freqs, "tied_output", (int)hp->tied_output, "qkv_bias",
        (int)hp->has_qkv_bias);
    json_object_set_new(root, "hparams", h);
  } else {
    json_object_set_new(root, "model_error", json_string(in->model_err.msg));
  }
  json_object_set_new(root, "tensor_count", json_integer((json_int_t)gguf_tensor_count(f)));
  json_object_set_new(root, "param_count", json_integer((json_int_t)in->param_count));
  json_t *types = json_array();
  for (uint32_t t = 0; t < QUANT_TYPE_COUNT; t++) {
    if (!in->types[t].count) continue;
    json_array_append_new(types,
                          json_pack("{s:s, s:I, s:I, s:I}", "type", quant_type_name(t), "type_id",
                                    (json_int_t)t, "count", (json_int_t)in->types[t].count, "bytes",
                                    (json_int_t)in->types[t].bytes));
  }
  json_object_set_new(root, "types", types);
  if (in->tok) {
    const struct tokenizer_special *sp = tokenizer_special(in->tok);
    json_t *tk = json_pack("{s:s, s:s, s:I, s:b, s:b}", "model", tokenizer_model_name(in->tok),
                           "pre", tokenizer_pre_name(in->tok), "vocab_size",
                           (json_int_t)tokenizer_vocab_size(in->tok), "add_bos", (int)sp->add_bos,
                           "add_eos", (int)sp->add_eos);
    json_t *special = json_object();
    json_object_set_new(special, "bos", json_token(in->tok, sp->bos));
    json_object_set_new(special, "eos", json_token(in->tok, sp->eos));
    json_object_set_new(special, "eot", json_token(in->tok, sp->eot));
    json_object_set_new(special, "eom", json_token(in->tok, sp->eom));
    json_object_set_new(special, "unk", json_token(in->tok, sp->unk));
    json_object_set_new(special, "pad", json_token(in->tok, sp->pad));
    json_object_set_new(special, "nl", json_token(in->tok, sp->nl));
    json_object_set_new(tk, "special", special);
    json_t *fim = json_object();
    json_object_set_new(fim, "prefix", json_token(in->tok, sp->fim_prefix));
    json_object_set_new(fim, "suffix", json_token(in->tok, sp->fim_suffix));
    json_object_set_new(fim, "middle", json_token(in->tok, sp->fim_middle));
    json_object_set_new(fim, "pad", json_token(in->tok, sp->fim_pad));
    json_object_set_new(fim, "repo", json_token(in->tok, sp->fim_repo));
    json_object_set_new(fim, "sep", json_token(in->tok, sp->fim_sep));
    json_object_set_new(tk, "fim", fim);
    json_object_set_new(root, "tokenizer", tk);
  } else {
    json_object_set_new(root, "tokenizer", json_pack("{s:s}", "error", in->tok_err.msg));
  }
  json_t *tensors = json_array();
  for (size_t i = 0; i < gguf_tensor_count(f); i++) {
    const struct gguf_tensor *t = gguf_tensor_at(f, i);
    json_t *shape = json_array();
    for (uint32_t d = 0; d < t->n_dims; d++)
      json_array_append_new(shape, json_integer((json_int_t)t->ne[d]));
    json_array_append_new(tensors, json_pack("{s:s, s:s, s:I, s:o, s:I, s:I}", "name", t->name,
                                             "type", quant_type_name(t->type), "type_id",
                                             (json_int_t)t->type, "shape", shape, "offset",
                                             (json_int_t)t->offset, "size", (json_int_t)t->size));
  }
  json_object_set_new(root, "tensors", tensors);
  return root;
}

int cli_cmd_info(int argc, char **argv) {
  bool json = false;
  const struct cli_option opts[] = {
      CLI_OPT_FLAG("json", 0, &json, "print JSON, with every tensor"),
  };
  const struct cli_args args = {opts, sizeof opts / sizeof opts[0], "info MODEL [--json]"};
  const char *pos[1];
  size_t n_pos = 0;
  struct aug_err err = {0};
  int rc = cli_args_parse(&args, argc, argv, pos, 1, &n_pos, &err);
  if (rc == CLI_ARGS_HELP) {
    cli_args_usage(&args, stdout);
    return 0;
  }
  if (rc < 0) return cli_args_fail(&args, &err);
  if (n_pos != 1) {
    aug_err_set(&err, AUG_EINVAL, "info needs one MODEL file");
    return cli_args_fail(&args, &err);
  }

  struct info in = {0};
  struct gguf_open_params params = gguf_open_params_default();
  if (gguf_open(pos[0], &params, &in.file, &err) != 0) {
    fprintf(stderr, "augury: %s\n", err.msg);
    return 1;
  }
  /* An architecture we do not run is not a broken file: describe what is there. A file of a
   * known architecture that fails its check is. */
  const char *arch = NULL;
  size_t arch_len = 0;
  enum model_arch arch_id;
  bool known_arch = gguf_get_string(in.file, "general.architecture", &arch, &arch_len, NULL) != 0 ||
                    model_arch_from_name(arch, arch_len, &arch_id) == 0;
  rc = model_create(in.file, &in.model, &in.model_err);
  if (rc != 0 && known_arch) {
    fprintf(stderr, "augury: %s\n", in.model_err.msg);
    gguf_close(in.file);
    return 1;
  }
  for (size_t i = 0; i < gguf_tensor_count(in.file); i++) {
    const struct gguf_tensor *t = gguf_tensor_at(in.file, i);
    if (t->type < QUANT_TYPE_COUNT) {
      in.types[t->type].count++;
      in.types[t->type].bytes += t->size;
    }
    in.param_count += t->n_elements;
  }
  if (tokenizer_create(in.file, &in.tok, &in.tok_err) != 0) in.tok = NULL;

  int status = 0;
  if (json) {
    json_t *root = build_json(&in);
    if (!root || json_dumpf(root, stdout, JSON_INDENT(1) | JSON_PRESERVE_ORDER) != 0) {
      fprintf(stderr, "augury: info: cannot write JSON\n");
      status = 1;
    } else {
      fputc('\n', stdout);
    }
    json_decref(root);
  } else {
    print_text(&in);
  }
  if (fflush(stdout) != 0) status = 1;
  tokenizer_destroy(in.tok);
  model_destroy(in.model);
  gguf_close(in.file);
  return status;
}
