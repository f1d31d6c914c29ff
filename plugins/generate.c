/* Completion and explain decode loops over a resident engine (see generate.h). The token buffer is
 * sized to the context at load, so a request allocates nothing but its sampler (explain only). */
#include "plugins/generate.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "engine/alloc.h"
#include "engine/sampler.h"
#include "plugins/heal.h"
#include "plugins/postprocess.h"
#include "engine/clock.h"

struct generator {
  struct engine *engine;
  const struct tokenizer *tok;
  struct fim_tokens fim;
  bool has_fim;
  struct heal_vocab *heal;
  enum chat_format chat;
  int32_t *ids;      /* n_ctx prompt tokens */
  int32_t *best_ids; /* n_ctx: the cheapest prompt while the prompt budget compares cuts */
  int32_t *plan_ids; /* n_ctx: the prompt, kept while plan_prompt tries the cut of a request */
  float *masked;     /* n_vocab logits with avoided first tokens masked (allocated on use) */
  size_t n_ctx;
  size_t n_last_prompt;
  /* Prompt evaluation cost, ms per token, from recent evaluations (0 = not measured yet): what
   * prompt budgets are checked against. */
  double ms_per_token;
  char description[256];
};

/* Evaluations shorter than this do not update the cost estimate. */
#define GENERATE_COST_MIN_TOKENS 24
/* A prompt budget never shrinks the prefix below this many tokens. */
#define GENERATE_MIN_PREFIX_TOKENS 256
/* A cut that saves fewer tokens than this is not worth the context it drops (and the
 * re-evaluation of the full window by the next prompt). */
#define GENERATE_SHRINK_MIN_SAVING 32
/* Candidate cuts costed per request (each is a tokenization of the window). */
#define GENERATE_SHRINK_MAX_TRIES 3
/* completion_request.grow_when_cut_resident: the cut prompt counts as resident at this cost (the
 * tokens typed since it was evaluated, or since the snapshot it is restored from was saved). */
#define GENERATE_GROW_RESIDENT_TOKENS 16

/* Folds one evaluation into the cost estimate; short ones say little (fixed costs dominate). */
static void note_prompt_cost(struct generator *g, size_t n_evaluated, double ms) {
  if (n_evaluated < GENERATE_COST_MIN_TOKENS) return;
  double sample = ms / (double)n_evaluated;
  g->ms_per_token = g->ms_per_token > 0 ? 0.5 * g->ms_per_token + 0.5 * sample : sample;
}

/* A short evaluation at load: it pages in the weights the first request would otherwise wait for,
 * and gives the prompt budget its first cost estimate. */
static void generator_warm_up(struct generator *g) {
  static const char text[] = "def scale(values, factor):\n    \"\"\"Multiply every value.\"\"\"\n"
                             "    return [v * factor for v in values]\n\n\nif __name__ == "
                             "\"__main__\":\n    print(scale([1, 2, 3], 2))\n";
  size_t n = 0;
  struct aug_err err = {0};
  struct tokenize_options opts = {0};
  if (tokenizer_encode(g->tok, text, sizeof text - 1, opts, g->ids, g->n_ctx / 2, &n, &err) ||
      n < GENERATE_COST_MIN_TOKENS)
    return;
  struct engine_eval_stats es = {0};
  if (engine_set_prompt(g->engine, g->ids, n, NULL, &es, &err) == 0)
    note_prompt_cost(g, es.n_evaluated, es.eval_ms);
  engine_truncate(g->engine, 0);
}

int generator_create(const struct engine_params *params, struct generator **out,
                     struct aug_err *err) {
  *out = NULL;
  struct generator *g = aug_calloc(1, sizeof *g);
  if (!g) return aug_err_set(err, AUG_ENOMEM, "generate: out of memory");
  int rc = engine_create(params, &g->engine, err);
  if (rc) {
    aug_free(g);
    return rc;
  }
  g->tok = engine_tokenizer(g->engine);
  g->n_ctx = engine_n_ctx(g->engine);
  g->ids = aug_malloc(g->n_ctx * sizeof *g->ids);
  g->best_ids = aug_malloc(g->n_ctx * sizeof *g->best_ids);
  g->plan_ids = aug_malloc(g->n_ctx * sizeof *g->plan_ids);
  if (!g->ids || !g->best_ids || !g->plan_ids) {
    generator_destroy(g);
    return aug_err_set(err, AUG_ENOMEM, "generate: out of memory for %zu prompt tokens", g->n_ctx);
  }
  rc = heal_vocab_create(g->tok, &g->heal, err);
  if (rc) {
    generator_destroy(g);
    return rc;
  }
  struct aug_err fim_err = {0};
  g->has_fim = prompt_fim_tokens(g->tok, &g->fim, &fim_err) == 0;
  const struct model *model = engine_model(g->engine);
  const char *tmpl = NULL, *name = NULL;
  size_t tmpl_len = 0, name_len = 0;
  /* gguf strings are not NUL-terminated in the file: copy the template before searching it. */
  char tmpl_buf[8192] = "";
  if (gguf_get_string(model->file, "tokenizer.chat_template", &tmpl, &tmpl_len, NULL) == 0) {
    size_t n = tmpl_len < sizeof tmpl_buf - 1 ? tmpl_len : sizeof tmpl_buf - 1;
    memcpy(tmpl_buf, tmpl, n);
    tmpl_buf[n] = '\0';
  }
  g->chat = prompt_chat_format(tmpl_buf[0] ? tmpl_buf : NULL, g->tok);
  if (gguf_get_string(model->file, "general.name", &name, &name_len, NULL) != 0) {
    name = "model";
    name_len = 5;
  }
  static const char *const families[] = {"qwen", "codellama", "deepseek"};
  snprintf(g->description, sizeof g->description, "%.*s (%s, FIM %s, chat %s, %s)",
           (int)(name_len > 80 ? 80 : name_len), name, model->hp.arch_name,
           g->has_fim ? families[g->fim.family] : "none", prompt_chat_format_name(g->chat),
           engine_device_name(g->engine));
  generator_warm_up(g);
  *out = g;
  return 0;
}

void generator_destroy(struct generator *g) {
  if (!g) return;
  engine_destroy(g->engine);
  heal_vocab_destroy(g->heal);
  aug_free(g->ids);
  aug_free(g->best_ids);
  aug_free(g->plan_ids);
  aug_free(g->masked);
  aug_free(g);
}

struct engine *generator_engine(struct generator *g) {
  return g->engine;
}
const char *generator_description(const struct generator *g) {
  return g->description;
}
bool generator_has_fim(const struct generator *g) {
  return g->has_fim;
}

const int32_t *generator_last_prompt(const struct generator *g, size_t *n) {
  *n = g->n_last_prompt;
  return g->ids;
}

/* A cursor line longer than this stays in the prefix (see generator_complete). */
#define GENERATE_MAX_MIDDLE_BYTES 1024

/* Evaluates g->ids[0..n). Tokens before stable (the document text up to just before the cursor)
 * will be wanted by the next keystroke's prompt too: the engine evaluates them in batches that a
 * cancellation does not interrupt (engine_set_prompt_stable). */
static int evaluate_prompt(struct generator *g, size_t n, size_t stable, const atomic_bool *cancel,
                           struct generation_stats *stats, struct aug_err *err) {
  struct engine_eval_stats es = {0};
  int rc = engine_set_prompt_stable(g->engine, g->ids, n, stable, cancel, &es, err);
  stats->n_reused = es.n_reused;
  stats->n_shifted = es.n_shifted;
  stats->n_restored = es.n_restored;
  stats->n_evaluated = es.n_evaluated;
  return rc;
}

static int32_t argmax(const float *logits, size_t n) {
  size_t best = 0;
  for (size_t i = 1; i < n; i++)
    if (logits[i] > logits[best]) best = i;
  return (int32_t)best;
}

/* Prompt-lookup drafts: the longest n-gram (GENERATE_LOOKUP_MAX_NGRAM down to
 * GENERATE_LOOKUP_MIN_NGRAM tokens) ending the history that occurred before in it, most recent
 * occurrence first, proposes the tokens that followed it. Code repeats itself (names, call
 * shapes, the suffix a completion runs into), so these are often right; verification keeps the
 * output exactly what plain greedy decode would write. */
#define GENERATE_LOOKUP_MAX_NGRAM 4
#define GENERATE_LOOKUP_MIN_NGRAM 2
/* Tokens searched back from the end of the history: bounds the cost per draft (the prompt is
 * rarely longer, and near text is the likelier source). */
#define GENERATE_LOOKUP_WINDOW 4096

/* Writes up to max tokens that followed the latest earlier occurrence of the history's last
 * n-gram into draft; returns how many. */
static size_t lookup_draft(const int32_t *hist, size_t n_hist, size_t max, int32_t *draft) {
  size_t lo = n_hist > GENERATE_LOOKUP_WINDOW ? n_hist - GENERATE_LOOKUP_WINDOW : 0;
  for (size_t ng = GENERATE_LOOKUP_MAX_NGRAM; ng >= GENERATE_LOOKUP_MIN_NGRAM; ng--) {
    if (n_hist < ng + 1) continue;
    const int32_t *tail = hist + n_hist - ng;
    /* An occurrence at start must end before the tail begins and leave a token to propose. */
    for (size_t start = n_hist - ng; start-- > lo;) {
      if (memcmp(hist + start, tail, ng * sizeof *tail) != 0) continue;
      size_t from = start + ng, n = 0;
      while (n < max && from + n < n_hist)
        draft[n] = hist[from + n], n++;
      if (n > 0) return n;
    }
  }
  return 0;
}

/* Greedy choice, among the tokens that fit the text still to heal while there is some. */
static int32_t next_token(const struct generator *g, const float *logits, size_t n_vocab,
                          const char *rest, size_t rest_len) {
  if (rest_len > 0) {
    int32_t t = heal_argmax(g->heal, logits, rest, rest_len);
    if (t >= 0) return t;
  }
  return argmax(logits, n_vocab);
}

/* Whether token bytes b[0..nb) go past healed[0..nh) and are a start of it followed by
 * text[0..n): a first token that begins to write an earlier suggestion again. (One inside the
 * healed text commits to nothing yet.) */
static bool starts_again(const char *b, size_t nb, const char *healed, size_t nh, const char *text,
                         size_t n) {
  if (nb <= nh || nb > nh + n) return false;
  return !memcmp(b, healed, nh) && !memcmp(b + nh, text, nb - nh);
}

/* The first token: as next_token, never one that begins to write a suggestion to avoid again
 * (an alternative). The logits are copied so those can be masked; AUG_ENOMEM when that fails. */
static int first_token(struct generator *g, const struct completion_request *req, size_t n_vocab,
                       const char *rest, size_t rest_len, int32_t *out, struct aug_err *err) {
  const float *logits = engine_logits(g->engine);
  if (req->n_avoid == 0) {
    *out = next_token(g, logits, n_vocab, rest, rest_len);
    return 0;
  }
  if (!g->masked && !(g->masked = aug_malloc(n_vocab * sizeof *g->masked)))
    return aug_err_set(err, AUG_ENOMEM, "generate: out of memory for %zu logits", n_vocab);
  memcpy(g->masked, logits, n_vocab * sizeof *g->masked);
  for (size_t id = 0; id < n_vocab; id++) {
    size_t nb = 0;
    const char *b = heal_token_bytes(g->heal, (int32_t)id, &nb);
    for (size_t k = 0; b && k < req->n_avoid; k++)
      if (starts_again(b, nb, rest, rest_len, req->avoid[k], req->avoid_len[k])) {
        g->masked[id] = -INFINITY;
        break;
      }
  }
  *out = next_token(g, g->masked, n_vocab, rest, rest_len);
  return 0;
}

/* Tokens between <|fim_prefix|> and <|fim_suffix|> in g->ids[0..n): the prefix as built, which is
 * often shorter than its bound (the window ran out of lines first). n when the markers are not
 * found. */
static size_t built_prefix_tokens(const struct generator *g, size_t n) {
  size_t start = n, end = n;
  for (size_t i = 0; i < n; i++) {
    if (g->ids[i] == g->fim.prefix) start = i;
    if (g->ids[i] == g->fim.suffix && start < n) {
      end = i;
      break;
    }
  }
  return end < n ? end - start - 1 : n;
}

/* Prompt budget: a prompt whose new tokens would take longer than the budget to evaluate (a jump
 * to a region nothing is cached for) loses far context until it fits: the context pieces first,
 * then far prefix lines; the editor gets a suggestion now, and the next prompts (speculation in
 * idle time) bring the full window back. Dropping text moves everything after it, so what a cut
 * saves is not the tokens it drops: when what it drops is resident (a speculation evaluated it)
 * and the new tokens are near the cursor, a cut saves nothing and throws that work away. So each
 * candidate is costed against the cache (engine_prompt_cost): the first that fits the budget is
 * taken, else the cheapest, and the full prompt stays unless a cut is clearly cheaper.
 * Candidates, in order: without the pieces, the prefix whole and then cut by over, 2x, 4x (over
 * = the tokens the full prompt is over its budget); then with the pieces and the same cuts (for
 * resident pieces, which cost nothing to keep). g->ids[0..*n_ids) and *in hold the full prompt
 * on entry and the chosen one on return. */
static int fit_prompt_budget(struct generator *g, const struct completion_request *req,
                             struct fim_input *in, bool last_token_healed, int max_tokens,
                             size_t *n_ids, struct generation_stats *stats, struct aug_err *err) {
  size_t full = *n_ids;
  size_t cost = engine_prompt_cost(g->engine, g->ids, full);
  size_t budget = (size_t)(req->prompt_budget_ms / g->ms_per_token);
  size_t prefix_tokens = built_prefix_tokens(g, full);
  if (req->prefix_tokens && req->prefix_tokens < prefix_tokens) prefix_tokens = req->prefix_tokens;
  bool can_cut_prefix = prefix_tokens > GENERATE_MIN_PREFIX_TOKENS;
  if (cost <= budget || (!can_cut_prefix && in->n_context == 0)) return 0;
  memcpy(g->best_ids, g->ids, full * sizeof *g->ids);
  const struct fim_input whole = *in;
  size_t best_n = full, best_cost = cost, over = cost - budget;
  bool fits = false;
  for (int with_pieces = whole.n_context == 0; with_pieces <= 1 && !fits; with_pieces++) {
    /* tries 0 keeps the prefix whole: only a candidate without the pieces differs from full. */
    for (size_t tries = with_pieces ? 1 : 0; tries <= GENERATE_SHRINK_MAX_TRIES && !fits; tries++) {
      size_t cut = tries ? over << (tries - 1) : 0;
      size_t want = prefix_tokens;
      if (cut)
        want = prefix_tokens > cut + GENERATE_MIN_PREFIX_TOKENS ? prefix_tokens - cut
                                                                : GENERATE_MIN_PREFIX_TOKENS;
      if (cut && !can_cut_prefix) break;
      struct fim_input cand = whole;
      cand.prefix_tokens = want;
      if (!with_pieces) cand.n_context = 0;
      size_t n = 0, dropped = 0;
      int rc = prompt_build_fim(g->tok, &g->fim, &cand, g->ids, g->n_ctx - (size_t)max_tokens, &n,
                                &dropped, err);
      if (rc) return rc;
      if (last_token_healed && n > 1) n--; /* the same last token, healed as before */
      size_t c = engine_prompt_cost(g->engine, g->ids, n);
      if (c + GENERATE_SHRINK_MIN_SAVING <= best_cost) {
        best_cost = c;
        best_n = n;
        *in = cand;
        memcpy(g->best_ids, g->ids, n * sizeof *g->ids);
        fits = c <= budget;
      }
      if (want == GENERATE_MIN_PREFIX_TOKENS) break; /* further cuts build the same prompt */
    }
  }
  memcpy(g->ids, g->best_ids, best_n * sizeof *g->ids);
  *n_ids = best_n;
  stats->n_shrunk = full > best_n ? full - best_n : 0;
  return 0;
}

/* completion_request.on_prompt_plan for the prompt g->ids[0..n_ids): its own cost, and that of
 * the prompt an editor's request would cut it to (fit_prompt_budget on a copy; g->ids is restored).
 */
static int plan_prompt(struct generator *g, const struct completion_request *req,
                       const struct fim_input *in, bool last_token_healed, int max_tokens,
                       size_t n_ids, struct aug_err *err) {
  double now = aug_now_ms();
  size_t cost = engine_prompt_cost(g->engine, g->ids, n_ids), own_cost = cost;
  if (req->request_prompt_budget_ms > 0) {
    memcpy(g->plan_ids, g->ids, n_ids * sizeof *g->ids);
    struct completion_request cut = *req;
    cut.prompt_budget_ms = req->request_prompt_budget_ms;
    struct fim_input cut_in = *in;
    struct generation_stats unused = {0};
    size_t n = n_ids;
    int rc = fit_prompt_budget(g, &cut, &cut_in, last_token_healed, max_tokens, &n, &unused, err);
    if (rc) return rc;
    own_cost = engine_prompt_cost(g->engine, g->ids, n);
    memcpy(g->ids, g->plan_ids, n_ids * sizeof *g->ids);
  }
  req->on_prompt_plan(req->partial_user, now + (double)cost * g->ms_per_token,
                      (double)(own_cost + ENGINE_STABLE_CHUNK) * g->ms_per_token);
  return 0;
}

/* The time budget in ms from t0 as it stands now: the request's own, or less when a deadline was
 * set since (completion_request.time_budget_until_ms); <= 0 means none. A deadline already past
 * gives the smallest positive budget, so the decode stops at the next complete line. */
static double effective_time_budget(const struct completion_request *req, double t0) {
  double budget = req->time_budget_ms;
  double until = req->time_budget_until_ms ? atomic_load(req->time_budget_until_ms) : 0;
  if (until <= 0) return budget;
  double left = until - t0 > 0 ? until - t0 : 1e-3;
  return budget <= 0 || left < budget ? left : budget;
}

/* completion_request.on_answer: when the deadline set since (a value not answered yet) has passed
 * at a point where the decode would stop for it, the text so far, cleaned up as at the end. The
 * check under the request's own budget has just said to go on, so a stop here is the deadline's. */
static void answer_at_deadline(const struct completion_request *req,
                               const struct postprocess_context *pp, double t0, double elapsed,
                               const char *text, size_t len, const struct generation_stats *stats,
                               double *answered_until) {
  double until = req->time_budget_until_ms ? atomic_load(req->time_budget_until_ms) : 0;
  if (until <= 0 || until == *answered_until) return;
  struct postprocess_context at = *pp;
  at.time_budget_ms = until - t0 > 0 ? until - t0 : 1e-3;
  size_t keep = len;
  if (postprocess_check(&at, text, len, elapsed, &keep) != POSTPROCESS_STOP) return;
  *answered_until = until;
  struct generation_stats so_far = *stats;
  so_far.stop = "time";
  req->on_answer(req->answer_user, text, postprocess_finish(&at, text, keep), &so_far);
}

int generator_complete(struct generator *g, const struct completion_request *req,
                       const atomic_bool *cancel, char *out, size_t cap, size_t *len,
                       struct generation_stats *stats, struct aug_err *err) {
  double t0 = aug_now_ms();
  memset(stats, 0, sizeof *stats);
  stats->first_token = -1;
  *len = 0;
  out[0] = '\0';
  if (!g->has_fim)
    return aug_err_set(err, AUG_EUNSUPPORTED,
                       "generate: %s has no fill-in-the-middle tokens: completions need a code "
                       "model such as Qwen2.5-Coder",
                       g->description);
  int max_tokens = req->max_tokens > 0 ? req->max_tokens : 1;
  if ((size_t)max_tokens + 64 >= g->n_ctx)
    return aug_err_set(err, AUG_ERANGE,
                       "generate: %d tokens to generate do not fit a context of %zu", max_tokens,
                       g->n_ctx);
  /* Where the cursor's line starts; a very long line (minified code) stays in the prefix, where
   * it can be cut, instead of being kept whole as the middle. */
  size_t line_start = req->prefix_len;
  while (line_start > 0 && req->prefix[line_start - 1] != '\n')
    line_start--;
  bool middle_layout =
      req->cursor_line_in_middle && req->prefix_len - line_start <= GENERATE_MAX_MIDDLE_BYTES;
  /* Healing at the cursor (heal.h). With the cursor's line last in the prompt, the prompt's last
   * token is healed, whatever its text (after tokenizing, below). Otherwise the trailing blanks
   * ("return ") are: they are left out of the text, where training text has the space in the next
   * word's token (" a"). Either way the model writes the healed text again, and that copy is
   * dropped from the output. */
  bool token_healing = middle_layout && !req->no_token_healing;
  size_t heal = 0;
  while (!token_healing && heal < req->prefix_len && heal < 256 &&
         (req->prefix[req->prefix_len - 1 - heal] == ' ' ||
          req->prefix[req->prefix_len - 1 - heal] == '\t'))
    heal++;
  size_t kept = req->prefix_len - heal;
  if (!middle_layout) line_start = kept;
  char healed[256];
  memcpy(healed, req->prefix + kept, heal);
  struct fim_input in = {req->prefix,        line_start,
                         req->suffix,        req->suffix_len,
                         req->repo_name,     req->path,
                         req->prefix_tokens, req->suffix_tokens,
                         req->snap_lines,    req->prefix + line_start,
                         kept - line_start,  req->context,
                         req->n_context};
  size_t n_ids = 0, dropped = 0;
  int rc = prompt_build_fim(g->tok, &g->fim, &in, g->ids, g->n_ctx - (size_t)max_tokens, &n_ids,
                            &dropped, err);
  if (rc) return rc;
  /* The token the cursor cut is the last one: generated again under the healing constraint. */
  if (token_healing && n_ids > 1 && g->ids[n_ids - 1] != g->fim.middle) {
    size_t nb = 0;
    const char *b = heal_token_bytes(g->heal, g->ids[n_ids - 1], &nb);
    if (nb > 0 && nb <= sizeof healed) {
      memcpy(healed, b, nb);
      heal = nb;
      n_ids--;
    }
  }
  if (req->prompt_budget_ms > 0 && g->ms_per_token > 0) {
    size_t whole_n = n_ids;
    struct fim_input whole_in = in;
    if (req->grow_when_cut_resident) memcpy(g->plan_ids, g->ids, n_ids * sizeof *g->ids);
    rc = fit_prompt_budget(g, req, &in, token_healing && heal > 0, max_tokens, &n_ids, stats, err);
    if (rc) return rc;
    if (req->grow_when_cut_resident && n_ids < whole_n &&
        engine_prompt_cost(g->engine, g->ids, n_ids) <= GENERATE_GROW_RESIDENT_TOKENS) {
      memcpy(g->ids, g->plan_ids, whole_n * sizeof *g->ids);
      n_ids = whole_n;
      in = whole_in;
      stats->n_shrunk = 0;
    }
  }
  g->n_last_prompt = n_ids;
  /* The part the next keystroke's prompt shares: up to <|fim_middle|> when the cursor's line is
   * the middle, else up to two tokens before <|fim_suffix|> (the word at the cursor changes). */
  size_t stable = 0;
  int32_t stable_mark = middle_layout ? g->fim.middle : g->fim.suffix;
  for (size_t i = n_ids; i > 0; i--)
    if (g->ids[i - 1] == stable_mark) {
      if (middle_layout)
        stable = i;
      else
        stable = i - 1 > 2 ? i - 1 - 2 : 0;
      break;
    }
  stats->n_prompt = n_ids;
  if (req->on_prompt_plan && g->ms_per_token > 0) {
    rc = plan_prompt(g, req, &in, token_healing && heal > 0, max_tokens, n_ids, err);
    if (rc) return rc;
  }
  rc = evaluate_prompt(g, n_ids, stable, cancel, stats, err);
  double t1 = aug_now_ms();
  if (rc == 0) note_prompt_cost(g, stats->n_evaluated, t1 - t0);
  stats->prompt_ms = t1 - t0;
  if (rc) return rc;
  if (req->on_partial) req->on_partial(req->partial_user, out, 0); /* the prompt is resident */

  /* The cursor's line up to the cursor is the tail of the prefix. */
  size_t lb = req->prefix_len;
  while (lb > 0 && req->prefix[lb - 1] != '\n')
    lb--;
  struct postprocess_context pp;
  postprocess_context_init(&pp, req->prefix + lb, req->prefix_len - lb, req->suffix,
                           req->suffix_len, req->time_budget_ms);
  size_t skip = 0; /* bytes at the start of out that repeat the healed text */
  struct detokenizer detok;
  detokenizer_init(&detok);
  size_t n = 0, n_vocab = (size_t)tokenizer_vocab_size(g->tok);
  /* The prompt followed by what is generated (room for max_tokens was kept): the history drafts
   * are looked up in. */
  size_t n_hist = n_ids;
  size_t draft_max = req->draft_max < ENGINE_MAX_VERIFY ? req->draft_max : ENGINE_MAX_VERIFY - 1;
  /* Tokens whose predecessors' logits are known: all but the last are resident already (accepted
   * drafts), the last one is the argmax after them and still has to be evaluated. */
  int32_t queue[ENGINE_MAX_VERIFY];
  size_t q_head = 0, q_len = 1;
  /* The healed text not yet written again: the next token must fit it (heal.h). */
  const char *rest = healed;
  size_t rest_len = heal;
  rc = first_token(g, req, n_vocab, rest, rest_len, &queue[0], err);
  if (rc) return rc;
  stats->first_token = queue[0];
  stats->stop = "max_tokens";
  double answered_until = 0; /* the deadline on_answer was last called for */
  for (int i = 0; i < max_tokens; i++) {
    if (cancel && atomic_load(cancel)) {
      rc = aug_err_set(err, AUG_ECANCELED, "generate: cancelled after %d tokens", i);
      break;
    }
    int32_t t = queue[q_head++];
    bool resident = q_head < q_len;
    if (rest_len > 0) {
      size_t left_after = heal_advance(g->heal, t, rest_len);
      rest += rest_len - left_after;
      rest_len = left_after;
    }
    if (prompt_fim_is_stop(g->tok, &g->fim, t)) {
      stats->stop = "eog";
      break;
    }
    stats->n_generated++;
    if (cap - 1 - n < 64) {
      stats->stop = "buffer";
      break;
    }
    int w = detokenizer_push(&detok, g->tok, t, false, out + n, cap - 1 - n);
    if (w > 0) n += (size_t)w;
    while (skip < heal && skip < n && out[skip] == healed[skip])
      skip++;
    if (req->on_partial) req->on_partial(req->partial_user, out + skip, n - skip);
    size_t keep = n;
    double elapsed = aug_now_ms() - t0;
    pp.time_budget_ms = req->on_answer ? req->time_budget_ms : effective_time_budget(req, t0);
    if (postprocess_check(&pp, out + skip, n - skip, elapsed, &keep) == POSTPROCESS_STOP) {
      n = skip + keep;
      stats->stop = pp.time_budget_ms > 0 && elapsed > pp.time_budget_ms ? "time" : "rule";
      break;
    }
    if (req->on_answer) {
      stats->total_ms = elapsed;
      stats->generate_ms = elapsed - stats->prompt_ms;
      answer_at_deadline(req, &pp, t0, elapsed, out + skip, n - skip, stats, &answered_until);
    }
    if (i + 1 == max_tokens) break; /* the last token's successor is not needed */
    g->ids[n_hist++] = t;
    if (resident) continue;
    /* Drafts beyond the tokens left to generate would be thrown away. */
    size_t left = (size_t)(max_tokens - i - 1), want = draft_max < left ? draft_max : left;
    int32_t batch[ENGINE_MAX_VERIFY];
    /* No drafts while healing: their verification compares with unconstrained choices. */
    size_t k = want && rest_len == 0 ? lookup_draft(g->ids, n_hist, want, batch + 1) : 0;
    q_head = 0;
    if (k == 0) {
      rc = engine_push(g->engine, t, cancel, err);
      if (rc) break;
      rc = first_token(g, req, n_vocab, rest, rest_len, &queue[0], err);
      if (rc) return rc;
      stats->first_token = queue[0];
      q_len = 1;
      continue;
    }
    /* Verify [t, d1..dk] in one pass: row j predicts the token after batch[j]; d(j+1) stands
     * while it is that prediction. The verify batch runs in one-token summation order
     * (engine_push_tokens), so the predictions are what one-token decode would make. */
    batch[0] = t;
    size_t before = engine_n_resident(g->engine);
    rc = engine_push_tokens(g->engine, batch, k + 1, cancel, err);
    if (rc) break;
    size_t a = 0;
    for (;;) {
      queue[a] = argmax(engine_logits_at(g->engine, a), n_vocab);
      if (a == k || queue[a] != batch[a + 1]) break;
      a++;
    }
    q_len = a + 1;
    stats->n_drafted += k;
    stats->n_accepted += a;
    engine_truncate(g->engine, before + 1 + a);
  }
  if (rc == 0 && !strcmp(stats->stop, "max_tokens")) {
    int w = detokenizer_flush(&detok, out + n, cap - 1 - n);
    if (w > 0) n += (size_t)w;
  }
  double t2 = aug_now_ms();
  stats->generate_ms = t2 - t1;
  stats->total_ms = t2 - t0;
  if (rc) return rc;
  n = postprocess_finish(&pp, out + skip, n - skip);
  memmove(out, out + skip, n);
  out[n] = '\0';
  *len = n;
  return 0;
}

int generator_explain(struct generator *g, const struct explain_request *req,
                      const atomic_bool *cancel, generator_text_fn on_text, void *user, char *out,
                      size_t cap, size_t *len, struct generation_stats *stats,
                      struct aug_err *err) {
  double t0 = aug_now_ms();
  memset(stats, 0, sizeof *stats);
  stats->first_token = -1;
  *len = 0;
  out[0] = '\0';
  int max_tokens = req->max_tokens > 0 ? req->max_tokens : 1;
  if ((size_t)max_tokens + 64 >= g->n_ctx)
    return aug_err_set(err, AUG_ERANGE,
                       "generate: %d tokens to generate do not fit a context of %zu", max_tokens,
                       g->n_ctx);
  char instruction[256];
  const char *lang = req->language && *req->language ? req->language : "";
  snprintf(instruction, sizeof instruction,
           "Explain what the following %s%scode does, briefly and precisely:\n\n```%s\n", lang,
           *lang ? " " : "", lang);
  size_t n_ids = 0;
  int rc = prompt_build_chat(g->tok, g->chat,
                             "You are an expert programmer. You explain code to a colleague.",
                             instruction, req->code, req->code_len, "\n```", g->ids,
                             g->n_ctx - (size_t)max_tokens, &n_ids, err);
  if (rc) return rc;
  g->n_last_prompt = n_ids;
  struct sampler_params sp = sampler_params_default();
  sp.temperature = req->temperature;
  sp.seed = req->seed;
  struct sampler *sampler = NULL;
  rc = sampler_create(&sp, tokenizer_vocab_size(g->tok), &sampler, err);
  if (rc) return rc;
  struct engine_eval_stats es = {0};
  rc = engine_set_prompt(g->engine, g->ids, n_ids, cancel, &es, err);
  stats->n_prompt = n_ids;
  stats->n_reused = es.n_reused;
  stats->n_evaluated = es.n_evaluated;
  double t1 = aug_now_ms();
  stats->prompt_ms = t1 - t0;
  struct detokenizer detok;
  detokenizer_init(&detok);
  size_t n = 0;
  stats->stop = "max_tokens";
  for (int i = 0; rc == 0 && i < max_tokens; i++) {
    if (cancel && atomic_load(cancel)) {
      rc = aug_err_set(err, AUG_ECANCELED, "generate: explain cancelled after %d tokens", i);
      break;
    }
    int32_t t = sampler_sample(sampler, engine_logits(g->engine));
    sampler_accept(sampler, t);
    if (prompt_chat_is_stop(g->tok, t)) {
      stats->stop = "eog";
      break;
    }
    stats->n_generated++;
    if (cap - 1 - n < 64) {
      stats->stop = "buffer";
      break;
    }
    int w = detokenizer_push(&detok, g->tok, t, false, out + n, cap - 1 - n);
    if (w > 0) {
      if (on_text) on_text(user, out + n, (size_t)w);
      n += (size_t)w;
    }
    if (i + 1 == max_tokens) break;
    rc = engine_push(g->engine, t, cancel, err);
  }
  if (rc == 0) {
    int w = detokenizer_flush(&detok, out + n, cap - 1 - n);
    if (w > 0) {
      if (on_text) on_text(user, out + n, (size_t)w);
      n += (size_t)w;
    }
  }
  sampler_destroy(sampler);
  double t2 = aug_now_ms();
  stats->generate_ms = t2 - t1;
  stats->total_ms = t2 - t0;
  if (rc) return rc;
  while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == '\n'))
    n--;
  out[n] = '\0';
  *len = n;
  return 0;
}
