/* The local engine as a completion provider behind the plugin ABI: generator_complete (the FIM
 * decode loop of generate.c) on the resident model, with the context pieces the pipeline
 * gathered. Built in: it reads the host's own request (pipeline_call) instead of the ABI's fields,
 * since the engine wants the prompt window, token bounds and budgets the ABI does not carry. */
#include <stdio.h>
#include <string.h>

#include "plugins/pipeline.h"

static int local_supports(void *self, uint32_t capability) {
  return capability == AUGURY_CAP_COMPLETION;
}

static int local_complete(void *self, const struct augury_completion_request *req,
                          struct augury_completion_result *result) {
  const struct pipeline_call *call = req->host_internal;
  if (!call) {
    snprintf(result->error, sizeof result->error, "the local provider is the host's own");
    return AUGURY_PLUGIN_EINVAL;
  }
  if (!call->generator) return aug_err_set(call->err, AUG_ENOTFOUND, "no model is loaded");
  struct completion_request cr = call->req->completion;
  cr.context = req->context;
  cr.n_context = req->n_context;
  int rc = generator_complete(call->generator, &cr, call->cancel, result->text, result->cap,
                              &result->len, call->stats, call->err);
  result->served_by = PIPELINE_LOCAL_PROVIDER;
  return rc;
}

static const struct augury_plugin local_plugin = {
    .abi_version = AUGURY_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(struct augury_plugin),
    .name = PIPELINE_LOCAL_PROVIDER,
    .version = "1",
    .supports = local_supports,
    .complete = local_complete,
};

const struct augury_plugin *provider_local_plugin(void) {
  return &local_plugin;
}
