/* The Augury plugin ABI: what a plugin (a shared library loaded with dlopen, or a built-in
 * provider compiled into libaugury) exports and what the host lends it. Plain C, no Augury
 * headers, so a plugin builds against this one file. Every table starts with abi_version and
 * struct_size and only ever grows at its end (SQLite's iVersion, ggml's api_version): a host reads
 * a slot only when struct_size covers it. A plugin built for another AUGURY_PLUGIN_ABI_VERSION is
 * refused at load with both versions in the message. Strings are UTF-8; lengths are in bytes. */
#ifndef AUGURY_PLUGIN_H
#define AUGURY_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped on any change that is not an addition at the end of a table. */
#define AUGURY_PLUGIN_ABI_VERSION 1

/* The one symbol a plugin library exports (see augury_plugin_entry_fn). */
#define AUGURY_PLUGIN_ENTRY "augury_plugin_entry"

/* Return codes of plugin functions: 0 or a negative value (the host's AUG_E* codes match). */
enum augury_plugin_status {
  AUGURY_PLUGIN_OK = 0,
  AUGURY_PLUGIN_EINVAL = -1,
  AUGURY_PLUGIN_ENOMEM = -2,
  AUGURY_PLUGIN_EIO = -3,
  AUGURY_PLUGIN_ERANGE = -5, /* a budget is spent */
  AUGURY_PLUGIN_EUNSUPPORTED = -6,
  AUGURY_PLUGIN_ENOTFOUND = -7,
  AUGURY_PLUGIN_ECANCELED = -8,
  AUGURY_PLUGIN_ETIMEOUT = -9,
};

/* Capabilities, answered by augury_plugin.supports (a plugin may offer several). */
enum augury_plugin_capability {
  AUGURY_CAP_CONTEXT = 1,    /* context_provide: pieces of prompt context */
  AUGURY_CAP_COMPLETION = 2, /* complete: the text to insert at a cursor */
  AUGURY_CAP_COMMAND = 3,    /* command_execute: workspace/executeCommand for its commands */
};

/* What the host lends a plugin for its lifetime (borrowed: valid until destroy returns). */
struct augury_host {
  uint32_t abi_version; /* the host's AUGURY_PLUGIN_ABI_VERSION */
  uint32_t struct_size; /* sizeof(struct augury_host) as the host built it */
  void *host_data;      /* the host's; pass it back to the functions below */
  /* Writes a line to the editor's log (level 1 error .. 4 debug). Any thread. */
  void (*log)(void *host_data, int level, const char *message);
  /* Tokens text[0..len) takes with the loaded model's tokenizer, or an estimate (bytes / 3) when
   * no model is loaded. Only inside a provider call (the thread the call runs on). */
  size_t (*count_tokens)(void *host_data, const char *text, size_t len);
};

/* The cursor a request is about (everything borrowed for the duration of the call). */
struct augury_cursor {
  const char *uri;         /* file:///... as the editor sent it */
  const char *path;        /* the file's path relative to the workspace, or its name; may be "" */
  const char *language_id; /* LSP languageId, may be "" */
  const char *text;        /* the whole document */
  size_t text_len;
  size_t offset; /* the cursor's byte offset in text */
  uint32_t line; /* 0-based line of the cursor */
};

/* Context providers (the tree-sitter providers of issue 11 have this shape). */

/* How stable a piece is, so the prompt puts the most stable first and the KV cache keeps it
 * across keystrokes (DESIGN.md "One completion", step 4). */
enum augury_context_stability {
  AUGURY_STABLE_PROJECT = 0, /* changes rarely: definitions in other files, imports */
  AUGURY_STABLE_FILE = 1,    /* changes with edits elsewhere in this file: enclosing scopes */
  AUGURY_STABLE_RECENT = 2,  /* changes often: recently edited or viewed chunks */
};

struct augury_context_request {
  uint32_t struct_size; /* sizeof as the host built it */
  const struct augury_cursor *cursor;
  /* Byte range of the document that the prompt already holds (the prefix and suffix windows):
   * context from inside it is wasted. */
  size_t window_start, window_end;
  size_t token_budget;   /* tokens all pieces of this provider together may take */
  double time_budget_ms; /* the call must return within this; past it the host goes on without
                            it and reports the overrun */
};

struct augury_context_piece {
  const char *name; /* a file path shown before the text (<|file_sep|>name\n), or NULL */
  const char *text;
  size_t text_len;
  uint32_t stability; /* enum augury_context_stability */
};

/* Where a provider puts its pieces. add copies the piece (the plugin keeps ownership of its
 * strings) and returns 0, or AUGURY_PLUGIN_ERANGE when the provider's token budget is spent (the
 * piece is then dropped). Only during the context_provide call, on its thread. */
struct augury_context_sink {
  void *sink_data;
  int (*add)(void *sink_data, const struct augury_context_piece *piece);
};

/* Completion providers (the local engine, a remote server, a plugin's own). */

struct augury_completion_request {
  uint32_t struct_size;
  const struct augury_cursor *cursor;
  /* The prompt window: text[window_start..offset) before the cursor, text[offset..window_end)
   * after it. */
  size_t window_start, window_end;
  const struct augury_context_piece *context; /* pieces gathered for this request (borrowed) */
  size_t n_context;
  int max_tokens;
  double time_budget_ms; /* generation budget, counted from the first newline */
  /* Non-zero once the request is cancelled or outdated: poll it at least every 50 ms and return
   * AUGURY_PLUGIN_ECANCELED (any thread may call it). */
  int (*cancelled)(void *cancel_data);
  void *cancel_data;
  /* The host's own description of the request, for the built-in providers compiled into the host
   * (plugins ignore it; its layout is not part of the ABI). */
  const void *host_internal;
};

struct augury_completion_result {
  char *text; /* host-owned buffer of cap bytes: the plugin writes the text to insert, NUL-ended */
  size_t cap;
  size_t len;                 /* out: bytes written */
  const char *served_by;      /* out: static string naming who answered ("local", "remote ...") */
  uint64_t tokens_prompt;     /* out (optional): prompt tokens */
  uint64_t tokens_reused;     /* out (optional): of which were cached */
  uint64_t tokens_evaluated;  /* out (optional): of which were evaluated now */
  uint64_t tokens_generated;  /* out (optional) */
  double prompt_ms, total_ms; /* out (optional) */
  char error[256];            /* out: on a negative return, why (never a secret such as a token) */
};

/* Commands: workspace/executeCommand for the names a plugin lists. */
struct augury_command_result {
  char *json; /* out: the result as JSON text, malloc'ed by the plugin, freed by the host with
                 free_json; NULL for a null result */
  char error[256];
};

/* One plugin: a table the plugin owns. Slots marked (optional) may be NULL; the host checks
 * supports() before calling a capability's slots. */
struct augury_plugin {
  uint32_t abi_version; /* AUGURY_PLUGIN_ABI_VERSION the plugin was built with */
  uint32_t struct_size; /* sizeof(struct augury_plugin) as the plugin built it */
  const char *name;     /* short, unique: "example-context" (static string) */
  const char *version;  /* the plugin's own version (static string) */
  void *self;           /* the plugin's state, passed to every slot */

  /* Whether the plugin offers a capability (enum augury_plugin_capability): 1 yes, 0 no. */
  int (*supports)(void *self, uint32_t capability);
  /* (optional) Called once after load, before any other slot; host is borrowed until destroy. A
   * negative return refuses the load (write why to error[0..256)). */
  int (*init)(void *self, const struct augury_host *host, char *error);
  /* (optional) Called once before unload; frees what init and the plugin allocated. */
  void (*destroy)(void *self);

  /* AUGURY_CAP_CONTEXT: adds pieces for req through sink. Runs on a host worker thread, never
   * two calls at once for one plugin. A negative return counts as a failure (error[0..256)). */
  int (*context_provide)(void *self, const struct augury_context_request *req,
                         const struct augury_context_sink *sink, char *error);

  /* AUGURY_CAP_COMPLETION: fills result for req; the text is inserted at the cursor as is
   * (the host still applies its clean-up rules). */
  int (*complete)(void *self, const struct augury_completion_request *req,
                  struct augury_completion_result *result);

  /* AUGURY_CAP_COMMAND: NULL-terminated list of command names (static strings, e.g.
   * "example.hello"). */
  const char *const *(*command_names)(void *self);
  /* AUGURY_CAP_COMMAND: runs command name with arguments_json (a JSON array as text, borrowed). */
  int (*command_execute)(void *self, const char *name, const char *arguments_json,
                         struct augury_command_result *result);
  /* AUGURY_CAP_COMMAND (optional): frees a result's json; NULL means free(). */
  void (*free_json)(void *self, char *json);
};

/* The entry point: returns the plugin's table (owned by the plugin, valid until its destroy), or
 * NULL to refuse. host_abi_version lets a plugin that supports several ABIs pick one. */
typedef const struct augury_plugin *(*augury_plugin_entry_fn)(uint32_t host_abi_version);

#ifdef __cplusplus
}
#endif

#endif
