// Bulk tensor copies (TMA) between global and shared memory (PTX ISA "cp.async.bulk.tensor").
#pragma once
#include <fp8gemm/ptx/common.cuh>

namespace fp8gemm::ptx {

FP8GEMM_DEVICE void tma_prefetch_descriptor(const TensorMap* map) {
    asm volatile("prefetch.tensormap [%0];" :: "l"(reinterpret_cast<uint64_t>(map)) : "memory");
}

// Shared-memory operands (`dst`, `src`, `bar`) are 32-bit shared-window addresses (smem_addr).

// 2D tile load into this CTA's shared memory; completes `bytes` on `bar`.
FP8GEMM_DEVICE void tma_load_2d(uint32_t dst, const TensorMap* map, uint32_t bar, int32_t c0, int32_t c1) {
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes"
                 " [%0], [%1, {%3, %4}], [%2];"
                 :: "r"(dst), "l"(reinterpret_cast<uint64_t>(map)), "r"(bar),
                    "r"(c0), "r"(c1)
                 : "memory");
}

// 2D tile load delivered to the same shared-memory offset (data and barrier signal) in every CTA
// of the cluster named by `cta_mask`.
FP8GEMM_DEVICE void tma_load_2d_multicast(uint32_t dst, const TensorMap* map, uint32_t bar, int32_t c0, int32_t c1,
                                          uint16_t cta_mask) {
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes.multicast::cluster"
                 " [%0], [%1, {%3, %4}], [%2], %5;"
                 :: "r"(dst), "l"(reinterpret_cast<uint64_t>(map)), "r"(bar),
                    "r"(c0), "r"(c1), "h"(cta_mask)
                 : "memory");
}

// 2D tile store from shared memory; rows and columns outside the tensor are clipped.
FP8GEMM_DEVICE void tma_store_2d(const TensorMap* map, uint32_t src, int32_t c0, int32_t c1) {
    asm volatile("cp.async.bulk.tensor.2d.global.shared::cta.bulk_group [%0, {%2, %3}], [%1];"
                 :: "l"(reinterpret_cast<uint64_t>(map)), "r"(src), "r"(c0), "r"(c1)
                 : "memory");
}

FP8GEMM_DEVICE void tma_store_commit() { asm volatile("cp.async.bulk.commit_group;" ::: "memory"); }

// Waits until the shared-memory sources of all but `N` committed stores have been read.
template <int N>
FP8GEMM_DEVICE void tma_store_wait_read() {
    asm volatile("cp.async.bulk.wait_group.read %0;" :: "n"(N) : "memory");
}

// Waits until all but `N` committed stores are complete (written to global memory).
template <int N>
FP8GEMM_DEVICE void tma_store_wait() {
    asm volatile("cp.async.bulk.wait_group %0;" :: "n"(N) : "memory");
}

// Orders this thread's generic-proxy shared-memory writes before later async-proxy (TMA) reads.
FP8GEMM_DEVICE void fence_proxy_async_smem() {
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
}

}  // namespace fp8gemm::ptx

namespace fp8gemm::ptx {

// 3D tile store from shared memory (c0 innermost); elements outside the tensor are clipped.
FP8GEMM_DEVICE void tma_store_3d(const TensorMap* map, uint32_t src, int32_t c0, int32_t c1, int32_t c2) {
    asm volatile("cp.async.bulk.tensor.3d.global.shared::cta.bulk_group [%0, {%2, %3, %4}], [%1];"
                 :: "l"(reinterpret_cast<uint64_t>(map)), "r"(src), "r"(c0), "r"(c1), "r"(c2)
                 : "memory");
}

// 3D tile reduction into global memory: global += shared, element-wise, in the tensor map's type
// (FP32: each element is one rounded addition, done in L2); elements outside the tensor are clipped.
// Completes like a store (tma_store_commit / tma_store_wait*).
FP8GEMM_DEVICE void tma_reduce_add_3d(const TensorMap* map, uint32_t src, int32_t c0, int32_t c1, int32_t c2) {
    asm volatile("cp.reduce.async.bulk.tensor.3d.global.shared::cta.add.tile.bulk_group [%0, {%2, %3, %4}], [%1];"
                 :: "l"(reinterpret_cast<uint64_t>(map)), "r"(src), "r"(c0), "r"(c1), "r"(c2)
                 : "memory");
}

// Starts bringing a 3D tile (one box of the tensor map at these coordinates) into L2, asynchronously
// and with no completion to wait for; nothing lands in shared memory.
FP8GEMM_DEVICE void tma_prefetch_l2_3d(const TensorMap* map, int32_t c0, int32_t c1, int32_t c2) {
    asm volatile("cp.async.bulk.prefetch.tensor.3d.L2.global.tile [%0, {%1, %2, %3}];"
                 :: "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2)
                 : "memory");
}

}  // namespace fp8gemm::ptx
