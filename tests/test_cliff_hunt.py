"""tools/cliff_hunt.py's grid and its list of shapes behind cuBLASLt (CPU: the hunt itself needs a GPU)."""

from __future__ import annotations

from repo_scripts import load

cliff_hunt = load("tools/cliff_hunt.py")


def test_grid_walks_every_m_for_each_n_by_k() -> None:
    assert cliff_hunt.grid([1, 640], ["7168x2048", "2112x7168"]) == [
        (1, 7168, 2048), (640, 7168, 2048), (1, 2112, 7168), (640, 2112, 7168)]


def test_behind_lists_only_shapes_slower_than_cublaslt_with_a_time() -> None:
    rows = [dict(us=30.9, cublas_us=26.4), dict(us=22.9, cublas_us=26.4),
            dict(us=11.5, cublas_us=float("nan"))]
    assert cliff_hunt.behind(rows) == [rows[0]]
    assert cliff_hunt.behind(rows, margin=1.2) == []
