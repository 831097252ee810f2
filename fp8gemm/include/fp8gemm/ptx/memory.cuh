// Plain vector loads and stores (PTX ISA "ld", "st") used outside the TMA paths.
#pragma once
#include <fp8gemm/ptx/common.cuh>

namespace fp8gemm::ptx {

// Start fetching [ptr, ptr + bytes) into L2 through the TMA unit (PTX ISA "cp.async.bulk.prefetch"):
// `ptr` 16-byte aligned, `bytes` a multiple of 16; nothing waits for it.
FP8GEMM_DEVICE void bulk_prefetch_global_l2(const void* ptr, uint32_t bytes) {
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" :: "l"(reinterpret_cast<uint64_t>(ptr)), "r"(bytes)
                 : "memory");
}

// Read-only global load that stays in L1/L2 (used for the per-block B scales).
FP8GEMM_DEVICE float load_global_nc(const float* ptr) {
    float v;
    asm volatile("ld.global.nc.f32 %0, [%1];" : "=f"(v) : "l"(ptr));
    return v;
}

FP8GEMM_DEVICE int32_t load_global_nc(const int32_t* ptr) {
    int32_t v;
    asm volatile("ld.global.nc.s32 %0, [%1];" : "=r"(v) : "l"(ptr));
    return v;
}

FP8GEMM_DEVICE float load_shared_f32(uint32_t addr) {
    float v;
    asm volatile("ld.shared.f32 %0, [%1];" : "=f"(v) : "r"(addr));
    return v;
}

// 16-byte shared-memory load and global store, for the row-predicated epilogue.
struct alignas(16) Vec16 { uint32_t x, y, z, w; };

FP8GEMM_DEVICE Vec16 load_shared_16(uint32_t addr) {
    Vec16 v;
    asm volatile("ld.shared.v4.b32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "r"(addr));
    return v;
}

FP8GEMM_DEVICE void store_global_16(void* ptr, const Vec16& v) {
    asm volatile("st.global.v4.b32 [%0], {%1, %2, %3, %4};"
                 :: "l"(ptr), "r"(v.x), "r"(v.y), "r"(v.z), "r"(v.w) : "memory");
}

FP8GEMM_DEVICE void store_global_f32x2(float* ptr, float x, float y) {
    asm volatile("st.global.v2.f32 [%0], {%1, %2};" :: "l"(ptr), "f"(x), "f"(y) : "memory");
}

}  // namespace fp8gemm::ptx

namespace fp8gemm::ptx {

// Two consecutive FP32 values from shared memory (8-byte aligned): one LDS.64.
struct Float2 { float x, y; };

FP8GEMM_DEVICE Float2 load_shared_f32x2(uint32_t addr) {
    Float2 v;
    asm volatile("ld.shared.v2.f32 {%0, %1}, [%2];" : "=f"(v.x), "=f"(v.y) : "r"(addr));
    return v;
}

// Two consecutive FP32 values to shared memory (8-byte aligned): one STS.64.
FP8GEMM_DEVICE void store_shared_f32x2(uint32_t addr, float x, float y) {
    asm volatile("st.shared.v2.f32 [%0], {%1, %2};" :: "r"(addr), "f"(x), "f"(y) : "memory");
}

}  // namespace fp8gemm::ptx

namespace fp8gemm::ptx {

// Element-wise global += {x, y} (8-byte aligned), done in L2 without returning a value: one RED.64.
// Each element is one FP32 addition rounded to nearest (PTX ISA "red": .add.f32 flushes subnormal
// inputs and results to zero).
FP8GEMM_DEVICE void red_add_global_f32x2(float* ptr, float x, float y) {
    asm volatile("red.global.add.v2.f32 [%0], {%1, %2};" :: "l"(ptr), "f"(x), "f"(y) : "memory");
}

}  // namespace fp8gemm::ptx

namespace fp8gemm::ptx {

struct Float4 { float x, y, z, w; };

// Four consecutive FP32 values from shared memory (16-byte aligned): one LDS.128.
FP8GEMM_DEVICE Float4 load_shared_f32x4(uint32_t addr) {
    Float4 v;
    asm volatile("ld.shared.v4.f32 {%0, %1, %2, %3}, [%4];" : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w) : "r"(addr));
    return v;
}

// Four consecutive FP32 values to shared memory (16-byte aligned): one STS.128.
FP8GEMM_DEVICE void store_shared_f32x4(uint32_t addr, const Float4& v) {
    asm volatile("st.shared.v4.f32 [%0], {%1, %2, %3, %4};" :: "r"(addr), "f"(v.x), "f"(v.y), "f"(v.z), "f"(v.w)
                 : "memory");
}

// Four consecutive FP32 values (16-byte aligned) from the shared memory of CTA `cta_rank` of the
// cluster, at the offset `addr` has in this CTA (distributed shared memory).
FP8GEMM_DEVICE Float4 load_cluster_f32x4(uint32_t addr, uint32_t cta_rank) {
    Float4 v;
    asm volatile("{ .reg .b32 remote;\n"
                 "mapa.shared::cluster.u32 remote, %4, %5;\n"
                 "ld.shared::cluster.v4.f32 {%0, %1, %2, %3}, [remote]; }"
                 : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w) : "r"(addr), "r"(cta_rank) : "memory");
    return v;
}

// Read-only global load of four consecutive FP32 values (16-byte aligned): one LDG.128.
FP8GEMM_DEVICE Float4 load_global_nc_f32x4(const float* ptr) {
    Float4 v;
    asm volatile("ld.global.nc.v4.f32 {%0, %1, %2, %3}, [%4];"
                 : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w) : "l"(ptr));
    return v;
}

}  // namespace fp8gemm::ptx
