"""`vidgen sweep validate` refuses parameters that set the run folder and warns about a command
that does not (only) run vidgen.train."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from vidgen.sweeps.cli import main as sweep_main
from vidgen.sweeps.schema import Sweep
from vidgen.sweeps.validate import sweep_warnings, validate

ROOT = Path(__file__).resolve().parents[1]
TABLE5 = ROOT / "sweeps" / "jdm" / "table5_regional_signal.yaml"
TRAIN = ["${env}", "${interpreter}", "-m", "vidgen.train", "${args_no_hyphens}"]


def _sweep(**changes) -> Sweep:
    config = yaml.safe_load(TABLE5.read_text())
    return Sweep(Path("t.yaml"), {**config, **changes})


@pytest.mark.parametrize(
    "param, spec",
    [
        ("run.dir", {"value": "/scratch/run"}),
        ("run.root", {"values": ["a", "b"]}),
        ("run.name", {"value": "same"}),
        ("+run.name", {"value": "same"}),
        ("run", {"parameters": {"dir": {"value": "/scratch/run"}}}),  # W&B's nested parameters
    ],
)
def test_a_parameter_that_sets_the_run_folder_is_refused(param, spec):
    sweep = _sweep()
    sweep.config["parameters"] = {**sweep.parameters, param: spec}
    errors = validate(sweep, compose=False)
    assert any(
        "must not set run." in e and "every row would write to and resume one run folder" in e for e in errors
    ), errors


def test_a_command_without_a_module_is_an_error_and_a_warning_not_a_crash():
    sweep = _sweep(command=["${env}", "python", "train.py", "${args_no_hyphens}"])
    assert any("not None" in e or "-m vidgen.train" in e for e in validate(sweep, compose=False))
    (warning,) = sweep_warnings(sweep)
    assert "does not run `-m vidgen.train`" in warning and "python train.py" in warning


def test_extra_programs_in_the_command_are_flagged(tmp_path, capsys):
    config = yaml.safe_load(TABLE5.read_text())
    config["command"] = [*TRAIN, "&&", "rm", "-rf", "outputs"]
    path = tmp_path / "table5_regional_signal.yaml"
    path.write_text(yaml.safe_dump(config))
    assert sweep_main(["validate", str(path)]) == 0  # trusted: a warning, not an error
    err = capsys.readouterr().err
    assert "warning:" in err and "runs && rm -rf outputs besides `-m vidgen.train" in err


def test_the_shipped_sweeps_have_no_warnings():
    for path in sorted((ROOT / "sweeps").rglob("*.yaml")):
        assert sweep_warnings(Sweep(path, yaml.safe_load(path.read_text()))) == [], path
