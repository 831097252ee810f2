// CTA-level synchronisation and register reallocation (PTX ISA "bar", "setmaxnreg").
#pragma once
#include <fp8gemm/ptx/common.cuh>

namespace fp8gemm::ptx {

// Named barrier among `num_threads` threads (a multiple of 32); id 0 is __syncthreads'.
FP8GEMM_DEVICE void named_barrier_sync(uint32_t id, uint32_t num_threads) {
    asm volatile("bar.sync %0, %1;" :: "r"(id), "r"(num_threads) : "memory");
}

// Hands registers back to the pool (producer warpgroup) ...
template <int kRegisters>
FP8GEMM_DEVICE void setmaxnreg_dec() {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;" :: "n"(kRegisters));
}

// ... and takes them (math warpgroups). Every warp of the warpgroup must execute it.
template <int kRegisters>
FP8GEMM_DEVICE void setmaxnreg_inc() {
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;" :: "n"(kRegisters));
}

// The value of lane 0: the same in every lane, and known to ptxas to be, so that values and branches
// derived from it can live in uniform registers.
template <typename V>
FP8GEMM_DEVICE V warp_uniform(V value) {
    return static_cast<V>(__shfl_sync(0xffffffff, static_cast<int>(value), 0));
}

// `value` unchanged, but opaque to the compiler from here on: what is computed from it is computed
// after this point, not hoisted out of an enclosing loop (no instruction is emitted).
FP8GEMM_DEVICE void opaque(int& value) {
    asm volatile("" : "+r"(value));
}

// `value` as lane `src_lane` of the warp holds it.
FP8GEMM_DEVICE float lane_value(float value, int src_lane) {
    return __shfl_sync(0xffffffff, value, src_lane);
}

FP8GEMM_DEVICE uint32_t lane_id() {
    uint32_t lane;
    asm volatile("mov.u32 %0, %%laneid;" : "=r"(lane));
    return lane;
}

}  // namespace fp8gemm::ptx
