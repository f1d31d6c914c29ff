/* The pipeline's syntax check (see syntax_filter.h): an LRU of syntax_docs by uri in front of
 * syntax_check. Invariant: every slot below count holds a uri, its grammar and a document whose
 * text is the last one checked for that uri. */
#include "plugins/syntax_filter.h"

#include <string.h>

#include "engine/alloc.h"
#include "engine/clock.h"

struct syntax_filter_slot {
  char *uri;
  const struct grammar *grammar;
  struct syntax_doc *doc;
  unsigned long long last_used; /* the filter's tick at its last check */
};

struct syntax_filter {
  struct syntax_filter_params params;
  struct syntax_filter_slot *slots; /* params.max_docs of them */
  size_t count;
  unsigned long long tick;
};

struct syntax_filter_params syntax_filter_params_default(void) {
  struct syntax_filter_params p = {
      .max_docs = 16,
      .max_doc_bytes = 2u << 20,
      .parse_budget_us = 5000,
      .time_budget_us = 10000,
  };
  return p;
}

int syntax_filter_create(const struct syntax_filter_params *params, struct syntax_filter **out,
                         struct aug_err *err) {
  *out = NULL;
  struct syntax_filter_params p = params ? *params : syntax_filter_params_default();
  if (p.max_docs == 0) return aug_err_set(err, AUG_EINVAL, "syntax filter: max_docs must be > 0");
  struct syntax_filter *f = aug_calloc(1, sizeof *f);
  if (f) f->slots = aug_calloc(p.max_docs, sizeof *f->slots);
  if (!f || !f->slots) {
    aug_free(f);
    return aug_err_set(err, AUG_ENOMEM, "syntax filter: out of memory");
  }
  f->params = p;
  *out = f;
  return 0;
}

static void slot_clear(struct syntax_filter_slot *slot) {
  aug_free(slot->uri);
  syntax_doc_destroy(slot->doc);
  memset(slot, 0, sizeof *slot);
}

void syntax_filter_destroy(struct syntax_filter *filter) {
  if (!filter) return;
  for (size_t i = 0; i < filter->count; i++)
    slot_clear(&filter->slots[i]);
  aug_free(filter->slots);
  aug_free(filter);
}

const char *syntax_filter_outcome_name(enum syntax_filter_outcome outcome) {
  switch (outcome) {
  case SYNTAX_FILTER_KEPT: return "kept";
  case SYNTAX_FILTER_TRIMMED: return "trimmed";
  case SYNTAX_FILTER_DROPPED: return "dropped";
  case SYNTAX_FILTER_SKIPPED: break;
  }
  return "skipped";
}

size_t syntax_filter_count(const struct syntax_filter *filter) {
  return filter->count;
}

static struct syntax_filter_slot *find_slot(const struct syntax_filter *filter, const char *uri) {
  for (size_t i = 0; i < filter->count; i++)
    if (!strcmp(filter->slots[i].uri, uri)) return &filter->slots[i];
  return NULL;
}

bool syntax_filter_holds(const struct syntax_filter *filter, const char *uri) {
  return find_slot(filter, uri) != NULL;
}

/* uri's slot with a document of grammar, made (evicting the least recently used slot when all
 * are taken) when there is none or it was of another grammar (the languageId changed). */
static int slot_for(struct syntax_filter *filter, const char *uri, const struct grammar *grammar,
                    struct syntax_filter_slot **out, bool *made, struct aug_err *err) {
  struct syntax_filter_slot *slot = find_slot(filter, uri);
  *made = false;
  if (slot && slot->grammar == grammar) {
    *out = slot;
    return 0;
  }
  if (slot) {
    slot_clear(slot);
  } else if (filter->count < filter->params.max_docs) {
    slot = &filter->slots[filter->count++];
  } else {
    slot = &filter->slots[0];
    for (size_t i = 1; i < filter->count; i++)
      if (filter->slots[i].last_used < slot->last_used) slot = &filter->slots[i];
    slot_clear(slot);
  }
  slot->uri = aug_strndup(uri, strlen(uri));
  int rc = slot->uri ? syntax_doc_create(grammar, &slot->doc, err)
                     : aug_err_set(err, AUG_ENOMEM, "syntax filter: out of memory");
  if (rc) {
    /* Keep the invariant: move the last slot into the hole. */
    slot_clear(slot);
    *slot = filter->slots[--filter->count];
    memset(&filter->slots[filter->count], 0, sizeof *slot);
    return rc;
  }
  slot->grammar = grammar;
  *made = true;
  *out = slot;
  return 0;
}

static bool all_blank(const char *text, size_t length) {
  for (size_t i = 0; i < length; i++)
    if (text[i] != ' ' && text[i] != '\t' && text[i] != '\n' && text[i] != '\r') return false;
  return true;
}

static void skip(struct syntax_filter_result *out, const char *reason, size_t length) {
  out->outcome = SYNTAX_FILTER_SKIPPED;
  out->reason = reason;
  out->keep = length;
}

int syntax_filter_check(struct syntax_filter *filter, const char *uri, const char *language_id,
                        const char *path, const char *text, size_t text_len, size_t cursor,
                        const char *candidate, size_t length, struct syntax_filter_result *out,
                        struct aug_err *err) {
  memset(out, 0, sizeof *out);
  skip(out, "no grammar", length);
  if (cursor > text_len)
    return aug_err_set(err, AUG_ERANGE,
                       "syntax filter: %s: cursor %zu is past the text (%zu bytes)", uri, cursor,
                       text_len);
  const struct grammar *grammar = language_id ? grammars_find_language_id(language_id) : NULL;
  if (!grammar && path) grammar = grammars_find_path(path);
  if (!grammar) return 0;
  if (all_blank(candidate, length)) {
    /* Nothing to judge (syntax_check keeps none of it): shown as it is. */
    out->outcome = SYNTAX_FILTER_KEPT;
    out->reason = NULL;
    return 0;
  }
  if (text_len > filter->params.max_doc_bytes) {
    skip(out, "document too large", length);
    return 0;
  }
  double t0 = aug_now_ms();
  struct syntax_filter_slot *slot;
  int rc = slot_for(filter, uri, grammar, &slot, &out->new_document, err);
  if (rc) return rc;
  slot->last_used = ++filter->tick;
  /* set_text diffs against the text of the last check (the same document a keystroke or a
   * speculation earlier), so this is an incremental reparse of what changed. The same text again
   * (another candidate, a repeated request) is not parsed at all: a reparse with nothing changed
   * still re-runs error recovery where the document has errors (tens of ms on a broken file). */
  size_t held_len;
  const char *held = syntax_doc_text(slot->doc, &held_len);
  bool same = !out->new_document && held_len == text_len &&
              (text_len == 0 || !memcmp(held, text, text_len));
  if (!same) rc = syntax_doc_set_text(slot->doc, text, text_len, err);
  double t1 = aug_now_ms();
  out->update_ms = t1 - t0;
  if (rc) {
    /* The tree no longer matches any text: parse whole next time. */
    slot_clear(slot);
    *slot = filter->slots[--filter->count];
    memset(&filter->slots[filter->count], 0, sizeof *slot);
    return rc;
  }
  struct syntax_check_params params = syntax_check_params_default();
  params.parse_budget_us = filter->params.parse_budget_us;
  params.time_budget_us = filter->params.time_budget_us;
  /* An empty candidate costs no parse and says whether the document's own ERROR spans the cursor:
   * inside one, new errors cannot be told from the old, and a check would only cost time. */
  rc = syntax_check(slot->doc, cursor, candidate, 0, &params, &out->verdict, err);
  if (!rc && !out->verdict.inside_error)
    rc = syntax_check(slot->doc, cursor, candidate, length, &params, &out->verdict, err);
  out->check_ms = aug_now_ms() - t1;
  if (rc) return rc;
  const struct syntax_verdict *v = &out->verdict;
  out->reason = NULL;
  if (v->inside_error) {
    skip(out, "the document does not parse at the cursor", length);
  } else if (v->timed_out || v->budget_exhausted) {
    /* Unjudged, but a check that long is most often a broken candidate whose error recovery runs
     * on through the rest of the file (grammars/README.md: broken p99 ~30 ms against good ~9): a
     * suggestion that may break the file is not shown. */
    out->outcome = SYNTAX_FILTER_DROPPED;
    out->reason = v->timed_out ? "check over its time budget" : "check over its parse count";
    out->keep = 0;
  } else if (v->keep == 0 && length > 0) {
    out->outcome = SYNTAX_FILTER_DROPPED;
    out->keep = 0;
  } else {
    out->keep = v->keep;
    out->outcome = v->keep < length ? SYNTAX_FILTER_TRIMMED : SYNTAX_FILTER_KEPT;
  }
  return 0;
}
