/* Tests for plugins/provider_remote.c through the pipeline, against tests/plugins/replay_server.py
 * on 127.0.0.1 (recorded llama-server answers, tests/fixtures/remote/): /infill and
 * /v1/completions bodies and answers, error statuses, a slow server and a timeout, a disconnect, a
 * body that is not JSON, a refused connection, TLS verification, cancellation of a request in
 * flight (measured: within 50 ms), and an auth token that reaches the server's header but no
 * message. */
#include "../test_support.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "plugins/pipeline.h"
#include "plugins/provider_remote.h"
#include "engine/clock.h"

#define REPLAY AUGURY_SOURCE_DIR "/tests/plugins/replay_server.py"
#define TOKEN "s3cret-TOKEN-42"

struct replay {
  pid_t pid;
  int to; /* its stdin: closing it stops the server */
  int port;
};

/* Starts the replay server with extra arguments (NULL-terminated, may be none). */
static void replay_start(struct replay *r, const char *const *extra) {
  int in[2], out[2];
  assert_int_equal(pipe(in), 0);
  assert_int_equal(pipe(out), 0);
  r->pid = fork();
  assert_true(r->pid >= 0);
  if (r->pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    close(in[1]);
    close(out[0]);
    const char *argv[8] = {"python3", REPLAY, "0"};
    for (int i = 0; extra && extra[i] && i < 4; i++)
      argv[3 + i] = extra[i];
    execvp("python3", (char *const *)argv);
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  r->to = in[1];
  char line[64] = "";
  size_t n = 0;
  while (n < sizeof line - 1 && read(out[0], line + n, 1) == 1 && line[n] != '\n')
    n++;
  line[n] = '\0';
  close(out[0]);
  assert_int_equal(sscanf(line, "PORT %d", &r->port), 1);
}

static void replay_stop(struct replay *r) {
  close(r->to);
  kill(r->pid, SIGTERM);
  waitpid(r->pid, NULL, 0);
}

static char *fake_getenv(const char *name) {
  static char token[] = TOKEN;
  return !strcmp(name, "AUGURY_TEST_TOKEN") ? token : NULL;
}

struct fixture {
  struct replay replay;
  struct plugin_host *host;
  struct provider_remote *remote;
};

static const char doc[] = "import os\n\n\ndef cwd():\n    return os.\n";

/* Makes the host with a remote provider for settings_fmt (one %d: the port). */
static void make_remote(struct fixture *f, const char *settings_fmt) {
  char text[512];
  snprintf(text, sizeof text, settings_fmt, f->replay.port);
  json_error_t jerr;
  json_t *settings = json_loads(text, 0, &jerr);
  assert_non_null(settings);
  struct aug_err err = {0};
  struct plugin_host_params p = plugin_host_params_default();
  assert_int_equal(plugin_host_create(&p, &f->host, &err), 0);
  assert_int_equal(provider_remote_create(settings, fake_getenv, &f->remote, &err), 0);
  json_decref(settings);
  assert_int_equal(
      plugin_host_register(f->host, provider_remote_plugin(f->remote), "built-in", &err), 0);
}

static void drop_remote(struct fixture *f) {
  plugin_host_destroy(f->host);
  provider_remote_destroy(f->remote);
  f->host = NULL;
  f->remote = NULL;
}

static int setup(void **state) {
  struct fixture *f = calloc(1, sizeof *f);
  replay_start(&f->replay, NULL);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fixture *f = *state;
  drop_remote(f);
  replay_stop(&f->replay);
  free(f);
  return 0;
}

static struct pipeline_request request_at_cursor(void) {
  size_t cursor = strlen("import os\n\n\ndef cwd():\n    return os.");
  struct pipeline_request req = {
      .completion =
          {
              .prefix = doc,
              .prefix_len = cursor,
              .suffix = doc + cursor,
              .suffix_len = sizeof doc - 1 - cursor,
              .prefix_tokens = 1536,
              .suffix_tokens = 128,
              .snap_lines = 32,
              .max_tokens = 16,
              .cursor_line_in_middle = true,
          },
      .uri = "file:///w/t.py",
      .language_id = "python",
      .provider = PROVIDER_REMOTE_NAME,
  };
  return req;
}

/* Runs one completion; returns its code, with out, res and err filled. */
static int complete(struct fixture *f, const atomic_bool *cancel, char *out, size_t cap,
                    struct pipeline_result *res, struct aug_err *err) {
  struct pipeline_request req = request_at_cursor();
  size_t len = 0;
  memset(res, 0, sizeof *res);
  memset(err, 0, sizeof *err);
  int rc = pipeline_complete(f->host, NULL, &req, cancel, out, cap, &len, res, err);
  if (rc == 0) assert_int_equal(strlen(out), len);
  return rc;
}

/* The replay server's record of the last request. */
static json_t *last_request(struct fixture *f) {
  char cmd[256];
  snprintf(cmd, sizeof cmd,
           "python3 -c \"import urllib.request,sys;"
           "sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:%d/last')"
           ".read().decode())\"",
           f->replay.port);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  json_error_t jerr;
  json_t *last = json_loadf(p, 0, &jerr);
  pclose(p);
  assert_non_null(last);
  return last;
}

static void test_infill(void **state) {
  struct fixture *f = *state;
  make_remote(f, "{\"url\": \"http://127.0.0.1:%d/ok/\", \"api\": \"infill\", "
                 "\"authEnv\": \"AUGURY_TEST_TOKEN\"}");
  char out[256];
  struct pipeline_result res;
  struct aug_err err;
  assert_int_equal(complete(f, NULL, out, sizeof out, &res, &err), 0);
  assert_string_equal(out, "getcwd()"); /* the trailing newline trimmed by our clean-up */
  char want[128];
  snprintf(want, sizeof want, "remote /infill http://127.0.0.1:%d/ok", f->replay.port);
  assert_string_equal(res.served_by, want);
  assert_int_equal(res.stats.n_generated, 4);
  assert_int_equal(res.stats.n_prompt, 61);
  assert_int_equal(res.stats.n_reused, 48);
  assert_int_equal(res.stats.n_evaluated, 13);
  pipeline_result_free(&res);
  json_t *last = last_request(f);
  assert_string_equal(json_string_value(json_object_get(last, "path")), "/ok/infill");
  json_t *headers = json_object_get(last, "headers");
  assert_string_equal(json_string_value(json_object_get(headers, "Authorization")),
                      "Bearer " TOKEN);
  json_error_t jerr;
  json_t *body = json_loads(json_string_value(json_object_get(last, "body")), 0, &jerr);
  assert_non_null(body);
  /* llama.cpp puts "prompt" after the FIM middle marker: the cursor's line goes there. */
  assert_string_equal(json_string_value(json_object_get(body, "input_prefix")),
                      "import os\n\n\ndef cwd():\n");
  assert_string_equal(json_string_value(json_object_get(body, "prompt")), "    return os.");
  assert_string_equal(json_string_value(json_object_get(body, "input_suffix")), "\n");
  assert_int_equal(json_integer_value(json_object_get(body, "n_predict")), 16);
  assert_true(json_is_array(json_object_get(body, "input_extra")));
  json_decref(body);
  json_decref(last);
}

static void test_openai(void **state) {
  struct fixture *f = *state;
  make_remote(f, "{\"url\": \"http://127.0.0.1:%d/ok\", \"model\": \"qwen-coder\"}");
  char out[256];
  struct pipeline_result res;
  struct aug_err err;
  assert_int_equal(complete(f, NULL, out, sizeof out, &res, &err), 0);
  assert_string_equal(out, "getcwd()");
  assert_int_equal(res.stats.n_prompt, 58);
  assert_int_equal(res.stats.n_generated, 5);
  pipeline_result_free(&res);
  json_t *last = last_request(f);
  assert_string_equal(json_string_value(json_object_get(last, "path")), "/ok/v1/completions");
  assert_null(json_object_get(json_object_get(last, "headers"), "Authorization"));
  json_error_t jerr;
  json_t *body = json_loads(json_string_value(json_object_get(last, "body")), 0, &jerr);
  assert_string_equal(json_string_value(json_object_get(body, "model")), "qwen-coder");
  assert_string_equal(json_string_value(json_object_get(body, "prompt")),
                      "<|fim_prefix|>import os\n\n\ndef cwd():\n<|fim_suffix|>\n"
                      "<|fim_middle|>    return os.");
  assert_int_equal(json_integer_value(json_object_get(body, "max_tokens")), 16);
  json_decref(body);
  json_decref(last);
}

static void expect_error(struct fixture *f, int code, const char *fragment) {
  char out[256];
  struct pipeline_result res;
  struct aug_err err;
  assert_int_equal(complete(f, NULL, out, sizeof out, &res, &err), code);
  print_message("error: %s\n", err.msg);
  assert_non_null(strstr(err.msg, fragment));
  assert_null(strstr(err.msg, TOKEN));
  pipeline_result_free(&res);
}

static void test_error_statuses(void **state) {
  struct fixture *f = *state;
  const char *const scenarios[][2] = {
      {"error500", "HTTP 500: the request exceeds the available context size"},
      {"error401", "HTTP 401: Invalid API Key"},
      {"error503", "HTTP 503: Loading model"},
      {"badjson", "HTTP 200 with a body that is not JSON"},
      {"nothing", "HTTP 404: File Not Found"},
  };
  for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++) {
    char fmt[256];
    snprintf(fmt, sizeof fmt,
             "{\"url\": \"http://127.0.0.1:%%d/%s\", \"api\": \"infill\", \"authEnv\": "
             "\"AUGURY_TEST_TOKEN\"}",
             scenarios[i][0]);
    make_remote(f, fmt);
    expect_error(f, AUG_EIO, scenarios[i][1]);
    drop_remote(f);
  }
}

/* A server that repeats the Authorization header in its error: the message shows *** instead. */
static void test_token_never_shown(void **state) {
  struct fixture *f = *state;
  make_remote(f, "{\"url\": \"http://127.0.0.1:%d/echo\", \"authEnv\": \"AUGURY_TEST_TOKEN\"}");
  expect_error(f, AUG_EIO, "HTTP 400: bad request from Bearer ***");
  assert_null(strstr(provider_remote_description(f->remote), TOKEN));
  drop_remote(f);
  /* An authEnv that is not set is an error naming the variable. */
  json_t *s = json_pack("{s:s,s:s}", "url", "http://127.0.0.1:1", "authEnv", "NOT_SET_ANYWHERE");
  struct aug_err err = {0};
  struct provider_remote *r = NULL;
  assert_int_equal(provider_remote_create(s, fake_getenv, &r, &err), AUG_ENOTFOUND);
  assert_non_null(strstr(err.msg, "NOT_SET_ANYWHERE"));
  json_decref(s);
  /* Credentials in the URL do not reach the description. */
  s = json_pack("{s:s}", "url", "http://user:pw@127.0.0.1:1");
  assert_int_equal(provider_remote_create(s, fake_getenv, &r, &err), 0);
  assert_string_equal(provider_remote_description(r), "remote /v1/completions http://127.0.0.1:1");
  provider_remote_destroy(r);
  json_decref(s);
  s = json_pack("{s:s,s:s}", "url", "http://x", "api", "grpc");
  assert_int_equal(provider_remote_create(s, fake_getenv, &r, &err), AUG_EINVAL);
  json_decref(s);
  s = json_pack("{s:s}", "url", "ftp://x");
  assert_int_equal(provider_remote_create(s, fake_getenv, &r, &err), AUG_EINVAL);
  json_decref(s);
  /* Times and temperature out of range are refused by name: curl would take a negative timeout
   * as none at all, and a request could then hang the engine thread. */
  const char *bad[] = {"{\"url\":\"http://x\",\"timeoutMs\":-1}",
                       "{\"url\":\"http://x\",\"timeoutMs\":0}",
                       "{\"url\":\"http://x\",\"timeoutMs\":9223372036854775807}",
                       "{\"url\":\"http://x\",\"timeoutMs\":1e30}",
                       "{\"url\":\"http://x\",\"timeoutMs\":\"300\"}",
                       "{\"url\":\"http://x\",\"connectTimeoutMs\":-5}",
                       "{\"url\":\"http://x\",\"temperature\":-1}",
                       "{\"url\":\"http://x\",\"temperature\":1e30}"};
  const char *named[] = {"timeoutMs", "timeoutMs",        "timeoutMs",   "timeoutMs",
                         "timeoutMs", "connectTimeoutMs", "temperature", "temperature"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    s = json_loads(bad[i], 0, NULL);
    assert_non_null(s);
    r = NULL;
    if (provider_remote_create(s, fake_getenv, &r, &err) != AUG_EINVAL)
      fail_msg("%s was not refused", bad[i]);
    assert_null(r);
    assert_non_null(strstr(err.msg, named[i]));
    json_decref(s);
  }
  s = json_loads("{\"url\":\"http://x\",\"timeoutMs\":-1}", 0, NULL);
  provider_remote_create(s, fake_getenv, &r, &err);
  assert_string_equal(err.msg, "remote: timeoutMs must be an integer in 1..600000 ms, got -1");
  json_decref(s);
  s = json_loads("{\"url\":\"http://x\",\"timeoutMs\":600000,\"connectTimeoutMs\":1,"
                 "\"temperature\":2}",
                 0, NULL);
  assert_int_equal(provider_remote_create(s, fake_getenv, &r, &err), 0);
  provider_remote_destroy(r);
  json_decref(s);
}

static void test_timeout_disconnect_refused(void **state) {
  struct fixture *f = *state;
  make_remote(f, "{\"url\": \"http://127.0.0.1:%d/slow\", \"timeoutMs\": 300}");
  double t0 = aug_now_ms();
  expect_error(f, AUG_ETIMEOUT, "timed out after");
  double ms = aug_now_ms() - t0;
  print_message("timeout 300 ms: returned after %.1f ms\n", ms);
  assert_true(ms >= 290 && ms < 800);
  drop_remote(f);
  make_remote(f, "{\"url\": \"http://127.0.0.1:%d/disconnect\"}");
  expect_error(f, AUG_EIO, "Empty reply from server");
  drop_remote(f);
  /* A port nobody listens on: the replay server's port + 1 is unlikely to be taken, but any
   * connection error will do. */
  make_remote(f, "{\"url\": \"http://127.0.0.1:1\", \"connectTimeoutMs\": 500}");
  expect_error(f, AUG_EIO, "onnect");
}

struct canceller {
  atomic_bool *flag;
  double delay_ms;
  double raised_at;
};

static void *cancel_later(void *arg) {
  struct canceller *c = arg;
  struct timespec ts = {0, (long)(c->delay_ms * 1e6)};
  nanosleep(&ts, NULL);
  c->raised_at = aug_now_ms();
  atomic_store(c->flag, true);
  return NULL;
}

/* The slow server answers after 5 s; the cancel flag raised at 150 ms ends the call within 50 ms
 * (the transfer is aborted: the server logs "client gone"). Five rounds, the worst reported. */
static void test_cancel_in_flight(void **state) {
  struct fixture *f = *state;
  make_remote(f, "{\"url\": \"http://127.0.0.1:%d/slow\", \"api\": \"infill\"}");
  double worst = 0;
  for (int i = 0; i < 5; i++) {
    atomic_bool cancel = false;
    struct canceller c = {&cancel, 150, 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, cancel_later, &c), 0);
    char out[256];
    struct pipeline_result res;
    struct aug_err err;
    assert_int_equal(complete(f, &cancel, out, sizeof out, &res, &err), AUG_ECANCELED);
    double latency = aug_now_ms() - c.raised_at;
    pthread_join(t, NULL);
    pipeline_result_free(&res);
    if (latency > worst) worst = latency;
  }
  print_message("cancellation of an in-flight HTTP request: worst of 5 %.1f ms\n", worst);
  assert_true(worst < 50);
  /* The connection is usable again afterwards. */
  drop_remote(f);
  make_remote(f, "{\"url\": \"http://127.0.0.1:%d/ok\", \"api\": \"infill\"}");
  char out[256];
  struct pipeline_result res;
  struct aug_err err;
  assert_int_equal(complete(f, NULL, out, sizeof out, &res, &err), 0);
  pipeline_result_free(&res);
}

/* HTTPS with a self-signed certificate: refused by default, accepted with tlsVerify false. */
static void test_tls_verified_by_default(void **state) {
  struct fixture *f = *state;
  char dir[] = "/tmp/augury-tls-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char cmd[1024], cert[64], key[64];
  snprintf(cert, sizeof cert, "%s/cert.pem", dir);
  snprintf(key, sizeof key, "%s/key.pem", dir);
  snprintf(cmd, sizeof cmd,
           "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 -keyout %s "
           "-out %s >/dev/null 2>&1",
           key, cert);
  if (system(cmd) != 0) {
    rmdir(dir);
    skip(); /* no openssl here */
  }
  struct replay tls;
  const char *extra[] = {"--tls", cert, key, NULL};
  replay_start(&tls, extra);
  struct replay plain = f->replay;
  f->replay = tls;
  make_remote(f, "{\"url\": \"https://127.0.0.1:%d/ok\", \"api\": \"infill\"}");
  expect_error(f, AUG_EIO, "certificate");
  drop_remote(f);
  make_remote(f, "{\"url\": \"https://127.0.0.1:%d/ok\", \"api\": \"infill\", \"tlsVerify\": "
                 "false}");
  char out[256];
  struct pipeline_result res;
  struct aug_err err;
  assert_int_equal(complete(f, NULL, out, sizeof out, &res, &err), 0);
  assert_string_equal(out, "getcwd()");
  pipeline_result_free(&res);
  drop_remote(f);
  f->replay = plain;
  replay_stop(&tls);
  unlink(cert);
  unlink(key);
  rmdir(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_infill, setup, teardown),
      cmocka_unit_test_setup_teardown(test_openai, setup, teardown),
      cmocka_unit_test_setup_teardown(test_error_statuses, setup, teardown),
      cmocka_unit_test_setup_teardown(test_token_never_shown, setup, teardown),
      cmocka_unit_test_setup_teardown(test_timeout_disconnect_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel_in_flight, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tls_verified_by_default, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
