"""Bad shard data is one clean error naming file, sample, field and fix, raised before training:
JSON nested too deep, text length of another backbone, integer latents, index paths outside the
dataset root, and errors raised inside DataLoader workers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from vidgen import train as train_mod
from vidgen.backbones import get_backbone
from vidgen.config import load_config
from vidgen.data.datamodule import ShardDataModule
from vidgen.data.shard_checks import check_dataset
from vidgen.data.shards import INDEX_FILE, ShardDataset, ShardWriter, read_index
from vidgen.errors import DataError

SMOKE = ["exp=ft_cogvideox", "preset=smoke", "logger=none"]
BACKBONE = "cogvideox-2b"


def write_shapes_shards(root: Path, n: int = 4, text_cut: int = 0, int_latents: int | None = None) -> Path:
    """`n` shapes-world clips of the smoke config as a shard dataset (2 per shard); `text_cut` drops
    that many text tokens (a dataset of another text encoder); `int_latents` stores that sample's
    latents as int32."""
    spec = get_backbone(BACKBONE)
    shapes = train_mod.build_datamodule(load_config(SMOKE), spec)
    null, null_mask = shapes.null_text()
    end = null.shape[0] - text_cut
    with ShardWriter(root, samples_per_shard=2, null_text=(null[:end], null_mask[:end])) as w:
        for i in range(n):
            s = shapes.dataset[i]
            s.text_embeds, s.text_mask = s.text_embeds[:end], s.text_mask[:end]
            if i == int_latents:
                s.latents = (s.latents * 100).to(torch.int32)
            w.add(s)
    return root


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    return write_shapes_shards(tmp_path_factory.mktemp("shards") / "ds")


def copy_dataset(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_json_nested_too_deep_is_a_data_error(shards, tmp_path):
    root = copy_dataset(shards, tmp_path / "ds")
    ann = root / read_index(root)["shards"][1]["annotations"]
    ann.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(DataError, match=r"00001.json: unreadable or invalid JSON \(nested too deep\)"):
        ShardDataset(root)[2]
    (root / INDEX_FILE).write_text('{"a":' * 100_000 + "1" + "}" * 100_000)
    with pytest.raises(DataError, match=r"index.json: cannot parse the dataset index \(nested too deep\)"):
        read_index(root)


def test_text_length_of_another_backbone_is_refused_before_training(tmp_path, capsys):
    root = write_shapes_shards(tmp_path / "ds", text_cut=1)
    spec = get_backbone(BACKBONE)
    want = spec.text_len_for("tiny")
    dm = ShardDataModule(root, backbone=BACKBONE, backbone_size="tiny")
    with pytest.raises(
        DataError,
        match=rf"index.json: field text_len is {want - 1}, but backbone {BACKBONE} at "
        rf"backbone.size=tiny expects {want}\. Fix: precompute",
    ):
        dm.null_text()
    run_dir = tmp_path / "run"
    rc = train_mod.main(
        [*SMOKE, "data=shards", f"data.root={root}", "data.num_workers=0", f"run.dir={run_dir}"]
    )
    err = capsys.readouterr().err
    assert rc == 2 and f"field text_len is {want - 1}" in err and "Traceback" not in err


def test_integer_latents_are_refused(tmp_path):
    root = write_shapes_shards(tmp_path / "ds", int_latents=3)
    with pytest.raises(
        DataError, match=r"00001.safetensors: sample '.*': field latents: dtype I32, not a floating"
    ):
        check_dataset(ShardDataset(root))
    with pytest.raises(DataError, match=r"field latents: latents have dtype torch.int32, not a floating"):
        ShardDataset(root)[3]  # the reader refuses them too (a dataset read without the check)


@pytest.mark.parametrize("bad", ["../../../../etc/passwd", "/etc/passwd", "shards/../../outside.json", ""])
def test_index_paths_are_confined_to_the_dataset_root(shards, tmp_path, bad):
    root = copy_dataset(shards, tmp_path / "ds")
    index = json.loads((root / INDEX_FILE).read_text())
    index["shards"][0]["annotations"] = bad
    (root / INDEX_FILE).write_text(json.dumps(index))
    with pytest.raises(
        DataError, match=r"field shards\[0\].annotations is .* not a path inside the dataset root"
    ):
        ShardDataset(root)


def test_bad_sample_fails_the_run_before_workers_start(shards, tmp_path, capsys):
    root = copy_dataset(shards, tmp_path / "ds")
    ann_file = root / read_index(root)["shards"][1]["annotations"]
    anns = json.loads(ann_file.read_text())
    anns[1]["instances"][0]["boxes"][0] = [0.1, 0.1, 1.5, 0.5]  # outside [0, 1]
    ann_file.write_text(json.dumps(anns))
    with pytest.raises(DataError, match="outside"):  # found by setup, in this process: no worker started
        ShardDataModule(root, num_workers=2).setup("fit")
    run_dir = tmp_path / "run"
    rc = train_mod.main(
        [*SMOKE, "data=shards", f"data.root={root}", "data.num_workers=2", f"run.dir={run_dir}"]
    )
    err = capsys.readouterr().err
    assert rc == 2
    assert f"{ann_file}: sample '{anns[1]['key']}': field instances[0].boxes[frame 0]" in err
    assert "Traceback" not in err and "DataLoader worker" not in err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and "outside [0, 1]" in summary["error"]


class _Raises(Dataset):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int):
        raise DataError(f"shard.json: sample 'k{i}': field caption: bad. Fix: correct it.")


def test_a_worker_error_reaches_the_main_process_as_its_own_message():
    with pytest.raises(DataError) as err:
        next(iter(DataLoader(_Raises(), num_workers=1)))
    assert str(err.value) == "shard.json: sample 'k0': field caption: bad. Fix: correct it."


def test_without_the_check_a_bad_sample_fails_when_read(shards, tmp_path):
    root = copy_dataset(shards, tmp_path / "ds")
    ann_file = root / read_index(root)["shards"][1]["annotations"]
    anns = json.loads(ann_file.read_text())
    anns[1]["caption"] = 7  # not a string
    ann_file.write_text(json.dumps(anns))
    dm = ShardDataModule(root, micro_batch_size=4, check=False)  # data.check=false (workers: above)
    dm.setup("fit")
    with pytest.raises(DataError) as err:
        next(iter(dm.train_dataloader()))
    assert str(err.value).startswith(f"{ann_file}: sample '{anns[1]['key']}': field caption")
