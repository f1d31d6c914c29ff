/* The AVX2/FMA/F16C kernel table (this file is compiled with -mavx2 -mfma -mf16c;
 * cpu_backend.c checks the CPU before using it). Kernel bodies: cpu_kernels_x86.h. */
#include <immintrin.h>

/* maddubs gives int16 pairs; madd with the scales widens to int32. */
#define X86_MADD_ACC(acc, p16, s16) _mm256_add_epi32((acc), _mm256_madd_epi16((p16), (s16)))
#define X86_DOT_U8_I8(u, s) _mm256_madd_epi16(_mm256_maddubs_epi16((u), (s)), _mm256_set1_epi16(1))

#define X86_KQUANT_DPBUSD 0

#include "backends/cpu/cpu_kernels_x86.h"

X86_KERNEL_TABLE(avx2_kernels, "AVX2");

const struct cpu_kernels *cpu_kernels_avx2(void) {
  return &avx2_kernels;
}
