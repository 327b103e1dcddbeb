"""`vidgen jdm filter --write-data ROOT2` never changes a dataset it did not write without
--overwrite-data; a rerun of the same filter resumes; --overwrite-data replaces the contents."""

from __future__ import annotations

import json

import pytest

from vidgen.data.shards import INDEX_FILE, ShardDataset, ShardWriter
from vidgen.methods.jdm.cli import main

LOOSE = ["--min-area", "0.0", "--max-area", "1.0", "--border-margin", "0", "--min-objects", "1",
         "--fragment-threshold", "0.99", "--allow-gaps"]  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from vidgen.data.shapes_datamodule import ShapesDataModule

    root = tmp_path_factory.mktemp("jdm") / "data"
    dm = ShapesDataModule(num_clips=4, frames=5, height=32, width=32, latent_channels=4, vae_scale=(1, 8, 8),
                          text_dim=8, text_len=8)  # fmt: skip
    with ShardWriter(root, samples_per_shard=2, null_text=dm.null_text()) as w:
        for i in range(4):
            w.add(dm.dataset[i])
    return root


def _filter(data, out, dst, *extra):
    return main(["filter", "--data", str(data), "--out", str(out), *LOOSE, "--write-data", str(dst), *extra])


def test_an_existing_dataset_is_refused_and_left_as_it_was(data, tmp_path, capsys):
    other = tmp_path / "other"
    with ShardWriter(other, samples_per_shard=2) as w:  # a dataset the user made
        w.add(ShardDataset(data)[0])
    before = {p.name: p.read_bytes() for p in other.rglob("*") if p.is_file()}
    out = tmp_path / "kept.json"
    assert _filter(data, out, other) == 2
    err = capsys.readouterr().err
    assert f"--write-data {other}: already holds a shard dataset" in err and "--overwrite-data" in err
    assert {p.name: p.read_bytes() for p in other.rglob("*") if p.is_file()} == before
    assert not out.exists()  # refused before the kept list was written

    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("x")
    assert _filter(data, out, tmp_path / "notes") == 2
    assert "is not empty" in capsys.readouterr().err


def test_the_same_filter_resumes_and_overwrite_replaces(data, tmp_path, capsys):
    out, dst = tmp_path / "kept.json", tmp_path / "filtered"
    assert _filter(data, out, dst) == 0
    kept = [k["key"] for k in json.loads(out.read_text())["kept"]]
    assert ShardDataset(dst).keys == kept
    assert _filter(data, out, dst) == 0  # its own output: resumes, writes nothing new
    assert "wrote 0 filtered clips" in capsys.readouterr().out
    assert _filter(data, out, dst, "--min-objects", "2") == 2  # another kept list: refused
    capsys.readouterr()
    assert _filter(data, out, dst, "--min-objects", "2", "--overwrite-data") == 0
    kept2 = [k["key"] for k in json.loads(out.read_text())["kept"]]
    assert ShardDataset(dst).keys == kept2 and (dst / INDEX_FILE).is_file()
    assert not list(tmp_path.glob(".filtered.*"))  # no temp or old folder left behind
