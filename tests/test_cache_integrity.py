"""The kernel cache trusts an entry only when every file of it checks out, and rebuilds any other,
whatever form the damage takes; its fallback directory does not outlive the process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fp8gemm.jit import cache as jit_cache
from fp8gemm.jit.artifacts import CompiledKernel, PtxasResources

KEY = "d" * 40
PAYLOAD = bytes(range(256)) * 4
SOURCE = 'extern "C" __global__ void k() {}\n'


@pytest.fixture(autouse=True)
def fresh_memory():
    jit_cache.clear_memory()
    yield
    jit_cache.clear_memory()


class Build:
    """A compile function that writes its source into the entry (as the real one does) and counts."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, workdir: Path) -> CompiledKernel:
        self.calls += 1
        (workdir / "kernel.cu").write_text(SOURCE)
        return CompiledKernel(name="k", cubin=PAYLOAD, resources=PtxasResources(32, 0, 0, 0, 0),
                              compile_seconds=1.25, compiler="test-1.0")


def _entry(root: Path) -> Path:
    return root / "kernels" / KEY


def _edit_json(entry: Path, **changes) -> None:
    meta = json.loads((entry / "kernel.json").read_text())
    meta.update(changes)
    (entry / "kernel.json").write_text(json.dumps(meta))  # still valid JSON, checksum now stale


def _replace_with_file(path: Path) -> None:
    if path.is_dir():
        import shutil

        shutil.rmtree(path)
    else:
        path.unlink()
    path.write_text("not what it was")


def _replace_with_dir(path: Path) -> None:
    path.unlink()
    path.mkdir()


DAMAGE = {
    "edited_resources": lambda e: _edit_json(e, resources={**json.loads((e / "kernel.json").read_text())[
        "resources"], "registers": 7}),
    "edited_name": lambda e: _edit_json(e, name="other"),
    "edited_compile_time": lambda e: _edit_json(e, compile_seconds=0.0),
    "json_not_an_object": lambda e: (e / "kernel.json").write_text("[1, 2]"),
    "json_empty": lambda e: (e / "kernel.json").write_text(""),
    "json_is_a_directory": lambda e: _replace_with_dir(e / "kernel.json"),
    "cubin_is_a_directory": lambda e: _replace_with_dir(e / "kernel.cubin"),
    "source_edited": lambda e: (e / "kernel.cu").write_text(SOURCE + "// edited\n"),
    "source_deleted": lambda e: (e / "kernel.cu").unlink(),
    "cubin_same_size_other_bytes": lambda e: (e / "kernel.cubin").write_bytes(bytes(len(PAYLOAD))),
    "entry_replaced_by_a_file": _replace_with_file,
    "entry_is_a_dangling_link": lambda e: (_replace_with_file(e), e.unlink(), e.symlink_to(e.parent / "x")),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_entry_is_rebuilt(tmp_path: Path, damage: str) -> None:
    build = Build()
    first = jit_cache.get_or_compile(KEY, build, directory=tmp_path)
    DAMAGE[damage](_entry(tmp_path))
    jit_cache.clear_memory()
    assert jit_cache.lookup(KEY, directory=tmp_path) is None  # never handed out
    jit_cache.clear_memory()
    rebuilt = jit_cache.get_or_compile(KEY, build, directory=tmp_path)
    assert build.calls == 2
    assert rebuilt == first
    jit_cache.clear_memory()
    assert jit_cache.get_or_compile(KEY, build, directory=tmp_path) == first
    assert build.calls == 2  # the repaired entry is trusted again
    assert _entry(tmp_path).is_dir() and (_entry(tmp_path) / "kernel.cu").read_text() == SOURCE


def test_entry_of_another_key_is_not_trusted(tmp_path: Path) -> None:
    build = Build()
    jit_cache.get_or_compile(KEY, build, directory=tmp_path)
    other = tmp_path / "kernels" / ("e" * 40)
    _entry(tmp_path).rename(other)  # a whole, valid entry, but under the wrong name
    jit_cache.clear_memory()
    assert jit_cache.lookup("e" * 40, directory=tmp_path) is None


def test_old_format_entries_are_rebuilt(tmp_path: Path) -> None:
    build = Build()
    jit_cache.get_or_compile(KEY, build, directory=tmp_path)
    meta = json.loads((_entry(tmp_path) / "kernel.json").read_text())
    meta["format"] = 1
    meta["meta_sha256"] = jit_cache._meta_digest(meta)
    (_entry(tmp_path) / "kernel.json").write_text(json.dumps(meta))
    jit_cache.clear_memory()
    jit_cache.get_or_compile(KEY, build, directory=tmp_path)
    assert build.calls == 2


def test_damaged_kernels_and_locks_directories_are_repaired(tmp_path: Path) -> None:
    (tmp_path / "kernels").write_text("a file where the kernels directory belongs")
    (tmp_path / "locks").write_text("and one where the locks go")
    build = Build()
    kernel = jit_cache.get_or_compile(KEY, build, directory=tmp_path)
    assert kernel.cubin == PAYLOAD and build.calls == 1
    assert (tmp_path / "kernels").is_dir() and (tmp_path / "locks").is_dir()
    jit_cache.clear_memory()
    assert jit_cache.lookup(KEY, directory=tmp_path) == kernel


def test_every_file_is_in_the_checksums(tmp_path: Path) -> None:
    jit_cache.get_or_compile(KEY, Build(), directory=tmp_path)
    meta = json.loads((_entry(tmp_path) / "kernel.json").read_text())
    assert set(meta["files"]) == {"kernel.cubin", "kernel.cu"}
    assert meta["key"] == KEY and meta["meta_sha256"] == jit_cache._meta_digest(meta)


def test_strict_cache_dir_raises_instead_of_falling_back(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(jit_cache.CacheDirError, match="not writable"):
        jit_cache.cache_dir(blocker / "cache", fallback=False)


def test_fallback_directory_is_removed_at_exit(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    script = textwrap.dedent(f"""
        import warnings
        from pathlib import Path
        from fp8gemm.jit import cache
        warnings.simplefilter("ignore")
        used = cache.cache_dir(Path({str(blocker / "cache")!r}))
        (used / "kernels").mkdir()
        print(used)
    """)
    env = dict(os.environ, TMPDIR=str(tmp_path))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    used = Path(result.stdout.strip())
    assert used.parent == tmp_path and used.name.startswith("fp8gemm-cache-")
    assert not used.exists()
