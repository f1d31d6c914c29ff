/* Prompt cache storage: up to PROMPTCACHE_MAX_SNAPSHOTS slots, each one host block holding the
 * snapshot's tokens then its cells ([layer][K, V][n cells], kvcache_download_cells' layout).
 * Invariants: bytes == the sum of the live slots' sizes <= max_bytes; no live snapshot is a
 * prefix of another (saving the longer one replaces it). */
#include "engine/promptcache.h"

#include <string.h>

#include "engine/alloc.h"

struct promptcache_slot {
  unsigned char *block; /* NULL: free slot */
  int32_t *tokens;      /* [n], at the start of block */
  unsigned char *cells; /* n cells per layer and tensor, after the tokens */
  size_t n;
  uint64_t size;
  uint64_t last_used; /* tick of the last save, restore or touch */
};

struct promptcache {
  uint64_t max_bytes, bytes, tick;
  struct promptcache_slot slots[PROMPTCACHE_MAX_SNAPSHOTS];
};

int promptcache_create(uint64_t max_bytes, struct promptcache **out, struct aug_err *err) {
  *out = aug_calloc(1, sizeof **out);
  if (!*out) return aug_err_set(err, AUG_ENOMEM, "promptcache: out of memory");
  (*out)->max_bytes = max_bytes;
  return 0;
}

static void promptcache_drop(struct promptcache *c, int id) {
  struct promptcache_slot *s = &c->slots[id];
  c->bytes -= s->size;
  aug_free(s->block);
  memset(s, 0, sizeof *s);
}

void promptcache_destroy(struct promptcache *c) {
  if (!c) return;
  for (int i = 0; i < PROMPTCACHE_MAX_SNAPSHOTS; i++)
    if (c->slots[i].block) promptcache_drop(c, i);
  aug_free(c);
}

static size_t promptcache_lcp(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
  size_t i = 0;
  while (i < na && i < nb && a[i] == b[i])
    i++;
  return i;
}

void promptcache_touch(struct promptcache *c, int id) {
  if (id >= 0 && id < PROMPTCACHE_MAX_SNAPSHOTS && c->slots[id].block)
    c->slots[id].last_used = ++c->tick;
}

/* The least recently used live slot other than keep, or -1. */
static int promptcache_lru(const struct promptcache *c, int keep) {
  int best = -1;
  for (int i = 0; i < PROMPTCACHE_MAX_SNAPSHOTS; i++) {
    if (!c->slots[i].block || i == keep) continue;
    if (best < 0 || c->slots[i].last_used < c->slots[best].last_used) best = i;
  }
  return best;
}

int promptcache_save(struct promptcache *c, struct kvcache *kv, const int32_t *tokens, size_t n,
                     int keep, struct aug_err *err) {
  if (n == 0 || n > kvcache_n_used(kv))
    return aug_err_set(err, AUG_ERANGE, "promptcache: snapshot of %zu tokens (%u cells used)", n,
                       kvcache_n_used(kv));
  for (int i = 0; i < PROMPTCACHE_MAX_SNAPSHOTS; i++) {
    struct promptcache_slot *s = &c->slots[i];
    if (!s->block) continue;
    size_t l = promptcache_lcp(s->tokens, s->n, tokens, n);
    if (l == n) { /* already held, as this snapshot's prefix */
      promptcache_touch(c, i);
      return 0;
    }
    if (l == s->n && i != keep) promptcache_drop(c, i); /* superseded */
  }
  /* Tokens first, padded to 64 bytes so that the cells start aligned. */
  uint64_t tokens_bytes = ((uint64_t)n * sizeof *tokens + 63) / 64 * 64;
  uint64_t size = tokens_bytes + kvcache_host_bytes(kv, (uint32_t)n);
  if (size > c->max_bytes)
    return aug_err_set(err, AUG_ERANGE,
                       "promptcache: a snapshot of %zu tokens takes %llu bytes, over the %llu "
                       "allowed",
                       n, (unsigned long long)size, (unsigned long long)c->max_bytes);
  int free_slot = -1;
  for (;;) {
    free_slot = -1;
    for (int i = 0; i < PROMPTCACHE_MAX_SNAPSHOTS && free_slot < 0; i++)
      if (!c->slots[i].block) free_slot = i;
    if (free_slot >= 0 && c->bytes + size <= c->max_bytes) break;
    int victim = promptcache_lru(c, keep);
    if (victim < 0)
      return aug_err_set(err, AUG_ERANGE,
                         "promptcache: no room for %llu bytes beside the snapshot kept (%llu of "
                         "%llu used)",
                         (unsigned long long)size, (unsigned long long)c->bytes,
                         (unsigned long long)c->max_bytes);
    promptcache_drop(c, victim);
  }
  unsigned char *block = aug_malloc((size_t)size);
  if (!block)
    return aug_err_set(err, AUG_ENOMEM, "promptcache: out of memory for a snapshot of %llu bytes",
                       (unsigned long long)size);
  int rc = kvcache_download_cells(kv, 0, (uint32_t)n, block + tokens_bytes, (uint32_t)n, 0, err);
  if (rc < 0) {
    aug_free(block);
    return rc;
  }
  struct promptcache_slot *s = &c->slots[free_slot];
  s->block = block;
  s->tokens = (int32_t *)block;
  memcpy(s->tokens, tokens, n * sizeof *tokens);
  s->cells = block + tokens_bytes;
  s->n = n;
  s->size = size;
  c->bytes += size;
  promptcache_touch(c, free_slot);
  return 0;
}

int promptcache_find(const struct promptcache *c, const int32_t *tokens, size_t n, size_t *lcp) {
  int best = -1;
  *lcp = 0;
  for (int i = 0; i < PROMPTCACHE_MAX_SNAPSHOTS; i++) {
    const struct promptcache_slot *s = &c->slots[i];
    if (!s->block) continue;
    size_t l = promptcache_lcp(s->tokens, s->n, tokens, n);
    if (l > *lcp) {
      *lcp = l;
      best = i;
    }
  }
  return best;
}

int promptcache_restore(struct promptcache *c, int id, struct kvcache *kv, size_t from, size_t to,
                        struct aug_err *err) {
  if (id < 0 || id >= PROMPTCACHE_MAX_SNAPSHOTS || !c->slots[id].block)
    return aug_err_set(err, AUG_EINVAL, "promptcache: no snapshot %d", id);
  const struct promptcache_slot *s = &c->slots[id];
  if (from > to || to > s->n || from != kvcache_n_used(kv))
    return aug_err_set(err, AUG_ERANGE,
                       "promptcache: restoring cells [%zu, %zu) of a %zu-token snapshot onto %u "
                       "used cells",
                       from, to, s->n, kvcache_n_used(kv));
  int rc = kvcache_upload_cells(kv, (uint32_t)from, (uint32_t)(to - from), s->cells, (uint32_t)s->n,
                                (uint32_t)from, err);
  if (rc == 0) rc = kvcache_commit(kv, (uint32_t)to);
  if (rc < 0) return rc;
  promptcache_touch(c, id);
  return 0;
}

const int32_t *promptcache_tokens(const struct promptcache *c, int id) {
  return id >= 0 && id < PROMPTCACHE_MAX_SNAPSHOTS ? c->slots[id].tokens : NULL;
}
size_t promptcache_n_tokens(const struct promptcache *c, int id) {
  return id >= 0 && id < PROMPTCACHE_MAX_SNAPSHOTS ? c->slots[id].n : 0;
}
size_t promptcache_count(const struct promptcache *c) {
  size_t n = 0;
  for (int i = 0; i < PROMPTCACHE_MAX_SNAPSHOTS; i++)
    n += c->slots[i].block != NULL;
  return n;
}
uint64_t promptcache_bytes(const struct promptcache *c) {
  return c->bytes;
}
