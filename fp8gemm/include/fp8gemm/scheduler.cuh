// Persistent tile scheduler shared by the dense, contiguous-grouped and masked-grouped layouts.
//
// Every CTA walks the same global tile order with stride = number of CTAs, so the producer and
// the math warpgroups of a CTA (each running its own copy of the scheduler) see the same tiles.
// With a 2-CTA cluster, tile 2p goes to rank 0 and tile 2p+1 to rank 1: the order is built so
// that these two tiles share their A rows (multicast A) or their B rows (multicast B). With
// split-K the cluster's CTAs all walk the same tiles, CTA rank r computing slice r of K.
#pragma once
#include <fp8gemm/ptx/common.cuh>
#include <fp8gemm/ptx/memory.cuh>
#include <fp8gemm/raster.cuh>

namespace fp8gemm {

enum class GemmLayout : int { kDense = 0, kContiguous = 1, kMasked = 2 };

struct Tile {
    int group;        // expert index (0 for dense)
    int m_block;      // block index along M inside the group
    int n_block;      // block index along N
    int row;          // first row of the tile in the 2D views of A and D
    int local_row;    // first row of the tile inside its group (masked layout), else == row
    int row_limit;    // rows at or past this local row are not written (M, or masked_m[group])
    int k_split;      // which slice of K (split-K), 0 without split-K
    int k_block;      // first K block of the slice
    int num_k_blocks; // K blocks in the slice
    bool multicast;   // the pair's shared operand really is shared (grouped B multicast: same expert)
};

template <bool kCond, class Then, class Else> struct TypeIf { using type = Then; };
template <class Then, class Else> struct TypeIf<false, Then, Else> { using type = Else; };

// kFastDivision: the math warps' copy, whose divisions sit on the critical path (FastDiv); the
// producer's copy keeps plain divisions, off that path and within the producer's 40 registers.
template <class Cfg, bool kFastDivision = true>
struct TileScheduler {
    static constexpr int kNumNBlocks = ceil_div(Cfg::kShapeN, Cfg::kBlockN);
    // NOTES: tiles are visited in bands of kRasterWidth blocks along one dimension, so that the
    // ~132 tiles in flight at any moment cover a compact rectangle and share A and B in L2.
    static constexpr bool kFastN = !Cfg::kMulticastB;
    // NOTES: masked B multicast with an odd M-block count: the last block's tiles go to the pair
    // side by side along N (each CTA loading its own B, tile.multicast false) rather than paired
    // with an empty block, which cost a whole tile per pair: masked 4 x ~256 rows N 4096 (3 blocks
    // per group), 128x192 B 352 tiles for 264. Needs an even N-block count (pairs stay in a group).
    static constexpr bool kOddRowAlongN = Cfg::kLayout == GemmLayout::kMasked && Cfg::kMulticastB &&
                                          kNumNBlocks % 2 == 0;
    static constexpr int kNumKBlocks = ceil_div(Cfg::kShapeK, 128);
    // NOTES: split-K (dense decode shapes) cuts K into kKSplits slices, one per CTA of a cluster,
    // so that a few output tiles still spread over every SM.
    static constexpr int kKBlocksPerSplit = ceil_div(kNumKBlocks, Cfg::kKSplits);

    const int* grouped;      // m_indices (contiguous) or masked_m (masked); unused for dense
    int rows;                // M (dense, contiguous) or max_m (masked)
    int num_m_blocks;        // dense / contiguous: blocks along the whole of M
    int next_index;          // this CTA's next tile index in the global order
    int stride;
    int k_split = 0;         // split-K: this CTA's slice of every tile

    // Masked layout: the group being walked and where its tiles start in the global order.
    int group = 0, group_first_tile = 0, group_m_blocks = 0, group_rows = 0;
    // rasterize's one run-time divisor (num_m * kRasterWidth along N, else the last band's width along
    // M) as a FastDiv, worked out once. Masked groups change it per group, where a magic number (a
    // 64-bit division) would cost more than it saves: they divide plainly, as the producer does.
    static constexpr bool kUseFastDiv = kFastDivision && Cfg::kLayout != GemmLayout::kMasked;
    struct NoDivisor {};
    typename TypeIf<kUseFastDiv, FastDiv, NoDivisor>::type divisor;

    FP8GEMM_DEVICE TileScheduler(const int* grouped_, int rows_) : grouped(grouped_), rows(rows_) {
        if (Cfg::kKSplits > 1) {
            next_index = blockIdx.x / Cfg::kKSplits;
            stride = gridDim.x / Cfg::kKSplits;
            k_split = blockIdx.x % Cfg::kKSplits;   // the CTA's rank in its cluster
        } else {
            next_index = blockIdx.x;
            stride = gridDim.x;
        }
        num_m_blocks = ceil_div(rows, Cfg::kBlockM);
        // NOTES: multicast of B pairs tiles along M; an odd block count gets one empty block that
        // computes zeros and stores nothing, rather than leaving a CTA without its partner.
        if (Cfg::kMulticastB) num_m_blocks += num_m_blocks & 1;
        if (Cfg::kLayout == GemmLayout::kMasked) enter_group(0, 0);
        if constexpr (kUseFastDiv) {
            const uint32_t m = uint32_t(max_of(num_m_blocks, 1));
            divisor = FastDiv(kFastN ? m * Cfg::kRasterWidth : m - (m - 1) / Cfg::kRasterWidth * Cfg::kRasterWidth);
        }
    }

    // n / d, where d is rasterize's run-time divisor for a grid of num_m blocks along M.
    FP8GEMM_DEVICE uint32_t divide(uint32_t n, uint32_t d) const {
        if constexpr (kUseFastDiv) return divisor.div(n);
        else return n / d;
    }

    FP8GEMM_DEVICE void enter_group(int g, int first_tile) {
        group = g;
        group_first_tile = first_tile;
        if (g < Cfg::kNumGroups) {
            group_rows = min_of(max_of(ptx::load_global_nc(grouped + g), 0), rows);
            group_m_blocks = ceil_div(group_rows, Cfg::kBlockM);
            // Multicast of B pairs M blocks of one group. An odd count's last block runs unshared,
            // its N blocks in pairs (kOddRowAlongN); with an odd N-block count that would leave a
            // pair straddling two groups, so the count gets an empty partner instead.
            if (Cfg::kMulticastB && !kOddRowAlongN) group_m_blocks += group_m_blocks & 1;
        }
    }

    // Position of tile `t` inside a (num_m x kNumNBlocks) grid, banded for L2 reuse: bands of
    // kRasterWidth blocks along the fast dimension, the last band narrower.
    FP8GEMM_DEVICE void rasterize(uint32_t t, uint32_t num_m, int& m_block, int& n_block) const {
        constexpr uint32_t W = Cfg::kRasterWidth;
        if (kFastN) {
            NBands<kNumNBlocks, W>::position(t, divide(t, num_m * W), num_m, m_block, n_block);
        } else {
            constexpr uint32_t kBandTiles = uint32_t(kNumNBlocks) * W;
            const uint32_t band = t / kBandTiles;
            const uint32_t first_m = band * W;
            const uint32_t in_band = t - band * kBandTiles;
            const bool full = first_m + W <= num_m;
            const uint32_t n = full ? in_band / W : divide(in_band, num_m - first_m);
            const uint32_t width = full ? W : num_m - first_m;
            n_block = int(n);
            m_block = int(first_m + in_band - n * width);
        }
    }

    // Contiguous layout: the group of M block `m_block` (its first row's), or -1 for padding,
    // blocks past M and group ids out of range.
    FP8GEMM_DEVICE int group_of_block(int m_block) const {
        const int row = m_block * Cfg::kBlockM;
        const int g = row < rows ? ptx::load_global_nc(grouped + row) : -1;
        return g >= 0 && g < Cfg::kNumGroups ? g : -1;
    }

    // The next tile of this CTA; false when there is none left.
    FP8GEMM_DEVICE bool next(Tile& tile) {
        while (true) {
            const int t = next_index;
            next_index += stride;
            if (Cfg::kLayout == GemmLayout::kMasked) {
                // Walk forward over groups until tile t falls inside one (groups with 0 rows own 0 tiles).
                while (group < Cfg::kNumGroups && t >= group_first_tile + group_m_blocks * kNumNBlocks)
                    enter_group(group + 1, group_first_tile + group_m_blocks * kNumNBlocks);
                if (group >= Cfg::kNumGroups) return false;
                const int local = t - group_first_tile;
                const int paired_m_blocks = kOddRowAlongN ? group_m_blocks & ~1 : group_m_blocks;
                if (kOddRowAlongN && local >= paired_m_blocks * kNumNBlocks) {
                    tile.m_block = paired_m_blocks;   // the odd last block, N blocks in pairs
                    tile.n_block = local - paired_m_blocks * kNumNBlocks;
                    tile.multicast = false;
                } else {
                    rasterize(local, paired_m_blocks, tile.m_block, tile.n_block);
                    tile.multicast = true;
                }
                tile.group = group;
                tile.k_split = tile.k_block = 0;
                tile.num_k_blocks = kNumKBlocks;
                tile.local_row = tile.m_block * Cfg::kBlockM;
                tile.row = group * rows + tile.local_row;
                tile.row_limit = group_rows;
                return true;
            }
            const int num_tiles = num_m_blocks * kNumNBlocks;
            if (t >= num_tiles) return false;
            tile.k_split = k_split;
            tile.k_block = k_split * kKBlocksPerSplit;
            tile.num_k_blocks = min_of(kKBlocksPerSplit, kNumKBlocks - tile.k_block);
            rasterize(t, num_m_blocks, tile.m_block, tile.n_block);
            tile.row = tile.local_row = tile.m_block * Cfg::kBlockM;
            tile.row_limit = rows;
            tile.group = 0;
            tile.multicast = true;
            if (Cfg::kLayout == GemmLayout::kContiguous) {
                // A block whose first row is padding holds padding only (groups are padded at
                // their ends to the block alignment): it costs nothing.
                // NOTES: multicast of A pairs tiles that share their rows, so both CTAs of a pair
                // skip together.
                tile.group = group_of_block(tile.m_block);
                if (Cfg::kMulticastB) {
                    // Multicast of B pairs M blocks 2i and 2i+1 (the peer runs the other one). The
                    // pair is skipped only if both are padding; a padding block rides along with
                    // its partner's expert and stores nothing; B is shared only if both blocks
                    // need the same expert. Both CTAs read the same two values, so they agree.
                    const int peer_group = group_of_block(tile.m_block ^ 1);
                    if (tile.group < 0 && peer_group < 0) continue;
                    if (tile.group < 0) {
                        tile.group = peer_group;
                        tile.row_limit = tile.local_row;   // nothing of this block is written
                    }
                    tile.multicast = peer_group < 0 || peer_group == tile.group;
                } else if (tile.group < 0) {
                    continue;
                }
            }
            return true;
        }
    }
};

}  // namespace fp8gemm
