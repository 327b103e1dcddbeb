"""Hydra's own flags on `vidgen train`: --cfg, --info, -m/--multirun, -sc completion, overrides.yaml."""

from __future__ import annotations

import yaml

from vidgen.hydra_flags import expand_multirun, shell_completion
from vidgen.runs import read_summary
from vidgen.train import main


def test_cfg_job_prints_the_composed_config_and_hydra_keys_never_name_a_run(capsys, tmp_path):
    args = ["exp=ft_cogvideox", "seed=3", "hydra.job.chdir=true", f"run.root={tmp_path}", "--cfg", "job"]
    assert main(args) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["seed"] == 3 and cfg["exp_name"] == "ft_cogvideox"
    assert cfg["run"]["name"].startswith("seed=3-") and "hydra" not in cfg["run"]["name"]
    assert "hydra" not in cfg and not list(tmp_path.iterdir())  # printed only: no run folder

    assert main(["exp=ft_cogvideox", "--cfg", "hydra"]) == 0
    assert "sweeper:" in capsys.readouterr().out
    assert main(["exp=ft_cogvideox", "--info", "defaults"]) == 0
    out = capsys.readouterr().out
    assert "Defaults List" in out and "backbone/cogvideox-2b" in out


def test_bad_flags_and_sweeps_without_multirun_are_clean_errors(capsys):
    assert main(["exp=ft_cogvideox", "--cfg", "nope"]) == 2
    assert "--cfg" in capsys.readouterr().err
    assert main(["exp=ft_cogvideox", "seed=0,1"]) == 2
    err = capsys.readouterr().err
    assert "--multirun" in err and "Traceback" not in err
    assert main(["--config-name", "other", "exp=ft_cogvideox"]) == 2
    assert "--config-name: not supported" in capsys.readouterr().err


def test_multirun_expands_like_hydras_basic_sweeper():
    assert expand_multirun(["exp=jdm_cogvideox,ft_cogvideox", "seed=0,1", "preset=smoke"]) == [
        ["exp=jdm_cogvideox", "seed=0", "preset=smoke"],
        ["exp=jdm_cogvideox", "seed=1", "preset=smoke"],
        ["exp=ft_cogvideox", "seed=0", "preset=smoke"],
        ["exp=ft_cogvideox", "seed=1", "preset=smoke"],
    ]


def test_multirun_trains_each_combination_in_its_own_folder(capsys, tmp_path):
    base = ["exp=ft_cogvideox", "preset=smoke", "logger=none", "train.max_steps=1", f"run.root={tmp_path}"]
    assert main([*base, "-m", "seed=0,1"]) == 0  # flags anywhere among the overrides, as in Hydra
    folders = sorted((tmp_path / "ft_cogvideox").iterdir())
    assert len(folders) == 2 and "seed=0" in folders[0].name and "seed=1" in folders[1].name
    for folder, seed in zip(folders, ("0", "1")):
        assert read_summary(folder)["status"] == "completed"
        recorded = yaml.safe_load((folder / "overrides.yaml").read_text())
        assert recorded == [*base, f"seed={seed}"]  # this job's overrides, as Hydra records them
    assert "[multirun 2/2]" in capsys.readouterr().out


def test_shell_completion_offers_commands_groups_and_keys(capsys, monkeypatch):
    monkeypatch.setenv("COMP_LINE", "vidgen tr")
    assert shell_completion(["query=bash"]) == 0
    assert capsys.readouterr().out.split() == ["train"]
    monkeypatch.setenv("COMP_LINE", "vidgen train exp=ft_c")
    shell_completion(["query=bash"])
    assert "exp=ft_cogvideox" in capsys.readouterr().out.split()
    monkeypatch.setenv("COMP_LINE", "vidgen train optim.")
    shell_completion(["query=bash"])
    assert "optim.lr=" in capsys.readouterr().out.split()
    shell_completion(["install=bash"])
    assert "complete -o nospace -o default -F hydra_bash_completion" in capsys.readouterr().out
