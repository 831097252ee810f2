"""Content-addressed kernel cache: in memory, then on disk, safe across processes.

Layout under the cache directory (FP8GEMM_CACHE_DIR, default ~/.cache/fp8gemm):

    kernels/<key>/kernel.cu      the source as compiled (for inspection and error reports)
    kernels/<key>/kernel.cubin   the cubin
    kernels/<key>/kernel.json    key, name, resources, compiler; size and SHA-256 of every other file
                                 of the entry; and a SHA-256 of its own content
    locks/<key>.lock             one file lock per entry, held while it is being built

The key hashes the source, every header under fp8gemm/include that the source can reach through
#include, the flags, the compiler and its version, the arch and the kernel name; never an absolute
path, so two installs of the same version share entries. Files are written to a temporary name and
renamed into place, the JSON last, so a reader sees a whole entry or none.

An entry is used only when everything checks: the JSON parses, its own checksum matches (an edited
JSON does not, however valid), it names this key, and every file it lists has the recorded size and
SHA-256. Anything else (truncation, bit rot, a missing or extra-edited file, an entry or a file
replaced by something that is not a regular file) makes it a miss: the entry is removed and rebuilt
under its lock.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path

from . import env
from .artifacts import CompiledKernel, PtxasResources

INCLUDE_DIR = Path(__file__).resolve().parent.parent / "include"
_FORMAT = 2
_LOCK_TIMEOUT_S = 600.0

_memory: dict[str, CompiledKernel] = {}
_memory_lock = threading.Lock()


def clear_memory() -> None:
    """Forget the in-memory cache (the disk cache stays)."""
    with _memory_lock:
        _memory.clear()


# ---------------------------------------------------------------------------------------------
# The key


_INCLUDE_RE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*[<"]([^>"]+)[>"]', re.MULTILINE)
_file_memo: dict[Path, tuple[int, int, bytes]] = {}


def _read_header(path: Path) -> bytes:
    # Re-read only when size or mtime changed: keys are computed on every build() call.
    st = path.stat()
    memo = _file_memo.get(path)
    if memo is not None and memo[0] == st.st_mtime_ns and memo[1] == st.st_size:
        return memo[2]
    data = path.read_bytes()
    _file_memo[path] = (st.st_mtime_ns, st.st_size, data)
    return data


def reachable_headers(source: str, include_dir: Path = INCLUDE_DIR) -> list[tuple[str, bytes]]:
    """(name relative to include_dir, content) of every header under include_dir that `source` can
    reach through #include, transitively, in first-seen order. Includes inside #if blocks count too
    (conservative); headers outside include_dir (system headers) are ignored."""
    root = include_dir.resolve()
    seen: set[str] = set()
    found: list[tuple[str, bytes]] = []
    stack: list[tuple[str, Path | None]] = [(source, None)]
    while stack:
        text, here = stack.pop()
        for name in reversed(_INCLUDE_RE.findall(text)):
            for base in ((here,) if here is not None else ()) + (root,):
                path = (base / name).resolve()
                if path.is_file() and path.is_relative_to(root):
                    break
            else:
                continue
            rel = path.relative_to(root).as_posix()
            if rel in seen:
                continue
            seen.add(rel)
            data = _read_header(path)
            found.append((rel, data))
            stack.append((data.decode("utf-8", errors="replace"), path.parent))
    return found


def entry_key(
    source: str,
    kernel_name: str,
    *,
    flags: Iterable[str],
    arch: str,
    compiler_id: str,
    include_dir: Path = INCLUDE_DIR,
) -> str:
    """The content address of a compile: hex SHA-256 (first 40 digits)."""
    h = hashlib.sha256()

    def put(part: bytes) -> None:
        h.update(len(part).to_bytes(8, "little"))  # length-prefixed: no ambiguity between parts
        h.update(part)

    put(f"fp8gemm-jit-{_FORMAT}".encode())
    put(kernel_name.encode())
    put(arch.encode())
    put(compiler_id.encode())
    for flag in flags:
        put(b"flag:" + flag.encode())
    put(source.encode())
    for rel, data in reachable_headers(source, include_dir):
        put(rel.encode())
        put(data)
    return h.hexdigest()[:40]


# ---------------------------------------------------------------------------------------------
# The directory

_resolved_dirs: dict[Path, Path] = {}
_dir_lock = threading.Lock()


def _is_writable_dir(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".probe-")
        os.close(fd)
        os.unlink(probe)
        return True
    except OSError:
        return False


class CacheDirError(OSError):
    """The cache directory cannot be used (raised only where a fallback is not wanted)."""


_fallback_dirs: list[Path] = []


def _remove_fallback_dirs() -> None:
    while _fallback_dirs:
        shutil.rmtree(_fallback_dirs.pop(), ignore_errors=True)


atexit.register(_remove_fallback_dirs)


def cache_dir(directory: Path | None = None, *, fallback: bool = True) -> Path:
    """The usable cache directory: `directory` (default from the environment), or, when that is not
    writable, a private temporary directory for this process, with one warning; it is removed when
    the process exits. With ``fallback=False`` an unwritable directory raises `CacheDirError`."""
    wanted = Path(directory) if directory is not None else env.cache_dir()
    with _dir_lock:
        if wanted in _resolved_dirs and (fallback or _resolved_dirs[wanted] == wanted):
            return _resolved_dirs[wanted]
        if _is_writable_dir(wanted):
            usable = wanted
        elif not fallback:
            raise CacheDirError(
                f"cache directory {wanted} is not writable (set FP8GEMM_CACHE_DIR to a writable directory)"
            )
        else:
            usable = Path(tempfile.mkdtemp(prefix="fp8gemm-cache-"))
            _fallback_dirs.append(usable)
            warnings.warn(
                f"fp8gemm: cache directory {wanted} is not writable; using {usable} for this process "
                "(set FP8GEMM_CACHE_DIR to a writable directory to keep kernels between runs)",
                RuntimeWarning,
                stacklevel=3,
            )
        _resolved_dirs[wanted] = usable
        return usable


def entries(directory: Path) -> list[Path]:
    """The complete entries (those with their JSON written) under a cache directory."""
    root = Path(directory) / "kernels"
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / "kernel.json").is_file())


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; cache entries are meant to be readable
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_source(path: Path, source: str) -> None:
    """Write a source file atomically (several processes may write the same one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, source.encode())


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _meta_digest(meta: dict) -> str:
    """SHA-256 of a metadata dict without its own checksum, in one canonical JSON spelling."""
    body = {k: v for k, v in meta.items() if k != "meta_sha256"}
    return _sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())


def _read_file(path: Path) -> bytes | None:
    """The bytes of a regular file (never through a symlink), or None."""
    if path.is_symlink() or not path.is_file():
        return None
    return path.read_bytes()


def _read_entry(entry: Path, key: str | None = None) -> CompiledKernel | None:
    """The kernel stored in `entry` when every check passes (see the module docstring), else None."""
    try:
        if entry.is_symlink() or not entry.is_dir():
            return None
        raw = _read_file(entry / "kernel.json")
        if raw is None:
            return None
        meta = json.loads(raw)
        if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
            return None
        if meta.get("meta_sha256") != _meta_digest(meta):
            env.debug(f"cache: entry {entry} has an edited or damaged kernel.json, rebuilding")
            return None
        if key is not None and meta.get("key") != key:
            env.debug(f"cache: entry {entry} belongs to key {meta.get('key')!r}, rebuilding")
            return None
        files = meta["files"]
        if "kernel.cubin" not in files:
            return None
        contents = {}
        for name, expected in files.items():
            if "/" in name or name.startswith("."):
                return None
            data = _read_file(entry / name)
            if data is None or len(data) != expected["size"] or _sha256(data) != expected["sha256"]:
                env.debug(f"cache: corrupt entry {entry} ({name}: missing or checksum mismatch), rebuilding")
                return None
            contents[name] = data
        return CompiledKernel(
            name=meta["name"],
            cubin=contents["kernel.cubin"],
            resources=PtxasResources(**meta["resources"]),
            compile_seconds=float(meta["compile_seconds"]),
            compiler=meta["compiler"],
            arch=meta["arch"],
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        env.debug(f"cache: unreadable entry {entry} ({e!r}), rebuilding")
        return None


def _write_entry(entry: Path, kernel: CompiledKernel) -> None:
    entry.mkdir(parents=True, exist_ok=True)
    _atomic_write(entry / "kernel.cubin", kernel.cubin)
    files = {"kernel.cubin": {"size": len(kernel.cubin), "sha256": _sha256(kernel.cubin)}}
    source = _read_file(entry / "kernel.cu")  # written by the compile, when it wrote one
    if source is not None:
        files["kernel.cu"] = {"size": len(source), "sha256": _sha256(source)}
    meta = {
        "format": _FORMAT,
        "key": entry.name,  # entries live at kernels/<key>
        "name": kernel.name,
        "arch": kernel.arch,
        "compiler": kernel.compiler,
        "compile_seconds": kernel.compile_seconds,
        "resources": asdict(kernel.resources),
        "files": files,
    }
    meta["meta_sha256"] = _meta_digest(meta)
    _atomic_write(entry / "kernel.json", json.dumps(meta, indent=1).encode())  # last: the commit


def _make_dir(path: Path) -> None:
    """`path` as a directory, whatever is in its place now (a file, a dangling link)."""
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        path.unlink()
    path.mkdir(parents=True, exist_ok=True)


def _clear_entry(entry: Path) -> None:
    """Remove whatever is at `entry` (a damaged entry, or something else in its place), JSON first so
    that no reader takes the rest for a whole entry."""
    if entry.is_symlink() or (entry.exists() and not entry.is_dir()):
        entry.unlink()
        return
    if not entry.exists():
        return
    meta = entry / "kernel.json"
    if meta.is_symlink() or meta.is_file():
        meta.unlink()
    shutil.rmtree(entry, ignore_errors=True)
    if entry.exists():  # something we may not remove: say so rather than fail obscurely later
        raise OSError(f"cannot remove the damaged cache entry {entry}")


def _lock(directory: Path, key: str):
    from filelock import FileLock

    lock_dir = directory / "locks"
    _make_dir(lock_dir)
    return FileLock(str(lock_dir / f"{key}.lock"), timeout=_LOCK_TIMEOUT_S)


def lookup(key: str, *, directory: Path | None = None) -> CompiledKernel | None:
    """The kernel stored under `key` (memory, then disk), or None: never compiles."""
    with _memory_lock:
        hit = _memory.get(key)
    if hit is not None:
        return hit
    kernel = _read_entry(cache_dir(directory) / "kernels" / key, key)
    if kernel is not None:
        with _memory_lock:
            _memory[key] = kernel
    return kernel


def get_or_compile(
    key: str,
    compile_fn: Callable[[Path], CompiledKernel],
    *,
    directory: Path | None = None,
) -> CompiledKernel:
    """The kernel stored under `key`, compiling it with `compile_fn(entry_dir)` on a miss.

    `compile_fn` receives the entry's directory, where it may write the source it compiles. Only
    one process builds a given entry at a time; the others wait for it and read its result.
    """
    with _memory_lock:
        hit = _memory.get(key)
    if hit is not None:
        return hit

    root = cache_dir(directory)
    entry = root / "kernels" / key
    t0 = time.perf_counter()
    kernel = _read_entry(entry, key)
    if kernel is not None:
        env.debug(f"cache: disk hit {kernel.name} [{key}] in {1e3 * (time.perf_counter() - t0):.1f} ms")
        if env.ptxas_verbose():
            print(f"[fp8gemm.jit] {kernel.name}: {kernel.resources} (cached)", file=sys.stderr, flush=True)
    else:
        kernel = _build_locked(root, entry, key, compile_fn)
    with _memory_lock:
        _memory[key] = kernel
    return kernel


def _build_locked(root: Path, entry: Path, key: str, compile_fn: Callable[[Path], CompiledKernel]):
    from filelock import Timeout

    try:
        lock = _lock(root, key)
        lock.acquire()
    except Timeout:
        # A builder that hangs must not hang us too: build without the lock (writes stay atomic).
        env.debug(f"cache: lock for {key} timed out after {_LOCK_TIMEOUT_S} s; building anyway")
        lock = None
    except OSError as e:  # the lock file cannot be made (a damaged locks/ directory)
        env.debug(f"cache: no lock for {key} ({e!r}); building anyway")
        lock = None
    try:
        kernel = _read_entry(entry, key)  # another process may have built it while we waited
        if kernel is not None:
            env.debug(f"cache: disk hit {kernel.name} [{key}] after waiting for another builder")
            return kernel
        env.debug(f"cache: miss [{key}], compiling")
        _clear_entry(entry)  # whatever is there could not be trusted
        _make_dir(entry.parent)
        entry.mkdir()
        kernel = compile_fn(entry)
        try:
            _write_entry(entry, kernel)
        except OSError as e:  # e.g. disk full: the kernel is still good for this process
            warnings.warn(f"fp8gemm: could not store kernel in cache {entry}: {e}", RuntimeWarning,
                          stacklevel=4)
        return kernel
    finally:
        if lock is not None:
            lock.release()
