/* FIM and chat prompt assembly (see prompt.h). Control tokens are placed by id; only our own
 * template text is encoded with parse_special on, never document text. */
#include "plugins/prompt.h"

#include <string.h>

struct fim_names {
  enum fim_family family;
  const char *prefix[2], *suffix[2], *middle[2];
  const char *repo_name, *file_sep;
};

/* Known families by token text (the ids differ per vocabulary). CodeLlama stores its FIM tokens
 * with the SentencePiece space marker in some conversions, hence two spellings. */
static const struct fim_names fim_table[] = {
    {FIM_FAMILY_QWEN,
     {"<|fim_prefix|>", NULL},
     {"<|fim_suffix|>", NULL},
     {"<|fim_middle|>", NULL},
     "<|repo_name|>",
     "<|file_sep|>"},
    {FIM_FAMILY_CODELLAMA,
     {"\xE2\x96\x81<PRE>", "<PRE>"},
     {"\xE2\x96\x81<SUF>", "<SUF>"},
     {"\xE2\x96\x81<MID>", "<MID>"},
     NULL,
     NULL},
    {FIM_FAMILY_DEEPSEEK,
     {"<\xEF\xBD\x9C"
      "fim\xE2\x96\x81"
      "begin\xEF\xBD\x9C>",
      NULL},
     {"<\xEF\xBD\x9C"
      "fim\xE2\x96\x81"
      "hole\xEF\xBD\x9C>",
      NULL},
     {"<\xEF\xBD\x9C"
      "fim\xE2\x96\x81"
      "end\xEF\xBD\x9C>",
      NULL},
     NULL,
     NULL},
};

static int32_t find_any(const struct tokenizer *tok, const char *const names[2]) {
  for (int i = 0; i < 2; i++) {
    if (!names[i]) continue;
    int32_t id = tokenizer_find(tok, names[i]);
    if (id != TOKEN_NONE) return id;
  }
  return TOKEN_NONE;
}

int prompt_fim_tokens(const struct tokenizer *tok, struct fim_tokens *out, struct aug_err *err) {
  const struct tokenizer_special *sp = tokenizer_special(tok);
  for (size_t i = 0; i < sizeof fim_table / sizeof fim_table[0]; i++) {
    const struct fim_names *f = &fim_table[i];
    int32_t p = find_any(tok, f->prefix), s = find_any(tok, f->suffix),
            m = find_any(tok, f->middle);
    if (p == TOKEN_NONE || s == TOKEN_NONE || m == TOKEN_NONE) continue;
    out->family = f->family;
    out->prefix = p;
    out->suffix = s;
    out->middle = m;
    out->repo_name = f->repo_name ? tokenizer_find(tok, f->repo_name) : TOKEN_NONE;
    out->file_sep = f->file_sep ? tokenizer_find(tok, f->file_sep) : TOKEN_NONE;
    return 0;
  }
  /* A vocabulary outside the table that declares its FIM ids in the GGUF metadata. */
  if (sp->fim_prefix != TOKEN_NONE && sp->fim_suffix != TOKEN_NONE &&
      sp->fim_middle != TOKEN_NONE) {
    out->family = FIM_FAMILY_QWEN;
    out->prefix = sp->fim_prefix;
    out->suffix = sp->fim_suffix;
    out->middle = sp->fim_middle;
    out->repo_name = sp->fim_repo;
    out->file_sep = sp->fim_sep;
    return 0;
  }
  return aug_err_set(err, AUG_EUNSUPPORTED,
                     "prompt: the vocabulary (%s/%s) has no fill-in-the-middle tokens "
                     "(<|fim_prefix|>, <PRE>, <｜fim▁begin｜>): use a code model with FIM",
                     tokenizer_model_name(tok), tokenizer_pre_name(tok));
}

bool prompt_fim_is_stop(const struct tokenizer *tok, const struct fim_tokens *fim, int32_t id) {
  if (tokenizer_is_eog(tok, id)) return true;
  if (id == fim->prefix || id == fim->suffix || id == fim->middle || id == fim->repo_name ||
      id == fim->file_sep)
    return true;
  return tokenizer_token_kind(tok, id) == TOKEN_KIND_CONTROL;
}

void prompt_window(const char *text, size_t len, size_t cursor, size_t prefix_lines,
                   size_t suffix_lines, size_t snap, size_t *prefix_start, size_t *suffix_end) {
  if (cursor > len) cursor = len;
  if (snap == 0) snap = 1;
  size_t cursor_line = 0;
  for (size_t i = 0; i < cursor; i++)
    cursor_line += text[i] == '\n';
  size_t first = 0;
  if (cursor_line > prefix_lines) first = (cursor_line - prefix_lines + snap - 1) / snap * snap;
  size_t start = 0, line = 0;
  while (line < first && start < cursor) {
    if (text[start] == '\n') line++;
    start++;
  }
  *prefix_start = start;
  /* The suffix: the rest of the cursor's line plus suffix_lines more lines. */
  size_t end = cursor, lines = 0;
  while (end < len) {
    if (text[end++] == '\n' && lines++ == suffix_lines) break;
  }
  *suffix_end = end;
}

/* Encodes text at ids[*n..cap); *needed receives its token count even when it does not fit. */
static int encode_at(const struct tokenizer *tok, const char *text, size_t len, bool special,
                     int32_t *ids, size_t cap, size_t *n, size_t *needed, struct aug_err *err) {
  struct tokenize_options opts = {false, special};
  size_t k = 0;
  *needed = 0;
  if (len == 0) return 0;
  int rc = tokenizer_encode(tok, text, len, opts, ids + *n, cap - *n, &k, err);
  *needed = k;
  if (rc) return rc;
  *n += k;
  return 0;
}

static int put(int32_t *ids, size_t cap, size_t *n, int32_t id, struct aug_err *err) {
  if (*n >= cap) return aug_err_set(err, AUG_ERANGE, "prompt: more than %zu tokens", cap);
  ids[(*n)++] = id;
  return 0;
}

int prompt_build_fim(const struct tokenizer *tok, const struct fim_tokens *fim,
                     const struct fim_input *in, int32_t *ids, size_t cap, size_t *n_ids,
                     size_t *n_prefix_dropped, struct aug_err *err) {
  size_t n = 0, needed = 0;
  int rc = 0;
  *n_ids = 0;
  *n_prefix_dropped = 0;
  const struct tokenizer_special *sp = tokenizer_special(tok);
  if (sp->add_bos && sp->bos != TOKEN_NONE && (rc = put(ids, cap, &n, sp->bos, err))) return rc;
  /* Repository format (Qwen2.5-Coder): <|repo_name|>name\n<|file_sep|>path\n before the FIM part.
   */
  if (fim->repo_name != TOKEN_NONE && fim->file_sep != TOKEN_NONE && in->repo_name &&
      *in->repo_name && in->path && *in->path) {
    if ((rc = put(ids, cap, &n, fim->repo_name, err))) return rc;
    if ((rc = encode_at(tok, in->repo_name, strlen(in->repo_name), false, ids, cap, &n, &needed,
                        err)))
      return rc;
    if ((rc = encode_at(tok, "\n", 1, false, ids, cap, &n, &needed, err))) return rc;
  }
  /* Context pieces as other files of the repository, before the current one (most stable first:
   * the caller's order). */
  if (fim->file_sep != TOKEN_NONE) {
    for (size_t i = 0; i < in->n_context; i++) {
      const struct augury_context_piece *p = &in->context[i];
      const char *name = p->name && *p->name ? p->name : "context";
      if ((rc = put(ids, cap, &n, fim->file_sep, err))) return rc;
      if ((rc = encode_at(tok, name, strlen(name), false, ids, cap, &n, &needed, err))) return rc;
      if ((rc = encode_at(tok, "\n", 1, false, ids, cap, &n, &needed, err))) return rc;
      if ((rc = encode_at(tok, p->text, p->text_len, false, ids, cap, &n, &needed, err))) return rc;
      if (p->text_len && p->text[p->text_len - 1] != '\n' &&
          (rc = encode_at(tok, "\n", 1, false, ids, cap, &n, &needed, err)))
        return rc;
    }
  }
  if (fim->file_sep != TOKEN_NONE && fim->repo_name != TOKEN_NONE &&
      ((in->repo_name && *in->repo_name) || in->n_context > 0) && in->path && *in->path) {
    if ((rc = put(ids, cap, &n, fim->file_sep, err))) return rc;
    if ((rc = encode_at(tok, in->path, strlen(in->path), false, ids, cap, &n, &needed, err)))
      return rc;
    if ((rc = encode_at(tok, "\n", 1, false, ids, cap, &n, &needed, err))) return rc;
  }
  if ((rc = put(ids, cap, &n, fim->prefix, err))) return rc;
  /* The prefix: drop whole blocks of snap lines from its start until it fits its bound (and the
   * buffer, leaving room for the suffix and two control tokens). */
  const char *prefix = in->prefix;
  size_t prefix_len = in->prefix_len;
  size_t snap = in->snap_lines ? in->snap_lines : 1;
  size_t target = in->prefix_tokens;
  /* The middle is one line: count its tokens first so the prefix leaves room for it. */
  size_t middle_tokens = 0;
  if (in->middle_len > 0) {
    size_t probe = n;
    rc = encode_at(tok, in->middle, in->middle_len, false, ids, cap, &probe, &middle_tokens, err);
    if (rc && rc != AUG_ERANGE) return rc;
  }
  size_t reserve = in->suffix_tokens + middle_tokens + 2;
  if (cap < n + reserve + 1)
    return aug_err_set(err, AUG_ERANGE, "prompt: a %zu-token buffer cannot hold the prompt", cap);
  if (target > cap - n - reserve) target = cap - n - reserve;
  for (;;) {
    size_t at = n;
    rc = encode_at(tok, prefix, prefix_len, false, ids, cap, &n, &needed, err);
    if (rc && rc != AUG_ERANGE) return rc;
    if (!rc && needed <= target) break;
    n = at;
    /* Drop about the byte share of the excess, rounded up to a block boundary. */
    size_t drop = (size_t)((double)prefix_len * (double)(needed - target) / (double)needed) + 1;
    size_t cut = 0, lines = 0, line_cut = 0;
    for (size_t i = 0; i < prefix_len; i++) {
      if (prefix[i] != '\n') continue;
      lines++;
      if (!line_cut && i + 1 >= drop) line_cut = i + 1;
      if (lines % snap == 0 && i + 1 >= drop) {
        cut = i + 1;
        break;
      }
    }
    if (!cut) cut = line_cut; /* no block boundary left: whole lines */
    if (!cut) {               /* one long line: bytes, on a character boundary */
      cut = drop < prefix_len ? drop : prefix_len;
      while (cut < prefix_len && ((unsigned char)prefix[cut] & 0xc0) == 0x80)
        cut++;
    }
    prefix += cut;
    prefix_len -= cut;
    *n_prefix_dropped += cut;
  }
  if ((rc = put(ids, cap, &n, fim->suffix, err))) return rc;
  if (in->suffix_tokens > 0) {
    size_t at = n;
    rc = encode_at(tok, in->suffix, in->suffix_len, false, ids, cap, &n, &needed, err);
    if (rc == AUG_ERANGE) {
      /* Does not fit the buffer: encode a shorter leading part (about 4 bytes per token). */
      size_t part = in->suffix_tokens * 4 < in->suffix_len ? in->suffix_tokens * 4 : in->suffix_len;
      n = at;
      rc = encode_at(tok, in->suffix, part, false, ids, cap, &n, &needed, err);
    }
    if (rc) return rc;
    if (n - at > in->suffix_tokens) n = at + in->suffix_tokens;
  }
  if ((rc = put(ids, cap, &n, fim->middle, err))) return rc;
  if (in->middle_len > 0 &&
      (rc = encode_at(tok, in->middle, in->middle_len, false, ids, cap, &n, &needed, err)))
    return rc;
  *n_ids = n;
  return 0;
}

/* The control-token spellings of each family (fim_table's first spelling, without the
 * SentencePiece marker). */
static const char *const text_markers[][5] = {
    [FIM_FAMILY_QWEN] = {"<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|repo_name|>",
                         "<|file_sep|>"},
    [FIM_FAMILY_CODELLAMA] = {"<PRE> ", " <SUF>", " <MID>", NULL, NULL},
    [FIM_FAMILY_DEEPSEEK] = {"<\xEF\xBD\x9C"
                             "fim\xE2\x96\x81"
                             "begin\xEF\xBD\x9C>",
                             "<\xEF\xBD\x9C"
                             "fim\xE2\x96\x81"
                             "hole\xEF\xBD\x9C>",
                             "<\xEF\xBD\x9C"
                             "fim\xE2\x96\x81"
                             "end\xEF\xBD\x9C>",
                             NULL, NULL},
};

bool prompt_fim_family_from_name(const char *name, enum fim_family *out) {
  static const char *const names[] = {"qwen", "codellama", "deepseek"};
  for (int i = 0; i < 3; i++)
    if (name && !strcmp(name, names[i])) {
      *out = (enum fim_family)i;
      return true;
    }
  return false;
}

struct text_out {
  char *buf;
  size_t cap, len;
  bool full;
};

static void text_raw(struct text_out *o, const char *s, size_t n) {
  if (o->full || o->len + n + 1 > o->cap) {
    o->full = true;
    return;
  }
  memcpy(o->buf + o->len, s, n);
  o->len += n;
}

/* Document text: "<|" and "<\xEF\xBD\x9C" (the fullwidth bar DeepSeek uses) and "<PRE>"-like
 * markers get a zero-width space after their '<', so a server that parses special tokens in the
 * prompt sees plain text. */
static void text_doc(struct text_out *o, const char *s, size_t n) {
  static const char zwsp[] = "\xE2\x80\x8B";
  size_t from = 0;
  for (size_t i = 0; i + 1 < n; i++) {
    if (s[i] != '<') continue;
    bool marker = s[i + 1] == '|' || (i + 3 < n && !memcmp(s + i + 1, "\xEF\xBD\x9C", 3)) ||
                  (i + 4 < n && (!memcmp(s + i + 1, "PRE>", 4) || !memcmp(s + i + 1, "SUF>", 4) ||
                                 !memcmp(s + i + 1, "MID>", 4)));
    if (!marker) continue;
    text_raw(o, s + from, i + 1 - from);
    text_raw(o, zwsp, sizeof zwsp - 1);
    from = i + 1;
  }
  text_raw(o, s + from, n - from);
}

int prompt_format_fim_text(enum fim_family family, const struct fim_input *in, char *out,
                           size_t cap, size_t *len, struct aug_err *err) {
  const char *const *m = text_markers[family];
  struct text_out o = {out, cap, 0, false};
  *len = 0;
  if (cap == 0) return aug_err_set(err, AUG_ERANGE, "prompt: no room for a text prompt");
  bool repo = m[3] && m[4];
  if (repo && in->repo_name && *in->repo_name) {
    text_raw(&o, m[3], strlen(m[3]));
    text_doc(&o, in->repo_name, strlen(in->repo_name));
    text_raw(&o, "\n", 1);
  }
  for (size_t i = 0; repo && i < in->n_context; i++) {
    const struct augury_context_piece *p = &in->context[i];
    const char *name = p->name && *p->name ? p->name : "context";
    text_raw(&o, m[4], strlen(m[4]));
    text_doc(&o, name, strlen(name));
    text_raw(&o, "\n", 1);
    text_doc(&o, p->text, p->text_len);
    if (p->text_len && p->text[p->text_len - 1] != '\n') text_raw(&o, "\n", 1);
  }
  if (repo && ((in->repo_name && *in->repo_name) || in->n_context) && in->path && *in->path) {
    text_raw(&o, m[4], strlen(m[4]));
    text_doc(&o, in->path, strlen(in->path));
    text_raw(&o, "\n", 1);
  }
  /* Byte bounds: whole lines off the prefix's start, the suffix cut at its end. */
  const char *prefix = in->prefix;
  size_t prefix_len = in->prefix_len;
  size_t max_prefix = in->prefix_tokens ? in->prefix_tokens * 4 : prefix_len;
  while (prefix_len > max_prefix) {
    const char *nl = memchr(prefix, '\n', prefix_len);
    size_t cut = nl ? (size_t)(nl - prefix) + 1 : prefix_len - max_prefix;
    prefix += cut;
    prefix_len -= cut;
  }
  size_t suffix_len = in->suffix_len;
  if (suffix_len > in->suffix_tokens * 4) suffix_len = in->suffix_tokens * 4;
  while (suffix_len > 0 && suffix_len < in->suffix_len &&
         ((unsigned char)in->suffix[suffix_len] & 0xc0) == 0x80)
    suffix_len--;
  text_raw(&o, m[0], strlen(m[0]));
  text_doc(&o, prefix, prefix_len);
  text_raw(&o, m[1], strlen(m[1]));
  text_doc(&o, in->suffix, suffix_len);
  text_raw(&o, m[2], strlen(m[2]));
  if (in->middle_len) text_doc(&o, in->middle, in->middle_len);
  if (o.full)
    return aug_err_set(err, AUG_ERANGE, "prompt: the text prompt does not fit %zu bytes", cap);
  out[o.len] = '\0';
  *len = o.len;
  return 0;
}

enum chat_format prompt_chat_format(const char *chat_template, const struct tokenizer *tok) {
  if (chat_template && strstr(chat_template, "<|im_start|>")) return CHAT_FORMAT_CHATML;
  if (chat_template && strstr(chat_template, "<|start_header_id|>")) return CHAT_FORMAT_LLAMA3;
  if (tok && tokenizer_find(tok, "<|im_start|>") != TOKEN_NONE) return CHAT_FORMAT_CHATML;
  if (tok && tokenizer_find(tok, "<|start_header_id|>") != TOKEN_NONE) return CHAT_FORMAT_LLAMA3;
  return CHAT_FORMAT_PLAIN;
}

const char *prompt_chat_format_name(enum chat_format format) {
  switch (format) {
  case CHAT_FORMAT_CHATML: return "chatml";
  case CHAT_FORMAT_LLAMA3: return "llama3";
  case CHAT_FORMAT_PLAIN: break;
  }
  return "plain";
}

int prompt_build_chat(const struct tokenizer *tok, enum chat_format format, const char *system,
                      const char *instruction, const char *code, size_t code_len,
                      const char *after_code, int32_t *ids, size_t cap, size_t *n_ids,
                      struct aug_err *err) {
  /* Template text around the messages, per format: [0] before system, [1] between system and
   * user, [2] after the user message (the assistant header). */
  static const char *const parts[3][3] = {
      /* ChatML: Qwen2.5 tokenizer.chat_template */
      {"<|im_start|>system\n", "<|im_end|>\n<|im_start|>user\n",
       "<|im_end|>\n<|im_start|>assistant\n"},
      /* Llama 3 header format */
      {"<|start_header_id|>system<|end_header_id|>\n\n",
       "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n",
       "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
      {"", "\n\n### Instruction:\n", "\n### Response:\n"},
  };
  size_t n = 0, needed = 0;
  int rc;
  *n_ids = 0;
  const struct tokenizer_special *sp = tokenizer_special(tok);
  if (format != CHAT_FORMAT_CHATML && sp->bos != TOKEN_NONE &&
      (rc = put(ids, cap, &n, sp->bos, err)))
    return rc;
  const char *const *p = parts[format];
  if ((rc = encode_at(tok, p[0], strlen(p[0]), true, ids, cap, &n, &needed, err)) ||
      (rc = encode_at(tok, system, strlen(system), false, ids, cap, &n, &needed, err)) ||
      (rc = encode_at(tok, p[1], strlen(p[1]), true, ids, cap, &n, &needed, err)) ||
      (rc = encode_at(tok, instruction, strlen(instruction), false, ids, cap, &n, &needed, err)) ||
      (rc = encode_at(tok, code, code_len, false, ids, cap, &n, &needed, err)) ||
      (rc = encode_at(tok, after_code, strlen(after_code), false, ids, cap, &n, &needed, err)) ||
      (rc = encode_at(tok, p[2], strlen(p[2]), true, ids, cap, &n, &needed, err))) {
    if (rc == AUG_ERANGE)
      return aug_err_set(err, AUG_ERANGE, "prompt: the chat prompt needs more than %zu tokens",
                         cap);
    return rc;
  }
  *n_ids = n;
  return 0;
}

bool prompt_chat_is_stop(const struct tokenizer *tok, int32_t id) {
  return tokenizer_is_eog(tok, id) || tokenizer_token_kind(tok, id) == TOKEN_KIND_CONTROL;
}
