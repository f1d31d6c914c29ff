/* The host-RAM prompt cache: a least-recently-used set of snapshots of earlier resident
 * sequences (their tokens and the K/V cells of every layer, in kvcache's host layout), bounded in
 * bytes. The engine saves the resident sequence before discarding most of it and restores the
 * snapshot that shares the longest prefix with a new prompt: the cells come back at the same
 * positions, so a restored prefix is exactly what evaluating it gave. A snapshot id is a slot
 * index, valid until the next save. Owned by the engine thread; not thread-safe. */
#ifndef AUGURY_ENGINE_PROMPTCACHE_H
#define AUGURY_ENGINE_PROMPTCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/error.h"
#include "engine/kvcache.h"

#define PROMPTCACHE_MAX_SNAPSHOTS 32

struct promptcache; /* opaque */

/* max_bytes bounds tokens and cells of all snapshots together; nothing is allocated until a
 * save. */
int promptcache_create(uint64_t max_bytes, struct promptcache **out, struct aug_err *err);
void promptcache_destroy(struct promptcache *cache); /* NULL is a no-op */

/* Snapshots cells [0, n) of kv, which hold tokens[0..n). A snapshot that is a prefix of tokens
 * is replaced; when one already holds tokens as its prefix nothing is saved (it becomes the most
 * recently used). Evicts least recently used snapshots to fit, never the one with id keep
 * (-1: none). One allocation per saved snapshot (a cache insert, at most once per prompt).
 * AUG_ERANGE when the snapshot alone exceeds max_bytes (or keep leaves no room), AUG_ENOMEM. */
int promptcache_save(struct promptcache *cache, struct kvcache *kv, const int32_t *tokens, size_t n,
                     int keep, struct aug_err *err);

/* The snapshot sharing the longest common prefix with tokens[0..n): its id, with that length in
 * *lcp; -1 (and *lcp = 0) when the cache is empty or nothing is shared. */
int promptcache_find(const struct promptcache *cache, const int32_t *tokens, size_t n, size_t *lcp);

/* Writes cells [from, to) of snapshot id into the same cells of kv and commits [0, to); the
 * caller's cells [0, from) must hold the same tokens (kv's n_used == from). Marks the snapshot
 * most recently used. */
int promptcache_restore(struct promptcache *cache, int id, struct kvcache *kv, size_t from,
                        size_t to, struct aug_err *err);
/* Marks snapshot id most recently used. */
void promptcache_touch(struct promptcache *cache, int id);

const int32_t *promptcache_tokens(const struct promptcache *cache, int id); /* [n] or NULL */
size_t promptcache_n_tokens(const struct promptcache *cache, int id);
size_t promptcache_count(const struct promptcache *cache);
uint64_t promptcache_bytes(const struct promptcache *cache); /* in use, <= max_bytes */

#endif
