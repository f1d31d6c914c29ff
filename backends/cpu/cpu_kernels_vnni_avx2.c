/* The AVX512-VNNI kernel table: the AVX2 kernels (cpu_kernels_x86.h) with vpdpwssd/vpdpbusd
 * (256-bit, AVX512VL) fusing the int16 widen-and-add steps, which the batched kernels are bound
 * by. CMakeLists.txt gives files named *_vnni_avx2.c the AVX512F/BW/VL/VNNI flags on top of AVX2,
 * and cpu_backend.c checks avx512vnni/vl/bw before using the table. */
#include <immintrin.h>

#define X86_MADD_ACC(acc, p16, s16) _mm256_dpwssd_epi32((acc), (p16), (s16))
#define X86_DOT_U8_I8(u, s) _mm256_dpbusd_epi32(_mm256_setzero_si256(), (u), (s))

#define X86_KQUANT_DPBUSD 1

#include "backends/cpu/cpu_kernels_x86.h"

X86_KERNEL_TABLE(vnni_kernels, "AVX512-VNNI");

const struct cpu_kernels *cpu_kernels_vnni(void) {
  return &vnni_kernels;
}
