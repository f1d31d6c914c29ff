/* The open documents: UTF-8 text per URI, updated by incremental didChange edits, with positions
 * converted from the negotiated encoding (LSP 3.18 "Position", "PositionEncodingKind": utf-16 code
 * units by default, utf-8 bytes or utf-32 code points when negotiated). Lines end at "\n", "\r\n"
 * or
 * "\r" (LSP 3.18 "Text Documents"). A change batch is applied to a scratch copy and committed only
 * when every change in it is valid, so an invalid range leaves the text unchanged. Loop thread. */
#ifndef AUGURY_LSP_DOCUMENTS_H
#define AUGURY_LSP_DOCUMENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/error.h"

enum position_encoding {
  POSITION_ENCODING_UTF16 = 0,
  POSITION_ENCODING_UTF8 = 1,
  POSITION_ENCODING_UTF32 = 2,
};

/* "utf-16", "utf-8", "utf-32" (the LSP names). */
const char *position_encoding_name(enum position_encoding encoding);

struct lsp_position {
  int64_t line; /* int64 so that negative or oversized client values can be rejected */
  int64_t character;
};

/* A text with its line index. The buffer is NUL-terminated at len. */
struct document_text {
  char *data;
  size_t len, cap;
  size_t *line_starts; /* byte offset where each line starts; n_lines >= 1 */
  size_t n_lines, lines_cap;
};

struct document {
  char *uri;
  char *language_id;
  int64_t version;
  struct document_text text;
  struct document_text scratch; /* change batches are built here, then swapped in */
};

struct documents; /* opaque */

int documents_create(struct documents **out, struct aug_err *err);
void documents_destroy(struct documents *docs); /* NULL is a no-op */

/* Opens (or reopens, replacing) a document; the strings are copied. */
int documents_open(struct documents *docs, const char *uri, const char *language_id,
                   int64_t version, const char *text, size_t len, struct aug_err *err);
/* AUG_ENOTFOUND when the uri is not open. */
int documents_close(struct documents *docs, const char *uri, struct aug_err *err);
struct document *documents_find(struct documents *docs, const char *uri); /* NULL if not open */
size_t documents_count(const struct documents *docs);

/* One TextDocumentContentChangeEvent: a ranged edit, or (has_range false) the full text. */
struct document_change {
  bool has_range;
  struct lsp_position start, end;
  const char *text;
  size_t len;
};

/* Applies changes in order (each relative to the result of the previous one). On any invalid
 * range returns AUG_ERANGE naming the change index and position, and the document is unchanged. */
int documents_apply_changes(struct documents *docs, const char *uri, int64_t version,
                            const struct document_change *changes, size_t n_changes,
                            enum position_encoding encoding, struct aug_err *err);

/* Byte offset of a position. The line must exist (line == n_lines with character 0 means the end
 * of the text); a character beyond the line's length means the end of the line (LSP 3.18
 * "Position": "defaults back to the line length"); a position inside a multi-unit character (a
 * UTF-16 surrogate pair, a UTF-8 sequence) or negative values are AUG_ERANGE. */
int document_text_offset(const struct document_text *text, struct lsp_position pos,
                         enum position_encoding encoding, size_t *offset, struct aug_err *err);

/* Start and end (terminator excluded) of a line, in bytes. line < n_lines. */
void document_text_line(const struct document_text *text, size_t line, size_t *start, size_t *end);

/* Replaces the whole text (used by open and full-text changes). */
int document_text_set(struct document_text *text, const char *data, size_t len,
                      struct aug_err *err);
void document_text_free(struct document_text *text);
/* Reads a whole file into text (for the CLI commands). */
int document_text_load(struct document_text *text, const char *path, struct aug_err *err);

#endif
