/* Document store and position conversion (see documents.h). Buffers only grow (capacity doubling),
 * so typing into a document reaches a steady state with no allocation per keystroke. */
#include "lsp/documents.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "engine/alloc.h"

struct documents {
  struct document **items;
  size_t count, cap;
};

const char *position_encoding_name(enum position_encoding encoding) {
  switch (encoding) {
  case POSITION_ENCODING_UTF8: return "utf-8";
  case POSITION_ENCODING_UTF32: return "utf-32";
  case POSITION_ENCODING_UTF16: break;
  }
  return "utf-16";
}

static int grow(void **buf, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return 0;
  size_t n = *cap ? *cap : 64;
  while (n < need)
    n *= 2;
  void *p = aug_realloc(*buf, n * elem);
  if (!p) return AUG_ENOMEM;
  *buf = p;
  *cap = n;
  return 0;
}

static int index_lines(struct document_text *t) {
  size_t n = 1;
  for (size_t i = 0; i < t->len; i++) {
    char c = t->data[i];
    if (c == '\n' || (c == '\r' && !(i + 1 < t->len && t->data[i + 1] == '\n'))) n++;
  }
  if (grow((void **)&t->line_starts, &t->lines_cap, n, sizeof(size_t))) return AUG_ENOMEM;
  t->line_starts[0] = 0;
  size_t k = 1;
  for (size_t i = 0; i < t->len; i++) {
    char c = t->data[i];
    if (c == '\n' || (c == '\r' && !(i + 1 < t->len && t->data[i + 1] == '\n')))
      t->line_starts[k++] = i + 1;
  }
  t->n_lines = n;
  return 0;
}

int document_text_set(struct document_text *t, const char *data, size_t len, struct aug_err *err) {
  if (grow((void **)&t->data, &t->cap, len + 1, 1))
    return aug_err_set(err, AUG_ENOMEM, "documents: out of memory for %zu bytes of text", len);
  if (len) memcpy(t->data, data, len);
  t->data[len] = '\0';
  t->len = len;
  if (index_lines(t))
    return aug_err_set(err, AUG_ENOMEM, "documents: out of memory indexing %zu bytes", len);
  return 0;
}

int document_text_load(struct document_text *t, const char *path, struct aug_err *err) {
  FILE *f = fopen(path, "rb");
  if (!f) return aug_err_set(err, AUG_EIO, "cannot open %s: %s", path, strerror(errno));
  t->len = 0;
  for (;;) {
    if (grow((void **)&t->data, &t->cap, t->len + 65536 + 1, 1)) {
      fclose(f);
      return aug_err_set(err, AUG_ENOMEM, "out of memory reading %s", path);
    }
    size_t n = fread(t->data + t->len, 1, 65536, f);
    t->len += n;
    if (n < 65536) break;
  }
  int bad = ferror(f);
  fclose(f);
  if (bad) return aug_err_set(err, AUG_EIO, "cannot read %s", path);
  t->data[t->len] = '\0';
  if (index_lines(t)) return aug_err_set(err, AUG_ENOMEM, "out of memory indexing %s", path);
  return 0;
}

void document_text_free(struct document_text *t) {
  aug_free(t->data);
  aug_free(t->line_starts);
  memset(t, 0, sizeof *t);
}

void document_text_line(const struct document_text *t, size_t line, size_t *start, size_t *end) {
  size_t s = t->line_starts[line];
  size_t e = line + 1 < t->n_lines ? t->line_starts[line + 1] : t->len;
  if (e > s && t->data[e - 1] == '\n') e--;
  if (e > s && t->data[e - 1] == '\r') e--;
  *start = s;
  *end = e;
}

/* Length in bytes of the UTF-8 sequence at p (1 for an invalid byte, which counts as one U+FFFD).
 */
static size_t utf8_seq_len(const unsigned char *p, size_t avail) {
  unsigned char c = p[0];
  size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 1;
  if (n > avail) return 1;
  for (size_t i = 1; i < n; i++)
    if ((p[i] & 0xc0) != 0x80) return 1;
  return n;
}

int document_text_offset(const struct document_text *t, struct lsp_position pos,
                         enum position_encoding enc, size_t *offset, struct aug_err *err) {
  if (pos.line < 0 || pos.character < 0)
    return aug_err_set(err, AUG_ERANGE, "position %lld:%lld is negative", (long long)pos.line,
                       (long long)pos.character);
  if ((uint64_t)pos.line >= t->n_lines) {
    if ((uint64_t)pos.line == t->n_lines && pos.character == 0) {
      *offset = t->len;
      return 0;
    }
    return aug_err_set(err, AUG_ERANGE, "line %lld is beyond the document's %zu lines",
                       (long long)pos.line, t->n_lines);
  }
  size_t start, end;
  document_text_line(t, (size_t)pos.line, &start, &end);
  const unsigned char *p = (const unsigned char *)t->data;
  size_t i = start;
  uint64_t units = 0, want = (uint64_t)pos.character;
  while (i < end && units < want) {
    size_t n = utf8_seq_len(p + i, end - i);
    uint64_t w = 1;
    if (enc == POSITION_ENCODING_UTF8)
      w = n;
    else if (enc == POSITION_ENCODING_UTF16 && n == 4)
      w = 2; /* astral: a surrogate pair */
    if (units + w > want)
      return aug_err_set(err, AUG_ERANGE,
                         "position %lld:%lld falls inside a character (%s unit %llu of %llu)",
                         (long long)pos.line, (long long)pos.character, position_encoding_name(enc),
                         (unsigned long long)(want - units), (unsigned long long)w);
    units += w;
    i += n;
  }
  *offset = i;
  return 0;
}

int documents_create(struct documents **out, struct aug_err *err) {
  *out = aug_calloc(1, sizeof **out);
  if (!*out) return aug_err_set(err, AUG_ENOMEM, "documents: out of memory");
  return 0;
}

static void document_free(struct document *d) {
  if (!d) return;
  aug_free(d->uri);
  aug_free(d->language_id);
  document_text_free(&d->text);
  document_text_free(&d->scratch);
  aug_free(d);
}

void documents_destroy(struct documents *docs) {
  if (!docs) return;
  for (size_t i = 0; i < docs->count; i++)
    document_free(docs->items[i]);
  aug_free(docs->items);
  aug_free(docs);
}

static size_t find_index(const struct documents *docs, const char *uri) {
  for (size_t i = 0; i < docs->count; i++)
    if (!strcmp(docs->items[i]->uri, uri)) return i;
  return SIZE_MAX;
}

struct document *documents_find(struct documents *docs, const char *uri) {
  size_t i = find_index(docs, uri);
  return i == SIZE_MAX ? NULL : docs->items[i];
}

size_t documents_count(const struct documents *docs) {
  return docs->count;
}

int documents_open(struct documents *docs, const char *uri, const char *language_id,
                   int64_t version, const char *text, size_t len, struct aug_err *err) {
  struct document *d = aug_calloc(1, sizeof *d);
  if (!d) return aug_err_set(err, AUG_ENOMEM, "documents: out of memory opening %s", uri);
  d->uri = aug_strndup(uri, strlen(uri));
  d->language_id = aug_strndup(language_id, strlen(language_id));
  d->version = version;
  if (!d->uri || !d->language_id) {
    document_free(d);
    return aug_err_set(err, AUG_ENOMEM, "documents: out of memory opening %s", uri);
  }
  int rc = document_text_set(&d->text, text, len, err);
  if (rc) {
    document_free(d);
    return rc;
  }
  size_t i = find_index(docs, uri);
  if (i != SIZE_MAX) { /* reopening without close: the new text wins */
    document_free(docs->items[i]);
    docs->items[i] = d;
    return 0;
  }
  if (grow((void **)&docs->items, &docs->cap, docs->count + 1, sizeof *docs->items)) {
    document_free(d);
    return aug_err_set(err, AUG_ENOMEM, "documents: out of memory opening %s", uri);
  }
  docs->items[docs->count++] = d;
  return 0;
}

int documents_close(struct documents *docs, const char *uri, struct aug_err *err) {
  size_t i = find_index(docs, uri);
  if (i == SIZE_MAX) return aug_err_set(err, AUG_ENOTFOUND, "documents: %s is not open", uri);
  document_free(docs->items[i]);
  docs->items[i] = docs->items[--docs->count];
  return 0;
}

/* Replaces [from, to) of t with the given bytes, in place. */
static int splice(struct document_text *t, size_t from, size_t to, const char *s, size_t n) {
  size_t new_len = t->len - (to - from) + n;
  if (grow((void **)&t->data, &t->cap, new_len + 1, 1)) return AUG_ENOMEM;
  memmove(t->data + from + n, t->data + to, t->len - to);
  if (n) memcpy(t->data + from, s, n);
  t->len = new_len;
  t->data[new_len] = '\0';
  return index_lines(t);
}

int documents_apply_changes(struct documents *docs, const char *uri, int64_t version,
                            const struct document_change *changes, size_t n_changes,
                            enum position_encoding enc, struct aug_err *err) {
  struct document *d = documents_find(docs, uri);
  if (!d) return aug_err_set(err, AUG_ENOTFOUND, "documents: %s is not open", uri);
  int rc = document_text_set(&d->scratch, d->text.data, d->text.len, err);
  if (rc) return rc;
  for (size_t i = 0; i < n_changes; i++) {
    const struct document_change *c = &changes[i];
    if (!c->has_range) {
      rc = document_text_set(&d->scratch, c->text, c->len, err);
      if (rc) return rc;
      continue;
    }
    size_t from, to;
    rc = document_text_offset(&d->scratch, c->start, enc, &from, err);
    if (!rc) rc = document_text_offset(&d->scratch, c->end, enc, &to, err);
    if (rc) {
      aug_err_prefix(err, "documents: %s: change %zu of %zu rejected", uri, i + 1, n_changes);
      return rc;
    }
    if (from > to)
      return aug_err_set(err, AUG_ERANGE,
                         "documents: %s: change %zu of %zu rejected: range start %lld:%lld is "
                         "after its end %lld:%lld",
                         uri, i + 1, n_changes, (long long)c->start.line,
                         (long long)c->start.character, (long long)c->end.line,
                         (long long)c->end.character);
    if (splice(&d->scratch, from, to, c->text, c->len))
      return aug_err_set(err, AUG_ENOMEM, "documents: out of memory editing %s", uri);
  }
  struct document_text tmp = d->text;
  d->text = d->scratch;
  d->scratch = tmp;
  d->version = version;
  return 0;
}
