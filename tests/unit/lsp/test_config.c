/* Tests for lsp/config.c: settings layers (flat and under "augury"), warnings for unknown keys and
 * wrong types without changing values, per-language enablement, the config file, and the model
 * lookup order over a temporary directory tree. */
#include "../test_support.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/engine.h"
#include "lsp/config.h"

struct warnings {
  int n;
  char last[512];
};

static void collect(void *user, const char *message) {
  struct warnings *w = user;
  w->n++;
  snprintf(w->last, sizeof w->last, "%s", message);
}

static void test_apply_and_warn(void **state) {
  (void)state;
  struct config cfg;
  struct aug_err err = {0};
  assert_int_equal(config_init(&cfg, &err), 0);
  assert_false(cfg.speculation_prompt_budget);
  struct warnings w = {0};
  json_t *s = json_loads("{\"augury\":{\"maxTokens\":64,\"debounceMs\":10,\"timeBudgetMs\":250.5,"
                         "\"typingTimeBudgetMs\":80,\"speculationWaitMs\":120,"
                         "\"speculationPromptBudget\":true,\"model\":\"/"
                         "m.gguf\",\"languages\":{\"markdown\":false,\"c\":1}}}",
                         0, NULL);
  assert_int_equal(config_apply_json(&cfg, s, "initializationOptions", false, collect, &w), 1);
  assert_non_null(strstr(w.last, "languages.c"));
  assert_int_equal(cfg.max_tokens, 64);
  assert_int_equal(cfg.debounce_ms, 10);
  assert_true(cfg.time_budget_ms == 250.5);
  assert_true(cfg.typing_time_budget_ms == 80);
  assert_true(cfg.speculation_wait_ms == 120);
  assert_true(cfg.speculation_prompt_budget);
  assert_string_equal(cfg.model_path, "/m.gguf");
  assert_false(config_language_enabled(&cfg, "markdown"));
  assert_true(config_language_enabled(&cfg, "python"));
  json_decref(s);

  /* Wrong types, out-of-range values and unknown keys: one warning each, values unchanged. */
  w.n = 0;
  s = json_loads("{\"maxTokens\":\"many\",\"threads\":-3,\"bogus\":1,\"enable\":\"yes\","
                 "\"languages\":[1]}",
                 0, NULL);
  assert_int_equal(config_apply_json(&cfg, s, "didChangeConfiguration", false, collect, &w), 5);
  assert_int_equal(w.n, 5);
  assert_int_equal(cfg.max_tokens, 64);
  assert_int_equal(cfg.n_threads, 0);
  assert_true(cfg.enable);
  json_decref(s);
  s = json_loads("[1,2]", 0, NULL);
  assert_int_equal(config_apply_json(&cfg, s, "x", false, collect, &w), 1);
  json_decref(s);

  s = json_loads("{\"enable\":false,\"languages\":{\"*\":false,\"python\":true}}", 0, NULL);
  assert_int_equal(config_apply_json(&cfg, s, "x", false, collect, &w), 0);
  assert_false(config_language_enabled(&cfg, "python"));
  json_decref(s);
  s = json_loads("{\"enable\":true,\"model\":null}", 0, NULL);
  assert_int_equal(config_apply_json(&cfg, s, "x", false, collect, &w), 0);
  assert_true(config_language_enabled(&cfg, "python"));
  assert_false(config_language_enabled(&cfg, "go"));
  assert_null(cfg.model_path);
  json_decref(s);

  /* gpuLayers: a count, "all", "auto"; anything else warns and keeps the value. */
  assert_int_equal(cfg.gpu_layers, 0);
  const char *good[] = {"{\"gpuLayers\":20}", "{\"gpuLayers\":\"all\"}", "{\"gpuLayers\":\"auto\"}",
                        "{\"gpuLayers\":\"12\"}"};
  const int32_t want[] = {20, ENGINE_GPU_LAYERS_ALL, ENGINE_GPU_LAYERS_AUTO, 12};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    s = json_loads(good[i], 0, NULL);
    assert_int_equal(config_apply_json(&cfg, s, "x", false, collect, &w), 0);
    assert_int_equal(cfg.gpu_layers, want[i]);
    json_decref(s);
  }
  const char *bad[] = {"{\"gpuLayers\":-1}", "{\"augury\":{\"gpuLayers\":\"most\"}}",
                       "{\"gpuLayers\":true}"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    s = json_loads(bad[i], 0, NULL);
    assert_int_equal(config_apply_json(&cfg, s, "x", false, collect, &w), 1);
    assert_non_null(strstr(w.last, "gpuLayers"));
    assert_int_equal(cfg.gpu_layers, 12);
    json_decref(s);
  }
  /* kvCacheType: "f16", "q8_0", "q4_0"; mlock: a boolean. Anything else warns and keeps the
   * value. */
  assert_int_equal(cfg.kv_type, ENGINE_KV_F16);
  assert_false(cfg.mlock);
  s = json_loads("{\"kvCacheType\":\"q4_0\",\"mlock\":true}", 0, NULL);
  assert_int_equal(config_apply_json(&cfg, s, "x", false, collect, &w), 0);
  assert_int_equal(cfg.kv_type, ENGINE_KV_Q4_0);
  assert_true(cfg.mlock);
  json_decref(s);
  s = json_loads("{\"augury\":{\"kvCacheType\":\"q8_0\"}}", 0, NULL);
  assert_int_equal(config_apply_json(&cfg, s, "x", false, collect, &w), 0);
  assert_int_equal(cfg.kv_type, ENGINE_KV_Q8_0);
  json_decref(s);
  const char *bad_kv[] = {"{\"kvCacheType\":\"q4_1\"}", "{\"kvCacheType\":4}",
                          "{\"mlock\":\"yes\"}"};
  for (size_t i = 0; i < sizeof bad_kv / sizeof bad_kv[0]; i++) {
    s = json_loads(bad_kv[i], 0, NULL);
    assert_int_equal(config_apply_json(&cfg, s, "x", false, collect, &w), 1);
    assert_non_null(strstr(w.last, i < 2 ? "kvCacheType" : "mlock"));
    assert_int_equal(cfg.kv_type, ENGINE_KV_Q8_0);
    assert_true(cfg.mlock);
    json_decref(s);
  }
  config_free(&cfg);
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

/* The plugin settings: a list, an object, numbers with bounds; null clears. */
static void test_plugin_settings(void **state) {
  (void)state;
  struct config cfg;
  struct aug_err err = {0};
  assert_int_equal(config_init(&cfg, &err), 0);
  assert_null(cfg.plugins);
  assert_null(cfg.remote);
  assert_null(cfg.provider);
  assert_true(cfg.plugin_budget_ms == 50);
  assert_int_equal(cfg.context_tokens, 512);
  assert_int_equal(cfg.plugin_failure_limit, 3);
  struct warnings w = {0};
  json_t *s = json_loads("{\"plugins\":[\"/p/a.so\",{\"command\":[\"python3\",\"x.py\"]}],"
                         "\"provider\":\"remote\",\"remote\":{\"url\":\"http://h:1\"},"
                         "\"pluginBudgetMs\":20,\"contextTokens\":0,\"pluginFailureLimit\":5}",
                         0, NULL);
  assert_int_equal(config_apply_json(&cfg, s, "initializationOptions", false, collect, &w), 0);
  json_decref(s);
  assert_int_equal(json_array_size(cfg.plugins), 2);
  assert_string_equal(json_string_value(json_object_get(cfg.remote, "url")), "http://h:1");
  assert_string_equal(cfg.provider, "remote");
  assert_true(cfg.plugin_budget_ms == 20);
  assert_int_equal(cfg.context_tokens, 0);
  assert_int_equal(cfg.plugin_failure_limit, 5);
  s = json_loads("{\"plugins\":\"/p/a.so\",\"remote\":[1],\"pluginBudgetMs\":0}", 0, NULL);
  assert_int_equal(config_apply_json(&cfg, s, "didChangeConfiguration", false, collect, &w), 3);
  json_decref(s);
  assert_int_equal(json_array_size(cfg.plugins), 2); /* unchanged */
  s = json_loads("{\"plugins\":null,\"remote\":null}", 0, NULL);
  assert_int_equal(config_apply_json(&cfg, s, "x", false, collect, &w), 0);
  json_decref(s);
  assert_null(cfg.plugins);
  assert_null(cfg.remote);
  config_free(&cfg);
}

/* workspaceIndex: on by default; workspaceIndexMiB: 64 by default, at least 1. */
static void test_workspace_index_settings(void **state) {
  (void)state;
  struct config cfg;
  struct aug_err err = {0};
  assert_int_equal(config_init(&cfg, &err), 0);
  assert_true(cfg.workspace_index);
  assert_int_equal(cfg.workspace_index_mib, 64);
  struct warnings w = {0};
  json_t *s = json_loads("{\"workspaceIndex\":false,\"workspaceIndexMiB\":8}", 0, NULL);
  assert_int_equal(config_apply_json(&cfg, s, "initializationOptions", false, collect, &w), 0);
  assert_false(cfg.workspace_index);
  assert_int_equal(cfg.workspace_index_mib, 8);
  json_decref(s);
  s = json_loads("{\"workspaceIndexMiB\":0}", 0, NULL);
  assert_int_equal(config_apply_json(&cfg, s, "initializationOptions", false, collect, &w), 1);
  assert_non_null(strstr(w.last, "workspaceIndexMiB"));
  assert_int_equal(cfg.workspace_index_mib, 8);
  json_decref(s);
  config_free(&cfg);
}

/* ringChunks: 0 (off) by default, 16 allowed, at most 1024; ringChunkLines: 64 by default,
 * 2..4096; a value out of range is warned about and leaves the setting as it was. */
static void test_ring_settings(void **state) {
  (void)state;
  struct config cfg;
  struct aug_err err = {0};
  assert_int_equal(config_init(&cfg, &err), 0);
  assert_int_equal(cfg.ring_chunks, 0);
  assert_int_equal(cfg.ring_chunk_lines, 64);
  struct warnings w = {0};
  json_t *s = json_loads("{\"ringChunks\":16,\"ringChunkLines\":32}", 0, NULL);
  assert_int_equal(config_apply_json(&cfg, s, "initializationOptions", false, collect, &w), 0);
  assert_int_equal(cfg.ring_chunks, 16);
  assert_int_equal(cfg.ring_chunk_lines, 32);
  json_decref(s);
  s = json_loads("{\"ringChunks\":1025,\"ringChunkLines\":1}", 0, NULL);
  assert_int_equal(config_apply_json(&cfg, s, "initializationOptions", false, collect, &w), 2);
  assert_non_null(strstr(w.last, "ringChunk"));
  assert_int_equal(cfg.ring_chunks, 16);
  assert_int_equal(cfg.ring_chunk_lines, 32);
  json_decref(s);
  config_free(&cfg);
}

/* syntaxCheck and syntaxContext: on by default (the pipeline's syntax filter, the built-in
 * tree-sitter context), bools, a wrong type warned and ignored. */
static void test_syntax_check_setting(void **state) {
  (void)state;
  struct config cfg;
  struct aug_err err = {0};
  assert_int_equal(config_init(&cfg, &err), 0);
  assert_true(cfg.syntax_check);
  assert_true(cfg.syntax_context);
  struct warnings w = {0};
  json_t *s = json_loads("{\"syntaxCheck\":false,\"syntaxContext\":false}", 0, NULL);
  assert_int_equal(config_apply_json(&cfg, s, "initializationOptions", false, collect, &w), 0);
  assert_false(cfg.syntax_check);
  assert_false(cfg.syntax_context);
  json_decref(s);
  s = json_loads("{\"syntaxCheck\":\"on\"}", 0, NULL);
  assert_int_equal(config_apply_json(&cfg, s, "didChangeConfiguration", false, collect, &w), 1);
  assert_non_null(strstr(w.last, "'syntaxCheck' must be true or false"));
  assert_false(cfg.syntax_check);
  json_decref(s);
  config_free(&cfg);
}

/* Numbers at the edges of what JSON can say (1e30, the int64 limits, the largest double, one past
 * a bound) for every integer and number setting: each is refused with a warning naming the key,
 * its range and the value, and the configuration is left exactly as it was; nothing wraps into
 * a negative or truncated size. A bound itself is taken. (An integer past int64, 2^63, never
 * gets here: jansson refuses the whole text.) */
static void test_huge_numbers_refused(void **state) {
  (void)state;
  struct config cfg;
  struct aug_err err = {0};
  assert_int_equal(config_init(&cfg, &err), 0);
  const char *keys[] = {"contextTokens",      "threads",           "contextSize",
                        "maxTokens",          "debounceMs",        "loadWaitMs",
                        "prefixLines",        "suffixLines",       "prefixTokens",
                        "suffixTokens",       "chunkReuse",        "promptCacheMiB",
                        "freshSuffixTokens",  "promptLookup",      "explainMaxTokens",
                        "pluginFailureLimit", "timeBudgetMs",      "pluginBudgetMs",
                        "promptBudgetMs",     "gpuLayers",         "speculationWaitMs",
                        "typingTimeBudgetMs", "explainTemperature"};
  const char *values[] = {"1e30",
                          "-1e30",
                          "9223372036854775807",
                          "-9223372036854775808",
                          "1.7976931348623157e308",
                          "-1",
                          "4294967297",
                          "\"9223372036854775807\""};
  for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
    for (size_t v = 0; v < sizeof values / sizeof values[0]; v++) {
      char text[160];
      snprintf(text, sizeof text, "{\"%s\":%s}", keys[k], values[v]);
      json_t *s = json_loads(text, 0, NULL);
      assert_non_null(s);
      struct config before;
      memcpy(&before, &cfg, sizeof cfg);
      struct warnings w = {0};
      if (config_apply_json(&cfg, s, "didChangeConfiguration", false, collect, &w) != 1)
        fail_msg("%s was not refused", text);
      assert_int_equal(w.n, 1);
      assert_non_null(strstr(w.last, keys[k]));
      assert_non_null(strstr(w.last, "(ignored)"));
      if (memcmp(&before, &cfg, sizeof cfg)) fail_msg("%s changed the configuration", text);
      json_decref(s);
    }
  }
  /* The message gives the range and the value. */
  struct warnings w = {0};
  json_t *s = json_loads("{\"contextTokens\":1e30}", 0, NULL);
  assert_int_equal(config_apply_json(&cfg, s, "x", false, collect, &w), 1);
  assert_string_equal(w.last, "augury: x: setting 'contextTokens' must be an integer in 0..65536, "
                              "got 1e30 (ignored)");
  json_decref(s);
  s = json_loads("{\"contextTokens\":65536,\"threads\":1024}", 0, NULL);
  assert_int_equal(config_apply_json(&cfg, s, "x", false, collect, &w), 0);
  assert_int_equal(cfg.context_tokens, 65536);
  assert_int_equal(cfg.n_threads, 1024);
  json_decref(s);
  assert_null(json_loads("{\"contextTokens\":9223372036854775808}", 0, NULL));
  config_free(&cfg);
}

static void test_file_and_model_lookup(void **state) {
  (void)state;
  char root[] = "/tmp/augury-config-XXXXXX";
  assert_non_null(mkdtemp(root));
  char p[1024], q[1024];
  snprintf(p, sizeof p, "%s/xdg", root);
  mkdir(p, 0700);
  snprintf(p, sizeof p, "%s/xdg/augury", root);
  mkdir(p, 0700);
  snprintf(p, sizeof p, "%s/file.gguf", root);
  write_file(p, "x");
  snprintf(q, sizeof q, "%s/xdg/augury/config.json", root);
  char json[2048];
  snprintf(json, sizeof json, "{\"model\":\"%s\",\"maxTokens\":32,\"nope\":true}", p);
  write_file(q, json);

  struct config cfg;
  struct aug_err err = {0};
  assert_int_equal(config_init(&cfg, &err), 0);
  char xdg[1024], home[1024];
  snprintf(xdg, sizeof xdg, "%s/xdg", root);
  snprintf(home, sizeof home, "%s/home", root);
  struct config_env env = {NULL, xdg, home, NULL, NULL, NULL};
  struct warnings w = {0};
  assert_int_equal(config_load_file(&cfg, &env, collect, &w), 1);
  assert_non_null(strstr(w.last, "nope"));
  assert_int_equal(cfg.max_tokens, 32);
  assert_null(cfg.model_path);

  char found[4096];
  const char *by = NULL;
  assert_int_equal(config_find_model(&cfg, &env, found, sizeof found, &by, &err), 0);
  assert_string_equal(by, "config file");
  assert_string_equal(found, p);

  /* AUGURY_MODEL beats the config file; a missing explicit model is an error naming it. */
  env.augury_model = "/nonexistent/x.gguf";
  assert_int_equal(config_find_model(&cfg, &env, found, sizeof found, &by, &err), AUG_ENOTFOUND);
  assert_non_null(strstr(err.msg, "/nonexistent/x.gguf"));
  assert_non_null(strstr(err.msg, "AUGURY_MODEL"));
  env.augury_model = NULL;

  /* Without explicit choices: the Hugging Face hub layout, then the augury cache. */
  free(cfg.file_model_path);
  cfg.file_model_path = NULL;
  assert_int_equal(config_find_model(&cfg, &env, found, sizeof found, &by, &err), AUG_ENOTFOUND);
  const char *dirs[] = {"home",
                        "home/.cache",
                        "home/.cache/augury",
                        "home/.cache/augury/models",
                        "hf",
                        "hf/hub",
                        "hf/hub/models--Qwen--coder",
                        "hf/hub/models--Qwen--coder/snapshots",
                        "hf/hub/models--Qwen--coder/snapshots/abc"};
  for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
    snprintf(p, sizeof p, "%s/%s", root, dirs[i]);
    mkdir(p, 0700);
  }
  snprintf(p, sizeof p, "%s/home/.cache/augury/models/%s", root, CONFIG_DEFAULT_MODEL_NAME);
  write_file(p, "x");
  assert_int_equal(config_find_model(&cfg, &env, found, sizeof found, &by, &err), 0);
  assert_string_equal(by, "augury cache");
  snprintf(p, sizeof p, "%s/hf/hub/models--Qwen--coder/snapshots/abc/qwen2.5-coder-7b-q8_0.gguf",
           root);
  write_file(p, "x");
  char hf[1024];
  snprintf(hf, sizeof hf, "%s/hf", root);
  env.hf_home = hf;
  assert_int_equal(config_find_model(&cfg, &env, found, sizeof found, &by, &err), 0);
  assert_string_equal(by, "Hugging Face cache");
  assert_string_equal(found, p);
  config_free(&cfg);
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  assert_int_equal(system(cmd), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_apply_and_warn),           cmocka_unit_test(test_plugin_settings),
      cmocka_unit_test(test_syntax_check_setting),     cmocka_unit_test(test_huge_numbers_refused),
      cmocka_unit_test(test_workspace_index_settings), cmocka_unit_test(test_ring_settings),
      cmocka_unit_test(test_file_and_model_lookup),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
