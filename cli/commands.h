/* The augury subcommands. Each run function gets argv starting at the command name and returns the
 * process exit status: 0 success, 1 failure (message printed), 2 usage error (usage printed). */
#ifndef AUGURY_CLI_COMMANDS_H
#define AUGURY_CLI_COMMANDS_H

#include <stdio.h>

struct cli_command {
  const char *name;
  const char *summary;
  int (*run)(int argc, char **argv);
};

const struct cli_command *cli_find_command(const char *name);
void cli_usage(FILE *out);
/* The one-line version (`augury --version`), from cli/version.h; returns 0. */
int cli_version_print(FILE *out);

#endif
