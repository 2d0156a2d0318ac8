"""Atomic writes leave nothing half-written; the DGL shim imports DGL on this torch."""

from pathlib import Path

import pandas as pd
import pytest

from glom_plugin.storage import atomic_path, write_parquet


def test_failed_write_leaves_no_file(tmp_path: Path):
    target = tmp_path / "out.parquet"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("crash mid-write")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_parquet_roundtrip(tmp_path: Path):
    frame = pd.DataFrame({"a": [1, 2]})
    assert pd.read_parquet(write_parquet(frame, tmp_path / "x.parquet")).equals(frame)


def test_dgl_heterograph_message_passing_works_through_the_shim():
    import torch

    from glom_plugin.dgl_compat import dgl

    graph = dgl.heterograph({("user", "interacted", "item"): (torch.tensor([0, 1, 1]), torch.tensor([0, 0, 1]))})
    graph.nodes["user"].data["h"] = torch.tensor([[1.0], [3.0]])
    graph.update_all(dgl.function.copy_u("h", "m"), dgl.function.mean("m", "h"), etype="interacted")
    assert graph.nodes["item"].data["h"].squeeze().tolist() == [2.0, 3.0]
