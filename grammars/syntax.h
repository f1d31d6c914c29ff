/* Syntax check of completion candidates: a document's tree-sitter tree, kept current by
 * incremental reparses, against which a candidate is tried by parsing prefix + candidate + suffix
 * incrementally (ts_tree_edit on a copy of the document's tree). The candidate is cut after its
 * last line that leaves no ERROR or MISSING node the document did not already have, as SAFIM's
 * syntax truncation does, and dropped when none does. The tree also says whether the cursor sits
 * at the start of an empty block (complete the whole block) or not (complete the line).
 * Thread: a syntax_doc (it owns a TSParser) is used by one thread at a time. */
#ifndef AUGURY_GRAMMARS_SYNTAX_H
#define AUGURY_GRAMMARS_SYNTAX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tree_sitter/api.h>

#include "engine/error.h"
#include "grammars/grammars.h"

struct syntax_doc; /* opaque */

/* A document of that grammar with empty text. The caller owns *out (syntax_doc_destroy). */
int syntax_doc_create(const struct grammar *grammar, struct syntax_doc **out, struct aug_err *err);
void syntax_doc_destroy(struct syntax_doc *doc); /* NULL is a no-op */

/* Sets the whole text (copied; at most UINT32_MAX - 1 bytes). The tree is reparsed incrementally
 * from the previous one: the changed range is found by comparing the old and new texts (common
 * prefix and suffix), so callers need not translate their edits. */
int syntax_doc_set_text(struct syntax_doc *doc, const char *text, size_t length,
                        struct aug_err *err);
/* The current text and tree (borrowed: valid until the next set_text or destroy). */
const char *syntax_doc_text(const struct syntax_doc *doc, size_t *length);
const TSTree *syntax_doc_tree(const struct syntax_doc *doc);
/* ERROR and MISSING nodes in the current tree (an ERROR's contents are not counted again). */
size_t syntax_doc_error_count(const struct syntax_doc *doc);

enum syntax_shape_kind {
  SYNTAX_SINGLE_LINE, /* complete the rest of the line */
  SYNTAX_MULTI_LINE,  /* the cursor is on an empty line that opens a block: complete the block */
};

struct syntax_shape {
  enum syntax_shape_kind kind;
  /* MULTI_LINE only (else SIZE_MAX): the byte of the token that opens the block ('{', ':',
   * 'then', 'do', a Lua function's ')'), and where the block ends in the document now: the start
   * of its closer when the text after the cursor already has one (an editor's auto-inserted '}'
   * or 'end'), else SIZE_MAX (the block ends where the candidate closes it). */
  size_t opener;
  size_t block_end;
};

/* The shape of the completion wanted at cursor (a byte offset into the text). AUG_ERANGE when
 * cursor is past the end of the text. */
int syntax_shape_at(const struct syntax_doc *doc, size_t cursor, struct syntax_shape *out,
                    struct aug_err *err);

/* The time budgets below count the calling thread's CPU time (CLOCK_THREAD_CPUTIME_ID), not wall
 * time: on a loaded machine a thread waiting for a core would otherwise spend a good candidate's
 * budget doing nothing. Each also ends after SYNTAX_WALL_BACKSTOP times its length in wall time,
 * so a thread starved of the CPU still gives up. */
enum { SYNTAX_WALL_BACKSTOP = 10 };

struct syntax_check_params {
  size_t replaced;     /* bytes after the cursor that the candidate replaces (default 0) */
  unsigned max_parses; /* give up (drop the candidate) after this many parses (default 32) */
  /* give up (drop the candidate, timed_out) when the check takes longer than this (thread CPU
   * time); 0: no limit (the default) */
  unsigned time_budget_us;
  /* a parse that runs longer than this (thread CPU time) is taken as failing and the candidate is
   * cut further; 0: no limit (the default). On a document that parses, a good candidate parses in
   * well under a millisecond and a failing one can take tens (error recovery runs on through the
   * rest of the file): this bounds that cost, and it can only cut a slow good candidate shorter,
   * never keep a broken one (the kept part is always a parse that finished clean). */
  unsigned parse_budget_us;
  bool cut_at_block_end; /* at a MULTI_LINE shape, cut where the opened block closes (default on) */
  /* (tests; default NULL) called from the parse's progress callback, every 100 parse operations,
   * before the budgets are looked at: a test sleeps or spins in it to make a parse slow in wall
   * or CPU time without depending on how fast the machine is. */
  void (*progress_hook_cb)(void *data);
  void *progress_hook_data;
};
struct syntax_check_params syntax_check_params_default(void);

struct syntax_verdict {
  size_t keep;           /* bytes of the candidate to keep; 0: drop it */
  unsigned lines_total;  /* lines in the candidate */
  unsigned lines_kept;   /* lines in the kept part */
  unsigned parses;       /* incremental parses done */
  bool block_cut;        /* keep was first shortened to the end of the block the cursor opens */
  bool budget_exhausted; /* max_parses ran out before a good cut was found (keep is 0) */
  bool timed_out;        /* time_budget_us ran out before a good cut was found (keep is 0) */
  unsigned slow_parses;  /* parses stopped by parse_budget_us (taken as failing) */
  /* The document has an ERROR node around the edit (it does not parse there: a macro tree-sitter
   * cannot follow, a header guard around code it rejects): changes inside that node cannot be
   * told from the error already there, so the check says little. Also set when nothing of the
   * candidate survived and an ERROR of the document ends at the cursor (the construct being
   * typed: a function whose closing brace is not there yet): only a clean parse judges there. */
  bool inside_error;
  size_t errors_before; /* ERROR/MISSING nodes in the document */
  /* error nodes the whole candidate added that the document did not have; 1 when its parse was
   * stopped by parse_budget_us */
  size_t new_errors_full;
  struct syntax_shape shape;
};

/* Checks candidate (length bytes, inserted at cursor, replacing params->replaced bytes; params
 * NULL for the defaults) against the document and fills *out. The document is not changed. An
 * error node of the result counts as already there when the document has one of the same kind
 * at the same place outside the edit. AUG_ERANGE for a cursor or replaced range outside the text.
 */
int syntax_check(struct syntax_doc *doc, size_t cursor, const char *candidate, size_t length,
                 const struct syntax_check_params *params, struct syntax_verdict *out,
                 struct aug_err *err);

#endif
