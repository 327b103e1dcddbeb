"""Real-size experiments train on real data (data=shards) and say what is missing; preset=smoke keeps
the shapes world (JDM issue 10, point 7)."""

from __future__ import annotations

import pytest

from vidgen.cli import main
from vidgen.config import group_options, load_config

EXPERIMENTS = group_options("exp")


@pytest.mark.parametrize("exp", EXPERIMENTS)
def test_real_experiments_default_to_shards_and_smoke_to_the_shapes_world(exp):
    assert load_config([f"exp={exp}"]).data.name == "shards"
    assert load_config([f"exp={exp}", "preset=smoke"]).data.name == "shapes"


def test_an_explicit_data_choice_wins_over_the_smoke_preset():
    assert load_config(["exp=jdm_cogvideox", "preset=smoke", "data=shards", "data.root=/d"]).data.root == "/d"


@pytest.mark.parametrize("exp", ["jdm_cogvideox", "ft_modelscope"])
def test_missing_data_root_is_one_clean_error_naming_the_field_and_the_command(exp, capsys, tmp_path):
    assert main(["train", f"exp={exp}", f"run.dir={tmp_path / 'run'}"]) == 2
    err = capsys.readouterr().err
    assert "data.root" in err and "vidgen precompute" in err and "preset=smoke" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()  # nothing written before the check


def test_jdm_cogvideox_trains_in_fp16_as_in_a7():
    cfg = load_config(["exp=jdm_cogvideox"])
    assert cfg.trainer.precision == "16-mixed"
    from vidgen.strategies import deepspeed_config, resolve_precision

    ds = deepspeed_config(cfg, resolve_precision(cfg, on_cpu=False))  # accepted: no bf16/fp16 mismatch
    assert ds["bf16"] == {"enabled": False}
    assert load_config(["exp=jdm_cogvideox", "preset=smoke"]).trainer.precision == "32-true"
