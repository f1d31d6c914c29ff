/* Model-side work for the server and the CLI: a resident engine with its prompt formats, the FIM
 * completion decode loop (greedy, stopping rules from postprocess.h, cancellation checked every
 * token) and the explain loop (chat prompt, sampled, text streamed through a callback). Runs on
 * the engine thread in the server (on the main thread in `augury complete`); not thread-safe.
 * Output goes to caller-provided buffers: decoding a token allocates nothing. */
#ifndef AUGURY_PLUGINS_GENERATE_H
#define AUGURY_PLUGINS_GENERATE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "engine/error.h"
#include "plugins/prompt.h"

struct generator; /* opaque */

/* Loads the model (engine_create) and resolves its FIM tokens and chat format. A model without FIM
 * tokens loads (explain works) but completions fail with AUG_EUNSUPPORTED. */
int generator_create(const struct engine_params *params, struct generator **out,
                     struct aug_err *err);
void generator_destroy(struct generator *g); /* NULL is a no-op */

struct engine *generator_engine(struct generator *g);
/* "qwen2.5-coder-1.5b-instruct (qwen2, FIM qwen, chat chatml, CPU (AVX2, 2 threads))" */
const char *generator_description(const struct generator *g);
bool generator_has_fim(const struct generator *g);
/* The prompt of the last completion or explain (valid until the next call). */
const int32_t *generator_last_prompt(const struct generator *g, size_t *n);

struct generation_stats;

struct completion_request {
  const char *prefix; /* document text before the cursor, from the window start (borrowed) */
  size_t prefix_len;
  const char *suffix; /* document text after the cursor, to the window end */
  size_t suffix_len;
  const char *repo_name, *path; /* repository header; NULL to leave it out */
  size_t prefix_tokens, suffix_tokens, snap_lines;
  int max_tokens;
  double time_budget_ms; /* counted from the request start, applied once a newline exists */
  /* (optional) A time on the aug_now_ms clock (engine/clock.h) that another thread may set while
   * the decode runs (0 = none): the time budget then ends there when that is sooner. The server
   * sets it when a typing-triggered request adopts a speculation, so that the speculation stops
   * within the request's budget, counted from the request, as the request's own job would. */
  const _Atomic double *time_budget_until_ms;
  /* (optional) Called before the prompt is evaluated, once a cost per token was measured (never
   * before): when the prompt is expected to be resident (ready_at_ms, on the aug_now_ms clock), and
   * how long an editor's request for the same state would take to get its own prompt resident if
   * this decode were cancelled now (own_ms: its prompt cut to request_prompt_budget_ms and costed
   * against the cache, after this decode stops at its next ENGINE_STABLE_CHUNK). The server leaves
   * a speculation only when its waiting request's own job would be sooner. Engine thread; user is
   * partial_user. */
  void (*on_prompt_plan)(void *user, double ready_at_ms, double own_ms);
  double request_prompt_budget_ms;
  /* The cursor's line up to the cursor goes after <|fim_middle|> (prompt.h), so the prompt before
   * it survives typing inside a line; false puts it at the end of the prefix (the classic FIM
   * layout, as llama.cpp's /infill builds it). */
  bool cursor_line_in_middle;
  /* (optional) After every generated token, with the whole text generated so far as it would be
   * inserted at the cursor (before the final clean-up); engine thread. The server uses it to keep
   * a speculative completion alive while the user types what it is writing. Also called once with
   * len 0 when the prompt is evaluated and decoding starts. */
  void (*on_partial)(void *user, const char *text, size_t len);
  void *partial_user;
  /* (optional) Answer early, keep writing: with this set, a deadline in time_budget_until_ms does
   * not stop the decode. Where it would have (the first complete line after it), the text so far,
   * cleaned up as a final answer would be, goes to on_answer with the stats so far (stop "time"),
   * and the decode goes on under time_budget_ms alone, once per deadline value: a later deadline
   * answers again. The server gives the waiting request its answer by the request's budget while
   * the speculation writes the following lines into the completion cache (typed-through hits after
   * Enter). Engine thread. */
  void (*on_answer)(void *user, const char *text, size_t len,
                    const struct generation_stats *so_far);
  void *answer_user;
  /* Prompt-lookup decoding: up to this many tokens drafted from n-grams of the prompt and the
   * text generated so far, verified in one forward pass (exact: the output is what plain greedy
   * decode writes); 0 = off. Capped at ENGINE_MAX_VERIFY - 1. */
  size_t draft_max;
  /* Heal only the trailing blanks before the cursor, as before token healing (heal.h); for
   * comparisons. */
  bool no_token_healing;
  /* Prompt evaluation budget in ms (0 = none): a prompt expected to take longer (from the measured
   * cost per token) is built again with fewer prefix tokens (never under 256) when that costs
   * clearly less against what is resident; the tokens dropped are in generation_stats.n_shrunk. */
  double prompt_budget_ms;
  /* With prompt_budget_ms: once the cut prompt is resident (it costs at most
   * GENERATE_GROW_RESIDENT_TOKENS), evaluate the whole one instead, growing the cut back in idle
   * time (a speculation started by an edit: the cut comes first, so that a pause finds the near
   * part resident, then each keystroke's speculation goes on with the far part). */
  bool grow_when_cut_resident;
  /* (optional) Context pieces for the prompt (prompt.h fim_input.context; borrowed). */
  const struct augury_context_piece *context;
  size_t n_context;
  /* (optional) Suggestions already given for this state (borrowed): the first generated token may
   * not be a start of any of them (after the healed text), so the answer differs from each from
   * its first token on (an alternative suggestion). */
  const char *const *avoid;
  const size_t *avoid_len;
  size_t n_avoid;
};

struct generation_stats {
  size_t n_prompt;    /* prompt tokens */
  size_t n_reused;    /* of which were resident already */
  size_t n_evaluated; /* of which were evaluated now */
  size_t n_shifted;   /* of which moved from another position (engine_params.reuse_min_chunk) */
  size_t n_restored;  /* of which came back from the host-RAM prompt cache */
  size_t n_generated;
  size_t n_drafted, n_accepted; /* prompt-lookup draft tokens verified, and accepted */
  size_t n_shrunk;              /* prompt tokens the prompt budget left out */
  int32_t first_token;          /* the first token generated (-1: none) */
  double prompt_ms, generate_ms, total_ms;
  const char *stop; /* "eog", "max_tokens", "rule", "time", "buffer" */
};

/* Completes at the cursor. out[0..*len) receives the post-processed text (NUL-terminated; cap >=
 * 64). AUG_ECANCELED when cancel was raised. */
int generator_complete(struct generator *g, const struct completion_request *req,
                       const atomic_bool *cancel, char *out, size_t cap, size_t *len,
                       struct generation_stats *stats, struct aug_err *err);

/* Called with each new piece of explain text as it is generated. */
typedef void (*generator_text_fn)(void *user, const char *text, size_t len);

struct explain_request {
  const char *code; /* the selection (borrowed) */
  size_t code_len;
  const char *language; /* languageId or file extension; may be NULL */
  int max_tokens;
  float temperature;
  uint64_t seed;
};

/* Explains a selection with the model's chat format; out as for generator_complete. */
int generator_explain(struct generator *g, const struct explain_request *req,
                      const atomic_bool *cancel, generator_text_fn on_text, void *user, char *out,
                      size_t cap, size_t *len, struct generation_stats *stats, struct aug_err *err);

#endif
