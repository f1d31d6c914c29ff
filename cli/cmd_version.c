/* `augury version [--json]` and `augury --version`: what this build is, for people and for the
 * editors that refuse a server older than they need (editors/vscode, :checkhealth augury). The JSON
 * form is a stable object: {"version", "plugin_abi", "backends": [compiled-in backend names],
 * "lsp"}; plugin_abi is null in a build without the plugin host's ABI header. */
#include <stdio.h>

#include <jansson.h>

#include "backends/backend.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "cli/version.h"

/* The plugin host (plugins/augury_plugin.h) is optional for this command: it reports the ABI when
 * the header is part of the tree and null before it exists. */
#if defined(__has_include)
#if __has_include("plugins/augury_plugin.h")
#include "plugins/augury_plugin.h"
#endif
#endif

static void print_line(FILE *out) {
#ifdef AUGURY_GIT_DESCRIBE
  fprintf(out, "augury %s (%s)\n", AUGURY_VERSION, AUGURY_GIT_DESCRIBE);
#else
  fprintf(out, "augury %s\n", AUGURY_VERSION);
#endif
}

int cli_version_print(FILE *out) {
  print_line(out);
  return 0;
}

static json_t *version_json(void) {
  json_t *backends = json_array();
  for (size_t i = 0; backends && i < backend_count(); i++)
    json_array_append_new(backends, json_string(backend_at(i)->name));
#ifdef AUGURY_PLUGIN_ABI_VERSION
  json_t *abi = json_integer(AUGURY_PLUGIN_ABI_VERSION);
#else
  json_t *abi = json_null();
#endif
  return json_pack("{s:s,s:o,s:o,s:s}", "version", AUGURY_VERSION, "plugin_abi", abi, "backends",
                   backends, "lsp", AUGURY_LSP_VERSION);
}

int cli_cmd_version(int argc, char **argv) {
  bool json = false;
  const struct cli_option opts[] = {
      CLI_OPT_FLAG("json", 0, &json,
                   "print {version, plugin_abi, backends, lsp} as one JSON object"),
  };
  const struct cli_args args = {opts, sizeof opts / sizeof opts[0], "version [--json]"};
  struct aug_err err = {0};
  size_t n_pos = 0;
  int rc = cli_args_parse(&args, argc, argv, NULL, 0, &n_pos, &err);
  if (rc == CLI_ARGS_HELP) {
    cli_args_usage(&args, stdout);
    return 0;
  }
  if (rc < 0) return cli_args_fail(&args, &err);
  if (!json) {
    print_line(stdout);
    printf("lsp %s, plugin abi ", AUGURY_LSP_VERSION);
#ifdef AUGURY_PLUGIN_ABI_VERSION
    printf("%d", (int)AUGURY_PLUGIN_ABI_VERSION);
#else
    printf("none");
#endif
    printf(", backends:");
    for (size_t i = 0; i < backend_count(); i++)
      printf(" %s", backend_at(i)->name);
    printf("\n");
    return 0;
  }
  json_t *v = version_json();
  if (!v || json_dumpf(v, stdout, JSON_COMPACT) != 0) {
    json_decref(v);
    fprintf(stderr, "augury version: out of memory\n");
    return 1;
  }
  json_decref(v);
  printf("\n");
  return 0;
}
