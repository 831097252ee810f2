// mbarrier: the transaction barriers that guard the shared-memory ring (PTX ISA "Parallel
// Synchronization and Communication Instructions: mbarrier"). Barriers are named by their 32-bit
// shared-memory address, so that no generic pointer (and no S2R to rebuild one) enters the loop.
#pragma once
#include <fp8gemm/ptx/common.cuh>

namespace fp8gemm::ptx {

FP8GEMM_DEVICE void mbarrier_init(uint32_t bar, uint32_t arrive_count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" :: "r"(bar), "r"(arrive_count));
}

// Makes the initialised barriers visible to the async proxy and to the other CTAs of the cluster.
FP8GEMM_DEVICE void fence_mbarrier_init() {
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
}

// One arrival that also announces `bytes` of TMA traffic that must land before the phase completes.
FP8GEMM_DEVICE void mbarrier_arrive_expect_tx(uint32_t bar, uint32_t bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" :: "r"(bar), "r"(bytes) : "memory");
}

FP8GEMM_DEVICE void mbarrier_arrive(uint32_t bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" :: "r"(bar) : "memory");
}

// Arrival on the barrier at the same offset in CTA `cta_rank` of the cluster (may be this CTA).
FP8GEMM_DEVICE void mbarrier_arrive_cluster(uint32_t bar, uint32_t cta_rank) {
    asm volatile("{ .reg .b32 remote;\n"
                 "mapa.shared::cluster.u32 remote, %0, %1;\n"
                 "mbarrier.arrive.shared::cluster.b64 _, [remote]; }"
                 :: "r"(bar), "r"(cta_rank) : "memory");
}

// Arrival on the barrier at the same offset in CTA `cta_rank` that releases this thread's earlier
// memory operations (its shared-memory writes, its reads of peers' shared memory) to whoever
// acquires the completed phase anywhere in the cluster (mbarrier_wait_cluster).
FP8GEMM_DEVICE void mbarrier_arrive_release_cluster(uint32_t bar, uint32_t cta_rank) {
    asm volatile("{ .reg .b32 remote;\n"
                 "mapa.shared::cluster.u32 remote, %0, %1;\n"
                 "mbarrier.arrive.release.cluster.shared::cluster.b64 _, [remote]; }"
                 :: "r"(bar), "r"(cta_rank) : "memory");
}

// Spins until the phase with the given parity has completed, then acquires at cluster scope what
// the arrivals released (mbarrier_arrive_release_cluster).
FP8GEMM_DEVICE void mbarrier_wait_cluster(uint32_t bar, uint32_t parity) {
    asm volatile("{ .reg .pred done;\n"
                 "WAIT_%=:\n"
                 "mbarrier.try_wait.parity.acquire.cluster.shared::cta.b64 done, [%0], %1;\n"
                 "@!done bra WAIT_%=; }"
                 :: "r"(bar), "r"(parity) : "memory");
}

// Spins until the phase with the given parity has completed.
FP8GEMM_DEVICE void mbarrier_wait(uint32_t bar, uint32_t parity) {
    asm volatile("{ .reg .pred done;\n"
                 "WAIT_%=:\n"
                 "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
                 "@!done bra WAIT_%=; }"
                 :: "r"(bar), "r"(parity) : "memory");
}

}  // namespace fp8gemm::ptx
