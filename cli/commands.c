/* The table of subcommands. A command is added here and implemented in cli/cmd_<name>.c. */
#include "cli/commands.h"

#include <string.h>

#define CLI_COMMANDS(X)                                                                            \
  X(info, "info MODEL [--json]                 architecture, tensors, types, sizes")               \
  X(tokenize, "tokenize -m MODEL [--special] [--json] TEXT   token ids")                           \
  X(synth, "synth --like NAME --type TYPE -o OUT  random-weight model with real shapes")           \
  X(generate, "generate -m MODEL -p TEXT [-n N] [--temp T] ...   plain generation, timings")       \
  X(bench, "bench -m MODEL [-p 512] [-n 128] [-t N] [-r R] [--json]   tokens/s like llama-bench")  \
  X(lsp, "lsp [--stdio] [--clientProcessId PID]   serve LSP on stdio")                             \
  X(complete, "complete -m MODEL FILE:LINE:COL   the completion at a cursor, with timings")        \
  X(plan, "plan -m MODEL [--vram SIZE] [--ctx N] [--kv TYPE] [--json]   offload plan, speed")      \
  X(explain, "explain -m MODEL FILE:L1-L2   explain a selection")                                  \
  X(version, "version [--json]                    version, plugin ABI, backends, LSP revision")

#define DECLARE(name, summary) int cli_cmd_##name(int argc, char **argv);
CLI_COMMANDS(DECLARE)
#undef DECLARE

static const struct cli_command commands[] = {
#define ENTRY(name, summary) {#name, summary, cli_cmd_##name},
    CLI_COMMANDS(ENTRY)
#undef ENTRY
};

const struct cli_command *cli_find_command(const char *name) {
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (!strcmp(commands[i].name, name)) return &commands[i];
  return NULL;
}

void cli_usage(FILE *out) {
  fprintf(out, "usage: augury COMMAND [ARGS]\n\ncommands:\n");
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf(out, "  %s\n", commands[i].summary);
}
