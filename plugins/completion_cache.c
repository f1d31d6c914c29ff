/* Completion cache (see completion_cache.h): a most-recent-first doubly linked list searched
 * linearly. Linear is enough: a few hundred entries of which almost all fail on the uri or the
 * text after the cursor, so a lookup costs microseconds next to a keystroke's JSON parsing. */
#include "plugins/completion_cache.h"

#include <string.h>

#include "engine/alloc.h"

struct cache_entry {
  struct cache_entry *prev, *next;
  char *uri;
  char *before, *after, *completion; /* one allocation: before, after, completion */
  size_t before_len, after_len, completion_len;
  size_t bytes;
};

struct completion_cache {
  struct completion_cache_params params;
  struct cache_entry *head, *tail; /* head: most recently used */
  size_t count, bytes;
};

struct completion_cache_params completion_cache_params_default(void) {
  return (struct completion_cache_params){
      .max_entries = 256, .max_bytes = 16u << 20, .max_typed = 128};
}

int completion_cache_create(const struct completion_cache_params *params,
                            struct completion_cache **out, struct aug_err *err) {
  *out = NULL;
  if (params->max_entries == 0)
    return aug_err_set(err, AUG_EINVAL, "completion cache: max_entries must be > 0");
  struct completion_cache *c = aug_calloc(1, sizeof *c);
  if (!c) return aug_err_set(err, AUG_ENOMEM, "completion cache: out of memory");
  c->params = *params;
  *out = c;
  return 0;
}

static void unlink_entry(struct completion_cache *c, struct cache_entry *e) {
  if (e->prev)
    e->prev->next = e->next;
  else
    c->head = e->next;
  if (e->next)
    e->next->prev = e->prev;
  else
    c->tail = e->prev;
  e->prev = e->next = NULL;
}

static void push_front(struct completion_cache *c, struct cache_entry *e) {
  e->prev = NULL;
  e->next = c->head;
  if (c->head) c->head->prev = e;
  c->head = e;
  if (!c->tail) c->tail = e;
}

static void free_entry(struct completion_cache *c, struct cache_entry *e) {
  unlink_entry(c, e);
  c->count--;
  c->bytes -= e->bytes;
  aug_free(e->uri);
  aug_free(e->before);
  aug_free(e);
}

void completion_cache_destroy(struct completion_cache *c) {
  if (!c) return;
  while (c->head)
    free_entry(c, c->head);
  aug_free(c);
}

static bool same_state(const struct cache_entry *e, const char *uri, const char *before,
                       size_t before_len, const char *after, size_t after_len) {
  return e->before_len == before_len && e->after_len == after_len && !strcmp(e->uri, uri) &&
         !memcmp(e->before, before, before_len) && !memcmp(e->after, after, after_len);
}

int completion_cache_put(struct completion_cache *c, const char *uri, const char *before,
                         size_t before_len, const char *after, size_t after_len,
                         const char *completion, size_t completion_len, struct aug_err *err) {
  size_t uri_len = strlen(uri);
  size_t bytes = uri_len + before_len + after_len + completion_len + sizeof(struct cache_entry);
  if (bytes > c->params.max_bytes || completion_len == 0) return 0;
  struct cache_entry *e = aug_calloc(1, sizeof *e);
  char *uri_copy = aug_strndup(uri, uri_len);
  char *texts = aug_malloc(before_len + after_len + completion_len + 1);
  if (!e || !uri_copy || !texts) {
    aug_free(e);
    aug_free(uri_copy);
    aug_free(texts);
    return aug_err_set(err, AUG_ENOMEM, "completion cache: out of memory for %zu bytes", bytes);
  }
  for (struct cache_entry *old = c->head; old; old = old->next)
    if (same_state(old, uri, before, before_len, after, after_len)) {
      free_entry(c, old);
      break;
    }
  e->uri = uri_copy;
  e->before = texts;
  e->after = texts + before_len;
  e->completion = texts + before_len + after_len;
  memcpy(e->before, before, before_len);
  memcpy(e->after, after, after_len);
  memcpy(e->completion, completion, completion_len);
  e->before_len = before_len;
  e->after_len = after_len;
  e->completion_len = completion_len;
  e->bytes = bytes;
  push_front(c, e);
  c->count++;
  c->bytes += bytes;
  while (c->count > c->params.max_entries || c->bytes > c->params.max_bytes)
    free_entry(c, c->tail);
  return 0;
}

long completion_state_typed(const char *before, size_t before_len, const char *after,
                            size_t after_len, const char *guide, size_t guide_len,
                            bool guide_may_be_short, size_t max_typed, const char *text, size_t len,
                            size_t cursor) {
  if (cursor > len || len - cursor < after_len || memcmp(text + cursor, after, after_len))
    return -1;
  for (size_t k = 0; k <= max_typed && k + before_len <= cursor; k++) {
    if (k > guide_len && !guide_may_be_short) break;
    size_t agree = k < guide_len ? k : guide_len;
    if (memcmp(text + cursor - k, guide, agree)) continue;
    if (!memcmp(text + cursor - k - before_len, before, before_len)) return (long)k;
  }
  return -1;
}

/* The number of completion bytes typed at the cursor when the text matches entry e, or -1. A
 * fully typed completion is not a hit: there is nothing left to offer. */
static long typed_into(const struct completion_cache *c, const struct cache_entry *e,
                       const char *text, size_t len, size_t cursor) {
  size_t max_k = c->params.max_typed;
  if (max_k > e->completion_len - 1) max_k = e->completion_len - 1;
  return completion_state_typed(e->before, e->before_len, e->after, e->after_len, e->completion,
                                e->completion_len, false, max_k, text, len, cursor);
}

bool completion_cache_lookup(struct completion_cache *c, const char *uri, const char *text,
                             size_t len, size_t cursor, struct completion_cache_hit *hit) {
  if (cursor > len) return false;
  for (struct cache_entry *e = c->head; e; e = e->next) {
    if (strcmp(e->uri, uri)) continue;
    long k = typed_into(c, e, text, len, cursor);
    if (k < 0) continue;
    unlink_entry(c, e);
    push_front(c, e);
    hit->typed = (size_t)k;
    hit->rest = e->completion + k;
    hit->rest_len = e->completion_len - (size_t)k;
    return true;
  }
  return false;
}

void completion_cache_forget(struct completion_cache *c, const char *uri) {
  struct cache_entry *e = c->head;
  while (e) {
    struct cache_entry *next = e->next;
    if (!uri || !strcmp(e->uri, uri)) free_entry(c, e);
    e = next;
  }
}

size_t completion_cache_count(const struct completion_cache *c) {
  return c->count;
}
size_t completion_cache_bytes(const struct completion_cache *c) {
  return c->bytes;
}
