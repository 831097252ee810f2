// Basic types and helpers shared by every device header.
// NVRTC compiles this code with no toolkit headers at all, so the fixed-width
// types are spelled out here instead of coming from <cstdint>.
#pragma once

namespace fp8gemm {

typedef unsigned char uint8_t;
typedef unsigned short uint16_t;
typedef unsigned int uint32_t;
typedef int int32_t;
typedef unsigned long long uint64_t;
typedef long long int64_t;

#define FP8GEMM_DEVICE __device__ __forceinline__

// 32-bit shared-memory address of a generic pointer into shared memory.
FP8GEMM_DEVICE uint32_t smem_addr(const void* ptr) {
    uint32_t addr;
    asm volatile("{ .reg .u64 a; cvta.to.shared.u64 a, %1; cvt.u32.u64 %0, a; }"
                 : "=r"(addr) : "l"(ptr));
    return addr;
}

template <typename T>
FP8GEMM_DEVICE constexpr T ceil_div(T a, T b) { return (a + b - 1) / b; }

template <typename T>
constexpr T gcd(T a, T b) { return b == 0 ? a : gcd(b, a % b); }

template <typename T>
FP8GEMM_DEVICE constexpr T min_of(T a, T b) { return a < b ? a : b; }

template <typename T>
FP8GEMM_DEVICE constexpr T max_of(T a, T b) { return a > b ? a : b; }

// n / d for n < 2^31 by a multiply-high, an add and a shift (round-up magic number, Granlund and
// Montgomery): magic = floor(2^32 (2^s - d) / d) + 1 with s = ceil(log2 d) gives
// n / d = (umulhi(n, magic) + n) >> s, the sum within 32 bits because umulhi(n, magic) <= n.
// NOTES: the tile schedulers divide by divisors known only at run time on every tile; as plain
// integer divisions (~25 dependent instructions each, two per tile) they sat between a tile's last
// wgmma and its epilogue, where the tensor cores idle (ncu source counters, 4096x32768x512: ~9% of
// the math warps' samples).
struct FastDiv {
    uint32_t magic = 1, shift = 0;
    FastDiv() = default;
    FP8GEMM_DEVICE explicit FastDiv(uint32_t d) {
        shift = d > 1 ? 32 - __clz(d - 1) : 0;
        magic = uint32_t((uint64_t(1) << 32) * ((uint64_t(1) << shift) - d) / d + 1);
    }
    FP8GEMM_DEVICE uint32_t div(uint32_t n) const { return (__umulhi(n, magic) + n) >> shift; }
};

// The 128-byte tensor map (TMA descriptor) as an opaque kernel parameter.
struct alignas(64) TensorMap {
    uint64_t opaque[16];
};

}  // namespace fp8gemm
