/* Token healing constraint (see heal.h). The vocabulary's bytes sit in one buffer with offsets, so
 * a constrained step is a scan of the logits that compares bytes only for tokens that would beat
 * the best compatible one so far. */
#include "plugins/heal.h"

#include <string.h>

#include "engine/alloc.h"

struct heal_vocab {
  int32_t n_vocab;
  uint32_t *offset; /* n_vocab + 1: bytes of id at bytes + offset[id], up to offset[id + 1] */
  char *bytes;
};

int heal_vocab_create(const struct tokenizer *tok, struct heal_vocab **out, struct aug_err *err) {
  *out = NULL;
  struct heal_vocab *v = aug_calloc(1, sizeof *v);
  if (!v) return aug_err_set(err, AUG_ENOMEM, "heal: out of memory");
  v->n_vocab = tokenizer_vocab_size(tok);
  v->offset = aug_malloc(((size_t)v->n_vocab + 1) * sizeof *v->offset);
  size_t cap = (size_t)v->n_vocab * 8 + 64, used = 0;
  v->bytes = aug_malloc(cap);
  if (!v->offset || !v->bytes) goto oom;
  for (int32_t id = 0; id < v->n_vocab; id++) {
    v->offset[id] = (uint32_t)used;
    enum token_kind kind = tokenizer_token_kind(tok, id);
    if (kind != TOKEN_KIND_NORMAL && kind != TOKEN_KIND_USER_DEFINED && kind != TOKEN_KIND_BYTE)
      continue;
    int n = tokenizer_token_bytes(tok, id, false, v->bytes + used, cap - used);
    if (n < 0) continue;
    if ((size_t)n > cap - used) {
      size_t want = cap * 2 + (size_t)n;
      char *grown = aug_realloc(v->bytes, want);
      if (!grown) goto oom;
      v->bytes = grown;
      cap = want;
      n = tokenizer_token_bytes(tok, id, false, v->bytes + used, cap - used);
    }
    used += (size_t)n;
  }
  v->offset[v->n_vocab] = (uint32_t)used;
  *out = v;
  return 0;
oom:
  heal_vocab_destroy(v);
  return aug_err_set(err, AUG_ENOMEM, "heal: out of memory for the vocabulary's bytes");
}

void heal_vocab_destroy(struct heal_vocab *v) {
  if (!v) return;
  aug_free(v->offset);
  aug_free(v->bytes);
  aug_free(v);
}

const char *heal_token_bytes(const struct heal_vocab *v, int32_t id, size_t *len) {
  if (id < 0 || id >= v->n_vocab) {
    *len = 0;
    return "";
  }
  *len = v->offset[id + 1] - v->offset[id];
  return v->bytes + v->offset[id];
}

static bool compatible(const char *b, size_t n, const char *rest, size_t rest_len) {
  if (n == 0) return false;
  if (n >= rest_len) return memcmp(b, rest, rest_len) == 0;
  return memcmp(b, rest, n) == 0;
}

int32_t heal_argmax(const struct heal_vocab *v, const float *logits, const char *rest,
                    size_t rest_len) {
  int32_t best = -1;
  for (int32_t id = 0; id < v->n_vocab; id++) {
    if (best >= 0 && logits[id] <= logits[best]) continue;
    size_t n;
    const char *b = heal_token_bytes(v, id, &n);
    if (compatible(b, n, rest, rest_len)) best = id;
  }
  return best;
}

size_t heal_advance(const struct heal_vocab *v, int32_t id, size_t rest_len) {
  size_t n;
  heal_token_bytes(v, id, &n);
  return n >= rest_len ? 0 : rest_len - n;
}
