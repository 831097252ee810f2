"""Turning CUDA driver results into readable exceptions."""

from __future__ import annotations


class CudaDriverError(RuntimeError):
    """A CUDA driver call failed; `code` is the CUresult, `name` its enum name."""

    def __init__(self, call: str, code: int, name: str, text: str):
        self.call = call
        self.code = code
        self.name = name
        super().__init__(f"{call} failed: {name} ({code}): {text}")


def describe(code) -> tuple[str, str]:
    """(name, description) of a CUresult, even when the driver cannot be asked."""
    try:
        from cuda.bindings import driver as cu

        err, name = cu.cuGetErrorName(code)
        err2, text = cu.cuGetErrorString(code)
        if not err and not err2:
            return name.decode(), text.decode()
    except Exception:
        pass
    return getattr(code, "name", str(code)), "(no description)"


def check(code, call: str) -> None:
    """Raise CudaDriverError unless `code` is CUDA_SUCCESS (0)."""
    if code:
        name, text = describe(code)
        raise CudaDriverError(call, int(code), name, text)
