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

// The 128-byte tensor map (TMA descriptor) as an opaque kernel parameter.
struct alignas(64) TensorMap {
    uint64_t opaque[16];
};

}  // namespace fp8gemm
