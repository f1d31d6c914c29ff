/* The Augury language server: JSON-RPC over a pair of file descriptors (stdin/stdout for
 * `augury lsp`), LSP 3.18 lifecycle, documents, inline completion, explain and status commands,
 * with all model work on the engine thread (engine/scheduler.h). server_run owns a libuv loop and
 * returns when the client sends exit, closes its end, or its process dies. */
#ifndef AUGURY_LSP_SERVER_H
#define AUGURY_LSP_SERVER_H

#include <stdint.h>

#include "engine/error.h"

struct server_options {
  int in_fd;           /* 0 for stdio */
  int out_fd;          /* 1 for stdio */
  int64_t client_pid;  /* --clientProcessId; 0 = none (initialize.processId may set it) */
  int parent_check_ms; /* how often the parent is checked; 0 = 1000 */
};

struct server_options server_options_default(void);

/* Serves until exit; returns the process exit status (LSP 3.18 "exit": 0 when shutdown was
 * received first, else 1). Library code: errors setting up the loop come back as a negative code
 * with err filled; nothing is printed. */
int server_run(const struct server_options *options, struct aug_err *err);

#endif
