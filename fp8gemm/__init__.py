"""fp8gemm: FP8 GEMMs for NVIDIA Hopper with DeepSeek-V3 fine-grained scaling.

Activations are scaled per 1x128 block, weights per 128x128 block, accumulation is FP32 and the
output BF16. Dense, M-grouped contiguous and M-grouped masked GEMMs; kernels are JIT-compiled.
Training: FP32-output GEMMs with 1x128 scales on both operands (dense, k-grouped) and autograd layers
in `fp8gemm.nn`.
"""

from . import ops  # noqa: F401  (registers torch.ops.fp8gemm.*; no CUDA work at import)
from .device import UnsupportedGPUError, get_num_sms, set_num_sms
from .gemm import (
    check_contiguous_layout,
    fp8_gemm_nt,
    gemm_fp8_fp8_bf16_nt,
    m_grouped_fp8_gemm_nt_contiguous,
    m_grouped_fp8_gemm_nt_masked,
    m_grouped_gemm_fp8_fp8_bf16_nt_contiguous,
    m_grouped_gemm_fp8_fp8_bf16_nt_masked,
)
from .layout import (
    get_col_major_tma_aligned_tensor,
    get_m_alignment_for_contiguous_layout,
    get_tma_aligned_size,
)
from .quant import (
    k_grouped_per_channel_transpose_cast_to_fp8,
    per_block_cast_to_fp8,
    per_channel_transpose_cast_to_fp8,
    per_token_cast_to_fp8,
    transpose_per_block_fp8,
)
from .training import k_grouped_fp8_gemm_nt_contiguous, wgrad_gemm_fp8_fp8_fp32_nt

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "gemm_fp8_fp8_bf16_nt",
    "m_grouped_gemm_fp8_fp8_bf16_nt_contiguous",
    "m_grouped_gemm_fp8_fp8_bf16_nt_masked",
    "fp8_gemm_nt",
    "m_grouped_fp8_gemm_nt_contiguous",
    "m_grouped_fp8_gemm_nt_masked",
    "k_grouped_fp8_gemm_nt_contiguous",
    "wgrad_gemm_fp8_fp8_fp32_nt",
    "set_num_sms",
    "get_num_sms",
    "get_tma_aligned_size",
    "get_col_major_tma_aligned_tensor",
    "get_m_alignment_for_contiguous_layout",
    "check_contiguous_layout",
    "UnsupportedGPUError",
    "per_token_cast_to_fp8",
    "per_block_cast_to_fp8",
    "per_channel_transpose_cast_to_fp8",
    "k_grouped_per_channel_transpose_cast_to_fp8",
    "transpose_per_block_fp8",
    "ops",
    "nn",
    "precompile",
]


def __getattr__(name: str):
    # `fp8gemm.precompile(...)` without importing the pool/argparse machinery at `import fp8gemm`:
    # the function lives in fp8gemm/aot.py, imported on first access.
    if name == "precompile":
        import importlib

        return importlib.import_module(".aot", __name__).precompile
    if name == "nn":  # the autograd layers, on first access (fp8gemm.nn or `from fp8gemm import nn`)
        import importlib

        return importlib.import_module(".nn", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
