"""What a main loop of this shape can reach at best: the tensor cores' cycles per K block when the
math warpgroups do nothing but the wgmma (and, in some variants, the promotion).

The FP8 GEMM's 256x128 tile spent ~1120-1150 SM cycles per 128-deep K block on the H200 (a clock64
trace, before the ring rounds took ~2% more off), where its
wgmma alone need 1024 (256 x 128 x 128 x 2 FLOP at 8192 per cycle). This tool takes the GEMM out and
keeps the loop's skeleton: 132 CTAs, one per SM, a producer thread filling a 3-stage ring through
full/empty mbarriers, two math warpgroups issuing the same wgmma as the kernel, and variants that add
or remove one thing at a time. Each CTA's thread 0 times its K blocks with clock64 (after the first,
so the ring is full); the table gives the median CTA's cycles per 1024 tensor cycles of work, and the
SM clock over the run (globaltimer).

    PYTHONPATH=. python tools/loop_floor.py [--variants promote,no_promote] [--json PATH]

Variants (per K block, per CTA; "256x128" is the kernel's dense M = 4096 tile):
  promote          256x128 as the kernel runs it: each warpgroup 2 chains of 4 x wgmma m64n128k32
                   (A and B from shared memory) into a fresh partial sum, wait, 64 FFMA promotion
  promote_half     the same with 32 promotion FFMAs per chain (half the columns)
  no_promote       the same wgmma accumulating straight into the chains' sums: no FFMA at all
  n256_no_promote  128x256: one chain of 4 x m64n256k32 per warpgroup, no promotion (fewer shared-
                   memory bytes per FLOP: A is read once per 256 columns)
  two_deep         256x128 as 64-column quarters, two partial sums in flight per warpgroup, so that a
                   warpgroup's promotion overlaps its own next wgmma, not only the other warpgroup's
  a_in_registers   128x256: A through ldmatrix into registers once per K block, two halves of
                   4 x m64n128k32 with A from registers, each promoted (A read once per 256 columns)
  narrow_two_deep  128x128 (one chain per warpgroup), two partial sums in flight (the decode loop's
                   overlap); its cycles are doubled to compare per 1024 tensor cycles
Each runs with the producer streaming every stage from an L2-resident buffer (`writes`: 48 KB per K
block, as the GEMM's TMA loads) and with only the first ring round loaded (the data stays random,
later rounds only arrive on the barriers). Timing only: the sums are not a GEMM.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import statistics
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

STAGES = 3
NUM_CTAS = 132


@dataclass(frozen=True)
class Variant:
    name: str
    stage_bytes: int     # one stage: the A tile then the B tile (FP8, 128 bytes per row)
    b_offset: int        # where the B tile starts in the stage
    wgmma_per_k_block: int  # wgmma per K block per warpgroup (the SASS may hold a multiple: peeled or
                            # per-parity copies of the K block)
    tensor_scale: int    # cycles per K block x this = cycles per 1024 tensor cycles of work


VARIANTS = {
    v.name: v
    for v in (
        Variant("promote", 48 << 10, 32 << 10, 8, 1),
        Variant("promote_half", 48 << 10, 32 << 10, 8, 1),
        Variant("no_promote", 48 << 10, 32 << 10, 8, 1),
        Variant("n256_no_promote", 48 << 10, 16 << 10, 4, 1),
        Variant("two_deep", 48 << 10, 32 << 10, 16, 1),
        Variant("a_in_registers", 48 << 10, 16 << 10, 8, 1),
        Variant("narrow_two_deep", 32 << 10, 16 << 10, 4, 2),
    )
}


def _operands(name: str, count: int) -> str:
    return ", ".join(f'"+f"({name}[{i}])' for i in range(count))


def _registers(count: int, first: int = 0) -> str:
    return ",".join(f"%{first + i}" for i in range(count))


def _wgmma_wrapper(name: str, n: int, a_in_registers: bool) -> str:
    """One wgmma m64nNk32 (e4m3, FP32 sums) as a device function; accumulate = 0 starts fresh."""
    regs = n // 2
    if a_in_registers:
        a_param, a_operand = "const uint32_t* a", f"{{%{regs},%{regs + 1},%{regs + 2},%{regs + 3}}}"
        a_inputs, b_index = '"r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), ', regs + 4
    else:
        a_param, a_operand, a_inputs, b_index = "uint64_t desc_a", f"%{regs}", '"l"(desc_a), ', regs + 1
    mma = f"wgmma.mma_async.sync.aligned.m64n{n}k32.f32.e4m3.e4m3"
    return f"""
FP8GEMM_DEVICE void {name}(float* d, {a_param}, uint64_t desc_b, int accumulate) {{
    asm volatile("{{\\n.reg .pred p;\\nsetp.ne.b32 p, %{b_index + 1}, 0;\\n"
                 "{mma} {{{_registers(regs)}}}, {a_operand}, %{b_index}, p, 1, 1;\\n}}\\n"
                 : {_operands("d", regs)}
                 : {a_inputs}"l"(desc_b), "r"(accumulate));
}}"""


def _wgmma_wrappers() -> str:
    """The wgmma forms the variants use (the GEMM's own comes from codegen per N): A and B from
    shared memory at N = 64, 128, 256, and A from registers (mma.m16n8k32's A layout per warp) at 128."""
    return "".join((_wgmma_wrapper("wgmma_n64", 64, False), _wgmma_wrapper("wgmma_n128", 128, False),
                    _wgmma_wrapper("wgmma_n256", 256, False), _wgmma_wrapper("wgmma_n128_a_regs", 128, True)))


# The math warpgroup's work for one K block, per variant. `stage` is the stage's shared address, `s`
# the stage index, `kb` the K block; `scale` stands in for sa * sb. Variants whose sums never read the
# wgmma results accumulate into them (accumulate = 1), so that ptxas cannot drop a wgmma as dead.
def _promoted_chains(columns: int) -> str:
    """The kernel's loop: per chain 4 wgmma into a fresh partial sum, wait, then `columns` of its 64
    accumulator registers promoted (64: all)."""
    return f"""
    for (int c = 0; c < 2; ++c) {{
        const uint64_t desc_a = ptx::SmemDescriptor::make(stage + (c * 2 + warpgroup) * 64 * 128);
        const uint64_t desc_b = ptx::SmemDescriptor::make(stage + kBOffset);
        issue4_n128(partial, desc_a, desc_b, false);
        ptx::wgmma_wait<0>();
        fence_all(partial);
        if (c == 1) release(s);
        for (int i = 0; i < {columns}; ++i) sums[c][i] += partial[i] * scale;
    }}"""


_K_BLOCK_BODIES = {
    "promote": _promoted_chains(64),
    "promote_half": _promoted_chains(32),
    "no_promote": """
    for (int c = 0; c < 2; ++c) {
        const uint64_t desc_a = ptx::SmemDescriptor::make(stage + (c * 2 + warpgroup) * 64 * 128);
        const uint64_t desc_b = ptx::SmemDescriptor::make(stage + kBOffset);
        issue4_n128(sums[c], desc_a, desc_b, true);
        ptx::wgmma_wait<0>();
        fence_all(sums[c]);
        if (c == 1) release(s);
    }""",
    "n256_no_promote": """
    {
        const uint64_t desc_a = ptx::SmemDescriptor::make(stage + warpgroup * 64 * 128);
        const uint64_t desc_b = ptx::SmemDescriptor::make(stage + kBOffset);
        for (int i = 0; i < 128; ++i) ptx::fence_register(wide[i]);
        ptx::wgmma_fence();
        for (int ks = 0; ks < 4; ++ks) wgmma_n256(wide, desc_a + ks * kKStep, desc_b + ks * kKStep, 1);
        ptx::wgmma_commit();
        ptx::wgmma_wait<0>();
        for (int i = 0; i < 128; ++i) ptx::fence_register(wide[i]);
        release(s);
    }""",
    "two_deep": """
    // Quarter q: chain q / 2, columns 64 (q % 2) on; partial sum q % 2. Issue q, then wait for q - 1
    // (the previous K block's last quarter at q = 0) and promote it while q runs.
    for (int q = 0; q < 4; ++q) {
        const uint64_t desc_a = ptx::SmemDescriptor::make(stage + ((q / 2) * 2 + warpgroup) * 64 * 128);
        const uint64_t desc_b = ptx::SmemDescriptor::make(stage + kBOffset + (q % 2) * 64 * 128);
        float* part = quarter[q % 2];
        for (int i = 0; i < 32; ++i) ptx::fence_register(part[i]);
        ptx::wgmma_fence();
        for (int ks = 0; ks < 4; ++ks) wgmma_n64(part, desc_a + ks * kKStep, desc_b + ks * kKStep, ks > 0);
        ptx::wgmma_commit();
        if (kb > 0 || q > 0) {
            ptx::wgmma_wait<1>();
            float* done = quarter[(q + 1) % 2];
            for (int i = 0; i < 32; ++i) ptx::fence_register(done[i]);
            if (q == 0) release((s + kStages - 1) % kStages);
            const int p = (q + 3) % 4;
            for (int i = 0; i < 32; ++i) sums[p / 2][(p % 2) * 32 + i] += done[i] * scale;
        }
    }""",
    "a_in_registers": """
    {
        // This warp's 16 rows of the warpgroup's 64, four 8x16-byte matrices per k-step, read from the
        // 128-byte-swizzled tile (16-byte chunk index XOR row % 8).
        const int row = warpgroup * 64 + warp * 16 + (lane % 8) + 8 * ((lane / 8) % 2);
        for (int ks = 0; ks < 4; ++ks) {
            const int chunk = ks * 2 + lane / 16;
            ldmatrix_x4(a_frag + 4 * ks, stage + row * 128 + ((chunk ^ (row % 8)) * 16));
        }
        for (int h = 0; h < 2; ++h) {
            const uint64_t desc_b = ptx::SmemDescriptor::make(stage + kBOffset + h * 128 * 128);
            for (int i = 0; i < 64; ++i) ptx::fence_register(partial[i]);
            ptx::wgmma_fence();
            for (int ks = 0; ks < 4; ++ks)
                wgmma_n128_a_regs(partial, a_frag + 4 * ks, desc_b + ks * kKStep, ks > 0);
            ptx::wgmma_commit();
            ptx::wgmma_wait<0>();
            fence_all(partial);
            if (h == 1) release(s);
            for (int i = 0; i < 64; ++i) sums[h][i] += partial[i] * scale;
        }
    }""",
    "narrow_two_deep": """
    {
        const uint64_t desc_a = ptx::SmemDescriptor::make(stage + warpgroup * 64 * 128);
        const uint64_t desc_b = ptx::SmemDescriptor::make(stage + kBOffset);
        // Two partial sums by K-block parity, each a named array (a pointer chosen at run time
        // would put them in local memory).
        auto step = [&](float (&issue)[64], float (&done)[64]) {
            issue4_n128(issue, desc_a, desc_b, false);
            if (kb > 0) {
                ptx::wgmma_wait<1>();
                fence_all(done);
                release((s + kStages - 1) % kStages);
                for (int i = 0; i < 64; ++i) sums[0][i] += done[i] * scale;
            }
        };
        if (kb & 1) step(partial_odd, partial); else step(partial, partial_odd);
    }""",
}


def kernel_source(variant: Variant, writes: bool) -> str:
    body = _K_BLOCK_BODIES[variant.name].replace("for (int", "_Pragma(\"unroll\") for (int")
    return f"""// tools/loop_floor.py, variant {variant.name}, writes={int(writes)}
#include <fp8gemm/ptx/common.cuh>
#include <fp8gemm/ptx/mbarrier.cuh>
#include <fp8gemm/ptx/sync.cuh>
#include <fp8gemm/ptx/wgmma.cuh>
using namespace fp8gemm;

constexpr int kStageBytes = {variant.stage_bytes};
constexpr int kBOffset = {variant.b_offset};
constexpr int kStages = {STAGES};
constexpr bool kWrites = {str(writes).lower()};
constexpr uint64_t kKStep = ptx::SmemDescriptor::kKStepIncrement;
{_wgmma_wrappers()}
// Global -> shared bulk copy (no tensor map) that completes `bytes` on `bar`.
FP8GEMM_DEVICE void bulk_copy(uint32_t dst, const void* src, uint32_t bytes, uint32_t bar) {{
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];"
                 :: "r"(dst), "l"(src), "r"(bytes), "r"(bar) : "memory");
}}
FP8GEMM_DEVICE void ldmatrix_x4(uint32_t* r, uint32_t addr) {{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {{%0, %1, %2, %3}}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
}}
FP8GEMM_DEVICE uint64_t clock_cycles() {{
    uint64_t c;
    asm volatile("mov.u64 %0, %%clock64;" : "=l"(c));
    return c;
}}
FP8GEMM_DEVICE uint64_t global_ns() {{
    uint64_t t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}}
FP8GEMM_DEVICE void fence_all(float* regs) {{
#pragma unroll
    for (int i = 0; i < 64; ++i) ptx::fence_register(regs[i]);
}}
// One 128-deep K block of one 64-row chain: 4 wgmma m64n128k32 into `d`, committed as one group.
FP8GEMM_DEVICE void issue4_n128(float* d, uint64_t desc_a, uint64_t desc_b, bool accumulate) {{
    fence_all(d);
    ptx::wgmma_fence();
#pragma unroll
    for (int ks = 0; ks < 4; ++ks)
        wgmma_n128(d, desc_a + ks * kKStep, desc_b + ks * kKStep, accumulate || ks > 0);
    ptx::wgmma_commit();
}}

extern "C" __global__ void __launch_bounds__(384, 1)
loop_floor(const uint8_t* src, uint64_t src_bytes, float* sink, uint64_t* times, int num_k_blocks) {{
    extern __shared__ __align__(1024) uint8_t smem_raw[];
    const uint32_t base = (smem_addr(smem_raw) + 1023) & ~1023u;
    const uint32_t full = base + kStages * kStageBytes, empty = full + 8 * kStages;
    if (threadIdx.x == 0) {{
        for (int s = 0; s < kStages; ++s) {{
            ptx::mbarrier_init(full + 8 * s, 1);
            ptx::mbarrier_init(empty + 8 * s, 2);   // one arrival per math warpgroup
        }}
        ptx::fence_mbarrier_init();
    }}
    __syncthreads();
    const int warpgroup = ptx::warp_uniform(static_cast<int>(threadIdx.x / 128));
    if (warpgroup == 2) {{
        ptx::setmaxnreg_dec<40>();
        if (threadIdx.x == 256) {{
            for (int kb = 0; kb < num_k_blocks; ++kb) {{
                const int s = kb % kStages, round = kb / kStages;
                if (round > 0) ptx::mbarrier_wait(empty + 8 * s, (round - 1) & 1);
                if (kWrites || round == 0) {{
                    ptx::mbarrier_arrive_expect_tx(full + 8 * s, kStageBytes);
                    // Spread over an L2-resident buffer, as the GEMM's loads mostly hit L2.
                    const uint64_t spot = (uint64_t(blockIdx.x) * 977 + kb) * kStageBytes;
                    const uint64_t offset = spot % (src_bytes - kStageBytes) & ~uint64_t(1023);
                    constexpr int kPart = kStageBytes / 4;
#pragma unroll
                    for (int part = 0; part < 4; ++part) {{
                        const uint32_t dst = base + s * kStageBytes + part * kPart;
                        bulk_copy(dst, src + offset + part * kPart, kPart, full + 8 * s);
                    }}
                }} else {{
                    ptx::mbarrier_arrive(full + 8 * s);
                }}
            }}
        }}
        return;
    }}
    ptx::setmaxnreg_inc<232>();
    const int lane = threadIdx.x % 32, warp = (threadIdx.x / 32) % 4;
    auto release = [&](int s) {{
        if (warp == 0 && lane == 0) ptx::mbarrier_arrive(empty + 8 * s);
    }};
    float scale = 1.0f + blockIdx.x * 1e-9f;
    float sums[2][64], partial[64], partial_odd[64], quarter[2][32], wide[128];
    uint32_t a_frag[16];
#pragma unroll
    for (int i = 0; i < 64; ++i) sums[0][i] = sums[1][i] = partial[i] = partial_odd[i] = 0.0f;
#pragma unroll
    for (int i = 0; i < 32; ++i) quarter[0][i] = quarter[1][i] = 0.0f;
#pragma unroll
    for (int i = 0; i < 128; ++i) wide[i] = 0.0f;
    uint64_t t0 = 0, ns0 = 0;
    for (int kb = 0; kb < num_k_blocks; ++kb) {{
        const int s = kb % kStages;
        ptx::mbarrier_wait(full + 8 * s, (kb / kStages) & 1);
        if (kb == 1) t0 = clock_cycles(), ns0 = global_ns();
        const uint32_t stage = base + s * kStageBytes;
        scale += 1e-9f;
{body}
    }}
    const uint64_t t1 = clock_cycles(), ns1 = global_ns();
    float total = 0.0f;
#pragma unroll
    for (int i = 0; i < 64; ++i) total += sums[0][i] + sums[1][i] + partial[i] + partial_odd[i];
#pragma unroll
    for (int i = 0; i < 32; ++i) total += quarter[0][i] + quarter[1][i];
#pragma unroll
    for (int i = 0; i < 128; ++i) total += wide[i];
    (void)a_frag;
    sink[blockIdx.x * 256 + threadIdx.x] = total;
    if (threadIdx.x == 0) times[2 * blockIdx.x] = t1 - t0, times[2 * blockIdx.x + 1] = ns1 - ns0;
}}
"""


def build(variant: Variant, writes: bool):
    from fp8gemm import jit

    return jit.build(kernel_source(variant, writes), "loop_floor")


def smem_bytes(variant: Variant) -> int:
    return STAGES * variant.stage_bytes + 2 * 8 * STAGES + 1024


@dataclass
class Row:
    variant: str
    writes: bool
    cycles: list[float]   # per 1024 tensor cycles of work, one per repetition
    mhz: list[float]


def run(names: list[str], num_k_blocks: int, reps: int) -> list[Row]:
    import torch

    kernels = {(n, w): build(VARIANTS[n], w) for n in names for w in (True, False)}
    src_bytes = 16 << 20
    src = torch.randint(0, 256, (src_bytes,), dtype=torch.uint8, device="cuda")
    src = torch.where((src & 0x7F) == 0x7F, src ^ 1, src)   # no e4m3 NaN
    sink = torch.empty(NUM_CTAS * 256, device="cuda")
    times = torch.zeros(2 * NUM_CTAS, dtype=torch.int64, device="cuda")
    rows = {key: Row(key[0], key[1], [], []) for key in kernels}
    for _ in range(reps):
        for (name, writes), kernel in kernels.items():
            variant = VARIANTS[name]
            kernel.launch(NUM_CTAS, 384, smem_bytes(variant),
                          (src, ctypes.c_uint64(src_bytes), sink, times, ctypes.c_int32(num_k_blocks)))
            torch.cuda.synchronize()
            t = times.view(NUM_CTAS, 2).cpu()
            cycles = statistics.median(t[:, 0].tolist())
            ns = statistics.median(t[:, 1].tolist())
            rows[(name, writes)].cycles.append(cycles / (num_k_blocks - 1) * variant.tensor_scale)
            rows[(name, writes)].mhz.append(cycles / ns * 1e3)
    return list(rows.values())


def format_table(rows: list[Row]) -> str:
    lines = [f"{'variant':18s} {'writes':>6s} {'cycles per 1024 (median)':>25s} {'reps':>22s} {'MHz':>6s}"]
    for r in rows:
        reps = " ".join(f"{c:.0f}" for c in r.cycles)
        lines.append(f"{r.variant:18s} {str(r.writes):>6s} {statistics.median(r.cycles):25.0f} {reps:>22s} "
                     f"{statistics.median(r.mhz):6.0f}")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--k-blocks", type=int, default=3000, help="K blocks per CTA")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    names = args.variants.split(",")
    for n in names:
        if n not in VARIANTS:
            p.error(f"unknown variant {n!r}; known: {', '.join(VARIANTS)}")
    rows = run(names, args.k_blocks, args.reps)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1))
    print(format_table(rows))
    print("1024 = the wgmma alone at the tensor cores' rate (256x128x128 per K block at 8192 FLOP per cycle)")


if __name__ == "__main__":
    main()
