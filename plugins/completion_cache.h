/* Completions already computed, kept so that a request for a state seen before, or for a state the
 * user reached by typing the start of a shown suggestion, is answered on the loop thread without
 * the engine (llama.vim's client cache, moved into the server so every editor gets it).
 * An entry is (uri, the text before the cursor from the prompt window's start, the text after the
 * cursor to the window's end, the completion). A lookup succeeds when the document around the
 * cursor is an entry's state plus k typed bytes (0 <= k < completion length, k <= max_typed) that
 * are the completion's first k bytes; it returns the rest of the completion. Entries are bounded
 * in count and bytes, least recently used first out. Loop thread; not thread-safe. */
#ifndef AUGURY_PLUGINS_COMPLETION_CACHE_H
#define AUGURY_PLUGINS_COMPLETION_CACHE_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/error.h"

struct completion_cache; /* opaque */

struct completion_cache_params {
  size_t max_entries; /* > 0 */
  size_t max_bytes;   /* texts of all entries together */
  size_t max_typed;   /* bytes a user may have typed into a suggestion (llama.vim: 128) */
};

struct completion_cache_params completion_cache_params_default(void); /* 256, 16 MiB, 128 */

int completion_cache_create(const struct completion_cache_params *params,
                            struct completion_cache **out, struct aug_err *err);
void completion_cache_destroy(struct completion_cache *cache); /* NULL is a no-op */

/* Stores a completion for the state (uri, before[0..before_len) ending at the cursor,
 * after[0..after_len) starting there). All copied. An equal state replaces its entry. An entry
 * larger than max_bytes is not stored (returns 0). AUG_ENOMEM leaves the cache as it was. */
int completion_cache_put(struct completion_cache *cache, const char *uri, const char *before,
                         size_t before_len, const char *after, size_t after_len,
                         const char *completion, size_t completion_len, struct aug_err *err);

struct completion_cache_hit {
  const char *rest; /* the completion past what was typed (borrowed: valid until the next put) */
  size_t rest_len;
  size_t typed; /* bytes of the completion the user had typed */
};

/* Looks up the document text[0..len) with the cursor at byte offset cursor. */
bool completion_cache_lookup(struct completion_cache *cache, const char *uri, const char *text,
                             size_t len, size_t cursor, struct completion_cache_hit *hit);

/* How many bytes were typed at the cursor since the state (before, after): the smallest k <=
 * max_typed such that text[cursor-k-before_len, cursor-k) is before, text[cursor,
 * cursor+after_len) is after, and the typed bytes text[cursor-k, cursor) agree with guide: they
 * are a prefix of it (k <= guide_len), or, when guide_may_be_short, guide may also be a prefix of
 * them (a completion still being written). -1 when there is no such k. */
long completion_state_typed(const char *before, size_t before_len, const char *after,
                            size_t after_len, const char *guide, size_t guide_len,
                            bool guide_may_be_short, size_t max_typed, const char *text, size_t len,
                            size_t cursor);

/* Drops every entry of uri (the document closed); uri NULL drops them all (the settings that
 * made them changed). */
void completion_cache_forget(struct completion_cache *cache, const char *uri);
size_t completion_cache_count(const struct completion_cache *cache);
size_t completion_cache_bytes(const struct completion_cache *cache);

#endif
