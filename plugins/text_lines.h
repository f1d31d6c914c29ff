/* Line and word arithmetic on byte buffers, shared by the tree-sitter context providers
 * (context_syntax.c, workspace_index.c) and postprocess.c: where the line holding an offset starts
 * and ends, and which bytes make identifiers. */
#ifndef AUGURY_PLUGINS_TEXT_LINES_H
#define AUGURY_PLUGINS_TEXT_LINES_H

#include <stdbool.h>
#include <stddef.h>

/* The offset of the first byte of the line holding at. */
static inline size_t text_line_start(const char *text, size_t at) {
  while (at > 0 && text[at - 1] != '\n')
    at--;
  return at;
}

/* The offset just past the end of the line holding at (after its '\n', or len). */
static inline size_t text_line_end(const char *text, size_t len, size_t at) {
  while (at < len && text[at] != '\n')
    at++;
  return at < len ? at + 1 : len;
}

/* An identifier byte: ASCII letters, digits, '_', and any byte of a UTF-8 sequence. */
static inline bool text_is_word(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         (unsigned char)c >= 0x80;
}

static inline bool text_is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

#endif
