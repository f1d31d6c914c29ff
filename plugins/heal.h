/* Token healing at the cursor (after llama.cpp PR 7187): the prompt's last token, cut by the
 * cursor ("ret" of a half-typed "return", the " " of "return "), tokenizes unlike training text,
 * where that text belongs to a longer token. It is left out of the prompt and the first generated
 * tokens are constrained to write it again: each must start with the text still to heal, or be a
 * proper prefix of it. Control tokens never qualify, so healing never crosses one. The caller
 * drops the regenerated text from the output. */
#ifndef AUGURY_PLUGINS_HEAL_H
#define AUGURY_PLUGINS_HEAL_H

#include <stddef.h>
#include <stdint.h>

#include "engine/error.h"
#include "engine/tokenizer.h"

/* The bytes of every vocabulary entry that text can be made of (normal, user-defined and byte
 * tokens); control and unused entries have none. Built once per model (~1 MB for 151k entries). */
struct heal_vocab;

int heal_vocab_create(const struct tokenizer *tok, struct heal_vocab **out, struct aug_err *err);
void heal_vocab_destroy(struct heal_vocab *vocab); /* NULL is a no-op */

/* The bytes of id (len 0 for control tokens and ids out of range). */
const char *heal_token_bytes(const struct heal_vocab *vocab, int32_t id, size_t *len);

/* The id with the highest logit among those compatible with rest[0..rest_len) (rest_len > 0):
 * their bytes start with rest, or are a non-empty proper prefix of it. -1 when none is. */
int32_t heal_argmax(const struct heal_vocab *vocab, const float *logits, const char *rest,
                    size_t rest_len);

/* How much of rest_len is left to heal after id was generated (0: healed). */
size_t heal_advance(const struct heal_vocab *vocab, int32_t id, size_t rest_len);

#endif
