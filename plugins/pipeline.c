/* The completion pipeline (see pipeline.h): context, provider, clean-up. */
#include "plugins/pipeline.h"

#include <stdio.h>
#include <string.h>

#include "engine/alloc.h"
#include "engine/clock.h"
#include "plugins/postprocess.h"

#define PIPELINE_MAX_PIECES 64

/* The count of text with the model's tokenizer. A failure (out of memory for the encoder's
 * scratch, a text too long to encode) is returned, not turned into a count: the encoder reports
 * 0 tokens then, and a piece counted at 0 would pass any token budget. */
static int count_tokens(void *user, const char *text, size_t len, size_t *n_tokens) {
  struct generator *g = user;
  const struct tokenizer *tok = engine_tokenizer(generator_engine(g));
  struct tokenize_options opts = {0};
  /* Counting only: the ids go nowhere (a zero cap makes the encoder report the count, with
   * AUG_ERANGE when it is not 0). */
  int32_t scratch[1];
  int rc = tokenizer_encode(tok, text, len, opts, scratch, 0, n_tokens, NULL);
  if (rc == AUG_ERANGE && *n_tokens > 0) rc = 0;
  return rc;
}

static int call_cancelled(void *cancel_data) {
  return cancel_data && atomic_load((const atomic_bool *)cancel_data);
}

void pipeline_result_free(struct pipeline_result *res) {
  plugin_context_free(&res->context);
}

/* The answer of a provider other than the local engine: its stats, its error, and our clean-up
 * of its text (the local engine applies the same rules while it decodes). */
static int finish_other(const struct completion_request *cr,
                        struct augury_completion_result *result, int rc, const atomic_bool *cancel,
                        double t0, char *out, size_t cap, size_t *len, struct pipeline_result *res,
                        struct aug_err *err) {
  res->stats.n_prompt = result->tokens_prompt;
  res->stats.n_reused = result->tokens_reused;
  res->stats.n_evaluated = result->tokens_evaluated;
  res->stats.n_generated = result->tokens_generated;
  res->stats.prompt_ms = result->prompt_ms;
  res->stats.total_ms = aug_now_ms() - t0;
  res->stats.generate_ms = res->stats.total_ms - res->stats.prompt_ms;
  res->stats.stop = "provider";
  if (rc == AUGURY_PLUGIN_ECANCELED || (rc && call_cancelled((void *)cancel)))
    return aug_err_set(err, AUG_ECANCELED, "%s: cancelled", res->served_by);
  if (rc) {
    result->error[sizeof result->error - 1] = '\0';
    if (err && err->code == rc && err->msg[0]) return rc; /* a built-in filled err itself */
    return aug_err_set(err, rc, "%s: %s", res->served_by,
                       result->error[0] ? result->error : aug_strerror(rc));
  }
  size_t n = result->len < cap ? result->len : cap - 1;
  size_t lb = cr->prefix_len;
  while (lb > 0 && cr->prefix[lb - 1] != '\n')
    lb--;
  struct postprocess_context pp;
  postprocess_context_init(&pp, cr->prefix + lb, cr->prefix_len - lb, cr->suffix, cr->suffix_len,
                           0);
  n = postprocess_finish(&pp, out, n);
  out[n] = '\0';
  *len = n;
  return 0;
}

/* Cuts out[0..*len) to what keeps the document parsing (syntax_filter.h). The cursor's text is
 * the whole document when the caller gave it, else the window. A check that fails leaves the
 * text as it is: an unchecked suggestion is better than none. */
static void check_syntax(const struct pipeline_request *req, const struct augury_cursor *cursor,
                         char *out, size_t *len, struct pipeline_result *res) {
  struct aug_err err = {0};
  res->syntax_checked = true;
  res->syntax_original_len = *len;
  if (syntax_filter_check(req->syntax, cursor->uri, cursor->language_id, cursor->path, cursor->text,
                          cursor->text_len, cursor->offset, out, *len, &res->syntax, &err)) {
    res->syntax.outcome = SYNTAX_FILTER_SKIPPED;
    res->syntax.reason = "check failed";
    res->syntax.keep = *len;
    return;
  }
  *len = res->syntax.keep;
  out[*len] = '\0';
}

/* An early answer of the local engine (completion_request.on_answer), cut as check_syntax cuts
 * the final one, on its way to the caller's on_answer. */
struct checked_answer {
  const struct pipeline_request *req;
  const struct augury_cursor *cursor;
};

static void answer_checked(void *user, const char *text, size_t len,
                           const struct generation_stats *so_far) {
  const struct checked_answer *ca = user;
  const struct pipeline_request *req = ca->req;
  const struct augury_cursor *c = ca->cursor;
  struct syntax_filter_result sr;
  struct aug_err err = {0};
  if (syntax_filter_check(req->syntax, c->uri, c->language_id, c->path, c->text, c->text_len,
                          c->offset, text, len, &sr, &err) == 0)
    len = sr.keep;
  req->completion.on_answer(req->completion.answer_user, text, len, so_far);
}

int pipeline_complete(struct plugin_host *host, struct generator *g,
                      const struct pipeline_request *req, const atomic_bool *cancel, char *out,
                      size_t cap, size_t *len, struct pipeline_result *res, struct aug_err *err) {
  double t0 = aug_now_ms();
  const struct completion_request *cr = &req->completion;
  *len = 0;
  out[0] = '\0';
  const char *window = cr->prefix;
  size_t window_len = cr->prefix_len + cr->suffix_len;
  /* The cursor the providers see: the whole document when the caller has it. */
  struct augury_cursor cursor = {
      .uri = req->uri ? req->uri : "",
      .path = cr->path ? cr->path : "",
      .language_id = req->language_id ? req->language_id : "",
      .text = req->doc_text ? req->doc_text : window,
      .text_len = req->doc_text ? req->doc_len : window_len,
      .offset = req->doc_text ? req->cursor : cr->prefix_len,
  };
  size_t window_start = cursor.offset - cr->prefix_len;
  for (size_t i = 0; i < cursor.offset; i++)
    cursor.line += cursor.text[i] == '\n';
  if (host && plugin_host_has_context(host))
    plugin_host_gather_context(host, &cursor, window_start, window_start + window_len,
                               g ? count_tokens : NULL, g, &res->context);
  struct augury_context_piece pieces[PIPELINE_MAX_PIECES];
  size_t n_pieces = 0;
  for (size_t i = 0; i < res->context.n_pieces && n_pieces < PIPELINE_MAX_PIECES; i++) {
    const struct plugin_piece *p = &res->context.pieces[i];
    pieces[n_pieces++] = (struct augury_context_piece){p->name, p->text, p->text_len, p->stability};
  }

  const char *name = req->provider && *req->provider ? req->provider : PIPELINE_LOCAL_PROVIDER;
  const struct augury_plugin *provider = host ? plugin_host_completion(host, name) : NULL;
  if (!provider && !strcmp(name, PIPELINE_LOCAL_PROVIDER)) provider = provider_local_plugin();
  if (!provider)
    return aug_err_set(err, AUG_ENOTFOUND, "pipeline: no completion provider '%s' is registered",
                       name);
  memset(&res->stats, 0, sizeof res->stats);
  /* Early answers get the final answer's syntax check. */
  struct pipeline_request checked = *req;
  struct checked_answer ca = {req, &cursor};
  if (req->syntax && req->completion.on_answer) {
    checked.completion.on_answer = answer_checked;
    checked.completion.answer_user = &ca;
  }
  struct pipeline_call call = {&checked, g, cancel, &res->stats, err};
  struct augury_completion_request acr = {
      .struct_size = sizeof acr,
      .cursor = &cursor,
      .window_start = window_start,
      .window_end = window_start + window_len,
      .context = pieces,
      .n_context = n_pieces,
      .max_tokens = cr->max_tokens,
      .time_budget_ms = cr->time_budget_ms,
      .cancelled = call_cancelled,
      .cancel_data = (void *)cancel,
      .host_internal = &call,
  };
  struct augury_completion_result result = {.text = out, .cap = cap};
  int rc = plugin_host_complete(host, provider, &acr, &result);
  res->served_by = result.served_by ? result.served_by : provider->name;
  if (provider == provider_local_plugin()) {
    /* The engine filled the stats and applied the clean-up rules while decoding. */
    *len = result.len;
    if (rc) return rc;
  } else {
    rc = finish_other(cr, &result, rc, cancel, t0, out, cap, len, res, err);
    if (rc) return rc;
  }
  if (req->syntax) check_syntax(req, &cursor, out, len, res);
  return 0;
}
