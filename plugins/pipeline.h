/* The completion pipeline, run on the engine thread for each completion: the context providers of
 * the plugin host (plugins/host.h) gather pieces under their budget, the configured completion
 * provider (the local engine, the remote server, or a plugin's) is called through the plugin ABI
 * with them, and the host's clean-up rules (plugins/postprocess.h) are applied to what a provider
 * other than the local engine returns (the local engine applies them while it decodes). Then,
 * whichever provider answered, the text is trimmed to what keeps the document parsing
 * (plugins/syntax_filter.h) when the request carries a filter. lsp/ fills the request from its
 * editor state and turns the result into a reply. */
#ifndef AUGURY_PLUGINS_PIPELINE_H
#define AUGURY_PLUGINS_PIPELINE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "engine/error.h"
#include "plugins/augury_plugin.h"
#include "plugins/generate.h"
#include "plugins/host.h"
#include "plugins/syntax_filter.h"

/* The name the local engine's provider is registered under (the default provider). */
#define PIPELINE_LOCAL_PROVIDER "local"

struct pipeline_request {
  /* The prompt window and the bounds and budgets (generate.h); prefix and suffix point into the
   * window, which must be the bytes around cursor in doc_text when doc_text is set. */
  struct completion_request completion;
  const char *uri, *language_id; /* may be NULL */
  /* (optional) The whole document, for context providers; NULL gives them the window only. */
  const char *doc_text;
  size_t doc_len;
  size_t cursor;        /* the cursor's byte offset in doc_text */
  const char *provider; /* a registered completion provider; NULL = PIPELINE_LOCAL_PROVIDER */
  /* (optional) The syntax check of the answer: long-lived, owned by the caller, used on the
   * calling (engine) thread only; NULL: no check. It checks against doc_text when set, else
   * against the window. */
  struct syntax_filter *syntax;
};

struct pipeline_result {
  struct generation_stats stats;
  const char *served_by;         /* "local", "remote /infill http://...", a plugin's name */
  struct plugin_context context; /* the pieces given to the provider, and what went wrong */
  /* The syntax check (req->syntax set and the provider answered): what it decided, how much of
   * the provider's text it kept (the text returned is already cut to that), and its cost. A
   * check that failed (out of memory, no tree) leaves the text as it was: SKIPPED, reason
   * "check failed". */
  bool syntax_checked;
  struct syntax_filter_result syntax;
  size_t syntax_original_len; /* the provider's text before the cut */
};

/* Completes req: out[0..*len) gets the text (NUL-terminated). g may be NULL (no local model): then
 * only another provider can answer. res must be zeroed by the caller and freed with
 * pipeline_result_free, also after a failure (its context notes say what the plugins did).
 * AUG_ECANCELED when cancel was raised. */
int pipeline_complete(struct plugin_host *host, struct generator *g,
                      const struct pipeline_request *req, const atomic_bool *cancel, char *out,
                      size_t cap, size_t *len, struct pipeline_result *res, struct aug_err *err);
void pipeline_result_free(struct pipeline_result *res);

/* What the built-in providers find in augury_completion_request.host_internal. */
struct pipeline_call {
  const struct pipeline_request *req;
  struct generator *generator; /* NULL without a local model */
  const atomic_bool *cancel;
  struct generation_stats *stats;
  struct aug_err *err;
};

/* The local engine as a completion provider (built in; registered by the server). */
const struct augury_plugin *provider_local_plugin(void);

#endif
