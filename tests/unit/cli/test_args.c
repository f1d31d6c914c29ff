/* Tests for cli/args.c, the option parser the subcommands share: every accepted form, the
 * usage errors (unknown option, missing value, bad number, out of range, extra positional). */
#include "tests/unit/test_support.h"

#include "cli/args.h"
#include "engine/engine.h"

struct fixture {
  const char *model;
  bool json;
  int bos;
  int64_t n;
  double temp;
  struct cli_option opts[6];
  struct cli_args args;
};

static void fixture_init(struct fixture *f) {
  memset(f, 0, sizeof *f);
  f->bos = -1;
  f->n = 16;
  const struct cli_option opts[6] = {
      CLI_OPT_STRING("model", 'm', &f->model, "PATH", "model"),
      CLI_OPT_FLAG("json", 0, &f->json, "json"),
      CLI_OPT_SET("bos", 0, &f->bos, 1, "add bos"),
      CLI_OPT_SET("no-bos", 0, &f->bos, 0, "no bos"),
      CLI_OPT_INT("n-predict", 'n', &f->n, "N", "count", 1, 100),
      CLI_OPT_FLOAT("temp", 't', &f->temp, "T", "temperature", 0.0, 2.0),
  };
  memcpy(f->opts, opts, sizeof opts);
  f->args.options = f->opts;
  f->args.n_options = 6;
  f->args.synopsis = "test [options] A B";
}

static int parse(struct fixture *f, char **argv, int argc, const char **pos, size_t *n_pos,
                 struct aug_err *err) {
  return cli_args_parse(&f->args, argc, argv, pos, 2, n_pos, err);
}

static void test_all_forms(void **state) {
  (void)state;
  struct fixture f;
  fixture_init(&f);
  char *argv[] = {"test",           "-m",       "a.gguf", "--json", "x",
                  "--n-predict=42", "--no-bos", "-t0.5",  "--",     "-y"};
  const char *pos[2];
  size_t n_pos = 99;
  struct aug_err err = {0};
  assert_int_equal(parse(&f, argv, 10, pos, &n_pos, &err), 0);
  assert_string_equal(f.model, "a.gguf");
  assert_true(f.json);
  assert_int_equal(f.bos, 0);
  assert_int_equal(f.n, 42);
  assert_true(f.temp == 0.5);
  assert_int_equal(n_pos, 2);
  assert_string_equal(pos[0], "x");
  assert_string_equal(pos[1], "-y");
}

static void test_lone_dash_is_positional(void **state) {
  (void)state;
  struct fixture f;
  fixture_init(&f);
  char *argv[] = {"test", "-", "-n7", "--bos"};
  const char *pos[2];
  size_t n_pos = 0;
  assert_int_equal(parse(&f, argv, 4, pos, &n_pos, NULL), 0);
  assert_int_equal(n_pos, 1);
  assert_string_equal(pos[0], "-");
  assert_int_equal(f.n, 7);
  assert_int_equal(f.bos, 1);
}

static void expect_error(char **argv, int argc, const char *substring) {
  struct fixture f;
  fixture_init(&f);
  const char *pos[2];
  size_t n_pos = 0;
  struct aug_err err = {0};
  assert_int_equal(parse(&f, argv, argc, pos, &n_pos, &err), AUG_EINVAL);
  if (!strstr(err.msg, substring)) fail_msg("message '%s' lacks '%s'", err.msg, substring);
}

static void test_errors(void **state) {
  (void)state;
  expect_error((char *[]){"t", "--nope"}, 2, "unknown option '--nope'");
  expect_error((char *[]){"t", "-z"}, 2, "unknown option '-z'");
  expect_error((char *[]){"t", "-m"}, 2, "'--model' needs a value");
  expect_error((char *[]){"t", "-n", "abc"}, 3, "--n-predict: 'abc' is not an integer");
  expect_error((char *[]){"t", "-n", "101"}, 3, "101 is out of range 1..100");
  expect_error((char *[]){"t", "--temp=3"}, 2, "--temp: 3 is out of range");
  expect_error((char *[]){"t", "--json=1"}, 2, "takes no value");
  expect_error((char *[]){"t", "a", "b", "c"}, 4, "unexpected argument 'c'");
}

static void test_help(void **state) {
  (void)state;
  struct fixture f;
  fixture_init(&f);
  const char *pos[2];
  size_t n_pos = 0;
  assert_int_equal(parse(&f, (char *[]){"t", "x", "--help"}, 3, pos, &n_pos, NULL), CLI_ARGS_HELP);
  assert_int_equal(parse(&f, (char *[]){"t", "-h"}, 2, pos, &n_pos, NULL), CLI_ARGS_HELP);
}

static void test_bytes(void **state) {
  (void)state;
  uint64_t v = 0;
  assert_int_equal(cli_args_parse_bytes("4096", &v), 0);
  assert_int_equal(v, 4096);
  assert_int_equal(cli_args_parse_bytes("512K", &v), 0);
  assert_int_equal(v, 512 * 1024);
  assert_int_equal(cli_args_parse_bytes("1.5G", &v), 0);
  assert_int_equal(v, 1536ull * 1024 * 1024);
  assert_int_equal(cli_args_parse_bytes("8GiB", &v), 0);
  assert_int_equal(v, 8ull << 30);
  assert_int_equal(cli_args_parse_bytes("300MB", &v), 0);
  assert_int_equal(v, 300ull << 20);
  assert_int_equal(cli_args_parse_bytes("", &v), AUG_EINVAL);
  assert_int_equal(cli_args_parse_bytes("-1G", &v), AUG_EINVAL);
  assert_int_equal(cli_args_parse_bytes("4X", &v), AUG_EINVAL);
  assert_int_equal(cli_args_parse_bytes("4Gx", &v), AUG_EINVAL);
}

/* --kv-type and --mlock, as generate and bench list them (CLI_LOAD_OPTIONS), land in
 * engine_params; a bad type is a usage error naming the value. */
static void test_load_options(void **state) {
  (void)state;
  struct cli_load_options lo = cli_load_options_default();
  const struct cli_option opts[] = {CLI_LOAD_OPTIONS(&lo)};
  const struct cli_args args = {opts, sizeof opts / sizeof opts[0], "generate [options]"};
  struct engine_params ep = engine_params_default();
  struct aug_err err = {0};
  size_t n_pos = 0;
  assert_int_equal(cli_load_options_apply(&lo, &ep, &err), 0); /* defaults: f16, no mlock */
  assert_int_equal(ep.kv_type, ENGINE_KV_F16);
  assert_false(ep.mlock);
  char *argv[] = {"generate", "--kv-type", "q4_0", "--mlock"};
  assert_int_equal(cli_args_parse(&args, 4, argv, NULL, 0, &n_pos, &err), 0);
  assert_int_equal(cli_load_options_apply(&lo, &ep, &err), 0);
  assert_int_equal(ep.kv_type, ENGINE_KV_Q4_0);
  assert_true(ep.mlock);
  char *argv8[] = {"generate", "--kv-type=q8_0"};
  assert_int_equal(cli_args_parse(&args, 2, argv8, NULL, 0, &n_pos, &err), 0);
  assert_int_equal(cli_load_options_apply(&lo, &ep, &err), 0);
  assert_int_equal(ep.kv_type, ENGINE_KV_Q8_0);
  char *bad[] = {"generate", "--kv-type", "q4_1"};
  assert_int_equal(cli_args_parse(&args, 3, bad, NULL, 0, &n_pos, &err), 0);
  assert_int_equal(cli_load_options_apply(&lo, &ep, &err), AUG_EINVAL);
  assert_non_null(strstr(err.msg, "'q4_1'"));
  assert_non_null(strstr(err.msg, "q4_0"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_all_forms), cmocka_unit_test(test_lone_dash_is_positional),
      cmocka_unit_test(test_errors),    cmocka_unit_test(test_help),
      cmocka_unit_test(test_bytes),     cmocka_unit_test(test_load_options),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
