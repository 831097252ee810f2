// Thread-block cluster identity and synchronisation (PTX ISA "barrier.cluster", special registers).
#pragma once
#include <fp8gemm/ptx/common.cuh>

namespace fp8gemm::ptx {

FP8GEMM_DEVICE uint32_t cluster_cta_rank() {
    uint32_t rank;
    asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(rank));
    return rank;
}

// Every thread of every CTA in the cluster arrives, then waits for all others.
FP8GEMM_DEVICE void cluster_sync() {
    asm volatile("barrier.cluster.arrive.release.aligned;\n"
                 "barrier.cluster.wait.acquire.aligned;" ::: "memory");
}

}  // namespace fp8gemm::ptx
