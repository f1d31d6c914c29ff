/* The full synth matrix: every preset x every type, reduced to 2 blocks and 512 tokens, written
 * and checked (synth_check.h). Slow-labelled: it writes about 2 GB (the 7B's 2 blocks in f16 are
 * 880 MB), so the sanitizer pass skips it; test_synth.c covers the code paths quickly. */
#include "tests/unit/engine/synth_check.h"

static char tmpdir[] = "/tmp/augury-test-synth-slow-XXXXXX";

static void test_every_preset_and_type(void **state) {
  (void)state;
  assert_non_null(mkdtemp(tmpdir));
  for (size_t i = 0; i < synth_preset_count(); i++)
    for (int t = 0; t < SYNTH_TYPE_COUNT; t++)
      synth_check_one(tmpdir, synth_preset_name(i), (enum synth_type)t);
  assert_int_equal(rmdir(tmpdir), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_every_preset_and_type)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
