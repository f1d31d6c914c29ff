/* The AVX512-VNNI kernel table: the AVX2 kernels (cpu_kernels_x86.h) with vpdpwssd/vpdpbusd
 * (256-bit, AVX512VL) fusing the int16 widen-and-add steps, which the batched kernels are bound
 * by. CMakeLists.txt gives files named *_vnni_avx2.c the AVX512F/BW/VL/VNNI flags on top of AVX2,
 * and cpu_backend.c checks avx512vnni/vl/bw before using the table. */
#include <immintrin.h>

#define X86_MADD_ACC(acc, p16, s16) _mm256_dpwssd_epi32((acc), (p16), (s16))
#define X86_DOT_U8_I8(u, s) _mm256_dpbusd_epi32(_mm256_setzero_si256(), (u), (s))

#define X86_KQUANT_DPBUSD 1

#include "backends/cpu/cpu_kernels_x86.h"

static const struct cpu_kernels vnni_kernels = {
    .isa = "AVX512-VNNI",
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

const struct cpu_kernels *cpu_kernels_vnni(void) {
  return &vnni_kernels;
}
