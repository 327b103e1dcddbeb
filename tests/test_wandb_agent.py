"""Sweep commands as a real `wandb agent` runs them: expanded by wandb's own code, in a clean
environment holding only what a plain shell and the agent provide (WANDB_RUN_ID, WANDB_SWEEP_ID,
WANDB_SWEEP_PARAM_PATH), W&B offline."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

import vidgen
from vidgen.config import load_config
from vidgen.runs import read_metrics, read_summary
from vidgen.sweeps.agent import agent_env, expand_command
from vidgen.sweeps.schema import load_sweep

SRC = Path(vidgen.__file__).resolve().parents[1]
REPO = SRC.parent
SWEEP_ID = "swp0test"


def _agent_run_env(tmp_path: Path, run_id: str, params: dict) -> dict[str, str]:
    """A plain shell's environment plus what `wandb agent` sets for one run (wandb_agent.py)."""
    from wandb.sdk.lib import config_util

    param_path = tmp_path / "wandb" / f"sweep-{SWEEP_ID}" / f"config-{run_id}.yaml"
    param_path.parent.mkdir(parents=True, exist_ok=True)
    config_util.save_config_file_from_dict(str(param_path), {k: {"value": v} for k, v in params.items()})
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PYTHONPATH": str(SRC),  # the source under test (an installed vidgen would not need it)
        "OMP_NUM_THREADS": "1",
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_DISABLE_GIT": "true",
        "WANDB_DIR": str(tmp_path),
        "WANDB_RUN_ID": run_id,
        "WANDB_SWEEP_ID": SWEEP_ID,
        "WANDB_SWEEP_PARAM_PATH": str(param_path),
    }


def _run(cmd: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)


def test_expand_command_is_wandbs_agent_expansion():
    sweep = load_sweep(REPO / "sweeps/jdm/fig4_jdm_vs_finetune.yaml")
    cmd = expand_command(sweep.config["command"], {"exp": "ft_cogvideox", "seed": 0}, interpreter="python")
    assert cmd == ["/usr/bin/env", "python", "-m", "vidgen.train", "exp=ft_cogvideox", "seed=0"]
    assert expand_command(["${args}", "${args_append_hydra}"], {"a.b": 1}) == ["--a.b=1", "+a.b=1"]
    os.environ["VIDGEN_TEST_PY"] = "/opt/py"
    try:  # wandb's create_sweep_command fills ${envvar:NAME}
        assert expand_command(["${envvar:VIDGEN_TEST_PY}", "x${envvar:VIDGEN_TEST_PY}"], {}) == ["/opt/py", "x/opt/py"]
    finally:
        del os.environ["VIDGEN_TEST_PY"]
    with pytest.raises(vidgen.errors.ConfigError, match=r"\$\{args_nope\}"):
        expand_command(["${args_nope}"], {})


def test_agent_env_puts_this_python_first():
    env = agent_env({"PATH": "/usr/bin:/bin"})
    first = Path(env["PATH"].split(os.pathsep)[0])
    assert (first / "python").exists() and env["PATH"].endswith("/usr/bin:/bin")


def test_profile_rows_get_their_own_run_names(monkeypatch):
    for key in ("WANDB_RUN_ID", "WANDB_SWEEP_ID"):
        monkeypatch.delenv(key, raising=False)
    train = load_config(["exp=jdm_cogvideox"])
    profile = load_config(["exp=jdm_cogvideox"], run_kind="profile")
    assert train.run.name == "default" and profile.run.name == "profile"
    assert load_config(["exp=jdm_cogvideox", "seed=1"], run_kind="profile").run.name.startswith("profile.seed=1-")
    monkeypatch.setenv("WANDB_RUN_ID", "abc12345")
    monkeypatch.setenv("WANDB_SWEEP_ID", SWEEP_ID)
    assert load_config(["exp=jdm_cogvideox"], run_kind="profile").run.name == "profile.wandb-abc12345"
    assert load_config(["exp=jdm_cogvideox"]).run.name == "default.wandb-abc12345"


@pytest.mark.slow
def test_sweep_rows_under_a_real_agent_environment(tmp_path):
    """(a) works from a plain shell, (b) the agent's run id is the folder's W&B run, also after a
    requeue, whose segments `vidgen sync` hands to `wandb sync` in order, (c) profile rows."""
    sweep = load_sweep(REPO / "sweeps/jdm/fig4_jdm_vs_finetune.yaml")
    params = {"exp": "ft_cogvideox", "seed": 0, "preset": "smoke", "train.max_steps": 2, "run.root": str(tmp_path)}
    cmd = expand_command(sweep.config["command"], params, interpreter="python")
    plain = _agent_run_env(tmp_path, "run1abcd", params)

    # (a) the agent's literal `python` is not this Python in a plain shell; agent_env makes it so
    assert _run(cmd, plain, REPO).returncode != 0
    first = _run(cmd, agent_env(plain), REPO)
    assert first.returncode == 0, first.stderr[-3000:]
    (folder,) = (tmp_path / "ft_cogvideox").iterdir()
    assert folder.name.endswith(".wandb-run1abcd") and "run.root" not in folder.name

    # (b) the folder's W&B run is the agent's; a requeue (recorded command + run.dir) resumes it
    requeue = [*cmd, "train.max_steps=4", f"run.dir='{folder}'"]  # as vidgen.slurm_agent quotes it
    assert _run(requeue, agent_env(plain), REPO).returncode == 0
    assert (folder / "wandb_id").read_text() == "run1abcd"
    segments = sorted((folder / "wandb").glob("offline-run-*"))
    assert len(segments) == 2 and all(re.search(r"-run1abcd(-\d+)?$", p.name) for p in segments)
    assert [int(r["step"]) for r in read_metrics(folder)] == [1, 2, 3, 4]
    assert read_summary(folder)["restarts"] == 1

    # W&B 2: `vidgen sync` gives wandb every segment, oldest first (dry run: offline here)
    sync = _run(["python", "-m", "vidgen.cli", "sync", str(folder), "--dry-run"], agent_env(plain), REPO)
    assert sync.returncode == 0, sync.stderr
    assert "Would sync 2 run(s)" in sync.stdout + sync.stderr
    listed = re.findall(r"offline-run-[^/\s]+", sync.stdout.splitlines()[0])
    assert listed == [p.name for p in segments]

    # (c) a profile row (JDM Table 6) lands in its own folder and W&B run, not <exp>/default
    table6 = load_sweep(REPO / "sweeps/jdm/table6_overhead.yaml")
    row = {"exp": "jdm_cogvideox", "run.root": str(tmp_path)}
    env = agent_env(_agent_run_env(tmp_path, "prof1234", row))
    prof = _run(expand_command(table6.config["command"], row, interpreter="python"), env, REPO)
    assert prof.returncode == 0, prof.stderr[-3000:]
    (pfolder,) = (tmp_path / "jdm_cogvideox").iterdir()
    assert pfolder.name == "profile.wandb-prof1234"
    assert (pfolder / "wandb_id").read_text() == "prof1234"
    assert read_summary(pfolder)["status"] == "completed"


def test_the_agents_run_id_names_the_folders_wandb_run(tmp_path, monkeypatch):
    from vidgen.errors import ConfigError
    from vidgen.runs import wandb_run_id

    monkeypatch.delenv("WANDB_RUN_ID", raising=False)
    for name in ("plain", "swept"):
        (tmp_path / name).mkdir()
    minted = wandb_run_id(tmp_path / "plain")
    assert re.fullmatch(r"[a-z0-9]{8}", minted) and wandb_run_id(tmp_path / "plain") == minted
    monkeypatch.setenv("WANDB_RUN_ID", "agent123")
    assert wandb_run_id(tmp_path / "swept") == "agent123" == (tmp_path / "swept" / "wandb_id").read_text()
    with pytest.raises(ConfigError, match=rf"belongs to W&B run '{minted}'.*started run 'agent123'"):
        wandb_run_id(tmp_path / "plain")  # another run's folder: refused, its id left as it was
    assert (tmp_path / "plain" / "wandb_id").read_text() == minted


def test_vidgen_sync_hands_every_segment_to_wandb_sync_in_order(tmp_path, capsys):
    from vidgen.cli import main as cli
    from vidgen.wandb_runs import sync_command

    run = tmp_path / "run"
    for name in ("offline-run-20260101_000010-abc", "offline-run-20260101_000002-abc", "latest-run"):
        (run / "wandb" / name).mkdir(parents=True)
    cmd = sync_command([run], ["-p", "proj"])
    assert cmd[cmd.index("sync"):] == [
        "sync", "-p", "proj",
        str(run / "wandb" / "offline-run-20260101_000002-abc"),
        str(run / "wandb" / "offline-run-20260101_000010-abc"),
    ]
    (tmp_path / "empty").mkdir()
    assert cli(["sync", str(tmp_path / "empty")]) == 2
    assert "no offline W&B run" in capsys.readouterr().err
