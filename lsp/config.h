/* Server settings: defaults, then $XDG_CONFIG_HOME/augury/config.json, then initializationOptions,
 * then workspace/didChangeConfiguration (each layer overrides the fields it names). Settings are a
 * JSON object, flat or under an "augury" key; unknown keys and wrong types produce a warning and
 * are ignored, never an error. Also finds the model file (DESIGN.md "Models": settings,
 * AUGURY_MODEL, the config file, the Hugging Face cache layout, then scripts/get-model's default
 * location). Loop thread (copied into jobs where the engine thread needs values). */
#ifndef AUGURY_LSP_CONFIG_H
#define AUGURY_LSP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "engine/error.h"

#define CONFIG_DEFAULT_MODEL_NAME "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
/* Moved runs of at least this many tokens keep their K/V (chunkReuse; an approximation whose
 * latency and quality figures are in tests/bench/latency/results). */
#define CONFIG_DEFAULT_CHUNK_REUSE 32
/* freshSuffixTokens. A suffix moved whole after Enter still describes the gap before the typed
   line, and the model writes a line already typed: on the latency bench (74 pauses, 1.5B, 2
   threads) the suggestions served from a moved suffix hit once in 17 pauses. Hits of the whole
   run, one run each: moved 19, whole suffix evaluated again 23 (p50 470 against 244 ms), first
   32 tokens 22 (361 ms), first 16 23 (352 ms); figures in
   tests/bench/latency/results/2026-12-07f-1.5b-t2.txt. 32: the two lines below the cursor. */
#define CONFIG_DEFAULT_FRESH_SUFFIX_TOKENS 32
/* Host-RAM prompt cache (promptCacheMiB): ~9000 tokens of the 1.5B model's f16 KV. */
#define CONFIG_DEFAULT_PROMPT_CACHE_MIB 256
/* Prompt-lookup draft tokens per verification (promptLookup; exact, see generate.h). Off by
 * default: on a 2-core CPU a verify batch of 9 costs ~4 one-token steps, so drafts lose when few
 * are accepted (1.14x faster over 6 cursors of real code, but 1.9x slower on one that accepted
 * 1 of 40: tests/bench/latency/results/2026-12-02-lookup.txt). Where batches are nearly free (a
 * GPU), 8 is the setting to try. */
#define CONFIG_DEFAULT_PROMPT_LOOKUP 0
/* speculationWaitMs: how long a request waits for a speculation still evaluating its prompt while
 * the speculation's prompt plan is not known (completion_request.on_prompt_plan: no cost per token
 * measured yet); once it is, the request leaves exactly when its own job is expected to be sooner.
 * 0 waits however long it takes. On the latency bench (both sessions, 74 pauses, 1.5B, 2 threads,
 * quiet machine, 2026-12-04, tests/bench/latency/results): 750 against 0, p95 3463 against 6056
 * ms and hits 20 against 17, p50 954 against 786 ms; the tail it cuts is the pause after a jump,
 * spent waiting for a speculation evaluating a whole new window (13.6 s -> 3.7 s). */
#define CONFIG_DEFAULT_SPECULATION_WAIT_MS 750
/* Suggestions an explicit invocation (triggerKind 1) is answered with at most (alternatives). */
#define CONFIG_MAX_ALTERNATIVES 3
/* Prompt evaluation budget of an editor's request (promptBudgetMs); speculation has none. */
#define CONFIG_DEFAULT_PROMPT_BUDGET_MS 750

struct config {
  char *model_path;      /* from settings (owned; NULL = not set) */
  char *file_model_path; /* from the config file (owned; NULL = not set) */
  int64_t n_threads;     /* 0 = the engine's choice */
  int64_t n_ctx;         /* 0 = the engine's choice */
  int64_t max_tokens;    /* completion token budget */
  double time_budget_ms; /* completion time budget from the request's start, applied once a line is
                            done */
  /* The same for typing-triggered (Automatic) requests: short, as llama.vim's 250 ms, so ghost
   * text comes with its first line; the lines after it come from the speculation on the state
   * after accepting it (explicit invocations and speculations keep time_budget_ms; a speculation
   * that such a request adopts answers it at its first complete line and goes on writing). */
  double typing_time_budget_ms;
  int64_t debounce_ms;  /* delay before serving a typing-triggered (Automatic) request */
  int64_t load_wait_ms; /* how long a completion asked during the model load waits for it */
  int64_t prefix_lines, suffix_lines;   /* window bounds in lines */
  int64_t prefix_tokens, suffix_tokens; /* window bounds in tokens */
  int64_t explain_max_tokens;
  double explain_temperature;
  bool enable;                /* master switch */
  bool cursor_line_in_middle; /* FIM layout: the cursor's line after <|fim_middle|> (generate.h) */
  bool speculate; /* complete ahead: after edits and for the state after accepting a suggestion */
  /* Up to this many suggestions, with different first tokens, for an explicit invocation
   * (alternatives, 1 = off): the first is answered as before; the others are computed in idle time
   * and come with the next explicit request at that state (an editor cycling through them). */
  int64_t alternatives;
  bool completion_cache; /* answer repeated and typed-through states from earlier answers */
  /* Cut each answer to what keeps the document parsing, drop it when nothing does
   * (plugins/syntax_filter.h; syntaxCheck, default on) */
  bool syntax_check;
  /* The built-in tree-sitter context (imports, enclosing scopes, definitions of the names near
   * the cursor; plugins/context_syntax.h): syntaxContext, default on */
  bool syntax_context;
  /* The cross-file definitions index of the workspace root, which gives the syntax context the
   * definitions of names from other files (plugins/workspace_index.h): workspaceIndex, default
   * on; workspaceIndexMiB bounds its memory (default 64) */
  bool workspace_index;
  int64_t workspace_index_mib;
  /* The ring of recently edited and viewed chunks (plugins/context_ring.h): ringChunks chunks
   * (default 0 = off, 16 turns it on) of ringChunkLines lines (default 64) */
  int64_t ring_chunks;
  int64_t ring_chunk_lines;
  int64_t chunk_reuse; /* engine_params.reuse_min_chunk: shortest moved run in tokens; 0 = off */
  /* engine_params.reuse_fresh_suffix (freshSuffixTokens): tokens from the FIM suffix marker on
   * that are evaluated again, not moved, when a line typed before the cursor moved them; at
   * least the suffix's length = all of it, 0 = moved like the rest */
  int64_t fresh_suffix_tokens;
  int64_t prompt_cache_mib; /* engine_params.prompt_cache_bytes in MiB; 0 = off */
  int32_t gpu_layers;       /* engine_params.gpu_layers (gpuLayers: N, "all", "auto"); 0 = CPU */
  char *gpu_options;        /* engine_params.gpu_options (gpuOptions: "device=1"), or NULL */
  int32_t kv_type; /* engine_params.kv_type, an enum engine_kv_type (kvCacheType: "f16" (default),
                      "q8_0", "q4_0") */
  bool mlock; /* engine_params.mlock (mlock, default off): a refusal is a warning to the editor */
  /* How long a request waits for a speculation of its state that is still evaluating its prompt
   * before cancelling it and running a job of its own under promptBudgetMs (speculationWaitMs,
   * default CONFIG_DEFAULT_SPECULATION_WAIT_MS); 0 = as long as it takes. */
  double speculation_wait_ms;
  /* A speculation started by an edit works under promptBudgetMs as the editor's request would
   * (speculationPromptBudget, default off): after a jump it evaluates the window cut to the budget,
   * near the cursor, first, and grows the whole window back once that is resident
   * (completion_request.grow_when_cut_resident), instead of evaluating the whole window from its
   * far end. Latency bench (74 pauses, 1.5B, 2 threads, 2026-12-07, one machine, two runs each):
   * on, p50 285 and 303 ms, p95 1489 and 1453 ms, hits 16 and 17; off, p50 236 and 178 ms, p95
   * 2161 and 1959 ms, hits 20 and 20. It cuts the pauses typed for seconds after a jump (1.8-2.7 s
   * -> 0.65-0.82 s) but answers more pauses from the cut window, so it is off; where the worst
   * pause matters more than hits, it is the setting to try. */
  bool speculation_prompt_budget;
  int64_t prompt_lookup;   /* completion_request.draft_max: prompt-lookup draft tokens; 0 = off */
  double prompt_budget_ms; /* completion_request.prompt_budget_ms for requests; 0 = none */
  char *prompt_log;        /* benchmarks: append each completion prompt as a JSON line (owned) */
  json_t *languages;       /* owned object: languageId -> bool; "*" is the default */
  /* Plugins (plugins/README.md), read once at initialize: */
  json_t *plugins;              /* owned array: library paths, or {"command": [argv...]} children */
  double plugin_budget_ms;      /* time all context providers of one request share */
  int64_t context_tokens;       /* tokens all their pieces share */
  int64_t plugin_failure_limit; /* failures in a row that disable a plugin */
  char *provider; /* completion provider: NULL or "local", "remote", a plugin (owned) */
  json_t *remote; /* owned object: the remote provider's settings, or NULL */
};

/* Process environment the lookups read; config_env_from_process fills it with getenv values. */
struct config_env {
  const char *augury_model;    /* AUGURY_MODEL */
  const char *xdg_config_home; /* XDG_CONFIG_HOME */
  const char *home;            /* HOME */
  const char *llama_cache;     /* LLAMA_CACHE */
  const char *hf_hub_cache;    /* HF_HUB_CACHE */
  const char *hf_home;         /* HF_HOME */
};
struct config_env config_env_from_process(void);

/* Fills defaults (max_tokens 128, time budget 1500 ms, debounce 40 ms, prefix 120 lines / 1536
 * tokens, suffix 24 lines / 128 tokens, chunk reuse and prompt cache as defined above, explain
 * 384 tokens at temperature 0.2, enabled, syntax check on). */
int config_init(struct config *cfg, struct aug_err *err);
void config_free(struct config *cfg);

typedef void (*config_warn_fn)(void *user, const char *message);

/* Applies a settings object. source names the layer in warnings ("initializationOptions"). When
 * from_file is set a "model" key goes to file_model_path. Returns the number of warnings given. */
int config_apply_json(struct config *cfg, const json_t *settings, const char *source,
                      bool from_file, config_warn_fn warn, void *user);

/* Reads $XDG_CONFIG_HOME/augury/config.json (or $HOME/.config/...) when it exists. A file that
 * does not parse is a warning. Returns the number of warnings. */
int config_load_file(struct config *cfg, const struct config_env *env, config_warn_fn warn,
                     void *user);

/* Whether completions are enabled for a languageId. */
bool config_language_enabled(const struct config *cfg, const char *language_id);

/* Finds the model file in the documented order; writes the path and which rule found it
 * ("settings", "AUGURY_MODEL", "config file", "Hugging Face cache", "augury cache").
 * AUG_ENOTFOUND lists where it looked. */
int config_find_model(const struct config *cfg, const struct config_env *env, char *path,
                      size_t cap, const char **found_by, struct aug_err *err);

#endif
