// Shared-memory layout of the GEMM kernel. fp8gemm/config.py mirrors this arithmetic to count
// stages; the kernel checks at compile time that both agree (Cfg::kSmemBytes).
#pragma once
#include <fp8gemm/ptx/common.cuh>

namespace fp8gemm {

constexpr int kBlockK = 128;           // one scale block along K; also one 128-byte swizzle row of FP8
constexpr int kAlignSlack = 1024;      // the dynamic base is aligned up to 1024 B at run time

constexpr int round_up(int x, int to) { return (x + to - 1) / to * to; }

template <class Cfg>
struct SmemLayout {
    // BF16 output tile staged for the TMA store: per math warpgroup 64 rows, cut into slabs of
    // kStoreSlabCols columns whose rows are swizzled like the store's tensor map. With split-K the
    // same space holds the FP32 sums that a slice other than the cluster's rank 0 hands over (those
    // slices never stage a BF16 tile; rank 0, which does, hands over nothing).
    static constexpr bool kSplitK = Cfg::kKSplits > 1;
    static constexpr int kStoreBytes = round_up(Cfg::kBlockM * Cfg::kBlockN * (kSplitK ? 4 : 2), 1024);
    static constexpr int kABytes = Cfg::kBlockM * kBlockK;       // FP8 A tile of one stage
    static constexpr int kBBytes = Cfg::kBlockN * kBlockK;       // FP8 B tile of one stage
    // FP32 A scales ([K block][row]): one buffer per stage, or (Cfg::kSAChunk > 1, the overlapped
    // decode loops) a ring of buffers of kSAChunk K blocks each, loaded by one TMA with the chunk's
    // first K block, enough buffers that the producer, up to kStages K blocks ahead, never waits.
    static constexpr bool kSAChunked = Cfg::kSAChunk > 1;
    static constexpr int kSABytes = round_up(Cfg::kBlockM * Cfg::kSAChunk * 4, 128);
    static constexpr int kSABuffers = kSAChunked ? ceil_div(Cfg::kStages, Cfg::kSAChunk) + 1 : Cfg::kStages;

    static constexpr int kAOffset = kStoreBytes;
    static constexpr int kBOffset = kAOffset + Cfg::kStages * kABytes;
    static constexpr int kSAOffset = kBOffset + Cfg::kStages * kBBytes;
    static constexpr int kBarrierOffset = kSAOffset + kSABuffers * kSABytes;
    // full[kStages], empty[kStages], chunk_free[kSABuffers] (chunked A scales only); split-K adds
    // sums_ready (rank 0: the other slices' sums are in their shared memory) and sums_free (the
    // other slices: rank 0 has read them).
    static constexpr int kBarriers = 2 * Cfg::kStages + (kSAChunked ? kSABuffers : 0) + (kSplitK ? 2 : 0);
    static constexpr int kBytes = kBarrierOffset + kBarriers * 8;
    static constexpr int kDynamicBytes = kBytes + kAlignSlack;

    // Bytes landing in one CTA's stage per k-block: the full A and B tiles (half of one of them
    // may come from the cluster peer's multicast) and the A scales (chunked: a chunk's first K block
    // brings kChunkTxBytes more, its whole box).
    static constexpr uint32_t kStageTxBytes = kABytes + kBBytes + (kSAChunked ? 0 : Cfg::kBlockM * 4);
    static constexpr uint32_t kChunkTxBytes = Cfg::kBlockM * Cfg::kSAChunk * 4;

    static_assert(kABytes % 1024 == 0 && kBBytes % 1024 == 0, "tiles must keep 1024-B alignment");
};

}  // namespace fp8gemm
