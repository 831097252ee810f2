"""Loading cubins with the CUDA driver and launching them on torch's current stream.

A Kernel keeps one CUfunction per device (loaded on first use there) and launches it with
cuLaunchKernelEx, with a cluster dimension when asked. Two ways to launch:

- ``kernel.launch(grid, block, smem, args)``: any arguments, packed on every call into a per-thread
  array of addresses that is reused, so no cuda-bindings object is created per launch.
- ``launch = kernel.prepare(grid, block, smem, args)`` then ``launch()``: the arguments are checked and
  packed once, into memory the `Launch` owns; a call looks up the current device and stream and
  calls the driver, nothing else. This is the GEMMs' hot path (`fp8gemm.launch`).

Both call libcuda's cuLaunchKernelEx through ctypes where libcuda can be opened
(`driver.raw_launch_kernel_ex`), else through cuda-bindings.

Launch configurations (grid, block, shared memory, cluster, stream) are cached by the Kernel that
uses them, the only cache here besides the loaded functions.
"""

from __future__ import annotations

import ctypes
import threading

import torch

from .artifacts import CompiledKernel
from .driver import driver as _driver
from .driver import ensure_context, max_dynamic_smem, raw_launch_kernel_ex
from .errors import check
from .tma import TensorMap

__all__ = ["Kernel", "Launch", "PointerLaunch", "load", "ensure_context", "max_dynamic_smem"]

# c_int64 is c_long on Linux; the long long spellings are accepted too. The size is checked
# against the kernel's parameter, so a wrong width is an error rather than garbage.
_SCALARS = {ctypes.c_int32, ctypes.c_uint32, ctypes.c_int64, ctypes.c_uint64, ctypes.c_longlong,
            ctypes.c_ulonglong, ctypes.c_float}
_scalar_sizes = {t: ctypes.sizeof(t) for t in _SCALARS}
_TENSOR_MAP_BYTES = 128
_MAX_CACHED_CONFIGS = 512

# torch's current device and raw stream handle without building Python objects (each ~1 us less
# than torch.cuda.current_device() / torch.cuda.current_stream()).
_current_device = getattr(torch._C, "_cuda_getDevice", None) or torch.cuda.current_device
_raw_stream = getattr(torch._C, "_cuda_getCurrentRawStream", None) or (
    lambda device: torch.cuda.current_stream(device).cuda_stream)


def _raw_launcher():
    """The ctypes cuLaunchKernelEx (`driver.raw_launch_kernel_ex`), or None: then cuda-bindings' is used.
    Tests that replace the driver with a recorder replace this too."""
    return raw_launch_kernel_ex()


def _stream_handle(stream) -> int:
    if isinstance(stream, int):
        return stream
    if hasattr(stream, "cuda_stream"):  # torch.cuda.Stream / ExternalStream
        return int(stream.cuda_stream)
    return int(stream)  # CUstream


class _ArgBuffer:
    """A reusable `void*[n]` plus 8-byte slots for tensor pointers (one per thread and arity)."""

    __slots__ = ("ptrs", "slots", "ptrs_addr", "slot_addrs")

    def __init__(self, n: int):
        self.ptrs = (ctypes.c_void_p * n)()
        self.slots = (ctypes.c_uint64 * n)()
        self.ptrs_addr = ctypes.addressof(self.ptrs)
        base = ctypes.addressof(self.slots)
        self.slot_addrs = [base + 8 * i for i in range(n)]


class Kernel:
    """A compiled kernel, loadable on every device; `launch` runs it on torch's current stream."""

    def __init__(self, compiled: CompiledKernel):
        self.compiled = compiled
        self.name = compiled.name
        self._lock = threading.Lock()
        self._modules: dict[int, object] = {}
        self._functions: dict[int, object] = {}
        self._param_sizes: dict[int, tuple[int, ...] | None] = {}
        self._smem_set: dict[int, int] = {}  # device -> dynamic smem limit already raised to
        self._non_portable: set[int] = set()
        self._configs: dict[tuple, object] = {}
        self._attrs: dict[tuple, object] = {}  # launch attributes the cached configs point to
        self._raw_args: dict[tuple, tuple[int, int]] = {}  # key -> (config address, function handle)
        self._tls = threading.local()

    def __repr__(self) -> str:
        return f"Kernel({self.name!r}, devices={sorted(self._functions)})"

    # -- loading --------------------------------------------------------------------------------

    def _load(self, device: int):
        cu = _driver()
        with self._lock:
            if device in self._functions:
                return self._functions[device]
            ensure_context(device)
            err, module = cu.cuModuleLoadData(self.compiled.cubin)
            check(err, f"cuModuleLoadData({self.name})")
            err, fn = cu.cuModuleGetFunction(module, self.name.encode())
            check(err, f"cuModuleGetFunction({self.name})")
            self._modules[device] = module  # never unloaded: modules live as long as the process
            self._param_sizes[device] = self._query_param_sizes(fn)
            self._functions[device] = fn
            return fn

    @staticmethod
    def _query_param_sizes(fn) -> tuple[int, ...] | None:
        """Sizes of the kernel's parameters (cuFuncGetParamInfo, driver >= 12.4), else None."""
        cu = _driver()
        if not hasattr(cu, "cuFuncGetParamInfo"):
            return None
        sizes = []
        while True:
            err, _offset, size = cu.cuFuncGetParamInfo(fn, len(sizes))
            if err == cu.CUresult.CUDA_ERROR_INVALID_VALUE:
                return tuple(sizes)
            if err:
                return None
            sizes.append(int(size))

    # -- per-launch setup -------------------------------------------------------------------------

    def _raise_smem_limit(self, device: int, fn, smem_bytes: int) -> None:
        cu = _driver()
        static = max(self.compiled.resources.shared_bytes, 0)
        limit = max_dynamic_smem(device)
        if smem_bytes + static > limit:
            raise ValueError(f"{self.name}: {smem_bytes} B dynamic + {static} B static shared memory exceeds "
                             f"the device's {limit} B per block")
        attr = cu.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
        (err,) = cu.cuFuncSetAttribute(fn, attr, smem_bytes)
        check(err, f"cuFuncSetAttribute({self.name}, MAX_DYNAMIC_SHARED_SIZE_BYTES, {smem_bytes})")
        self._smem_set[device] = smem_bytes

    def _allow_non_portable_cluster(self, device: int, fn) -> None:
        cu = _driver()
        attr = cu.CUfunction_attribute.CU_FUNC_ATTRIBUTE_NON_PORTABLE_CLUSTER_SIZE_ALLOWED
        (err,) = cu.cuFuncSetAttribute(fn, attr, 1)
        check(err, f"cuFuncSetAttribute({self.name}, NON_PORTABLE_CLUSTER_SIZE_ALLOWED)")
        self._non_portable.add(device)

    def _make_config(self, key: tuple):
        cu = _driver()
        _device, grid, block, smem_bytes, cluster, stream = key
        if grid <= 0 or block <= 0 or cluster <= 0:
            raise ValueError(f"grid, block and cluster must be positive, got {grid}, {block}, {cluster}")
        if grid % cluster:
            raise ValueError(f"grid {grid} must be a multiple of the cluster size {cluster}")
        if len(self._configs) >= _MAX_CACHED_CONFIGS:  # e.g. many short-lived streams
            self._configs.clear()
            self._attrs.clear()
            self._raw_args.clear()
        cfg = cu.CUlaunchConfig()
        cfg.gridDimX, cfg.gridDimY, cfg.gridDimZ = grid, 1, 1
        cfg.blockDimX, cfg.blockDimY, cfg.blockDimZ = block, 1, 1
        cfg.sharedMemBytes = smem_bytes
        cfg.hStream = cu.CUstream(stream)
        if cluster > 1:
            attr = cu.CUlaunchAttribute()
            attr.id = cu.CUlaunchAttributeID.CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION
            attr.value.clusterDim.x, attr.value.clusterDim.y, attr.value.clusterDim.z = cluster, 1, 1
            cfg.attrs = [attr]
            cfg.numAttrs = 1
            self._attrs[key] = attr
        else:
            cfg.numAttrs = 0
        self._configs[key] = cfg
        return cfg

    def _pack(self, args, sizes: tuple[int, ...] | None) -> int:
        """Fill this thread's argument array; return the address of its `void*[]`."""
        n = len(args)
        buffers = self._tls.__dict__
        buf = buffers.get(n)
        if buf is None:
            buf = buffers[n] = _ArgBuffer(n)
        _fill(buf, args, sizes, self.name)
        return buf.ptrs_addr

    # -- launching --------------------------------------------------------------------------------

    def _setup(self, device: int, grid: int, block: int, smem_bytes: int, cluster: int, stream: int):
        """(CUfunction, CUlaunchConfig) for a launch on `device`: loads the function and raises its
        shared-memory limit the first time, and builds the launch configuration once per key."""
        fn = self._functions.get(device)
        if fn is None:
            fn = self._load(device)
        if smem_bytes > self._smem_set.get(device, 0):
            self._raise_smem_limit(device, fn, smem_bytes)
        if cluster > 8 and device not in self._non_portable:
            self._allow_non_portable_cluster(device, fn)
        key = (device, grid, block, smem_bytes, cluster, stream)
        cfg = self._configs.get(key)
        if cfg is None:
            cfg = self._make_config(key)
        return fn, cfg

    def launch(self, grid: int, block: int, smem_bytes: int, args, *, cluster: int = 1, stream=None) -> None:
        """Launch on `stream` (default: torch's current stream of the current device).

        grid and block are 1-D; cluster is the cluster size along x (grid must divide by it).
        args: TensorMap objects, torch tensors (passed as device pointers) and ctypes scalars,
        in the kernel's parameter order. Safe under CUDA-graph capture once the kernel has been
        loaded on the device (launch it once before capturing, as with any lazily built kernel).
        """
        device = _current_device()
        handle = _raw_stream(device) if stream is None else _stream_handle(stream)
        raw = _raw_launcher()
        key = (device, grid, block, smem_bytes, cluster, handle)
        addresses = self._raw_args.get(key) if raw is not None else None
        fn = cfg = None
        if addresses is None:
            # NOTES: the first launch of this configuration (or no ctypes launcher): load the
            # function, raise its limits, build the config. A repeat launch only reuses the config's
            # address and the function handle (cfg.getPtr() and int(fn) on cuda-bindings objects
            # cost ~1-2 us each).
            fn, cfg = self._setup(device, grid, block, smem_bytes, cluster, handle)
            if raw is not None:
                addresses = _raw_addresses(cfg, fn)
                if addresses is not None:
                    self._raw_args[key] = addresses
        params = self._pack(args, self._param_sizes[device])
        if addresses is not None:
            err = raw(addresses[0], addresses[1], params, None)
        else:
            (err,) = _driver().cuLaunchKernelEx(cfg, fn, params, 0)
        if err:
            if fn is None:
                fn, cfg = self._setup(device, grid, block, smem_bytes, cluster, handle)
            self._launch_failed(err, device, cfg, fn, params)

    def prepare(self, grid: int, block: int, smem_bytes: int, args, *, cluster: int = 1) -> Launch:
        """A `Launch` of this kernel with these fixed arguments, for calling many times.

        The arguments are checked against the kernel's parameters and packed now, on the current
        device (the kernel is loaded there if needed). Tensors are passed by their address at this
        moment: the Launch holds no reference to them, so it must not outlive their memory.
        """
        device = _current_device()
        fn, cfg = self._setup(device, grid, block, smem_bytes, cluster, _raw_stream(device))
        buf = _ArgBuffer(len(args))
        _fill(buf, args, self._param_sizes[device], self.name, own_scalars=True)
        keep = (self._attrs.get((device, grid, block, smem_bytes, cluster, int(cfg.hStream))),
                *(a for a in args if type(a) is TensorMap))
        return Launch(self, device, fn, cfg, (grid, block, smem_bytes, cluster), buf, keep)

    def prepare_pointers(self, grid: int, block: int, smem_bytes: int, args, count: int) -> PointerLaunch:
        """A `PointerLaunch`: like `prepare`, but the first `count` arguments (tensors) are given anew
        to each ``run(*tensors)`` call; the other arguments are packed now. `args` holds example
        tensors in those places (their addresses are not kept)."""
        device = _current_device()
        fn, cfg = self._setup(device, grid, block, smem_bytes, 1, _raw_stream(device))
        _fill(_ArgBuffer(len(args)), args, self._param_sizes[device], self.name)  # checks the arguments
        if not all(isinstance(a, torch.Tensor) for a in args[:count]):
            raise TypeError(f"{self.name}: the first {count} arguments of a PointerLaunch must be tensors")
        return PointerLaunch(self, device, fn, cfg, (grid, block, smem_bytes), count, tuple(args[count:]))

    def _launch_failed(self, err, device: int, cfg, fn, params: int) -> None:
        cu = _driver()
        err = cu.CUresult(int(err))  # the ctypes launch returns a plain int
        if err == cu.CUresult.CUDA_ERROR_INVALID_CONTEXT:
            # A thread where no context is current yet (torch sets it lazily): set it, retry once.
            ensure_context(device)
            (err,) = cu.cuLaunchKernelEx(cfg, fn, params, 0)
            if not err:
                return
        check(err, f"cuLaunchKernelEx({self.name}, grid={cfg.gridDimX}, block={cfg.blockDimX}, "
                   f"smem={cfg.sharedMemBytes}, stream={int(cfg.hStream):#x})")


def _raw_addresses(cfg, fn) -> tuple[int, int] | None:
    """(config address, function handle) for the ctypes launch, or None for a function recorded by a
    test (no cuda-bindings object behind it)."""
    try:
        return cfg.getPtr(), int(fn)
    except (AttributeError, TypeError, ValueError):
        return None


def _fill(buf: _ArgBuffer, args, sizes: tuple[int, ...] | None, name: str, own_scalars: bool = False,
          start: int = 0) -> None:
    """Point ``buf.ptrs[start + i]`` at argument i: a tensor map's bytes, a tensor's address (kept in a
    slot), a ctypes scalar (the caller's object, or with ``own_scalars`` a copy in a slot)."""
    n = start + len(args)
    if sizes is not None and len(sizes) != n:
        raise TypeError(f"{name} takes {len(sizes)} arguments, got {n}")
    ptrs, slots, slot_addrs = buf.ptrs, buf.slots, buf.slot_addrs
    for i, a in enumerate(args, start):
        cls = type(a)
        if cls is TensorMap:
            ptrs[i] = a.address
            size = _TENSOR_MAP_BYTES
        elif cls in _scalar_sizes:
            size = _scalar_sizes[cls]
            if own_scalars:
                slots[i] = 0
                ctypes.memmove(slot_addrs[i], ctypes.addressof(a), size)
                ptrs[i] = slot_addrs[i]
            else:
                ptrs[i] = ctypes.addressof(a)
        elif isinstance(a, torch.Tensor):
            slots[i] = a.data_ptr()
            ptrs[i] = slot_addrs[i]
            size = 8
        else:
            raise TypeError(
                f"{name} argument {i}: expected a TensorMap, a torch.Tensor or a ctypes scalar "
                f"(c_int32, c_uint32, c_int64, c_uint64, c_float), got {cls.__name__}")
        if sizes is not None and sizes[i] != size:
            raise TypeError(f"{name} argument {i}: the kernel's parameter is {sizes[i]} bytes, "
                            f"the {cls.__name__} given is {size}")


class _Prepared:
    """What `Launch` and `PointerLaunch` share: the kernel, its device, function and configuration (for
    the stream current at prepare time), the launch dimensions, and the ctypes launcher with the
    config's and function's addresses (None for a function recorded by a test)."""

    __slots__ = ("kernel", "device", "_fn", "_cfg", "_stream", "_dims", "_raw", "_addresses")

    def __init__(self, kernel: Kernel, device: int, fn, cfg, dims: tuple[int, ...]):
        self.kernel = kernel
        self.device = device
        self._fn = fn
        self._cfg = cfg
        self._stream = int(cfg.hStream)
        self._dims = dims
        self._addresses = _raw_addresses(cfg, fn)
        self._raw = _raw_launcher() if self._addresses is not None else None


class Launch(_Prepared):
    """One kernel with fixed launch dimensions and fixed, pre-packed arguments (`Kernel.prepare`).

    ``launch()`` (or ``launch.run()``) puts it on the current stream of the device it was prepared on;
    when another device is current, that device is made current for the launch (as `fp8gemm.gemm` does
    for its tensors' device). It remembers the configuration of the stream it was prepared on; another
    stream goes through the Kernel's configuration cache. Immutable after construction, so threads may
    share it.
    """

    __slots__ = ("_buf", "_params", "_keep", "_args")

    def __init__(self, kernel: Kernel, device: int, fn, cfg, dims: tuple[int, int, int, int],
                 buf: _ArgBuffer, keep: tuple):
        super().__init__(kernel, device, fn, cfg, dims)
        self._buf = buf  # owns the packed arguments
        self._params = buf.ptrs_addr
        self._keep = keep  # what the config and the arguments point into: cluster attribute, tensor maps
        # The ctypes launch's four arguments.
        self._args = None if self._raw is None else (*self._addresses, self._params, None)

    def run(self) -> None:
        """Launch on the current stream of this launch's device (`fp8gemm.gemm`'s repeat calls)."""
        device = _current_device()
        # NOTES: the hot path: one device query, one stream query, one ctypes call into the driver with
        # the addresses packed at prepare time. The caller asks nothing else (`fp8gemm.gemm` calls
        # `run` rather than ``__call__``: a method call costs ~0.1 us less on this machine's CPython 3.11).
        if device == self.device and _raw_stream(device) == self._stream and self._raw is not None:
            if err := self._raw(*self._args):
                self.kernel._launch_failed(err, device, self._cfg, self._fn, self._params)
            return
        if device == self.device:
            self._launch(device)
        else:
            with torch.cuda.device(self.device):  # its context current, its current stream
                self._launch(self.device)

    __call__ = run

    def _launch(self, device: int) -> None:
        """`run` off the hot path, with `device` (this launch's) current: on another stream than the one
        it was prepared on, without a ctypes launcher, or after a device switch."""
        stream = _raw_stream(device)
        if stream == self._stream:
            fn, cfg = self._fn, self._cfg
            if self._raw is not None:
                err = self._raw(*self._args)
            else:
                (err,) = _driver().cuLaunchKernelEx(cfg, fn, self._params, 0)
        else:
            fn, cfg = self.kernel._setup(device, *self._dims, stream)
            (err,) = _driver().cuLaunchKernelEx(cfg, fn, self._params, 0)
        if err:
            self.kernel._launch_failed(err, device, cfg, fn, self._params)


class PointerLaunch(_Prepared):
    """A kernel with fixed launch dimensions and fixed scalar arguments whose first tensor arguments
    change from call to call (`Kernel.prepare_pointers`; the activation cast, whose input and outputs
    are new tensors each time).

    ``run(*tensors)`` launches on the current stream. NOTES: the hot path writes the tensors'
    addresses into this thread's packed argument array (the scalars were copied there once) and makes
    one ctypes call with the configuration prepared for the stream current at prepare time: on the
    H200 host of 2026-11-30, `Kernel.launch` of the cast took 7.6 us of host time, 2.8 of them packing
    its arguments, a prepared `Launch` 3.9. On another device or stream it goes through
    `Kernel.launch`. Threads may share it (each packs into its own array).
    """

    __slots__ = ("_count", "_fixed", "_tls")

    def __init__(self, kernel: Kernel, device: int, fn, cfg, dims: tuple[int, int, int], count: int,
                 fixed: tuple):
        super().__init__(kernel, device, fn, cfg, dims)
        self._count = count  # tensors given to each run
        # The arguments after them, scalars copied (the caller may reuse its ctypes objects). No
        # example tensor is kept (a tensor map given here keeps its own tensor alive, as in `Launch`).
        self._fixed = tuple(type(a)(a.value) if type(a) in _scalar_sizes else a for a in fixed)
        self._tls = threading.local()

    def _thread_buffer(self) -> _ArgBuffer:
        """This thread's argument array: the fixed arguments copied in, the tensors' slots pointed to."""
        buf = _ArgBuffer(self._count + len(self._fixed))
        for i in range(self._count):
            buf.ptrs[i] = buf.slot_addrs[i]
        _fill(buf, self._fixed, self.kernel._param_sizes[self.device], self.kernel.name, own_scalars=True,
              start=self._count)
        self._tls.buf = buf
        return buf

    def run(self, *tensors: torch.Tensor) -> None:
        """Launch with `tensors` (exactly as many as at prepare time) as the first arguments, on the
        current stream of the current device."""
        device = _current_device()
        if device != self.device or self._raw is None or _raw_stream(device) != self._stream:
            self.kernel.launch(*self._dims, (*tensors, *self._fixed))
            return
        buf = getattr(self._tls, "buf", None) or self._thread_buffer()
        slots = buf.slots
        for i, t in enumerate(tensors):
            slots[i] = t.data_ptr()
        if err := self._raw(*self._addresses, buf.ptrs_addr, None):
            self.kernel._launch_failed(err, device, self._cfg, self._fn, buf.ptrs_addr)


_kernels: dict[tuple[str, bytes], Kernel] = {}
_kernels_lock = threading.Lock()


def load(compiled: CompiledKernel) -> Kernel:
    """The Kernel for a compiled kernel: one object (and one CUfunction per device) per cubin."""
    key = (compiled.name, compiled.cubin)  # bytes cache their hash: cheap on every call
    with _kernels_lock:
        kernel = _kernels.get(key)
        if kernel is None:
            kernel = _kernels[key] = Kernel(compiled)
    return kernel
