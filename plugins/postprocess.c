/* Completion stopping rules and clean-up (see postprocess.h). Everything works on whole lines of
 * the generated text; line 0 continues the cursor's line, lines 1.. are new lines. */
#include "plugins/postprocess.h"

#include <string.h>

#include "plugins/text_lines.h"

static bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f';
}

size_t postprocess_indent(const char *line, size_t len, bool *blank) {
  size_t width = 0, i = 0;
  for (; i < len; i++) {
    if (line[i] == ' ')
      width++;
    else if (line[i] == '\t')
      width += POSTPROCESS_TAB_WIDTH;
    else
      break;
  }
  size_t j = i;
  while (j < len && is_space(line[j]))
    j++;
  if (blank) *blank = j == len;
  return width;
}

void postprocess_context_init(struct postprocess_context *ctx, const char *line_before,
                              size_t line_before_len, const char *after, size_t after_len,
                              double time_budget_ms) {
  memset(ctx, 0, sizeof *ctx);
  ctx->line_before = line_before;
  ctx->line_before_len = line_before_len;
  ctx->after = after;
  ctx->after_len = after_len;
  ctx->time_budget_ms = time_budget_ms;
  bool blank = false;
  size_t width = postprocess_indent(line_before, line_before_len, &blank);
  /* On a blank line the cursor column is the indentation the user chose for the new line. */
  ctx->base_indent = width;
  for (size_t i = 0; i < after_len && after[i] != '\n' && after[i] != '\r'; i++)
    if (!is_space(after[i])) {
      ctx->single_line = true;
      break;
    }
}

/* Bounds of the trimmed text of [s, s+n). */
static void trim(const char *s, size_t n, size_t *b, size_t *e) {
  size_t i = 0, j = n;
  while (i < j && is_space(s[i]))
    i++;
  while (j > i && is_space(s[j - 1]))
    j--;
  *b = i;
  *e = j;
}

/* The first non-blank line of the suffix after the cursor's own line (trimmed), or n = 0. */
static void suffix_next_line(const struct postprocess_context *ctx, const char **line, size_t *n) {
  *line = NULL;
  *n = 0;
  const char *a = ctx->after;
  size_t len = ctx->after_len, i = 0;
  while (i < len && a[i] != '\n')
    i++;
  while (i < len) {
    size_t start = ++i;
    while (i < len && a[i] != '\n')
      i++;
    size_t b, e;
    trim(a + start, i - start, &b, &e);
    if (e > b) {
      *line = a + start + b;
      *n = e - b;
      return;
    }
  }
}

/* Whether the cursor's line, completed by generated line 0, ends by opening a block. */
static bool opens_block(const struct postprocess_context *ctx, const char *line0, size_t n0) {
  size_t j = n0;
  while (j > 0 && is_space(line0[j - 1]))
    j--;
  char last;
  if (j > 0) {
    last = line0[j - 1];
  } else {
    size_t k = ctx->line_before_len;
    while (k > 0 && is_space(ctx->line_before[k - 1]))
      k--;
    if (k == 0) return false;
    last = ctx->line_before[k - 1];
  }
  return last == ':' || last == '{' || last == '(' || last == '[';
}

static bool is_closer(char c) {
  return c == '}' || c == ')' || c == ']';
}

/* Applies the line rules to text; returns true and *keep when they cut it. final: the last line
 * counts as complete. */
static bool line_rules(const struct postprocess_context *ctx, const char *text, size_t len,
                       bool final, size_t *keep) {
  const char *nl = memchr(text, '\n', len);
  if (!nl) return false;
  if (ctx->single_line) {
    *keep = (size_t)(nl - text);
    return true;
  }
  bool opens = opens_block(ctx, text, (size_t)(nl - text));
  const char *next;
  size_t next_len;
  suffix_next_line(ctx, &next, &next_len);
  size_t pos = (size_t)(nl - text) + 1;
  while (pos <= len) {
    const char *line = text + pos;
    const char *end = memchr(line, '\n', len - pos);
    bool complete = end != NULL || final;
    size_t n = end ? (size_t)(end - line) : len - pos;
    size_t before = pos - 1; /* keep up to (not including) the newline that starts this line */
    bool blank;
    size_t indent = postprocess_indent(line, n, &blank);
    if (!blank) {
      size_t b, e;
      trim(line, n, &b, &e);
      if (opens && indent <= ctx->base_indent) {
        if (indent == ctx->base_indent && is_closer(line[b])) {
          if (!complete) return false;
          /* The closer of the block the completion opened ends it, unless the suffix has it. */
          if (next_len == e - b && !memcmp(line + b, next, next_len))
            *keep = before;
          else
            *keep = pos + n;
          return true;
        }
        *keep = before;
        return true;
      }
      if (!opens && indent < ctx->base_indent) {
        *keep = before;
        return true;
      }
      if (complete && next_len > 0 && next_len == e - b && !memcmp(line + b, next, next_len)) {
        *keep = before;
        return true;
      }
    }
    if (!end) break;
    pos += n + 1;
  }
  return false;
}

enum postprocess_verdict postprocess_check(const struct postprocess_context *ctx, const char *text,
                                           size_t len, double elapsed_ms, size_t *keep) {
  *keep = len;
  if (line_rules(ctx, text, len, false, keep)) return POSTPROCESS_STOP;
  if (ctx->time_budget_ms > 0 && elapsed_ms > ctx->time_budget_ms) {
    const char *last_nl = NULL;
    for (size_t i = len; i > 0; i--)
      if (text[i - 1] == '\n') {
        last_nl = text + i - 1;
        break;
      }
    bool has_text = false;
    for (const char *p = text; last_nl && p < last_nl && !has_text; p++)
      has_text = !is_space(*p);
    if (has_text) {
      /* Over time with at least one non-blank line done: keep the whole lines, drop the partial
       * one. A completion that so far is only line breaks (the cursor was at a line end) goes on
       * to its first real line. */
      *keep = (size_t)(last_nl - text);
      return POSTPROCESS_STOP;
    }
  }
  return POSTPROCESS_CONTINUE;
}

size_t postprocess_finish(const struct postprocess_context *ctx, const char *text, size_t len) {
  size_t keep = len;
  if (line_rules(ctx, text, len, true, &keep)) len = keep;
  /* A tail that repeats what already follows the cursor on its line ("foo(a, b)" typed into
   * "foo(|)"): drop the longest such overlap when it is the whole rest of the line or contains no
   * identifier characters (so "x" generated before "x" is not mistaken for a repeat). */
  if (!memchr(text, '\n', len)) {
    size_t rest = 0;
    while (rest < ctx->after_len && ctx->after[rest] != '\n' && ctx->after[rest] != '\r')
      rest++;
    while (rest > 0 && is_space(ctx->after[rest - 1]))
      rest--;
    for (size_t k = rest < len ? rest : len; k > 0; k--) {
      if (memcmp(text + len - k, ctx->after, k)) continue;
      bool has_word = false;
      for (size_t i = 0; i < k; i++)
        has_word |= text_is_word(ctx->after[i]);
      if (k == rest || !has_word) {
        len -= k;
        break;
      }
    }
  }
  /* No trailing whitespace: whitespace-only lines at the end, the final newline, spaces. */
  while (len > 0 && is_space(text[len - 1]))
    len--;
  return len;
}
