"""One dense GEMM call after a warm-up, for profilers (ncu -k regex:fp8gemm -c 1 ...).

    PYTHONPATH=. ncu --clock-control none -k regex:fp8gemm_dense -s 1 -c 1 \
        python tools/one_gemm.py 4096 32768 512 [128x32n]

An optional fourth argument forces the tiles (BMxBN plus the multicast: a, b or n), as
tools/ab_kernel.py's `@` variants do.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ab_kernel import parse_variant, with_flags  # noqa: E402

import fp8gemm  # noqa: E402
from benchmarks.testing import make_dense_inputs  # noqa: E402

m, n, k = (int(v) for v in sys.argv[1:4])
if len(sys.argv) > 4:
    with_flags(*parse_variant("none@" + sys.argv[4]))
x = make_dense_inputs(m, n, k)
out = torch.empty(m, n, dtype=torch.bfloat16, device="cuda")
for _ in range(2):
    fp8gemm.gemm_fp8_fp8_bf16_nt((x.a, x.sa_tma), (x.b, x.sb), out)
torch.cuda.synchronize()
