/* The remote completion provider: a team inference server behind the plugin ABI, spoken to
 * through libcurl. Two APIs: "openai" (POST <url>/v1/completions with the raw FIM prompt our
 * prompt code builds, prompt.h prompt_format_fim_text) and "infill" (POST <url>/infill, llama.cpp's
 * server, which builds the FIM prompt itself from input_prefix / input_suffix / input_extra /
 * prompt). Never enabled without settings. TLS certificates are verified unless the settings say
 * otherwise. The auth token is read from the environment variable the settings name, when the
 * provider is created; it goes into the Authorization header only, never into a message, a log
 * or the prompt log. A request polls the cancel flag every 10 ms while the transfer runs (curl's
 * multi interface), so a cancellation aborts it within that. Calls come from the engine thread;
 * one at a time. */
#ifndef AUGURY_PLUGINS_PROVIDER_REMOTE_H
#define AUGURY_PLUGINS_PROVIDER_REMOTE_H

#include <stdbool.h>

#include <jansson.h>

#include "engine/error.h"
#include "plugins/augury_plugin.h"

#define PROVIDER_REMOTE_NAME "remote"

struct provider_remote; /* opaque */

/* Settings (the "remote" object, all optional but url):
 *   url          "http://127.0.0.1:8080" (the server's base URL)
 *   api          "openai" (default) or "infill"
 *   model        sent as "model" (openai)
 *   authEnv      name of the environment variable holding the bearer token
 *   timeoutMs    whole request (default 10000); connectTimeoutMs (default 2000)
 *   tlsVerify    true (default): verify the certificate and the host name
 *   fim          FIM family of the remote model for openai prompts: "qwen" (default), ...
 *   temperature  default 0
 * getenv_fn reads the environment (getenv in the server; tests pass their own). */
int provider_remote_create(const json_t *settings, char *(*getenv_fn)(const char *),
                           struct provider_remote **out, struct aug_err *err);
void provider_remote_destroy(struct provider_remote *remote); /* NULL is a no-op */

/* The ABI table (self = remote); valid until destroy. */
const struct augury_plugin *provider_remote_plugin(struct provider_remote *remote);

/* "remote /infill http://host:port" (no credentials): what the status shows as served_by. */
const char *provider_remote_description(const struct provider_remote *remote);

#endif
