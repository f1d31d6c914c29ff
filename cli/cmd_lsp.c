/* augury lsp: serves the Language Server Protocol on stdin/stdout (--stdio is accepted for clients
 * that always pass it). --clientProcessId makes the server exit when that process dies. */
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "cli/args.h"
#include "lsp/server.h"

int cli_cmd_lsp(int argc, char **argv) {
  bool stdio = false;
  int64_t client_pid = 0;
  const struct cli_option opts[] = {
      CLI_OPT_FLAG("stdio", 0, &stdio, "talk LSP on stdin/stdout (the default and only transport)"),
      CLI_OPT_INT("clientProcessId", 0, &client_pid, "PID", "exit when this process dies", 0,
                  INT32_MAX),
  };
  const struct cli_args args = {opts, sizeof opts / sizeof opts[0],
                                "lsp [--stdio] [--clientProcessId PID]"};
  struct aug_err err = {0};
  size_t n_pos = 0;
  int rc = cli_args_parse(&args, argc, argv, NULL, 0, &n_pos, &err);
  if (rc == CLI_ARGS_HELP) {
    cli_args_usage(&args, stdout);
    return 0;
  }
  if (rc < 0) return cli_args_fail(&args, &err);
  /* A client that closes its end must not kill us with SIGPIPE: writes fail with EPIPE instead and
   * the server ends cleanly. */
  signal(SIGPIPE, SIG_IGN);
  struct server_options so = server_options_default();
  so.in_fd = STDIN_FILENO;
  so.out_fd = STDOUT_FILENO;
  so.client_pid = client_pid;
  rc = server_run(&so, &err);
  if (rc < 0) {
    fprintf(stderr, "augury lsp: %s\n", err.msg);
    return 1;
  }
  return rc;
}
