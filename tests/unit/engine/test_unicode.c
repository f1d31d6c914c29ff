/* Tests for engine/unicode.c and the generated engine/unicode_tables.c: table shape, the ASCII
 * fast path against the table, general categories and White_Space of known codepoints, and UTF-8
 * decoding with llama.cpp's treatment of malformed input. */
#include "tests/unit/test_support.h"

#include <stdbool.h>

#include "engine/unicode.h"

/* The generated table's answer, without the ASCII shortcut. */
static unsigned table_flags(uint32_t cp) {
  unsigned flags = 0;
  for (size_t i = 0; i < unicode_ranges_count && unicode_ranges[i].start <= cp; i++) {
    flags = unicode_ranges[i].flags;
  }
  return flags;
}

static void test_table_shape(void **state) {
  (void)state;
  assert_true(unicode_ranges_count > 1000); /* full ranges, not a hand list */
  assert_int_equal(unicode_ranges[0].start, 0);
  for (size_t i = 1; i < unicode_ranges_count; i++) {
    assert_true(unicode_ranges[i].start > unicode_ranges[i - 1].start);
    assert_true(unicode_ranges[i].flags != unicode_ranges[i - 1].flags);
    assert_true(unicode_ranges[i].start <= UNICODE_MAX);
  }
  assert_true(strlen(unicode_table_version) >= 4);
}

static void test_ascii_matches_table(void **state) {
  (void)state;
  for (uint32_t cp = 0; cp < 128; cp++) {
    if (unicode_flags(cp) != table_flags(cp)) {
      fail_msg("U+%04X: ascii table %u, generated table %u", cp, unicode_flags(cp),
               table_flags(cp));
    }
  }
  /* and a sample of the binary search against the linear scan */
  for (uint32_t cp = 128; cp <= UNICODE_MAX; cp += 97)
    assert_int_equal(unicode_flags(cp), table_flags(cp));
}

static void test_categories(void **state) {
  (void)state;
  const struct {
    uint32_t cp;
    unsigned flags;
  } cases[] = {
      {'A', UNICODE_LETTER},
      {'z', UNICODE_LETTER},
      {'7', UNICODE_NUMBER},
      {'_', UNICODE_PUNCTUATION},
      {'$', UNICODE_SYMBOL},
      {'`', UNICODE_SYMBOL},
      {' ', UNICODE_SEPARATOR | UNICODE_WHITESPACE},
      {'\t', UNICODE_CONTROL | UNICODE_WHITESPACE},
      {0x1C, UNICODE_CONTROL}, /* Python's isspace says yes; White_Space says no */
      {0x85, UNICODE_CONTROL | UNICODE_WHITESPACE},
      {0xA0, UNICODE_SEPARATOR | UNICODE_WHITESPACE},
      {0xE9, UNICODE_LETTER},   /* é */
      {0x0301, UNICODE_MARK},   /* combining acute */
      {0x0661, UNICODE_NUMBER}, /* Arabic-Indic one */
      {0x00BD, UNICODE_NUMBER}, /* ½ (No) */
      {0x2163, UNICODE_NUMBER}, /* Ⅳ (Nl) */
      {0x4E2D, UNICODE_LETTER}, /* 中 */
      {0xAC00, UNICODE_LETTER}, /* 가 */
      {0x3000, UNICODE_SEPARATOR | UNICODE_WHITESPACE},
      {0x2028, UNICODE_SEPARATOR | UNICODE_WHITESPACE},
      {0x200B, UNICODE_CONTROL},     /* zero width space is Cf, not White_Space */
      {0x1F600, UNICODE_SYMBOL},     /* 😀 */
      {0xFF01, UNICODE_PUNCTUATION}, /* ！ */
      {0xE000, UNICODE_CONTROL},     /* private use (Co) */
      {0x0378, 0},                   /* unassigned */
      {0xFDD0, 0},                   /* noncharacter */
      {0x1D400, UNICODE_LETTER},     /* 𝐀 */
      {0x20000, UNICODE_LETTER},     /* CJK extension B */
      {0x110000, 0},
      {0xFFFFFFFF, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    if (unicode_flags(cases[i].cp) != cases[i].flags) {
      fail_msg("U+%04X: flags %u, expected %u", cases[i].cp, unicode_flags(cases[i].cp),
               cases[i].flags);
    }
  }
}

/* White_Space (PropList.txt) exactly. */
static void test_white_space_set(void **state) {
  (void)state;
  const uint32_t expected[] = {0x09,   0x0A,   0x0B,   0x0C,   0x0D,   0x20,   0x85,
                               0xA0,   0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004,
                               0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200A, 0x2028,
                               0x2029, 0x202F, 0x205F, 0x3000};
  size_t k = 0;
  for (uint32_t cp = 0; cp <= UNICODE_MAX; cp++) {
    if (!(unicode_flags(cp) & UNICODE_WHITESPACE)) continue;
    assert_true(k < sizeof expected / sizeof expected[0]);
    assert_int_equal(cp, expected[k]);
    k++;
  }
  assert_int_equal(k, sizeof expected / sizeof expected[0]);
}

static void test_decode(void **state) {
  (void)state;
  struct {
    const char *bytes;
    size_t len;
    uint32_t cps[8];
    size_t n;
  } cases[] = {
      {"a\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x98\x80", 10, {'a', 0xE9, 0x4E2D, 0x1F600}, 4},
      {"\x80z", 2, {UNICODE_REPLACEMENT, 'z'}, 2}, /* stray continuation */
      {"\xC3", 1, {UNICODE_REPLACEMENT}, 1},       /* truncated at the end */
      {"\xE4\xB8z", 3, {UNICODE_REPLACEMENT, UNICODE_REPLACEMENT, 'z'}, 3}, /* byte by byte */
      {"\xC3(", 2, {UNICODE_REPLACEMENT, '('}, 2},
      {"\xC0\x80", 2, {0}, 1},          /* overlong: accepted */
      {"\xED\xA0\x80", 3, {0xD800}, 1}, /* surrogate: accepted */
      {"\xF8\x88", 2, {UNICODE_REPLACEMENT, UNICODE_REPLACEMENT}, 2},
      {"\xFF", 1, {UNICODE_REPLACEMENT}, 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    size_t pos = 0, n = 0;
    while (pos < cases[i].len) {
      uint32_t cp = unicode_decode_utf8(cases[i].bytes, cases[i].len, &pos);
      assert_true(n < cases[i].n);
      if (cp != cases[i].cps[n]) fail_msg("case %zu, codepoint %zu: U+%04X", i, n, cp);
      n++;
    }
    assert_int_equal(n, cases[i].n);
  }
}

static void test_encode_roundtrip(void **state) {
  (void)state;
  for (uint32_t cp = 0; cp <= UNICODE_MAX; cp += (cp < 0x800 ? 1 : 61)) {
    char buf[4];
    size_t n = unicode_encode_utf8(cp, buf);
    assert_int_equal(n, cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4);
    assert_int_equal(unicode_utf8_len((unsigned char)buf[0]), n);
    size_t pos = 0;
    assert_int_equal(unicode_decode_utf8(buf, n, &pos), cp);
    assert_int_equal(pos, n);
    bool surrogate = cp >= 0xD800 && cp <= 0xDFFF;
    assert_int_equal(unicode_utf8_check((const unsigned char *)buf, n), surrogate ? -1 : (int)n);
    if (n > 1 && !surrogate)
      assert_int_equal(unicode_utf8_check((const unsigned char *)buf, n - 1), 0);
  }
}

static void test_check(void **state) {
  (void)state;
  const struct {
    const char *s;
    size_t n;
    int want;
  } cases[] = {
      {"a", 1, 1},
      {"\xC3\xA9", 2, 2},
      {"\xC3", 1, 0}, /* incomplete */
      {"\xF0\x9F\x98", 3, 0},
      {"\xC0\x80", 2, -1},         /* overlong lead */
      {"\xE0\x80\x80", 3, -1},     /* overlong: second byte out of range */
      {"\xED\xA0\x80", 3, -1},     /* surrogate */
      {"\xF4\x90\x80\x80", 4, -1}, /* above U+10FFFF */
      {"\xF0\x9F\x98z", 4, -3},    /* maximal subpart F0 9F 98 */
      {"\xE4z", 2, -1},
      {"\x80", 1, -1},
      {"\xFF", 1, -1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int got = unicode_utf8_check((const unsigned char *)cases[i].s, cases[i].n);
    if (got != cases[i].want) fail_msg("case %zu: %d, expected %d", i, got, cases[i].want);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_table_shape), cmocka_unit_test(test_ascii_matches_table),
      cmocka_unit_test(test_categories),  cmocka_unit_test(test_white_space_set),
      cmocka_unit_test(test_decode),      cmocka_unit_test(test_encode_roundtrip),
      cmocka_unit_test(test_check),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
