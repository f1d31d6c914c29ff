/* The AVX2/FMA/F16C kernel table (this file is compiled with -mavx2 -mfma -mf16c;
 * cpu_backend.c checks the CPU before using it). Kernel bodies: cpu_kernels_x86.h. */
#include <immintrin.h>

/* maddubs gives int16 pairs; madd with the scales widens to int32. */
#define X86_MADD_ACC(acc, p16, s16) _mm256_add_epi32((acc), _mm256_madd_epi16((p16), (s16)))
#define X86_DOT_U8_I8(u, s) _mm256_madd_epi16(_mm256_maddubs_epi16((u), (s)), _mm256_set1_epi16(1))

#define X86_KQUANT_DPBUSD 0

#include "backends/cpu/cpu_kernels_x86.h"

static const struct cpu_kernels avx2_kernels = {
    .isa = "AVX2",
    .dot =
        {
            [QUANT_F32] = avx2_dot_f32,
            [QUANT_F16] = avx2_dot_f16,
            [QUANT_Q4_0] = avx2_dot_q4_0,
            [QUANT_Q5_0] = avx2_dot_q5_0,
            [QUANT_Q8_0] = avx2_dot_q8_0,
            [QUANT_Q4_K] = avx2_dot_q4_k,
            [QUANT_Q6_K] = avx2_dot_q6_k,
        },
    .dot_gemm = {[QUANT_Q4_K] = avx2_dot_q4_k_gemm, [QUANT_Q6_K] = avx2_dot_q6_k_tiled},
    .dot8 = {[QUANT_Q4_K] = avx2_dot8_q4_k},
    .dot8_gemm = {[QUANT_Q4_K] = avx2_dot8_q4_k_gemm},
    .pack8 = {[QUANT_Q4_K] = avx2_pack8_q4_k},
    .dot8_packed = {[QUANT_Q4_K] = avx2_dot8_packed_q4_k},
    .pack_size = {[QUANT_Q4_K] = sizeof(struct cpu_q4_k_pack8)},
    .quantize_q8_0 = avx2_quantize_q8_0,
    .quantize_q8_0x = avx2_quantize_q8_0x,
    .quantize_q8_k = avx2_quantize_q8_k,
    .dot_f32 = avx2_vec_dot_f32,
    .f16_to_f32 = avx2_f16_to_f32,
    .round_f16 = avx2_round_f16,
    .silu_mul = avx2_silu_mul,
    .softmax_exp = avx2_softmax_exp,
    .attn_scores = avx2_attn_scores,
    .attn_accumulate = avx2_attn_accumulate,
};

const struct cpu_kernels *cpu_kernels_avx2(void) {
  return &avx2_kernels;
}
