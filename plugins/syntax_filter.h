/* The pipeline's syntax check of a completion (issue 11, item 3): a bounded set of per-document
 * tree-sitter trees keyed by uri (grammars/syntax.h), brought up to date with the whole document
 * text when a completion is checked, and the SAFIM-style trim of the completion against it. A
 * document least recently checked is evicted when the set is full; its next check parses it whole.
 * Thread: engine thread only (a syntax_doc owns a TSParser); the set is not locked. */
#ifndef AUGURY_PLUGINS_SYNTAX_FILTER_H
#define AUGURY_PLUGINS_SYNTAX_FILTER_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/error.h"
#include "grammars/syntax.h"

struct syntax_filter; /* opaque */

struct syntax_filter_params {
  size_t max_docs;          /* documents whose trees are kept (> 0) */
  size_t max_doc_bytes;     /* larger documents are not checked (skipped) */
  unsigned parse_budget_us; /* syntax_check_params.parse_budget_us */
  unsigned time_budget_us;  /* syntax_check_params.time_budget_us */
};
/* 16 documents, 2 MiB, parse budget 5000 us, time budget 10000 us (grammars/README.md: good
 * candidates check in 0.2-0.4 ms median; a parse past 5 ms is taken as failing, which only cuts
 * a slow good candidate shorter; a whole check past 10 ms is given up and the candidate dropped).
 * Both count the engine thread's CPU time, with a wall-clock backstop of SYNTAX_WALL_BACKSTOP
 * times each (grammars/syntax.h): when they were wall-clock, the load cost good candidates (2 ms
 * dropped 6 of 200 good one-line candidates in difflib.py at load average 7 on 2 cores, 5 ms
 * dropped 1; plugins/README.md). */
struct syntax_filter_params syntax_filter_params_default(void);

int syntax_filter_create(const struct syntax_filter_params *params, struct syntax_filter **out,
                         struct aug_err *err);
void syntax_filter_destroy(struct syntax_filter *filter); /* NULL is a no-op */

enum syntax_filter_outcome {
  SYNTAX_FILTER_KEPT,    /* the candidate parses whole */
  SYNTAX_FILTER_TRIMMED, /* trailing lines (or what followed the block it opens) cut off */
  SYNTAX_FILTER_DROPPED, /* no leading line of it parses, or the check ran out of its budget */
  SYNTAX_FILTER_SKIPPED, /* not judged (reason says why): the candidate is left as it is */
};
const char *syntax_filter_outcome_name(enum syntax_filter_outcome outcome); /* "kept", ... */

struct syntax_filter_result {
  enum syntax_filter_outcome outcome;
  /* SKIPPED: "no grammar", "document too large", "the document does not parse at the cursor";
   * DROPPED by a budget: "check over its time budget", "check over its parse count" (static
   * strings); else NULL. */
  const char *reason;
  size_t keep;       /* bytes of the candidate to show (its whole length when skipped) */
  bool new_document; /* uri had no tree held (first check, or evicted): parsed whole */
  /* Wall-clock ms (the latency the user sees, not the CPU time the budgets count): */
  double update_ms;              /* bringing the document's tree up to date */
  double check_ms;               /* the check itself */
  struct syntax_verdict verdict; /* syntax_check's, when it ran */
};

/* Checks candidate (length bytes, inserted at byte offset cursor of text[0..text_len), the whole
 * document uri) and fills *out. The grammar is found by language_id, else by path's file name
 * (either may be NULL). The document's tree is kept for the next check of uri. AUG_ERANGE for a
 * cursor past the text; AUG_ENOMEM, and a parser that gives no tree, are errors too: the caller
 * shows the candidate unchecked. */
int syntax_filter_check(struct syntax_filter *filter, const char *uri, const char *language_id,
                        const char *path, const char *text, size_t text_len, size_t cursor,
                        const char *candidate, size_t length, struct syntax_filter_result *out,
                        struct aug_err *err);

/* Documents whose trees are held now, and whether uri's is among them. */
size_t syntax_filter_count(const struct syntax_filter *filter);
bool syntax_filter_holds(const struct syntax_filter *filter, const char *uri);

#endif
