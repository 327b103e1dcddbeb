"""Every experiment composes; paper hyperparameters land in the config; bad choices are named."""

from __future__ import annotations

import pytest

from vidgen.config import group_options, load_config
from vidgen.errors import ConfigError

EXPERIMENTS = group_options("exp")


def test_experiments_exist():
    assert {"ft_cogvideox", "ft_modelscope", "ft_wan"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("exp", EXPERIMENTS)
@pytest.mark.parametrize("preset", [None, "smoke"])
def test_every_experiment_composes(exp, preset):
    cfg = load_config([f"exp={exp}"] + ([f"preset={preset}"] if preset else []))
    assert cfg.exp_name == exp
    assert cfg.run.dir.endswith(f"{exp}/{cfg.run.name}")
    if preset == "smoke":
        assert cfg.backbone.size == "tiny"
        assert cfg.trainer.accelerator == "cpu"
        assert cfg.data.frames is None  # the tiny backbone's resolution, not the paper's


def test_paper_hyperparameters():
    # JDM A.7 (direct fine-tuning baseline uses the same recipe)
    cog = load_config(["exp=ft_cogvideox"])
    assert (cog.backbone.name, cog.optim.name, cog.optim.lr) == ("cogvideox-2b", "adamw", 5e-5)
    assert (cog.train.global_batch_size, cog.train.max_steps) == (768, 10000)
    assert (cog.data.frames, cog.data.height, cog.data.width) == (49, 480, 720)
    ms = load_config(["exp=ft_modelscope"])
    assert (ms.backbone.name, ms.optim.lr, ms.schedule.name) == ("modelscope-t2v", 1e-5, "onecycle")
    assert (ms.train.global_batch_size, ms.train.max_steps, ms.train.cfg_dropout) == (960, 30000, 0.1)
    assert ms.sample.guidance_scale == 9.0
    # InstanceV Sec. 9.2 staged schedule on Wan2.1
    wan = load_config(["exp=ft_wan"])
    assert wan.backbone.name == "wan2.1-1.3b" and wan.schedule.name == "instancev_staged"
    assert [list(k) for k in wan.schedule.knots] == [[0, 1e-5], [1000, 1e-5], [3000, 5e-4], [8000, 5e-4], [10000, 1e-5]]
    assert wan.sample.guidance_scale == 5.0


@pytest.mark.parametrize(
    "override, listed",
    [("exp=no_such_exp", "ft_cogvideox"), ("backbone=no-such", "wan2.1-1.3b"), ("preset=nope", "smoke")],
)
def test_bad_group_choice_is_named_with_valid_values(override, listed):
    with pytest.raises(ConfigError) as err:
        load_config([override])
    assert override.split("=")[1] in str(err.value)
    assert listed in str(err.value)


def test_run_name_is_deterministic_and_slurm_aware(monkeypatch):
    a = load_config(["exp=ft_cogvideox", "preset=smoke", "optim.lr=1e-3"])
    b = load_config(["exp=ft_cogvideox", "optim.lr=1e-3", "preset=smoke"])
    c = load_config(["exp=ft_cogvideox", "preset=smoke"])
    assert a.run.dir == b.run.dir != c.run.dir
    assert load_config(["exp=ft_cogvideox"]).run.dir == "outputs/ft_cogvideox/default"
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    assert load_config(["exp=ft_cogvideox"]).run.name == "slurm-4242"
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "77")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    assert load_config(["exp=ft_cogvideox"]).run.name == "slurm-77_3"
    assert load_config(["exp=ft_cogvideox", "run.root=/x"]).run.dir == "/x/ft_cogvideox/slurm-77_3"
    assert load_config(["exp=ft_cogvideox", "run.dir=/y/z"]).run.dir == "/y/z"


def test_real_experiments_train_with_zero2_and_smoke_falls_back_to_ddp():
    assert load_config(["exp=jdm_cogvideox"]).strategy.name == "deepspeed_zero2"
    assert load_config(["exp=jdm_modelscope"]).strategy.name == "deepspeed_zero2_offload"  # JDM A.7
    for exp in EXPERIMENTS:
        assert load_config([f"exp={exp}", "preset=smoke"]).strategy.name == "ddp"
    assert load_config(["exp=jdm_cogvideox", "preset=smoke", "strategy=deepspeed_zero2"]).strategy.name == (
        "deepspeed_zero2"
    )
