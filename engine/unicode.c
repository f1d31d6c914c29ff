/* Codepoint flags and UTF-8 coding for the tokenizer (see unicode.h). The flag table is generated;
 * ASCII is answered from a small constant table because it dominates source code. */
#include "engine/unicode.h"

#include <stdbool.h>

#define L UNICODE_LETTER
#define N UNICODE_NUMBER
#define P UNICODE_PUNCTUATION
#define S UNICODE_SYMBOL
#define C UNICODE_CONTROL
#define W UNICODE_WHITESPACE
#define Z UNICODE_SEPARATOR

/* Same values as the generated table for U+0000..U+007F (checked by
 * tests/unit/engine/test_unicode.c). */
/* clang-format off */
static const unsigned char ascii_flags[128] = {
    C,     C,     C, C, C, C, C, C, C, C | W, C | W, C | W, C | W, C | W, C, C, /* 00-0F */
    C,     C,     C, C, C, C, C, C, C, C,     C,     C,     C,     C,     C, C, /* 10-1F */
    Z | W, P,     P, P, S, P, P, P, P, P,     P,     S,     P,     P,     P, P, /* 20-2F */
    N,     N,     N, N, N, N, N, N, N, N,     P,     P,     S,     S,     S, P, /* 30-3F */
    P,     L,     L, L, L, L, L, L, L, L,     L,     L,     L,     L,     L, L, /* 40-4F */
    L,     L,     L, L, L, L, L, L, L, L,     L,     P,     P,     P,     S, P, /* 50-5F */
    S,     L,     L, L, L, L, L, L, L, L,     L,     L,     L,     L,     L, L, /* 60-6F */
    L,     L,     L, L, L, L, L, L, L, L,     L,     P,     S,     P,     S, C, /* 70-7F */
};
/* clang-format on */

#undef L
#undef N
#undef P
#undef S
#undef C
#undef W
#undef Z

unsigned unicode_flags(uint32_t cp) {
  if (cp < 128) return ascii_flags[cp];
  if (cp > UNICODE_MAX) return 0;
  /* Last range whose start is <= cp. */
  size_t lo = 0, hi = unicode_ranges_count;
  while (hi - lo > 1) {
    size_t mid = lo + (hi - lo) / 2;
    if (unicode_ranges[mid].start <= cp)
      lo = mid;
    else
      hi = mid;
  }
  return unicode_ranges[lo].flags;
}

size_t unicode_utf8_len(unsigned char lead) {
  static const unsigned char lengths[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return lengths[lead >> 4];
}

uint32_t unicode_decode_utf8(const char *text, size_t len, size_t *pos) {
  const unsigned char *s = (const unsigned char *)text + *pos;
  size_t left = len - *pos;
  unsigned char b0 = s[0];
  size_t need;
  uint32_t cp;
  if (b0 < 0x80) {
    *pos += 1;
    return b0;
  }
  if ((b0 & 0xE0) == 0xC0) {
    need = 2;
    cp = b0 & 0x1F;
  } else if ((b0 & 0xF0) == 0xE0) {
    need = 3;
    cp = b0 & 0x0F;
  } else if ((b0 & 0xF8) == 0xF0) {
    need = 4;
    cp = b0 & 0x07;
  } else {
    *pos += 1; /* continuation byte or 0xF8..0xFF */
    return UNICODE_REPLACEMENT;
  }
  if (left < need) {
    *pos += 1;
    return UNICODE_REPLACEMENT;
  }
  for (size_t i = 1; i < need; i++) {
    if ((s[i] & 0xC0) != 0x80) {
      *pos += 1;
      return UNICODE_REPLACEMENT;
    }
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  *pos += need;
  return cp;
}

size_t unicode_encode_utf8(uint32_t cp, char out[4]) {
  if (cp < 0x80) {
    out[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (char)(0xE0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | (cp >> 18));
  out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  out[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

int unicode_utf8_check(const unsigned char *s, size_t n) {
  unsigned char b = s[0];
  if (b < 0x80) return 1;
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte (Table 3-7) */
  if (b >= 0xC2 && b <= 0xDF) {
    need = 2;
  } else if (b >= 0xE0 && b <= 0xEF) {
    need = 3;
    if (b == 0xE0) lo = 0xA0; /* no overlongs */
    if (b == 0xED) hi = 0x9F; /* no surrogates */
  } else if (b >= 0xF0 && b <= 0xF4) {
    need = 4;
    if (b == 0xF0) lo = 0x90;
    if (b == 0xF4) hi = 0x8F; /* nothing above U+10FFFF */
  } else {
    return -1;
  }
  for (size_t i = 1; i < need; i++) {
    if (i >= n) return 0;
    unsigned char c = s[i];
    bool ok = i == 1 ? (c >= lo && c <= hi) : (c >= 0x80 && c <= 0xBF);
    if (!ok) return -(int)i;
  }
  return (int)need;
}
