// Per-token (1x128) FP8 cast of activations in one pass: x [groups, rows, k] (BF16, FP16 or FP32,
// row-major) -> q [groups, rows, k] e4m3 plus one FP32 scale per 128-wide block, written straight into
// a strided scale tensor (the GEMM's TMA-aligned column-major layout, or any other).
//
// Bit-for-bit the same as fp8gemm.quant.per_token_cast_to_fp8:
//   amax  = max |x| over the block (NaN propagates), clamped below at 1e-4
//   scale = amax / 448           (IEEE division, round to nearest even)
//   q     = e4m3(x / scale)      (IEEE division; round to nearest even, saturating at +-448, NaN kept)
#pragma once
#include <fp8gemm/ptx/common.cuh>

namespace fp8gemm::quant {

enum ElemKind : int { kFloat32 = 0, kBFloat16 = 1, kFloat16 = 2 };

template <int kKind> struct Elem;
template <> struct Elem<kFloat32> { static constexpr int kBytes = 4; };
template <> struct Elem<kBFloat16> { static constexpr int kBytes = 2; };
template <> struct Elem<kFloat16> { static constexpr int kBytes = 2; };

constexpr int kBlock = 128;

// NOTES: 16-byte read-only loads that skip L1: every input byte is read exactly once.
FP8GEMM_DEVICE void load_16b(const void* ptr, uint32_t (&v)[4]) {
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(v[0]), "=r"(v[1]), "=r"(v[2]), "=r"(v[3]) : "l"(ptr));
}

// The PTX spellings pin the exact rounding whatever the compiler flags (no fast-math surprises).
FP8GEMM_DEVICE float div_rn(float a, float b) {
    float r;
    asm("div.rn.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
    return r;
}

FP8GEMM_DEVICE float rcp_rn(float b) {
    float r;
    asm("rcp.rn.f32 %0, %1;" : "=f"(r) : "f"(b));
    return r;
}

// a / b correctly rounded, given inv_b = rcp_rn(b): one multiply and two FMAs (Markstein's correction:
// with a correctly rounded reciprocal and a faithful first quotient, q0 + (a - b*q0) * inv_b rounds to
// the correctly rounded quotient; underflow cannot occur at the magnitudes a scale allows).
// NOTES: div.rn.f32 per element costs ~10 instructions and a slow-path branch, which made the kernel
// ALU-bound at HBM rates on paper; this is 3 per element and still bit-exact.
FP8GEMM_DEVICE float div_by(float a, float b, float inv_b, bool exact_first) {
    float q0, r, q1;
    // Spelled in PTX so that no contraction or reassociation can change the rounding steps.
    asm("mul.rn.f32 %0, %1, %2;" : "=f"(q0) : "f"(a), "f"(inv_b));
    asm("fma.rn.f32 %0, %1, %2, %3;" : "=f"(r) : "f"(-b), "f"(q0), "f"(a));
    asm("fma.rn.f32 %0, %1, %2, %3;" : "=f"(q1) : "f"(r), "f"(inv_b), "f"(q0));
    // The correction turns a zero quotient into +0; b > 0, so the quotient's sign is always a's.
    return exact_first ? q0 : copysignf(q1, a);
}

// max that returns NaN when either input is NaN, like torch.amax / torch.clamp.
FP8GEMM_DEVICE float max_nan(float a, float b) {
    float r;
    asm("max.NaN.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
    return r;
}

// Two floats -> two e4m3 bytes (lo in the low byte); saturates finite values at +-448, keeps NaN.
FP8GEMM_DEVICE uint32_t to_e4m3x2(float lo, float hi) {
    unsigned short r;
    asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(r) : "f"(hi), "f"(lo));
    return r;
}

// The 16 loaded bytes as floats (exact widening).
template <int kKind, int kVec>
FP8GEMM_DEVICE void unpack(const uint32_t (&v)[4], float (&f)[kVec]) {
    if constexpr (kKind == kFloat32) {
#pragma unroll
        for (int i = 0; i < 4; ++i) f[i] = __uint_as_float(v[i]);
    } else if constexpr (kKind == kBFloat16) {
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            f[2 * i] = __uint_as_float(v[i] << 16);
            f[2 * i + 1] = __uint_as_float(v[i] & 0xffff0000u);
        }
    } else {
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            unsigned short lo = v[i] & 0xffff, hi = v[i] >> 16;
            asm("cvt.f32.f16 %0, %1;" : "=f"(f[2 * i]) : "h"(lo));
            asm("cvt.f32.f16 %0, %1;" : "=f"(f[2 * i + 1]) : "h"(hi));
        }
    }
}

// One "task" is one 128-wide block of one row. A group of kLanes lanes (16 for 2-byte inputs, 32 for
// FP32) covers a block with one 16-byte vector per lane; each lane group does kUnroll tasks.
// Task order is (group, row, k-block) with the k-block fastest: a lane group's kUnroll tasks and its
// neighbours' are consecutive blocks of one row, so the GPU streams x and q front to back.
// NOTES: the order (group, k-block, row), row fastest, wrote neighbouring scales side by side but read
// x in 256-byte pieces one row (k * 2 bytes) apart, all over the tensor at once: 2.2-2.3 TB/s on the
// H200. Front to back, the scattered 4-byte scale stores (one per 128 elements) merge in L2.
// Rows in [rows, scale_rows) are the scale tensor's TMA padding: they get a zero scale and no q.
// The host keeps the task count below 2^31 (32-bit index arithmetic: 64-bit division is a slow call).

// One task of one lane: its 16 loaded bytes and where it goes.
struct Task {
    uint32_t v[4];
    int64_t elem;    // x's and q's element index of the lane's first element
    int64_t scale;   // the block's scale, in the strided scale tensor
    uint32_t state;  // bit 0: the lane has data; bit 1: the task exists; bit 2: a real (not padding) row
};

struct Shape {
    const uint8_t* x;
    uint32_t kb, num_tasks, rows, scale_rows, k;
    int64_t scale_row_stride, scale_kb_stride, scale_group_stride;
};

// Work out task `task` for this lane and issue its load (nothing for a task past the end).
template <int kBytes, int kVec>
FP8GEMM_DEVICE void fetch(const Shape& sh, uint32_t task, int lane, Task& t) {
    const uint32_t rest = task / sh.kb;
    const uint32_t kbi = task - rest * sh.kb;
    const uint32_t row = rest % sh.scale_rows;
    const uint32_t group = rest / sh.scale_rows;
    const uint32_t col = kbi * kBlock + uint32_t(lane) * kVec;
    const bool exists = task < sh.num_tasks, real_row = row < sh.rows;
    const bool has_data = exists && real_row && col < sh.k;  // k % kVec == 0: whole vectors
    t.state = uint32_t(has_data) | (uint32_t(exists) << 1) | (uint32_t(real_row) << 2);
    t.elem = (int64_t(group) * sh.rows + row) * sh.k + col;
    t.scale = group * sh.scale_group_stride + kbi * sh.scale_kb_stride + row * sh.scale_row_stride;
    t.v[0] = t.v[1] = t.v[2] = t.v[3] = 0;
    if (has_data) load_16b(sh.x + t.elem * kBytes, t.v);
}

// The block's amax (across the lane group), its scale, and this lane's FP8 values and the scale stored.
template <int kKind, int kVec, int kLanes>
FP8GEMM_DEVICE void convert(const Task& t, int lane, uint8_t* __restrict__ q, float* __restrict__ scales) {
    float f[kVec];
    unpack<kKind, kVec>(t.v, f);
    // NOTES: a tree rather than a chain: at m = 64 the kernel is one dependent chain from load to store.
    float m[kVec];
#pragma unroll
    for (int i = 0; i < kVec; ++i) m[i] = fabsf(f[i]);
#pragma unroll
    for (int width = kVec / 2; width > 0; width /= 2) {
#pragma unroll
        for (int i = 0; i < width; ++i) m[i] = max_nan(m[i], m[i + width]);
    }
    float amax = max_nan(m[0], 0.0f);  // zero padding does not change a block's amax
    // NOTES: a butterfly within the lane group; every lane of the warp takes part (full mask),
    // also lanes without a task, so no lane waits on an absent partner.
#pragma unroll
    for (int offset = kLanes / 2; offset > 0; offset /= 2)
        amax = max_nan(amax, __shfl_xor_sync(0xffffffffu, amax, offset));
    const float scale = div_rn(max_nan(amax, 1e-4f), 448.0f);
    // An infinite amax (inf in the block) gives scale = inf and inv_scale = 0: the correction step
    // would compute inf * 0 = NaN, where the true quotient x / inf is 0; the first product is exact.
    const float inv_scale = rcp_rn(scale);
    const bool exact_first = inv_scale == 0.0f;

    if (t.state & 1u) {
        uint32_t packed[kVec / 4];
#pragma unroll
        for (int i = 0; i < kVec / 4; ++i) {
            const uint32_t lo = to_e4m3x2(div_by(f[4 * i], scale, inv_scale, exact_first),
                                            div_by(f[4 * i + 1], scale, inv_scale, exact_first));
            const uint32_t hi = to_e4m3x2(div_by(f[4 * i + 2], scale, inv_scale, exact_first),
                                            div_by(f[4 * i + 3], scale, inv_scale, exact_first));
            packed[i] = lo | (hi << 16);
        }
        uint8_t* dst = q + t.elem;
        // NOTES: one 8-byte (2-byte inputs) or 4-byte (FP32) store per lane: the lane group writes
        // its 128 output bytes in one coalesced transaction.
        if constexpr (kVec == 8) {
            asm volatile("st.global.v2.u32 [%0], {%1, %2};" :: "l"(dst), "r"(packed[0]), "r"(packed[1])
                         : "memory");
        } else {
            asm volatile("st.global.u32 [%0], %1;" :: "l"(dst), "r"(packed[0]) : "memory");
        }
    }
    if (lane == 0 && (t.state & 2u)) scales[t.scale] = (t.state & 4u) ? scale : 0.0f;
}

// The grid has a thread per task group: each lane group loads its kUnroll tasks, then converts them.
// NOTES: measured on the H200 (BENCHMARKS.md) against two other forms, both bit-exact and both slower:
// a resident grid that loops with the next sweep's loads issued before this sweep's math (2.8-3.1
// TB/s: the prefetch's index arithmetic and registers cost more than the block launches it saves),
// and whole rows brought into shared memory by cp.async.bulk, 3 stages of 28 KB per 512-thread block
// (2.5-2.8 TB/s). This form: 3.3 TB/s at [4096, 7168], 3.4 at [16384, 7168] (unroll 4).
template <int kKind, int kUnroll>
FP8GEMM_DEVICE void per_token_cast(const uint8_t* __restrict__ x, uint8_t* __restrict__ q,
                                   float* __restrict__ scales, int groups, int rows, int scale_rows, int k,
                                   int64_t scale_row_stride, int64_t scale_kb_stride,
                                   int64_t scale_group_stride) {
    constexpr int kBytes = Elem<kKind>::kBytes;
    constexpr int kVec = 16 / kBytes;         // elements per 16-byte vector
    constexpr int kLanes = kBlock / kVec;     // lanes per 128-wide block
    static_assert(kLanes == 16 || kLanes == 32, "a block spans a half or a whole warp");

    Shape sh;
    sh.x = x;
    sh.kb = uint32_t(k + kBlock - 1) / kBlock;
    sh.num_tasks = uint32_t(groups) * sh.kb * uint32_t(scale_rows);
    sh.rows = uint32_t(rows);
    sh.scale_rows = uint32_t(scale_rows);
    sh.k = uint32_t(k);
    sh.scale_row_stride = scale_row_stride;
    sh.scale_kb_stride = scale_kb_stride;
    sh.scale_group_stride = scale_group_stride;

    const int lane = threadIdx.x % kLanes;
    const uint32_t lane_group = uint32_t((uint64_t(blockIdx.x) * blockDim.x + threadIdx.x) / kLanes);
    const uint32_t first = lane_group * kUnroll;
    // NOTES: all loads of the thread are issued before any use, so each thread keeps kUnroll 16-byte
    // requests in flight. Lanes past the end take part in the butterfly with tasks that do not exist.
    Task task[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) fetch<kBytes, kVec>(sh, first + u, lane, task[u]);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) convert<kKind, kVec, kLanes>(task[u], lane, q, scales);
}

}  // namespace fp8gemm::quant
