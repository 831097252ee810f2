// Packing FP32 pairs to BF16 and storing 8x8 matrices to shared memory (PTX ISA "cvt", "stmatrix").
#pragma once
#include <fp8gemm/ptx/common.cuh>

namespace fp8gemm::ptx {

// Two floats -> one .b32 holding two BF16 (round to nearest even); `lo` lands in the low half.
FP8GEMM_DEVICE uint32_t pack_bf16x2(float lo, float hi) {
    uint32_t packed;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(packed) : "f"(hi), "f"(lo));
    return packed;
}

// Four 8x8 BF16 matrices; lanes 8i..8i+7 give the row addresses of matrix i (16-byte rows).
FP8GEMM_DEVICE void stmatrix_x4(uint32_t smem_row_addr, uint32_t r0, uint32_t r1, uint32_t r2, uint32_t r3) {
    asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1, %2, %3, %4};"
                 :: "r"(smem_row_addr), "r"(r0), "r"(r1), "r"(r2), "r"(r3) : "memory");
}

}  // namespace fp8gemm::ptx
