/* Stopping rules and clean-up for generated completions, as pure functions of the text around the
 * cursor and the text generated so far (no model, no I/O): single-line mode when the cursor is
 * mid-line, the indentation rule (stop when a generated line dedents out of the cursor's block),
 * trimming of text that repeats the suffix, a time budget that starts counting at the first
 * newline, and removal of trailing whitespace-only lines. The decode loop calls postprocess_check
 * after every token and postprocess_finish once at the end. */
#ifndef AUGURY_PLUGINS_POSTPROCESS_H
#define AUGURY_PLUGINS_POSTPROCESS_H

#include <stdbool.h>
#include <stddef.h>

#define POSTPROCESS_TAB_WIDTH 4

struct postprocess_context {
  const char *line_before; /* the cursor's line up to the cursor (borrowed) */
  size_t line_before_len;
  const char *after; /* text after the cursor, up to the end of the suffix window (borrowed) */
  size_t after_len;
  size_t base_indent;    /* indentation width of the cursor's line */
  bool single_line;      /* non-blank text follows the cursor on its line */
  double time_budget_ms; /* once a non-blank line is complete; <= 0: no time budget */
};

/* Fills ctx from the text around the cursor (both borrowed; they must outlive ctx). */
void postprocess_context_init(struct postprocess_context *ctx, const char *line_before,
                              size_t line_before_len, const char *after, size_t after_len,
                              double time_budget_ms);

enum postprocess_verdict {
  POSTPROCESS_CONTINUE = 0,
  POSTPROCESS_STOP = 1,
};

/* Judges text[0..len) generated so far; elapsed_ms is the time since generation started. On STOP,
 * *keep is how many bytes of text to keep (<= len). */
enum postprocess_verdict postprocess_check(const struct postprocess_context *ctx, const char *text,
                                           size_t len, double elapsed_ms, size_t *keep);

/* Final clean-up of a finished completion: applies the line rules to the whole text, trims a tail
 * that repeats the text after the cursor, and drops trailing whitespace-only lines and newlines.
 * Returns the number of bytes of text to keep. */
size_t postprocess_finish(const struct postprocess_context *ctx, const char *text, size_t len);

/* Indentation width of a line (spaces 1, tabs POSTPROCESS_TAB_WIDTH); *blank is set when the line
 * holds only whitespace. */
size_t postprocess_indent(const char *line, size_t len, bool *blank);

#endif
