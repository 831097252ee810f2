// Test kernel family for the JIT: a TMA round trip through shared memory in a 2-CTA cluster.
//
// Cluster c copies tile c of the input. Each of its two CTAs loads half of the tile's rows and
// multicasts that half to both CTAs, so each CTA ends up with the whole tile only if multicast
// delivered to both; the transfer completes on an mbarrier. CTA rank r then stores its whole copy
// to output r with a TMA store. The host checks both outputs byte for byte against the input.
#pragma once
#include <fp8gemm/ptx/cluster.cuh>
#include <fp8gemm/ptx/common.cuh>
#include <fp8gemm/ptx/mbarrier.cuh>
#include <fp8gemm/ptx/tma.cuh>

namespace fp8gemm::testing {

// kBoxRows x kBoxCols elements of kElemBytes each. The input map's box is {kBoxCols, kBoxRows / 2}
// (one half), the output maps' box is {kBoxCols, kBoxRows}. Dynamic shared memory: the tile, then
// an 8-byte mbarrier (tile_bytes + 8 in all; more is fine).
template <int kBoxRows, int kBoxCols, int kElemBytes>
__device__ __forceinline__ void tma_roundtrip(const TensorMap* in_map, const TensorMap* out0_map,
                                              const TensorMap* out1_map, int tiles_per_row) {
    static_assert(kBoxRows % 2 == 0, "each CTA loads half of the rows");
    constexpr uint32_t kHalfBytes = (kBoxRows / 2) * kBoxCols * kElemBytes;
    constexpr uint32_t kTileBytes = 2 * kHalfBytes;
    static_assert(kHalfBytes % 1024 == 0, "each half must keep the 1024-B alignment that swizzling wants");

    extern __shared__ __align__(1024) uint8_t smem[];
    const uint32_t bar = smem_addr(smem + kTileBytes);

    const uint32_t rank = ptx::cluster_cta_rank();
    const int tile = blockIdx.x / 2;
    const int col0 = (tile % tiles_per_row) * kBoxCols;
    const int row0 = (tile / tiles_per_row) * kBoxRows;
    const bool leader = threadIdx.x == 0;

    if (leader) {
        ptx::tma_prefetch_descriptor(in_map);
        ptx::mbarrier_init(bar, 1);
        ptx::fence_mbarrier_init();
    }
    // The peer's barrier must be initialised before our multicast signals it.
    ptx::cluster_sync();

    if (leader) {
        // Both halves land here (ours and the peer's), so expect the whole tile.
        ptx::mbarrier_arrive_expect_tx(bar, kTileBytes);
        ptx::tma_load_2d_multicast(smem_addr(smem + rank * kHalfBytes), in_map, bar, col0,
                                   row0 + static_cast<int>(rank) * (kBoxRows / 2), uint16_t(0b11));
    }
    ptx::mbarrier_wait(bar, 0);

    if (leader) {
        ptx::fence_proxy_async_smem();
        ptx::tma_store_2d(rank == 0 ? out0_map : out1_map, smem_addr(smem), col0, row0);
        ptx::tma_store_commit();
        ptx::tma_store_wait<0>();
    }
    // Neither CTA may exit while the other can still touch its shared memory.
    ptx::cluster_sync();
}

}  // namespace fp8gemm::testing
