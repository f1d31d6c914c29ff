/* Tests for plugins/host.c with the example plugin (tests/fixtures/plugins/example_context.c,
 * built as modules into <build>/test-plugins) and the out-of-process example
 * (example_child.py): loading, the ABI refusal with both versions, context pieces under the token
 * budget, a slow provider skipped at its time budget (measured), failures reported and a plugin
 * disabled after the limit, a crashing child restarted then disabled, commands, the plugin
 * folder; a child as a completion provider and a command (its crash an error for the request,
 * then disabled; its budget and cancellation); an in-process completion provider's failures and
 * overruns counted and the plugin disabled, a built-in one never; a command name offered twice
 * refused for the later plugin. */
#include "../test_support.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "plugins/host.h"
#include "engine/clock.h"

#define PLUGIN_DIR AUGURY_BINARY_DIR "/test-plugins"
#define CHILD AUGURY_FIXTURES_DIR "/plugins/example_child.py"

static const char doc[] = "import os\n\ndef main():\n    print(os.getcwd())\n";

static struct augury_cursor cursor_at_end(void) {
  struct augury_cursor c = {"file:///w/a.py", "a.py",         "python", doc,
                            sizeof doc - 1,   sizeof doc - 1, 4};
  return c;
}

static struct plugin_host *new_host(double budget_ms, size_t tokens) {
  struct plugin_host_params p = plugin_host_params_default();
  p.context_budget_ms = budget_ms;
  p.context_tokens = tokens;
  struct plugin_host *host = NULL;
  struct aug_err err = {0};
  assert_int_equal(plugin_host_create(&p, &host, &err), 0);
  return host;
}

static void gather(struct plugin_host *host, struct plugin_context *ctx) {
  struct augury_cursor c = cursor_at_end();
  memset(ctx, 0, sizeof *ctx);
  plugin_host_gather_context(host, &c, 0, c.text_len, NULL, NULL, ctx);
}

static void test_example_loads_and_gives_context(void **state) {
  (void)state;
  struct plugin_host *host = new_host(2000, 512);
  struct aug_err err = {0};
  assert_int_equal(plugin_host_load_library(host, PLUGIN_DIR "/example_context.so", &err), 0);
  assert_int_equal(plugin_host_count(host), 1);
  struct plugin_info info;
  plugin_host_info(host, 0, &info);
  assert_string_equal(info.name, "example-context");
  assert_string_equal(info.mode, "in-process");
  assert_true(info.context && info.command && !info.completion);
  assert_true(plugin_host_has_context(host));
  struct plugin_context ctx;
  gather(host, &ctx);
  assert_int_equal(ctx.n_pieces, 1);
  assert_string_equal(ctx.pieces[0].plugin, "example-context");
  assert_string_equal(ctx.pieces[0].name, "example/notes.txt");
  assert_non_null(strstr(ctx.pieces[0].text, "EXAMPLE_CONTEXT_MARKER: a.py (python), cursor on "
                                             "line 5"));
  assert_non_null(strstr(ctx.pieces[0].text, "budget 512 tokens, 2000 ms"));
  assert_string_equal(ctx.notes, "");
  plugin_context_free(&ctx);
  /* The same name twice is refused. */
  assert_int_equal(plugin_host_load_library(host, PLUGIN_DIR "/example_context.so", &err),
                   AUG_EINVAL);
  assert_non_null(strstr(err.msg, "taken"));
  /* Its command. */
  const struct augury_plugin *p = plugin_host_command(host, "example.hello");
  assert_non_null(p);
  assert_null(plugin_host_command(host, "example.nothing"));
  struct augury_command_result res = {0};
  assert_int_equal(p->command_execute(p->self, "example.hello", "[1]", &res), 0);
  assert_string_equal(res.json, "{\"hello\":[1],\"calls\":1}");
  free(res.json);
  plugin_host_destroy(host);
}

/* A piece over the provider's token budget is not given (the example checks count_tokens). */
static void test_token_budget(void **state) {
  (void)state;
  struct plugin_host *host = new_host(2000, 8);
  struct aug_err err = {0};
  assert_int_equal(plugin_host_load_library(host, PLUGIN_DIR "/example_context.so", &err), 0);
  struct plugin_context ctx;
  gather(host, &ctx);
  assert_int_equal(ctx.n_pieces, 0);
  plugin_context_free(&ctx);
  plugin_host_destroy(host);
}

/* A count that fails (the tokenizer out of memory): pieces are not counted at 0, which would pass
 * any budget, but at one token per byte plus 3, an upper bound; a note says so. Both the
 * in-process path (the plugin's count_tokens) and the child's reply are checked. */
static int count_quarter(void *user, const char *text, size_t len, size_t *n_tokens) {
  (void)user;
  (void)text;
  *n_tokens = len / 4;
  return 0;
}

static int count_out_of_memory(void *user, const char *text, size_t len, size_t *n_tokens) {
  (void)user;
  (void)text;
  (void)len;
  *n_tokens = 0; /* what tokenizer_encode leaves on AUG_ENOMEM */
  return AUG_ENOMEM;
}

static void gather_counted(struct plugin_host *host, plugin_host_count_fn count,
                           struct plugin_context *ctx) {
  struct augury_cursor c = cursor_at_end();
  memset(ctx, 0, sizeof *ctx);
  plugin_host_gather_context(host, &c, 0, c.text_len, count, NULL, ctx);
}

static void test_count_failure_is_an_upper_bound(void **state) {
  (void)state;
  struct plugin_host *host = new_host(2000, 1024);
  struct aug_err err = {0};
  assert_int_equal(plugin_host_load_library(host, PLUGIN_DIR "/example_context.so", &err), 0);
  const char *argv[] = {"python3", CHILD, "ok", NULL};
  assert_int_equal(plugin_host_spawn(host, argv, &err), 0);
  struct plugin_context ctx;
  gather_counted(host, count_quarter, &ctx);
  assert_int_equal(ctx.n_pieces, 2);
  for (size_t i = 0; i < ctx.n_pieces; i++)
    assert_int_equal(ctx.pieces[i].tokens, ctx.pieces[i].text_len / 4);
  assert_string_equal(ctx.notes, "");
  plugin_context_free(&ctx);

  gather_counted(host, count_out_of_memory, &ctx);
  assert_int_equal(ctx.n_pieces, 2);
  for (size_t i = 0; i < ctx.n_pieces; i++)
    assert_int_equal(ctx.pieces[i].tokens, ctx.pieces[i].text_len + 3);
  assert_non_null(strstr(ctx.notes, "example-context: tokens not counted with the model (out of "
                                    "memory): counted one per byte"));
  assert_non_null(strstr(ctx.notes, "example-child-ok: tokens not counted with the model"));
  assert_null(strstr(ctx.notes, "skipped")); /* not the plugins' failure */
  plugin_context_free(&ctx);
  plugin_host_destroy(host);

  /* Under a budget the real count fits but the bound does not, the pieces are dropped. */
  host = new_host(2000, 2 * 30);
  assert_int_equal(plugin_host_load_library(host, PLUGIN_DIR "/example_context.so", &err), 0);
  assert_int_equal(plugin_host_spawn(host, argv, &err), 0);
  gather_counted(host, count_quarter, &ctx);
  assert_int_equal(ctx.n_pieces, 2);
  plugin_context_free(&ctx);
  gather_counted(host, count_out_of_memory, &ctx);
  assert_int_equal(ctx.n_pieces, 0);
  plugin_context_free(&ctx);
  plugin_host_destroy(host);
}

/* A fast in-process provider: gathering returns when its worker is done (a condition variable),
 * not at the next 2 ms slice of a polling wait. The figures are printed, not asserted: a loaded
 * machine may deschedule the worker. */
static void test_fast_worker_returns_at_once(void **state) {
  (void)state;
  struct plugin_host *host = new_host(2000, 512);
  struct aug_err err = {0};
  assert_int_equal(plugin_host_load_library(host, PLUGIN_DIR "/example_context.so", &err), 0);
  /* Often the worker is done by the engine thread's first look; the runs where it is not are
   * the ones a polling wait made last a whole slice. */
  enum { RUNS = 201 };
  double ms[RUNS], sum = 0;
  int over_1ms = 0;
  for (int i = 0; i < RUNS; i++) {
    struct plugin_context ctx;
    double t0 = aug_now_ms();
    gather(host, &ctx);
    ms[i] = aug_now_ms() - t0;
    sum += ms[i];
    over_1ms += ms[i] >= 1;
    assert_int_equal(ctx.n_pieces, 1);
    plugin_context_free(&ctx);
  }
  for (int i = 1; i < RUNS; i++) /* insertion sort, for the median */
    for (int j = i; j > 0 && ms[j - 1] > ms[j]; j--) {
      double t = ms[j];
      ms[j] = ms[j - 1];
      ms[j - 1] = t;
    }
  print_message("gather with one fast in-process provider, %d runs: median %.3f ms, mean %.3f ms, "
                "max %.3f ms, %d of them 1 ms or more\n",
                RUNS, ms[RUNS / 2], sum / RUNS, ms[RUNS - 1], over_1ms);
  assert_true(ms[RUNS / 2] < 2000); /* answered, not timed out */
  plugin_host_destroy(host);
}

static void test_abi_mismatch_refused(void **state) {
  (void)state;
  struct plugin_host *host = new_host(50, 512);
  struct aug_err err = {0};
  assert_int_equal(plugin_host_load_library(host, PLUGIN_DIR "/example_abi.so", &err),
                   AUG_EUNSUPPORTED);
  assert_non_null(strstr(err.msg, "example_abi.so"));
  assert_non_null(strstr(err.msg, "built for plugin ABI version 999"));
  char speaks[64];
  snprintf(speaks, sizeof speaks, "this host speaks version %d", AUGURY_PLUGIN_ABI_VERSION);
  assert_non_null(strstr(err.msg, speaks));
  assert_int_equal(plugin_host_count(host), 0);
  /* Out of process the same check applies to the hello line. */
  const char *argv[] = {"python3", CHILD, "abi", NULL};
  assert_int_equal(plugin_host_spawn(host, argv, &err), AUG_EUNSUPPORTED);
  assert_non_null(strstr(err.msg, "version 999"));
  assert_non_null(strstr(err.msg, speaks));
  assert_int_equal(plugin_host_load_library(host, PLUGIN_DIR "/missing.so", &err), AUG_EIO);
  const char *nothing[] = {"/nonexistent/augury-plugin", NULL};
  assert_int_equal(plugin_host_spawn(host, nothing, &err), AUG_EIO);
  assert_non_null(strstr(err.msg, "/nonexistent/augury-plugin: cannot start"));
  plugin_host_destroy(host);
}

/* A provider that sleeps 400 ms under a 50 ms budget: gathering returns at the budget, the good
 * provider's piece is kept, the overrun is reported; while the slow call still runs the plugin is
 * skipped at once; three failures in a row disable it. */
static void test_slow_provider_skipped_at_budget(void **state) {
  (void)state;
  struct plugin_host *host = new_host(50, 512);
  struct aug_err err = {0};
  assert_int_equal(plugin_host_load_library(host, PLUGIN_DIR "/example_slow.so", &err), 0);
  assert_int_equal(plugin_host_load_library(host, PLUGIN_DIR "/example_context.so", &err), 0);
  struct plugin_context ctx;
  double t0 = aug_now_ms();
  gather(host, &ctx);
  double ms = aug_now_ms() - t0;
  print_message("gather with a 400 ms provider under a 50 ms budget: %.1f ms\n", ms);
  assert_true(ms >= 49 && ms < 50 + 40);
  assert_int_equal(ctx.n_pieces, 1);
  assert_string_equal(ctx.pieces[0].plugin, "example-context");
  assert_non_null(strstr(ctx.notes, "example-slow: no answer within its 50 ms budget (skipped)"));
  plugin_context_free(&ctx);
  /* Still inside the first call: skipped without waiting. */
  t0 = aug_now_ms();
  gather(host, &ctx);
  ms = aug_now_ms() - t0;
  assert_true(ms < 50 + 40);
  assert_non_null(strstr(ctx.notes, "example-slow: still busy"));
  plugin_context_free(&ctx);
  gather(host, &ctx);
  assert_non_null(strstr(ctx.notes, "example-slow: disabled after 3 failures in a row"));
  plugin_context_free(&ctx);
  struct plugin_info info;
  plugin_host_info(host, 0, &info);
  assert_true(info.disabled);
  assert_int_equal(info.failures, 3);
  assert_true(info.overruns >= 1);
  /* Disabled: not called any more; the other one still is. */
  gather(host, &ctx);
  assert_string_equal(ctx.notes, "");
  assert_int_equal(ctx.n_pieces, 1);
  plugin_context_free(&ctx);
  plugin_host_destroy(host); /* waits for the slow call still running */
}

static void test_failing_provider_disabled(void **state) {
  (void)state;
  struct plugin_host *host = new_host(500, 512);
  struct aug_err err = {0};
  assert_int_equal(plugin_host_load_library(host, PLUGIN_DIR "/example_fail.so", &err), 0);
  struct plugin_context ctx;
  for (int i = 1; i <= 3; i++) {
    gather(host, &ctx);
    char want[64];
    snprintf(want, sizeof want, "example-fail: failed: example failure %d (skipped)", i);
    assert_non_null(strstr(ctx.notes, want));
    assert_int_equal(ctx.n_pieces, 0);
    plugin_context_free(&ctx);
  }
  assert_false(plugin_host_has_context(host));
  plugin_host_destroy(host);
}

/* The loop thread asks for the status, the commands and whether there is context while the
 * engine thread gathers, counts failures, disables a plugin and restarts a child: what it reads
 * is consistent (counters only grow, a disabled plugin has its failures counted), and a
 * ThreadSanitizer build sees no race. */
struct status_reader {
  struct plugin_host *host;
  atomic_bool stop;
  long reads;
  bool consistent;
};

static void *read_status(void *arg) {
  struct status_reader *r = arg;
  uint64_t last_calls[8] = {0};
  while (!atomic_load(&r->stop)) {
    (void)plugin_host_has_context(r->host);
    (void)plugin_host_command(r->host, "example.hello");
    for (size_t i = 0; i < plugin_host_count(r->host) && i < 8; i++) {
      struct plugin_info info;
      plugin_host_info(r->host, i, &info);
      (void)plugin_host_command_table(r->host, i);
      if (info.calls < last_calls[i] || info.failures > info.calls ||
          strlen(info.version) >= sizeof info.version || (info.disabled && info.failures < 3))
        r->consistent = false;
      last_calls[i] = info.calls;
    }
    r->reads++;
  }
  return NULL;
}

static void test_status_while_gathering(void **state) {
  (void)state;
  struct plugin_host *host = new_host(100, 512);
  struct aug_err err = {0};
  assert_int_equal(plugin_host_load_library(host, PLUGIN_DIR "/example_fail.so", &err), 0);
  assert_int_equal(plugin_host_load_library(host, PLUGIN_DIR "/example_context.so", &err), 0);
  const char *crash[] = {"python3", CHILD, "crash", NULL};
  assert_int_equal(plugin_host_spawn(host, crash, &err), 0);
  struct status_reader r = {.host = host, .consistent = true};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, read_status, &r), 0);
  for (int i = 0; i < 8; i++) {
    struct plugin_context ctx;
    gather(host, &ctx);
    plugin_context_free(&ctx);
  }
  atomic_store(&r.stop, true);
  pthread_join(t, NULL);
  print_message("status read %ld times while gathering\n", r.reads);
  assert_true(r.consistent);
  assert_true(r.reads > 0);
  struct plugin_info info;
  plugin_host_info(host, 0, &info);
  assert_true(info.disabled);
  assert_int_equal(info.failures, 3);
  assert_non_null(strstr(info.last_error, "example failure 3"));
  plugin_host_destroy(host);
}

static void test_child_context(void **state) {
  (void)state;
  struct plugin_host *host = new_host(2000, 512);
  struct aug_err err = {0};
  const char *argv[] = {"python3", CHILD, "ok", NULL};
  assert_int_equal(plugin_host_spawn(host, argv, &err), 0);
  struct plugin_info info;
  plugin_host_info(host, 0, &info);
  assert_string_equal(info.name, "example-child-ok");
  assert_string_equal(info.mode, "out-of-process");
  for (int i = 0; i < 2; i++) {
    struct plugin_context ctx;
    gather(host, &ctx);
    assert_int_equal(ctx.n_pieces, 1);
    assert_string_equal(ctx.pieces[0].text, "# CHILD_CONTEXT_MARKER: a.py line 5\n");
    assert_int_equal(ctx.pieces[0].stability, AUGURY_STABLE_FILE);
    plugin_context_free(&ctx);
  }
  plugin_host_destroy(host);
}

/* A slow child is skipped at the budget and its late answer is dropped by id; a crashing child is
 * started again at the next request and disabled after the limit. */
static void test_child_slow_and_crash(void **state) {
  (void)state;
  struct plugin_host *host = new_host(50, 512);
  struct aug_err err = {0};
  const char *slow[] = {"python3", CHILD, "slow", NULL};
  const char *crash[] = {"python3", CHILD, "crash", NULL};
  assert_int_equal(plugin_host_spawn(host, slow, &err), 0);
  assert_int_equal(plugin_host_spawn(host, crash, &err), 0);
  struct plugin_context ctx;
  double t0 = aug_now_ms();
  gather(host, &ctx);
  double ms = aug_now_ms() - t0;
  print_message("gather with a 2 s child under a 50 ms budget: %.1f ms\n", ms);
  assert_true(ms < 50 + 40);
  assert_non_null(strstr(ctx.notes, "example-child-slow: no answer within its 50 ms budget"));
  plugin_context_free(&ctx);
  /* The crash child: a request after its exit starts it again, a later one reads its hello and
   * sends it the request, and it exits again; none waits for a hello beyond the budget. */
  struct plugin_info info;
  /* Bounded by time, not a count: on a loaded machine python takes longer to start. */
  double deadline = aug_now_ms() + 20000;
  while (aug_now_ms() < deadline) {
    t0 = aug_now_ms();
    gather(host, &ctx);
    ms = aug_now_ms() - t0;
    assert_true(ms < 50 + 40);
    plugin_context_free(&ctx);
    plugin_host_info(host, 1, &info);
    if (info.disabled) break;
    struct timespec pause = {0, 50 * 1000000L}; /* time for python to start */
    nanosleep(&pause, NULL);
  }
  assert_true(info.disabled);
  assert_true(info.failures >= 3);
  plugin_host_destroy(host);
}

/* A child started again after an exit is not waited for inside the request (the start timeout is
 * 2 s, the budget 50 ms): the request goes on without it, and a later one, after its hello came,
 * sends it the request. */
static void test_child_restart_outside_the_budget(void **state) {
  (void)state;
  char dir[] = "/tmp/augury-child-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char marker[64];
  snprintf(marker, sizeof marker, "%s/started", dir);
  struct plugin_host *host = new_host(50, 512);
  struct aug_err err = {0};
  const char *argv[] = {"python3", CHILD, "slowrestart", marker, NULL};
  assert_int_equal(plugin_host_spawn(host, argv, &err), 0);
  struct plugin_context ctx;
  gather(host, &ctx); /* it exits at the request */
  assert_non_null(strstr(ctx.notes, "example-child-slowrestart: exited"));
  plugin_context_free(&ctx);
  /* Started again: its hello comes after 1 s; the request does not wait for it. */
  double t0 = aug_now_ms();
  gather(host, &ctx);
  double ms = aug_now_ms() - t0;
  print_message("gather while a child starts again (hello after 1 s): %.1f ms\n", ms);
  assert_true(ms < 50 + 40);
  assert_non_null(strstr(ctx.notes, "example-child-slowrestart: starting again"));
  plugin_context_free(&ctx);
  struct plugin_info info;
  plugin_host_info(host, 0, &info);
  assert_int_equal(info.failures, 1); /* starting is not a failure */
  assert_false(info.disabled);
  /* After its hello, the next request goes to it (and it exits again: the second failure). */
  struct timespec pause = {1, 500 * 1000000L};
  nanosleep(&pause, NULL);
  gather(host, &ctx);
  assert_non_null(strstr(ctx.notes, "example-child-slowrestart: exited"));
  plugin_context_free(&ctx);
  plugin_host_info(host, 0, &info);
  assert_int_equal(info.failures, 2);
  plugin_host_destroy(host);
  unlink(marker);
  rmdir(dir);
}

/* A completion request at the end of text, with n_context pieces and a time budget. */
static int never_cancelled(void *data) {
  return data && atomic_load((atomic_bool *)data);
}

/* Through plugin_host_complete (host NULL: the slot as it is, as a child's table is called). */
static int complete_at(struct plugin_host *host, const struct augury_plugin *p, const char *text,
                       double budget_ms, atomic_bool *cancel, size_t n_context, char *out,
                       size_t cap, struct augury_completion_result *res) {
  struct augury_cursor c = {"file:///w/b.py", "b.py",       "python", text,
                            strlen(text),     strlen(text), 0};
  static const struct augury_context_piece pieces[2] = {
      {"x.py", "X = 1\n", 6, AUGURY_STABLE_PROJECT}, {NULL, "y = 2\n", 6, AUGURY_STABLE_RECENT}};
  struct augury_completion_request req = {
      .struct_size = sizeof req,
      .cursor = &c,
      .window_start = 0,
      .window_end = c.text_len,
      .context = pieces,
      .n_context = n_context,
      .max_tokens = 16,
      .time_budget_ms = budget_ms,
      .cancelled = never_cancelled,
      .cancel_data = cancel,
  };
  memset(res, 0, sizeof *res);
  res->text = out;
  res->cap = cap;
  return plugin_host_complete(host, p, &req, res);
}

static int child_complete_at(const struct augury_plugin *p, const char *text, double budget_ms,
                             atomic_bool *cancel, size_t n_context, char *out, size_t cap,
                             struct augury_completion_result *res) {
  return complete_at(NULL, p, text, budget_ms, cancel, n_context, out, cap, res);
}

/* An out-of-process completion provider with a command: the hello's capabilities and commands,
 * a completion through the same table a library gives (with the context pieces), a command with
 * its arguments and result. */
static void test_child_completion_and_command(void **state) {
  (void)state;
  struct plugin_host *host = new_host(2000, 512);
  struct aug_err err = {0};
  const char *argv[] = {"python3", CHILD, "complete", NULL};
  assert_int_equal(plugin_host_spawn(host, argv, &err), 0);
  struct plugin_info info;
  plugin_host_info(host, 0, &info);
  assert_string_equal(info.mode, "out-of-process");
  assert_true(info.completion && info.command && !info.context);
  assert_false(plugin_host_has_context(host));
  const struct augury_plugin *p = plugin_host_completion(host, "example-child-complete");
  assert_non_null(p);
  char out[64];
  struct augury_completion_result res;
  assert_int_equal(child_complete_at(p, "import os\nx = os.", 2000, NULL, 2, out, sizeof out, &res),
                   0);
  assert_string_equal(out, "getcwd()");
  assert_int_equal(res.len, 8);
  assert_int_equal(res.tokens_generated, 3);
  assert_string_equal(res.served_by, "example-child-complete");
  /* A text longer than the buffer is cut, not overrun. */
  char small[4];
  assert_int_equal(child_complete_at(p, "y = ", 2000, NULL, 0, small, sizeof small, &res), 0);
  assert_string_equal(small, "pas");
  /* Its command, listed by the hello. */
  assert_ptr_equal(plugin_host_command(host, "example-child.echo"), p);
  assert_string_equal(p->command_names(p->self)[0], "example-child.echo");
  assert_null(p->command_names(p->self)[1]);
  struct augury_command_result cres = {0};
  assert_int_equal(p->command_execute(p->self, "example-child.echo", "[1,\"a\"]", &cres), 0);
  assert_string_equal(cres.json, "{\"echo\":[1,\"a\"],\"command\":\"example-child.echo\","
                                 "\"contextPieces\":0}");
  p->free_json(p->self, cres.json);
  plugin_host_info(host, 0, &info);
  assert_int_equal(info.calls, 3);
  assert_int_equal(info.failures, 0);
  plugin_host_destroy(host);
}

/* A child completion provider that crashes during each request: every request gets an error (the
 * host goes on), the child is started again for the next one, and after the failure limit it is
 * disabled with the reason in the request's error; the requests after get "disabled" at once. */
static void test_child_completion_crash_disabled(void **state) {
  (void)state;
  struct plugin_host *host = new_host(50, 512);
  struct aug_err err = {0};
  const char *argv[] = {"python3", CHILD, "completecrash", NULL};
  assert_int_equal(plugin_host_spawn(host, argv, &err), 0);
  const struct augury_plugin *p = plugin_host_completion(host, "example-child-completecrash");
  assert_non_null(p);
  char out[64];
  struct augury_completion_result res;
  for (int i = 1; i <= 3; i++) {
    double t0 = aug_now_ms();
    int rc = child_complete_at(p, "x = ", 5000, NULL, 0, out, sizeof out, &res);
    print_message("crashing child, request %d: %d after %.1f ms: %s\n", i, rc, aug_now_ms() - t0,
                  res.error);
    assert_int_equal(rc, AUG_EIO);
    assert_non_null(strstr(res.error, "exited (or closed its output) during the request"));
    assert_true((strstr(res.error, "disabled after 3 failures in a row") != NULL) == (i == 3));
  }
  struct plugin_info info;
  plugin_host_info(host, 0, &info);
  assert_true(info.disabled);
  assert_int_equal(info.failures, 3);
  assert_int_equal(child_complete_at(p, "x = ", 5000, NULL, 0, out, sizeof out, &res),
                   AUG_EUNSUPPORTED);
  assert_non_null(strstr(res.error, "disabled"));
  plugin_host_info(host, 0, &info);
  assert_int_equal(info.calls, 3); /* a disabled plugin is not called */
  plugin_host_destroy(host);
}

/* A slow child completion provider: the request ends at its budget (an overrun, counted), a
 * cancelled request ends at once (not counted), and the late answers are dropped by id. */
static void test_child_completion_budget_and_cancel(void **state) {
  (void)state;
  struct plugin_host *host = new_host(50, 512);
  struct aug_err err = {0};
  const char *argv[] = {"python3", CHILD, "completeslow", NULL};
  assert_int_equal(plugin_host_spawn(host, argv, &err), 0);
  const struct augury_plugin *p = plugin_host_completion(host, "example-child-completeslow");
  char out[64];
  struct augury_completion_result res;
  double t0 = aug_now_ms();
  assert_int_equal(child_complete_at(p, "x = ", 100, NULL, 0, out, sizeof out, &res), AUG_ETIMEOUT);
  double ms = aug_now_ms() - t0;
  print_message("2 s child completion under a 100 ms budget: %.1f ms\n", ms);
  assert_true(ms < 100 + 40);
  assert_non_null(strstr(res.error, "no answer within its 100 ms budget"));
  atomic_bool cancel = true;
  t0 = aug_now_ms();
  assert_int_equal(child_complete_at(p, "x = ", 5000, &cancel, 0, out, sizeof out, &res),
                   AUG_ECANCELED);
  assert_true(aug_now_ms() - t0 < 40);
  struct plugin_info info;
  plugin_host_info(host, 0, &info);
  assert_int_equal(info.failures, 1);
  assert_int_equal(info.overruns, 1);
  assert_false(info.disabled);
  /* Both late answers come within ~4 s; the next request gets its own. */
  assert_int_equal(child_complete_at(p, "y = os.", 8000, NULL, 0, out, sizeof out, &res), 0);
  assert_string_equal(out, "getcwd()");
  plugin_host_destroy(host);
}

/* The host's log lines, one after another (the tests call it from their own thread). */
struct log_capture {
  char text[8192];
};

static void capture_log(void *user, int level, const char *message) {
  struct log_capture *c = user;
  size_t n = strlen(c->text);
  snprintf(c->text + n, sizeof c->text - n, "%d %s\n", level, message);
}

static struct plugin_host *new_logged_host(struct log_capture *log) {
  struct plugin_host_params p = plugin_host_params_default();
  memset(log, 0, sizeof *log);
  p.log = capture_log;
  p.log_user = log;
  struct plugin_host *host = NULL;
  struct aug_err err = {0};
  assert_int_equal(plugin_host_create(&p, &host, &err), 0);
  return host;
}

/* An in-process completion provider that always fails: each request gets its error, counted;
 * a cancelled one is not counted; the third failure in a row disables it (in the request's error
 * and the log) and the requests after get "disabled" without calling it. */
static void test_inproc_completion_failures_disabled(void **state) {
  (void)state;
  struct log_capture log;
  struct plugin_host *host = new_logged_host(&log);
  struct aug_err err = {0};
  assert_int_equal(plugin_host_load_library(host, PLUGIN_DIR "/example_complete_fail.so", &err), 0);
  const struct augury_plugin *p = plugin_host_completion(host, "example-complete-fail");
  assert_non_null(p);
  char out[64];
  struct augury_completion_result res;
  atomic_bool cancel = true;
  assert_int_equal(complete_at(host, p, "x = ", 2000, &cancel, 0, out, sizeof out, &res), AUG_EIO);
  struct plugin_info info;
  plugin_host_info(host, 0, &info);
  assert_string_equal(info.mode, "in-process");
  assert_int_equal(info.calls, 1);
  assert_int_equal(info.failures, 0); /* cancelled: not the plugin's failure */
  for (unsigned i = 2; i <= 4; i++) {
    assert_int_equal(complete_at(host, p, "x = ", 2000, NULL, 0, out, sizeof out, &res), AUG_EIO);
    char want[64];
    snprintf(want, sizeof want, "failed: example failure %u", i);
    assert_non_null(strstr(res.error, want));
    assert_true((strstr(res.error, "(disabled after 3 failures in a row)") != NULL) == (i == 4));
  }
  plugin_host_info(host, 0, &info);
  assert_true(info.disabled);
  assert_int_equal(info.calls, 4);
  assert_int_equal(info.failures, 3);
  assert_int_equal(info.overruns, 0);
  assert_string_equal(info.last_error, "failed: example failure 4");
  assert_non_null(strstr(log.text, "1 augury: plugin example-complete-fail: disabled after 3 "
                                   "failures in a row (failed: example failure 4)"));
  assert_int_equal(complete_at(host, p, "x = ", 2000, NULL, 0, out, sizeof out, &res),
                   AUG_EUNSUPPORTED);
  assert_string_equal(res.error, "disabled after 3 failures in a row");
  assert_string_equal(res.served_by, "example-complete-fail");
  plugin_host_info(host, 0, &info);
  assert_int_equal(info.calls, 4); /* a disabled plugin is not called */
  plugin_host_destroy(host);
}

/* An in-process provider that takes 150 ms: under a 50 ms budget its answer is kept (the call
 * could not be stopped) but the overrun is counted and logged; an answer in time resets the
 * failures in a row, and three overruns in a row disable it. */
static void test_inproc_completion_overrun(void **state) {
  (void)state;
  struct log_capture log;
  struct plugin_host *host = new_logged_host(&log);
  struct aug_err err = {0};
  assert_int_equal(plugin_host_load_library(host, PLUGIN_DIR "/example_complete_slow.so", &err), 0);
  const struct augury_plugin *p = plugin_host_completion(host, "example-complete-slow");
  char out[64];
  struct augury_completion_result res;
  const double budgets[] = {50, 50, 2000, 50, 50};
  for (size_t i = 0; i < 5; i++) {
    assert_int_equal(complete_at(host, p, "x = os.", budgets[i], NULL, 0, out, sizeof out, &res),
                     0);
    assert_string_equal(out, "getcwd()");
  }
  struct plugin_info info;
  plugin_host_info(host, 0, &info);
  assert_false(info.disabled); /* never 3 in a row */
  assert_int_equal(info.calls, 5);
  assert_int_equal(info.failures, 4);
  assert_int_equal(info.overruns, 4);
  assert_non_null(strstr(info.last_error, "over its 50 ms budget"));
  assert_non_null(strstr(log.text, "2 augury: plugin example-complete-slow: answered after "));
  assert_int_equal(complete_at(host, p, "x = os.", 50, NULL, 0, out, sizeof out, &res), 0);
  plugin_host_info(host, 0, &info);
  assert_true(info.disabled);
  assert_non_null(strstr(log.text, "plugin example-complete-slow: disabled after 3 failures"));
  assert_int_equal(complete_at(host, p, "x = os.", 50, NULL, 0, out, sizeof out, &res),
                   AUG_EUNSUPPORTED);
  plugin_host_destroy(host);
}

/* A built-in completion provider (registered as the local and remote ones are) is called as it
 * is: its errors are the request's and it is never disabled. The answering example works
 * through the host as a library. */
static int builtin_fail_complete(void *self, const struct augury_completion_request *req,
                                 struct augury_completion_result *result) {
  (void)self;
  (void)req;
  snprintf(result->error, sizeof result->error, "server said 500");
  return AUGURY_PLUGIN_EIO;
}

static int builtin_supports(void *self, uint32_t capability) {
  (void)self;
  return capability == AUGURY_CAP_COMPLETION;
}

static void test_builtin_completion_never_disabled(void **state) {
  (void)state;
  static const struct augury_plugin builtin = {
      .abi_version = AUGURY_PLUGIN_ABI_VERSION,
      .struct_size = sizeof builtin,
      .name = "builtin-fail",
      .supports = builtin_supports,
      .complete = builtin_fail_complete,
  };
  struct log_capture log;
  struct plugin_host *host = new_logged_host(&log);
  struct aug_err err = {0};
  assert_int_equal(plugin_host_register(host, &builtin, "built-in", &err), 0);
  assert_int_equal(plugin_host_load_library(host, PLUGIN_DIR "/example_complete.so", &err), 0);
  char out[64];
  struct augury_completion_result res;
  for (int i = 0; i < 5; i++) {
    assert_int_equal(complete_at(host, &builtin, "x = ", 2000, NULL, 0, out, sizeof out, &res),
                     AUG_EIO);
    assert_string_equal(res.error, "server said 500");
  }
  struct plugin_info info;
  plugin_host_info(host, 0, &info);
  assert_false(info.disabled);
  assert_int_equal(info.failures, 0);
  assert_string_equal(log.text, "");
  const struct augury_plugin *p = plugin_host_completion(host, "example-complete");
  assert_int_equal(complete_at(host, p, "x = os.", 2000, NULL, 0, out, sizeof out, &res), 0);
  assert_string_equal(out, "getcwd()");
  assert_string_equal(res.served_by, "example-complete");
  plugin_host_info(host, 1, &info);
  assert_int_equal(info.calls, 1);
  assert_int_equal(info.failures, 0);
  plugin_host_destroy(host);
}

/* Two plugins listing one command: the first keeps it; the second loads without it (for its
 * other capabilities, and its other commands), with a log line naming both and the command. */
static const char *const dup_commands[] = {"example.hello", "dup.other", "dup.other", NULL};

static const char *const *dup_command_names(void *self) {
  (void)self;
  return dup_commands;
}

static int dup_supports(void *self, uint32_t capability) {
  (void)self;
  return capability == AUGURY_CAP_COMMAND;
}

static int dup_execute(void *self, const char *name, const char *arguments_json,
                       struct augury_command_result *result) {
  (void)self;
  (void)name;
  (void)arguments_json;
  (void)result;
  return 0;
}

static void test_duplicate_command_refused(void **state) {
  (void)state;
  static const struct augury_plugin dup = {
      .abi_version = AUGURY_PLUGIN_ABI_VERSION,
      .struct_size = sizeof dup,
      .name = "dup",
      .supports = dup_supports,
      .command_names = dup_command_names,
      .command_execute = dup_execute,
  };
  struct log_capture log;
  struct plugin_host *host = new_logged_host(&log);
  struct aug_err err = {0};
  assert_int_equal(plugin_host_load_library(host, PLUGIN_DIR "/example_context.so", &err), 0);
  assert_int_equal(plugin_host_load_library(host, PLUGIN_DIR "/example_complete.so", &err), 0);
  assert_int_equal(plugin_host_register(host, &dup, "test", &err), 0);
  assert_non_null(strstr(log.text, "2 augury: plugin example-complete (" PLUGIN_DIR
                                   "/example_complete.so): command 'example.hello' is already "
                                   "offered by plugin example-context: refused"));
  assert_non_null(strstr(log.text, "2 augury: plugin dup (test): command 'example.hello' is "
                                   "already offered by plugin example-context: refused"));
  const struct augury_plugin *first = plugin_host_command_table(host, 0);
  assert_non_null(first);
  assert_ptr_equal(plugin_host_command(host, "example.hello"), first);
  /* The second still offers completion, and no command. */
  struct plugin_info info;
  plugin_host_info(host, 1, &info);
  assert_true(info.completion);
  assert_false(info.command);
  assert_null(plugin_host_command_names(host, 1));
  assert_non_null(plugin_host_completion(host, "example-complete"));
  /* The third keeps its other command, once. */
  plugin_host_info(host, 2, &info);
  assert_true(info.command);
  const char *const *names = plugin_host_command_names(host, 2);
  assert_string_equal(names[0], "dup.other");
  assert_null(names[1]);
  assert_ptr_equal(plugin_host_command(host, "dup.other"), &dup);
  names = plugin_host_command_names(host, 0);
  assert_string_equal(names[0], "example.hello");
  assert_null(names[1]);
  plugin_host_destroy(host);
}

static void test_plugin_dir(void **state) {
  (void)state;
  char dir[4096];
  assert_true(plugin_host_default_dir("/x/data", "/home/u", dir, sizeof dir));
  assert_string_equal(dir, "/x/data/augury/plugins");
  assert_true(plugin_host_default_dir(NULL, "/home/u", dir, sizeof dir));
  assert_string_equal(dir, "/home/u/.local/share/augury/plugins");
  assert_true(plugin_host_default_dir("", "/home/u", dir, sizeof dir));
  assert_string_equal(dir, "/home/u/.local/share/augury/plugins");
  assert_false(plugin_host_default_dir(NULL, NULL, dir, sizeof dir));
  /* A folder with the example and a library for another ABI: one loads, one is reported. */
  char tmp[] = "/tmp/augury-plugins-XXXXXX";
  assert_non_null(mkdtemp(tmp));
  char a[4200], b[4200];
  snprintf(a, sizeof a, "%s/a.so", tmp);
  snprintf(b, sizeof b, "%s/b.so", tmp);
  assert_int_equal(symlink(PLUGIN_DIR "/example_context.so", a), 0);
  assert_int_equal(symlink(PLUGIN_DIR "/example_abi.so", b), 0);
  struct plugin_host *host = new_host(50, 512);
  assert_int_equal(plugin_host_load_dir(host, tmp), 1);
  assert_int_equal(plugin_host_load_dir(host, "/nonexistent/augury"), 0);
  plugin_host_destroy(host);
  unlink(a);
  unlink(b);
  rmdir(tmp);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_example_loads_and_gives_context),
      cmocka_unit_test(test_token_budget),
      cmocka_unit_test(test_count_failure_is_an_upper_bound),
      cmocka_unit_test(test_fast_worker_returns_at_once),
      cmocka_unit_test(test_abi_mismatch_refused),
      cmocka_unit_test(test_slow_provider_skipped_at_budget),
      cmocka_unit_test(test_failing_provider_disabled),
      cmocka_unit_test(test_status_while_gathering),
      cmocka_unit_test(test_child_context),
      cmocka_unit_test(test_child_slow_and_crash),
      cmocka_unit_test(test_child_restart_outside_the_budget),
      cmocka_unit_test(test_child_completion_and_command),
      cmocka_unit_test(test_child_completion_crash_disabled),
      cmocka_unit_test(test_child_completion_budget_and_cancel),
      cmocka_unit_test(test_inproc_completion_failures_disabled),
      cmocka_unit_test(test_inproc_completion_overrun),
      cmocka_unit_test(test_builtin_completion_never_disabled),
      cmocka_unit_test(test_duplicate_command_refused),
      cmocka_unit_test(test_plugin_dir),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
