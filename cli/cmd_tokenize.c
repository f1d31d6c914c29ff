/* `augury tokenize -m MODEL [--special] [--bos|--no-bos] [--json] (TEXT | - | --file PATH)`: the
 * token ids of a text, one per line or as one JSON array, as llama.cpp's llama_tokenize gives them.
 * By default BOS/EOS are added where the vocabulary asks (add_special); --no-bos adds none and
 * --bos prepends BOS even where the vocabulary does not ask for it. --special recognises
 * control-token texts (parse_special); without it they are tokenized as plain text. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "engine/gguf.h"
#include "engine/tokenizer.h"

int cli_cmd_tokenize(int argc, char **argv);

/* Reads all of f into a malloc'd buffer; returns NULL with errno set on failure. */
static char *read_all(FILE *f, size_t *len) {
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  if (!buf) return NULL;
  for (;;) {
    if (n == cap) {
      char *grown = cap > SIZE_MAX / 2 ? NULL : realloc(buf, cap * 2);
      if (!grown) {
        free(buf);
        errno = ENOMEM;
        return NULL;
      }
      buf = grown;
      cap *= 2;
    }
    size_t got = fread(buf + n, 1, cap - n, f);
    n += got;
    if (got == 0) break;
  }
  if (ferror(f)) {
    free(buf);
    errno = EIO;
    return NULL;
  }
  *len = n;
  return buf;
}

int cli_cmd_tokenize(int argc, char **argv) {
  const char *model_path = NULL, *file_path = NULL;
  bool special = false, json = false;
  int bos = -1; /* -1: as the vocabulary asks, 0: never, 1: always */
  const struct cli_option opts[] = {
      CLI_OPT_STRING("model", 'm', &model_path, "PATH", "model file (GGUF)"),
      CLI_OPT_FLAG("special", 0, &special, "recognise special-token texts (parse_special)"),
      CLI_OPT_SET("bos", 0, &bos, 1, "prepend BOS even if the vocabulary does not ask"),
      CLI_OPT_SET("no-bos", 0, &bos, 0, "add no BOS/EOS"),
      CLI_OPT_FLAG("json", 0, &json, "print one JSON array"),
      CLI_OPT_STRING("file", 'f', &file_path, "PATH", "read the text from PATH"),
  };
  const struct cli_args args = {
      opts, sizeof opts / sizeof opts[0],
      "tokenize -m MODEL [--special] [--bos|--no-bos] [--json] (TEXT | - | --file PATH)"};
  const char *pos[1];
  size_t n_pos = 0;
  struct aug_err err = {0};
  int rc = cli_args_parse(&args, argc, argv, pos, 1, &n_pos, &err);
  if (rc == CLI_ARGS_HELP) {
    cli_args_usage(&args, stdout);
    return 0;
  }
  if (rc < 0) return cli_args_fail(&args, &err);
  if (!model_path)
    aug_err_set(&err, AUG_EINVAL, "tokenize needs -m MODEL");
  else if (file_path && n_pos)
    aug_err_set(&err, AUG_EINVAL, "give either TEXT or --file, not both");
  else if (!file_path && !n_pos)
    aug_err_set(&err, AUG_EINVAL, "tokenize needs TEXT, - or --file");
  if (err.msg[0]) return cli_args_fail(&args, &err);

  char *owned = NULL;
  const char *text;
  size_t len;
  if (file_path || !strcmp(pos[0], "-")) {
    FILE *f = file_path ? fopen(file_path, "rb") : stdin;
    if (!f) {
      fprintf(stderr, "augury: tokenize: %s: %s\n", file_path, strerror(errno));
      return 1;
    }
    owned = read_all(f, &len);
    int saved = errno;
    if (file_path) fclose(f);
    if (!owned) {
      fprintf(stderr, "augury: tokenize: %s: %s\n", file_path ? file_path : "stdin",
              strerror(saved));
      return 1;
    }
    text = owned;
  } else {
    text = pos[0];
    len = strlen(text);
  }

  struct gguf_open_params params = gguf_open_params_default();
  struct gguf_file *file = NULL;
  struct tokenizer *tok = NULL;
  int32_t *ids = NULL;
  int status = 1;
  if (gguf_open(model_path, &params, &file, &err) != 0 || tokenizer_create(file, &tok, &err) != 0) {
    fprintf(stderr, "augury: %s\n", err.msg);
    goto done;
  }
  struct tokenize_options topts = {.add_special = bos != 0, .parse_special = special};
  /* Bytes are an upper bound for byte-level BPE; retry with the size the tokenizer reports. */
  size_t cap = len + 4, n = 0;
  for (int attempt = 0; attempt < 2; attempt++) {
    free(ids);
    ids = malloc((cap + 1) * sizeof *ids);
    if (!ids) {
      fprintf(stderr, "augury: tokenize: out of memory for %zu tokens\n", cap);
      goto done;
    }
    rc = tokenizer_encode(tok, text, len, topts, ids + 1, cap, &n, &err);
    if (rc != AUG_ERANGE) break;
    cap = n;
  }
  if (rc != 0) {
    fprintf(stderr, "augury: %s\n", err.msg);
    goto done;
  }
  /* ids[0] is room for a forced BOS. */
  int32_t *out = ids + 1;
  const struct tokenizer_special *sp = tokenizer_special(tok);
  if (bos == 1 && sp->bos != TOKEN_NONE && !(n > 0 && out[0] == sp->bos)) {
    out = ids;
    out[0] = sp->bos;
    n++;
  } else if (bos == 1 && sp->bos == TOKEN_NONE) {
    fprintf(stderr, "augury: tokenize: --bos: the vocabulary has no BOS token\n");
    goto done;
  }
  if (json) {
    putchar('[');
    for (size_t i = 0; i < n; i++)
      printf("%s%d", i ? ", " : "", (int)out[i]);
    printf("]\n");
  } else {
    for (size_t i = 0; i < n; i++)
      printf("%d\n", (int)out[i]);
  }
  status = fflush(stdout) == 0 ? 0 : 1;
done:
  free(ids);
  free(owned);
  tokenizer_destroy(tok);
  gguf_close(file);
  return status;
}
