// dequant32(rb, c, K, v): elements 32c .. 32c + 31 of the weight row starting at byte rb of the
// uint[] bound as WBUF (readers prefixed w_), of type TYPE (a specialization constant); zeros
// past K (only F32/F16 rows have a tail; block types have K a multiple of their block).
// Block layouts: ggml-common.h / engine/quant.h.

void dequant32(uint rb, uint c, uint K, out float v[32]) {
  if (TYPE == T_F32 || TYPE == T_F16) {
    for (uint i = 0u; i < 32u; i++) {
      uint e = 32u * c + i;
      v[i] = e < K ? (TYPE == T_F32 ? w_f32(rb + 4u * e) : w_f16(rb + 2u * e)) : 0.0;
    }
  } else if (TYPE == T_Q8_0) {
    uint blk = rb + 34u * c; // f16 d, int8 qs[32]
    float d = w_f16(blk);
    for (uint j = 0u; j < 8u; j++) {
      uint q = w_u32(blk + 2u + 4u * j);
      for (uint t = 0u; t < 4u; t++)
        v[4u * j + t] = d * float(sext8(q >> (8u * t)));
    }
  } else if (TYPE == T_Q4_0) {
    uint blk = rb + 18u * c; // f16 d, qs[16]: element i < 16 low nibble of qs[i], else high of qs[i-16]
    float d = w_f16(blk);
    for (uint j = 0u; j < 4u; j++) {
      uint q = w_u32(blk + 2u + 4u * j);
      for (uint t = 0u; t < 4u; t++) {
        uint b = (q >> (8u * t)) & 0xffu;
        v[4u * j + t] = d * (float(b & 15u) - 8.0);
        v[16u + 4u * j + t] = d * (float(b >> 4) - 8.0);
      }
    }
  } else if (TYPE == T_Q5_0) {
    uint blk = rb + 22u * c; // f16 d, qh[4] (bit i: fifth bit of element i), qs[16] as Q4_0
    float d = w_f16(blk);
    uint qh = w_u32(blk + 2u);
    for (uint j = 0u; j < 4u; j++) {
      uint q = w_u32(blk + 6u + 4u * j);
      for (uint t = 0u; t < 4u; t++) {
        uint i = 4u * j + t;
        uint b = (q >> (8u * t)) & 0xffu;
        uint lo = (b & 15u) | (((qh >> i) & 1u) << 4);
        uint hi = (b >> 4) | (((qh >> (i + 16u)) & 1u) << 4);
        v[i] = d * (float(lo) - 16.0);
        v[16u + i] = d * (float(hi) - 16.0);
      }
    }
  } else if (TYPE == T_Q4_K) {
    // 144 bytes: f16 d, f16 dmin, scales[12] (6-bit scale/min pairs), qs[128]. Sub-block j (32
    // elements) is the low (j even) or high nibbles of qs[32 (j/2) ..]; value d sc q - dmin m.
    uint blk = rb + 144u * (c >> 3);
    uint j = c & 7u;
    float d = w_f16(blk), dmin = w_f16(blk + 2u);
    uint s = blk + 4u;
    uint sc, mn;
    if (j < 4u) {
      sc = w_u8(s + j) & 63u;
      mn = w_u8(s + j + 4u) & 63u;
    } else {
      sc = (w_u8(s + j + 4u) & 15u) | ((w_u8(s + j - 4u) >> 6) << 4);
      mn = (w_u8(s + j + 4u) >> 4) | ((w_u8(s + j) >> 6) << 4);
    }
    float ds = d * float(sc), dm = dmin * float(mn);
    uint qb = blk + 16u + 32u * (j >> 1);
    uint shift = 4u * (j & 1u);
    for (uint k = 0u; k < 8u; k++) {
      uint q = w_u32(qb + 4u * k);
      for (uint t = 0u; t < 4u; t++)
        v[4u * k + t] = ds * float((q >> (8u * t + shift)) & 15u) - dm;
    }
  } else if (TYPE == T_Q6_K) {
    // 210 bytes: ql[128], qh[64], int8 scales[16], f16 d. Element e = 128 n + 32 qd + l: low 4
    // bits from ql[64 n + 32 (qd & 1) + l] (high nibble when qd >= 2), high 2 bits from
    // qh[32 n + l] >> 2 qd; value d scales[e / 16] (q - 32).
    uint blk = rb + 210u * (c >> 3);
    uint j = c & 7u;
    uint n = j >> 2, qd = j & 3u;
    float d = w_f16(blk + 208u);
    float s0 = d * float(sext8(w_u8(blk + 192u + 2u * j)));
    float s1 = d * float(sext8(w_u8(blk + 193u + 2u * j)));
    uint lb = blk + 64u * n + 32u * (qd & 1u);
    uint hb = blk + 128u + 32u * n;
    uint lshift = qd >= 2u ? 4u : 0u;
    for (uint k = 0u; k < 8u; k++) {
      uint ql = w_u32(lb + 4u * k), qh = w_u32(hb + 4u * k);
      for (uint t = 0u; t < 4u; t++) {
        uint l = 4u * k + t;
        uint q = ((ql >> (8u * t + lshift)) & 15u) | (((qh >> (8u * t + 2u * qd)) & 3u) << 4);
        v[l] = (l < 16u ? s0 : s1) * (float(q) - 32.0);
      }
    }
  } else if (TYPE == T_IQ4_NL || TYPE == T_IQ4_XS) {
    // IQ4_NL, 18 bytes: f16 d, qs[16] (element j low nibble, j + 16 high), value d level[q].
    // IQ4_XS, 136 bytes: f16 d, u16 scales_h, scales_l[4], qs[128]; sub-block j (32 elements,
    // bytes qs[16 j ..] as IQ4_NL) has the 6-bit scale (nibble j % 2 of scales_l[j / 2]) |
    // (bits 2j of scales_h) << 4, biased by 32.
    uint qb;
    float dl;
    if (TYPE == T_IQ4_NL) {
      uint blk = rb + 18u * c;
      dl = w_f16(blk);
      qb = blk + 2u;
    } else {
      uint blk = rb + 136u * (c >> 3);
      uint j = c & 7u;
      uint ls = ((w_u8(blk + 4u + j / 2u) >> (4u * (j & 1u))) & 15u) |
                (((w_u16(blk + 2u) >> (2u * j)) & 3u) << 4);
      dl = w_f16(blk) * (float(ls) - 32.0);
      qb = blk + 8u + 16u * j;
    }
    for (uint k = 0u; k < 4u; k++) {
      uint q = w_u32(qb + 4u * k);
      for (uint t = 0u; t < 4u; t++) {
        uint b = (q >> (8u * t)) & 0xffu;
        v[4u * k + t] = dl * IQ4NL_LEVELS[b & 15u];
        v[16u + 4u * k + t] = dl * IQ4NL_LEVELS[b >> 4];
      }
    }
  } else {
    for (uint i = 0u; i < 32u; i++)
      v[i] = 0.0;
  }
}
