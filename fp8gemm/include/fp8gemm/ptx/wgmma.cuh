// Warpgroup matrix multiply-accumulate (PTX ISA "wgmma"): ordering primitives and the shared-memory
// matrix descriptor. The mma itself, with its N/2 accumulator operands, is generated per N by the
// JIT (fp8gemm/codegen.py) as `Wgmma_m64nNk32_e4m3`.
#pragma once
#include <fp8gemm/ptx/common.cuh>

namespace fp8gemm::ptx {

// Before the first wgmma, and whenever registers the wgmma touches were accessed in between.
FP8GEMM_DEVICE void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }

FP8GEMM_DEVICE void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }

template <int N>
FP8GEMM_DEVICE void wgmma_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;" :: "n"(N) : "memory"); }

// wgmma_wait<n> for an n known only after unrolling (0-3): the switch folds away.
FP8GEMM_DEVICE void wgmma_wait_pending(int n) {
    switch (n) {
        case 0: wgmma_wait<0>(); break;
        case 1: wgmma_wait<1>(); break;
        case 2: wgmma_wait<2>(); break;
        default: wgmma_wait<3>(); break;
    }
}

// Keeps the compiler from moving accesses of an accumulator register across the async region.
FP8GEMM_DEVICE void fence_register(float& reg) { asm volatile("" : "+f"(reg) :: "memory"); }

// Shared-memory matrix descriptor for a K-major tile whose rows are 128 bytes wide and laid out
// with the 128-byte swizzle, as a TMA load with CU_TENSOR_MAP_SWIZZLE_128B writes it. The tile
// must start on a 1024-byte boundary so that the base-offset field is 0.
struct SmemDescriptor {
    static constexpr uint64_t kLeadingByteOffset = 1;          // ignored for swizzled K-major; "assumed 1"
    static constexpr uint64_t kStrideByteOffset = 1024 >> 4;   // 8 rows x 128 B between row groups
    static constexpr uint64_t kSwizzle128B = 1;                // layout type field, bits 62-63

    // `tile` is a 32-bit shared-window address. Adding (bytes >> 4) to a descriptor moves its start
    // by `bytes` (the start field is bits 0-13, in 16-byte units, and never overflows in 228 KB).
    FP8GEMM_DEVICE static uint64_t make(uint32_t tile) {
        const uint64_t start = (tile & 0x3FFFF) >> 4;
        return start | (kLeadingByteOffset << 16) | (kStrideByteOffset << 32) | (kSwizzle128B << 62);
    }

    // One k-step of 32 FP8 elements is 32 bytes along the row: 2 in the 16-byte address units.
    static constexpr uint64_t kKStepIncrement = 32 >> 4;
};

// The 4 wgmma (k = 32 each) of one 64-row chain's 128-deep K block into `partial`, which they
// overwrite: the accumulator registers fenced, wgmma.fence, the four, one commit group. Mma is the
// JIT's Wgmma_m64nNk32_e4m3 (kRegs = N / 2 accumulator registers per thread).
template <class Mma, int kRegs>
FP8GEMM_DEVICE void wgmma_k128(float* partial, uint64_t desc_a, uint64_t desc_b) {
#pragma unroll
    for (int i = 0; i < kRegs; ++i) fence_register(partial[i]);
    wgmma_fence();
#pragma unroll
    for (int ks = 0; ks < 4; ++ks)
        Mma::run(partial, desc_a + ks * SmemDescriptor::kKStepIncrement, desc_b + ks * SmemDescriptor::kKStepIncrement,
                 ks > 0);
    wgmma_commit();
}

}  // namespace fp8gemm::ptx
