// Tile order in bands along N, shared by the forward and training schedulers: a grid of num_m x
// kNumNBlocks tiles is walked band by band, each band kW N blocks wide (the last one narrower);
// inside a band consecutive tiles step along N, then on to the next M block, so that the ~132
// tiles in flight at once cover a compact rectangle and share A and B in L2.
#pragma once
#include <fp8gemm/ptx/common.cuh>

namespace fp8gemm {

template <int kNumNBlocks, int kW>
struct NBands {
    static constexpr uint32_t kLastWidth = kNumNBlocks - (kNumNBlocks - 1) / kW * kW;

    // Position of tile `t` of band `band` (= t / (num_m * kW), divided by the caller, which owns the
    // run-time divisor).
    FP8GEMM_DEVICE static void position(uint32_t t, uint32_t band, uint32_t num_m, int& m_block, int& n_block) {
        const uint32_t first_n = band * kW;
        const uint32_t in_band = t - band * num_m * kW;
        // NOTES: the band width is one of two constants, so both divisions are by constants.
        const bool full = first_n + kW <= uint32_t(kNumNBlocks);
        const uint32_t m = full ? in_band / kW : in_band / kLastWidth;
        const uint32_t width = full ? kW : kLastWidth;
        m_block = int(m);
        n_block = int(first_n + in_band - m * width);
    }
};

}  // namespace fp8gemm
