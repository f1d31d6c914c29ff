/* Settings layers and model lookup (see config.h). The settings table below is the one place that
 * names every key, its type and its bounds. */
#include "lsp/config.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "engine/alloc.h"
#include "engine/engine.h"

enum setting_kind {
  SETTING_INT,
  SETTING_DOUBLE,
  SETTING_BOOL,
  SETTING_STRING,
  SETTING_LANGS,
  SETTING_GPU_LAYERS,
  SETTING_KV_TYPE,
  SETTING_JSON_ARRAY,
  SETTING_JSON_OBJECT,
};

struct setting {
  const char *key;
  enum setting_kind kind;
  size_t offset;
  double min, max;
};

#define FIELD(f) offsetof(struct config, f)
static const struct setting settings_table[] = {
    {"model", SETTING_STRING, FIELD(model_path), 0, 0},
    {"threads", SETTING_INT, FIELD(n_threads), 0, 1024},
    {"contextSize", SETTING_INT, FIELD(n_ctx), 0, 1 << 20},
    {"maxTokens", SETTING_INT, FIELD(max_tokens), 1, 4096},
    {"timeBudgetMs", SETTING_DOUBLE, FIELD(time_budget_ms), 0, 600000},
    {"typingTimeBudgetMs", SETTING_DOUBLE, FIELD(typing_time_budget_ms), 0, 600000},
    {"debounceMs", SETTING_INT, FIELD(debounce_ms), 0, 10000},
    {"loadWaitMs", SETTING_INT, FIELD(load_wait_ms), 0, 600000},
    {"prefixLines", SETTING_INT, FIELD(prefix_lines), 1, 100000},
    {"suffixLines", SETTING_INT, FIELD(suffix_lines), 0, 100000},
    {"prefixTokens", SETTING_INT, FIELD(prefix_tokens), 16, 1 << 20},
    {"suffixTokens", SETTING_INT, FIELD(suffix_tokens), 0, 1 << 20},
    {"explainMaxTokens", SETTING_INT, FIELD(explain_max_tokens), 1, 8192},
    {"explainTemperature", SETTING_DOUBLE, FIELD(explain_temperature), 0, 2},
    {"enable", SETTING_BOOL, FIELD(enable), 0, 0},
    {"cursorLineInMiddle", SETTING_BOOL, FIELD(cursor_line_in_middle), 0, 0},
    {"speculate", SETTING_BOOL, FIELD(speculate), 0, 0},
    {"completionCache", SETTING_BOOL, FIELD(completion_cache), 0, 0},
    {"syntaxCheck", SETTING_BOOL, FIELD(syntax_check), 0, 0},
    {"syntaxContext", SETTING_BOOL, FIELD(syntax_context), 0, 0},
    {"workspaceIndex", SETTING_BOOL, FIELD(workspace_index), 0, 0},
    {"workspaceIndexMiB", SETTING_INT, FIELD(workspace_index_mib), 1, 1 << 14},
    {"ringChunks", SETTING_INT, FIELD(ring_chunks), 0, 1024},
    {"ringChunkLines", SETTING_INT, FIELD(ring_chunk_lines), 2, 4096},
    {"chunkReuse", SETTING_INT, FIELD(chunk_reuse), 0, 4096},
    {"freshSuffixTokens", SETTING_INT, FIELD(fresh_suffix_tokens), 0, 1 << 20},
    {"promptCacheMiB", SETTING_INT, FIELD(prompt_cache_mib), 0, 1 << 20},
    {"promptLookup", SETTING_INT, FIELD(prompt_lookup), 0, 15},
    {"promptBudgetMs", SETTING_DOUBLE, FIELD(prompt_budget_ms), 0, 600000},
    {"gpuLayers", SETTING_GPU_LAYERS, FIELD(gpu_layers), 0, 0},
    {"gpuOptions", SETTING_STRING, FIELD(gpu_options), 0, 0},
    {"kvCacheType", SETTING_KV_TYPE, FIELD(kv_type), 0, 0},
    {"mlock", SETTING_BOOL, FIELD(mlock), 0, 0},
    {"speculationWaitMs", SETTING_DOUBLE, FIELD(speculation_wait_ms), 0, 600000},
    {"speculationPromptBudget", SETTING_BOOL, FIELD(speculation_prompt_budget), 0, 0},
    {"alternatives", SETTING_INT, FIELD(alternatives), 1, CONFIG_MAX_ALTERNATIVES},
    {"languages", SETTING_LANGS, FIELD(languages), 0, 0},
    {"promptLog", SETTING_STRING, FIELD(prompt_log), 0, 0},
    {"plugins", SETTING_JSON_ARRAY, FIELD(plugins), 0, 0},
    {"pluginBudgetMs", SETTING_DOUBLE, FIELD(plugin_budget_ms), 1, 60000},
    {"contextTokens", SETTING_INT, FIELD(context_tokens), 0, 1 << 16},
    {"pluginFailureLimit", SETTING_INT, FIELD(plugin_failure_limit), 1, 1000},
    {"provider", SETTING_STRING, FIELD(provider), 0, 0},
    {"remote", SETTING_JSON_OBJECT, FIELD(remote), 0, 0},
};
#undef FIELD

struct config_env config_env_from_process(void) {
  struct config_env env = {
      getenv("AUGURY_MODEL"), getenv("XDG_CONFIG_HOME"), getenv("HOME"),
      getenv("LLAMA_CACHE"),  getenv("HF_HUB_CACHE"),    getenv("HF_HOME"),
  };
  return env;
}

int config_init(struct config *cfg, struct aug_err *err) {
  memset(cfg, 0, sizeof *cfg);
  cfg->max_tokens = 128;
  cfg->time_budget_ms = 1500;
  cfg->typing_time_budget_ms = 250;
  cfg->debounce_ms = 40;
  cfg->load_wait_ms = 30000;
  cfg->prefix_lines = 120;
  cfg->suffix_lines = 24;
  cfg->prefix_tokens = 1536;
  cfg->suffix_tokens = 128;
  cfg->explain_max_tokens = 384;
  cfg->explain_temperature = 0.2;
  cfg->enable = true;
  cfg->cursor_line_in_middle = true;
  cfg->speculate = true;
  cfg->speculation_wait_ms = CONFIG_DEFAULT_SPECULATION_WAIT_MS;
  cfg->speculation_prompt_budget = false; /* see config.h: fewer hits on the latency bench */
  cfg->alternatives = CONFIG_MAX_ALTERNATIVES;
  cfg->completion_cache = true;
  cfg->syntax_check = true;
  cfg->syntax_context = true;
  cfg->workspace_index = true;
  cfg->workspace_index_mib = 64;
  cfg->ring_chunks = 0; /* off: see plugins/README.md, the ring's cost on the latency bench */
  cfg->ring_chunk_lines = 64;
  cfg->chunk_reuse = CONFIG_DEFAULT_CHUNK_REUSE;
  cfg->fresh_suffix_tokens = CONFIG_DEFAULT_FRESH_SUFFIX_TOKENS;
  cfg->prompt_cache_mib = CONFIG_DEFAULT_PROMPT_CACHE_MIB;
  cfg->prompt_lookup = CONFIG_DEFAULT_PROMPT_LOOKUP;
  cfg->prompt_budget_ms = CONFIG_DEFAULT_PROMPT_BUDGET_MS;
  cfg->plugin_budget_ms = 50;
  cfg->context_tokens = 512;
  cfg->plugin_failure_limit = 3;
  cfg->languages = json_object();
  if (!cfg->languages) return aug_err_set(err, AUG_ENOMEM, "config: out of memory");
  return 0;
}

void config_free(struct config *cfg) {
  aug_free(cfg->model_path);
  aug_free(cfg->file_model_path);
  aug_free(cfg->prompt_log);
  aug_free(cfg->gpu_options);
  aug_free(cfg->provider);
  json_decref(cfg->languages);
  json_decref(cfg->plugins);
  json_decref(cfg->remote);
  memset(cfg, 0, sizeof *cfg);
}

static void warnf(config_warn_fn warn, void *user, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void warnf(config_warn_fn warn, void *user, const char *fmt, ...) {
  if (!warn) return;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  warn(user, msg);
}

/* A short rendering of a JSON value for warnings. */
static void describe(const json_t *v, char *buf, size_t cap) {
  size_t n = json_dumpb(v, buf, cap - 1, JSON_COMPACT | JSON_ENCODE_ANY);
  if (n >= cap - 1) {
    n = cap - 4;
    memcpy(buf + n, "...", 3);
    n += 3;
  }
  buf[n] = '\0';
}

int config_apply_json(struct config *cfg, const json_t *settings, const char *source,
                      bool from_file, config_warn_fn warn, void *user) {
  int warnings = 0;
  if (!settings || json_is_null(settings)) return 0;
  if (!json_is_object(settings)) {
    warnf(warn, user, "augury: %s: settings must be an object (ignored)", source);
    return 1;
  }
  json_t *nested = json_object_get(settings, "augury");
  if (json_is_object(nested)) settings = nested;
  const char *key;
  json_t *value;
  json_object_foreach((json_t *)settings, key, value) {
    const struct setting *s = NULL;
    for (size_t i = 0; i < sizeof settings_table / sizeof settings_table[0]; i++)
      if (!strcmp(settings_table[i].key, key)) s = &settings_table[i];
    if (!s) {
      warnf(warn, user, "augury: %s: unknown setting '%s' (ignored)", source, key);
      warnings++;
      continue;
    }
    char shown[64];
    describe(value, shown, sizeof shown);
    char *field = (char *)cfg + s->offset;
    switch (s->kind) {
    case SETTING_INT:
      if (!json_is_integer(value) || json_integer_value(value) < (json_int_t)s->min ||
          json_integer_value(value) > (json_int_t)s->max) {
        warnf(warn, user,
              "augury: %s: setting '%s' must be an integer in %.0f..%.0f, got %s "
              "(ignored)",
              source, key, s->min, s->max, shown);
        warnings++;
        break;
      }
      *(int64_t *)field = json_integer_value(value);
      break;
    case SETTING_DOUBLE:
      if (!json_is_number(value) || json_number_value(value) < s->min ||
          json_number_value(value) > s->max) {
        warnf(warn, user, "augury: %s: setting '%s' must be a number in %g..%g, got %s (ignored)",
              source, key, s->min, s->max, shown);
        warnings++;
        break;
      }
      *(double *)field = json_number_value(value);
      break;
    case SETTING_BOOL:
      if (!json_is_boolean(value)) {
        warnf(warn, user, "augury: %s: setting '%s' must be true or false, got %s (ignored)",
              source, key, shown);
        warnings++;
        break;
      }
      *(bool *)field = json_is_true(value);
      break;
    case SETTING_GPU_LAYERS: {
      int32_t n = 0;
      bool ok =
          json_is_integer(value)
              ? json_integer_value(value) >= 0 && json_integer_value(value) <= 100000
              : json_is_string(value) && engine_parse_gpu_layers(json_string_value(value), &n) == 0;
      if (!ok) {
        warnf(warn, user,
              "augury: %s: setting '%s' must be a layer count, \"all\" or \"auto\", got %s "
              "(ignored)",
              source, key, shown);
        warnings++;
        break;
      }
      *(int32_t *)field = json_is_integer(value) ? (int32_t)json_integer_value(value) : n;
      break;
    }
    case SETTING_KV_TYPE: {
      enum engine_kv_type kv = ENGINE_KV_F16;
      if (!json_is_string(value) || engine_parse_kv_type(json_string_value(value), &kv) != 0) {
        warnf(warn, user,
              "augury: %s: setting '%s' must be \"f16\", \"q8_0\" or \"q4_0\", got %s (ignored)",
              source, key, shown);
        warnings++;
        break;
      }
      *(int32_t *)field = (int32_t)kv;
      break;
    }
    case SETTING_STRING: {
      if (!json_is_string(value) && !json_is_null(value)) {
        warnf(warn, user, "augury: %s: setting '%s' must be a string, got %s (ignored)", source,
              key, shown);
        warnings++;
        break;
      }
      /* The config file's model ranks below AUGURY_MODEL, so it is kept apart. */
      char **slot = from_file && s->offset == offsetof(struct config, model_path)
                        ? &cfg->file_model_path
                        : (char **)field;
      char *copy = NULL;
      if (json_is_string(value) && json_string_length(value) > 0) {
        copy = aug_strndup(json_string_value(value), json_string_length(value));
        if (!copy) {
          warnf(warn, user, "augury: %s: out of memory for setting '%s'", source, key);
          warnings++;
          break;
        }
      }
      aug_free(*slot);
      *slot = copy;
      break;
    }
    case SETTING_JSON_ARRAY:
    case SETTING_JSON_OBJECT: {
      bool array = s->kind == SETTING_JSON_ARRAY;
      if (!json_is_null(value) && (array ? !json_is_array(value) : !json_is_object(value))) {
        warnf(warn, user, "augury: %s: setting '%s' must be %s, got %s (ignored)", source, key,
              array ? "an array" : "an object", shown);
        warnings++;
        break;
      }
      json_t **slot = (json_t **)field;
      json_decref(*slot);
      *slot = json_is_null(value) ? NULL : json_deep_copy(value);
      break;
    }
    case SETTING_LANGS: {
      if (!json_is_object(value)) {
        warnf(warn, user,
              "augury: %s: setting '%s' must be an object of languageId: true|false, "
              "got %s (ignored)",
              source, key, shown);
        warnings++;
        break;
      }
      const char *lang;
      json_t *on;
      json_object_foreach(value, lang, on) {
        if (!json_is_boolean(on)) {
          char v[64];
          describe(on, v, sizeof v);
          warnf(warn, user, "augury: %s: languages.%s must be true or false, got %s (ignored)",
                source, lang, v);
          warnings++;
          continue;
        }
        if (json_object_set(cfg->languages, lang, on)) {
          warnf(warn, user, "augury: %s: out of memory for languages.%s", source, lang);
          warnings++;
        }
      }
      break;
    }
    }
  }
  return warnings;
}

static bool file_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int config_load_file(struct config *cfg, const struct config_env *env, config_warn_fn warn,
                     void *user) {
  char path[4096];
  if (env->xdg_config_home && *env->xdg_config_home)
    snprintf(path, sizeof path, "%s/augury/config.json", env->xdg_config_home);
  else if (env->home && *env->home)
    snprintf(path, sizeof path, "%s/.config/augury/config.json", env->home);
  else
    return 0;
  if (!file_exists(path)) return 0;
  json_error_t jerr;
  json_t *root = json_load_file(path, 0, &jerr);
  if (!root) {
    warnf(warn, user, "augury: config file %s: %s at line %d (ignored)", path, jerr.text,
          jerr.line);
    return 1;
  }
  int n = config_apply_json(cfg, root, path, true, warn, user);
  json_decref(root);
  return n;
}

bool config_language_enabled(const struct config *cfg, const char *language_id) {
  if (!cfg->enable) return false;
  json_t *v = language_id ? json_object_get(cfg->languages, language_id) : NULL;
  if (!json_is_boolean(v)) v = json_object_get(cfg->languages, "*");
  return !json_is_boolean(v) || json_is_true(v);
}

static bool name_is_model(const char *name) {
  size_t n = strlen(name);
  return n > 5 && !strcasecmp(name + n - 5, ".gguf") && strcasestr(name, "coder") &&
         !strcasestr(name, "mmproj");
}

/* First coder GGUF directly in dir (LLAMA_CACHE keeps files flat), sorted by name. */
static bool find_flat(const char *dir, char *out, size_t cap) {
  struct dirent **names = NULL;
  int n = scandir(dir, &names, NULL, alphasort);
  bool found = false;
  for (int i = 0; i < n; i++) {
    if (!found && name_is_model(names[i]->d_name)) {
      snprintf(out, cap, "%s/%s", dir, names[i]->d_name);
      found = file_exists(out);
    }
    free(names[i]);
  }
  free(names);
  return found;
}

/* Hugging Face hub layout: <hub>/models--<org>--<name>/snapshots/<revision>/<file>.gguf */
static bool find_hub(const char *hub, char *out, size_t cap) {
  struct dirent **repos = NULL;
  int n = scandir(hub, &repos, NULL, alphasort);
  bool found = false;
  for (int i = 0; i < n; i++) {
    if (!found && !strncmp(repos[i]->d_name, "models--", 8)) {
      char snaps[4096];
      snprintf(snaps, sizeof snaps, "%s/%s/snapshots", hub, repos[i]->d_name);
      struct dirent **revs = NULL;
      int m = scandir(snaps, &revs, NULL, alphasort);
      for (int j = 0; j < m; j++) {
        if (!found && revs[j]->d_name[0] != '.') {
          char rev[4096 + 256];
          snprintf(rev, sizeof rev, "%s/%s", snaps, revs[j]->d_name);
          found = find_flat(rev, out, cap);
        }
        free(revs[j]);
      }
      free(revs);
    }
    free(repos[i]);
  }
  free(repos);
  return found;
}

int config_find_model(const struct config *cfg, const struct config_env *env, char *path,
                      size_t cap, const char **found_by, struct aug_err *err) {
  *found_by = NULL;
  const char *direct[3] = {cfg->model_path, env->augury_model, cfg->file_model_path};
  const char *rule[3] = {"settings", "AUGURY_MODEL", "config file"};
  for (int i = 0; i < 3; i++) {
    if (!direct[i] || !*direct[i]) continue;
    /* An explicit choice that does not exist is an error, not a reason to pick another model. */
    if (!file_exists(direct[i]))
      return aug_err_set(err, AUG_ENOTFOUND, "model '%s' (from %s) does not exist", direct[i],
                         rule[i]);
    snprintf(path, cap, "%s", direct[i]);
    *found_by = rule[i];
    return 0;
  }
  char dir[4096];
  if (env->llama_cache && *env->llama_cache && find_flat(env->llama_cache, path, cap)) {
    *found_by = "Hugging Face cache";
    return 0;
  }
  const char *hubs[3] = {NULL, NULL, NULL};
  char hf_home_hub[4096], home_hub[4096];
  hubs[0] = env->hf_hub_cache;
  if (env->hf_home && *env->hf_home) {
    snprintf(hf_home_hub, sizeof hf_home_hub, "%s/hub", env->hf_home);
    hubs[1] = hf_home_hub;
  }
  if (env->home && *env->home) {
    snprintf(home_hub, sizeof home_hub, "%s/.cache/huggingface/hub", env->home);
    hubs[2] = home_hub;
  }
  for (int i = 0; i < 3; i++)
    if (hubs[i] && *hubs[i] && find_hub(hubs[i], path, cap)) {
      *found_by = "Hugging Face cache";
      return 0;
    }
  if (env->home && *env->home) {
    snprintf(dir, sizeof dir, "%s/.cache/augury/models/%s", env->home, CONFIG_DEFAULT_MODEL_NAME);
    if (file_exists(dir)) {
      snprintf(path, cap, "%s", dir);
      *found_by = "augury cache";
      return 0;
    }
  }
  return aug_err_set(err, AUG_ENOTFOUND,
                     "no model found: set the 'model' setting or AUGURY_MODEL, add \"model\" to "
                     "the config file, or run scripts/get-model (looked in the Hugging Face cache "
                     "and ~/.cache/augury/models/%s)",
                     CONFIG_DEFAULT_MODEL_NAME);
}
