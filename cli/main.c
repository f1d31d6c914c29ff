/* augury: the command-line entry point. Each subcommand lives in cli/cmd_<name>.c and is listed in
 * cli/commands.h; main only dispatches and turns return codes into exit statuses. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"

int main(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
    cli_usage(stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) return cli_version_print(stdout);
  const struct cli_command *cmd = cli_find_command(argv[1]);
  if (!cmd) {
    fprintf(stderr, "augury: unknown command '%s'\n\n", argv[1]);
    cli_usage(stderr);
    return 2;
  }
  return cmd->run(argc - 1, argv + 1);
}
