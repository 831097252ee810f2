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

// a / b correctly rounded, given inv_b = rcp_rn(b) and b_finite = min(b, FLT_MAX): one multiply and
// two FMAs (Markstein's correction: with a correctly rounded reciprocal and a faithful first quotient
// q0, q0 + (a - b*q0) * inv_b rounds to the correctly rounded quotient; underflow cannot occur at the
// magnitudes a scale allows).
// The residual is formed negated, r = b*q0 - a, and subtracted: the same roundings (round to nearest
// is symmetric), but a zero quotient keeps a's sign (-0 / b = -0), so no copysign is needed.
// b = inf (an inf in the block): b_finite = FLT_MAX makes r = -a and the result q0 = a * 0 = +-0 for
// finite a and NaN for a = +-inf, the true quotients, with no per-element select.
// NOTES: div.rn.f32 per element costs ~10 instructions and a slow-path branch; the kernel is issue-bound
// at HBM rates (SASS: ~180 instructions per 16 loaded bytes before this form), so every one counts.
FP8GEMM_DEVICE float div_by(float a, float b_finite, float inv_b) {
    float q0, r, q1;
    // Spelled in PTX so that no contraction or reassociation can change the rounding steps.
    asm("mul.rn.f32 %0, %1, %2;" : "=f"(q0) : "f"(a), "f"(inv_b));
    asm("fma.rn.f32 %0, %1, %2, %3;" : "=f"(r) : "f"(b_finite), "f"(q0), "f"(-a));
    asm("fma.rn.f32 %0, %1, %2, %3;" : "=f"(q1) : "f"(-r), "f"(inv_b), "f"(q0));
    return q1;
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
// Scales go to the TMA-aligned column-major layout: scale of (group, row, k-block) at
// (group * kb + k-block) * scale_rows + row. The host keeps the task count, which is also the scale
// tensor's size, below 2^31: every index but the element offsets is 32-bit.

// Where a lane group is: its task's coordinates, stepped from one task to the next without a division.
struct Cursor {
    uint32_t task, group, row, kbi;
};

struct Shape {
    uint32_t kb, num_tasks, rows, scale_rows, k;
};

// One task of one lane: its 16 loaded bytes and where it goes.
struct Task {
    uint32_t v[4];
    int64_t elem;    // x's and q's element index of the lane's first element
    uint32_t scale;  // the block's scale, in the scale tensor
    bool has_data;   // the lane has 16 bytes of a real row
    bool exists;     // the task is inside the scale tensor
    bool real_row;   // not a TMA padding row
};

// Work out the cursor's task for this lane and issue its load (nothing for a task past the end).
template <int kBytes, int kVec>
FP8GEMM_DEVICE void fetch(const Shape& sh, const uint8_t* x, const Cursor& at, int lane, Task& t) {
    const uint32_t col = at.kbi * kBlock + uint32_t(lane) * kVec;
    t.exists = at.task < sh.num_tasks;
    t.real_row = at.row < sh.rows;
    t.has_data = t.exists && t.real_row && col < sh.k;  // k % kVec == 0: whole vectors
    t.elem = int64_t(at.group * sh.rows + at.row) * sh.k + col;
    t.scale = (at.group * sh.kb + at.kbi) * sh.scale_rows + at.row;
    t.v[0] = t.v[1] = t.v[2] = t.v[3] = 0;
    if (t.has_data) load_16b(x + t.elem * kBytes, t.v);
}

FP8GEMM_DEVICE void step(const Shape& sh, Cursor& at) {
    ++at.task;
    if (++at.kbi == sh.kb) {
        at.kbi = 0;
        if (++at.row == sh.scale_rows) at.row = 0, ++at.group;
    }
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
    const float inv_scale = rcp_rn(scale);
    const float scale_finite = fminf(scale, 3.402823466e38f);  // see div_by: inf -> FLT_MAX

    if (t.has_data) {
        uint32_t packed[kVec / 4];
#pragma unroll
        for (int i = 0; i < kVec / 4; ++i) {
            const uint32_t lo = to_e4m3x2(div_by(f[4 * i], scale_finite, inv_scale),
                                          div_by(f[4 * i + 1], scale_finite, inv_scale));
            const uint32_t hi = to_e4m3x2(div_by(f[4 * i + 2], scale_finite, inv_scale),
                                          div_by(f[4 * i + 3], scale_finite, inv_scale));
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
    if (lane == 0 && t.exists) scales[t.scale] = t.real_row ? scale : 0.0f;
}

// The grid has a thread per task group: each lane group loads its kUnroll tasks, then converts them.
// NOTES: the kernel is bound by instruction issue, not HBM: at 3.3 TB/s it issued ~180 instructions
// per lane and task (SASS), about what the SMs issue in the time the bytes take. Stepping the tasks'
// coordinates instead of dividing per task, 32-bit scale indices and the sign-keeping division
// (div_by) cut that to ~140: H200, CUPTI, same run, unroll 4: [4096, 7168] 27.1 -> 23.1 us (3.28 ->
// 3.85 TB/s), [16384, 7168] 104.2 -> 93.4 us (3.42 -> 3.81), [64, 7168] (unroll 1) 1.98 -> 1.92 us.
// Measured against two other forms, both bit-exact and both slower: a resident grid that loops with
// the next sweep's loads issued before this sweep's math (2.8-3.1 TB/s: the prefetch's index
// arithmetic and registers cost more than the block launches it saves), and whole rows brought into
// shared memory by cp.async.bulk, 3 stages of 28 KB per 512-thread block (2.5-2.8 TB/s).
template <int kKind, int kUnroll>
FP8GEMM_DEVICE void per_token_cast(const uint8_t* __restrict__ x, uint8_t* __restrict__ q,
                                   float* __restrict__ scales, int groups, int rows, int scale_rows, int k) {
    constexpr int kBytes = Elem<kKind>::kBytes;
    constexpr int kVec = 16 / kBytes;         // elements per 16-byte vector
    constexpr int kLanes = kBlock / kVec;     // lanes per 128-wide block
    static_assert(kLanes == 16 || kLanes == 32, "a block spans a half or a whole warp");

    Shape sh;
    sh.kb = uint32_t(k + kBlock - 1) / kBlock;
    sh.num_tasks = uint32_t(groups) * sh.kb * uint32_t(scale_rows);
    sh.rows = uint32_t(rows);
    sh.scale_rows = uint32_t(scale_rows);
    sh.k = uint32_t(k);

    const int lane = threadIdx.x % kLanes;
    const uint32_t lane_group = uint32_t((uint64_t(blockIdx.x) * blockDim.x + threadIdx.x) / kLanes);
    // NOTES: the only divisions of the kernel: the first task's coordinates; the others are stepped.
    Cursor at;
    at.task = lane_group * kUnroll;
    const uint32_t rest = at.task / sh.kb;
    at.kbi = at.task - rest * sh.kb;
    at.group = rest / sh.scale_rows;
    at.row = rest - at.group * sh.scale_rows;
    // NOTES: all loads of the thread are issued before any use, so each thread keeps kUnroll 16-byte
    // requests in flight. Lanes past the end take part in the butterfly with tasks that do not exist.
    Task task[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
        fetch<kBytes, kVec>(sh, x, at, lane, task[u]);
        step(sh, at);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) convert<kKind, kVec, kLanes>(task[u], lane, q, scales);
}

}  // namespace fp8gemm::quant
