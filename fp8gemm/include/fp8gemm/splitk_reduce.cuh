// Split-K finish: out[m, n] = bf16( sum over slices s, in order, of workspace[s, m, n] ).
// Summing in a fixed order keeps the result bitwise identical from run to run.
#pragma once
#include <fp8gemm/ptx/common.cuh>
#include <fp8gemm/ptx/stmatrix.cuh>

namespace fp8gemm {

struct alignas(16) Float4 { float x, y, z, w; };

template <int kSplits>
FP8GEMM_DEVICE void splitk_reduce(const float* workspace, uint16_t* out, int64_t num_elements) {
    // NOTES: 16-byte loads of each slice, one 8-byte store of BF16; memory bound and tiny next to
    // the GEMM (decode shapes only).
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x * 4;
    for (int64_t i = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) * 4; i < num_elements;
         i += stride) {
        Float4 sum = *reinterpret_cast<const Float4*>(workspace + i);
#pragma unroll
        for (int s = 1; s < kSplits; ++s) {
            const Float4 v = *reinterpret_cast<const Float4*>(workspace + s * num_elements + i);
            sum.x += v.x, sum.y += v.y, sum.z += v.z, sum.w += v.w;
        }
        const uint32_t lo = ptx::pack_bf16x2(sum.x, sum.y), hi = ptx::pack_bf16x2(sum.z, sum.w);
        *reinterpret_cast<uint64_t*>(out + i) = (static_cast<uint64_t>(hi) << 32) | lo;
    }
}

}  // namespace fp8gemm
