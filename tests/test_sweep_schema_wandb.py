"""The 3 configs W&B rejects that the hand-made sweep schema used to accept (issue 17).

Each rule is W&B's documented behaviour in wandb/sweeps (`config/schema.json` and
`config/schema.py`; wandb 0.31 ships neither and asks the server): categorical probabilities sum
to 1 (`np.isclose`), `min < max` for every min/max distribution (`validate_min_max`), and
`early_terminate: {type: hyperband}` needs `min_iter`, or `max_iter` with `s`.
"""

from __future__ import annotations

import pytest

from vidgen.sweeps.schema import schema_errors


def _config(**extra) -> dict:
    base = {
        "name": "jdm/table5_regional_signal",
        "description": "JDM Table 5",
        "program": "src/vidgen/train.py",
        "method": "random",
        "parameters": {"seed": {"values": [0, 1]}},
        "command": ["${env}", "${interpreter}", "-m", "vidgen.train", "${args_no_hyphens}"],
    }
    return {**base, **extra}


@pytest.mark.parametrize(
    "params, message",
    [
        ({"x": {"values": [1, 2], "probabilities": [0.5, 0.6]}}, "sum to 1.1; W&B requires them to sum to 1"),
        ({"x": {"values": [1, 2], "probabilities": [0.2, 0.2]}}, "sum to 0.4"),
        ({"lr": {"distribution": "uniform", "min": 0.5, "max": 0.1}}, "min 0.5 is not less than max 0.1"),
        ({"lr": {"min": 0.5, "max": 0.1}}, "min 0.5 is not less than max 0.1"),  # uniform by inference
        ({"lr": {"min": 0.1, "max": 0.1}}, "not less than max"),  # W&B: strictly less
        ({"n": {"min": 3, "max": 1}}, "min 3 is not less than max 1"),  # int_uniform
        ({"lr": {"distribution": "log_uniform_values", "min": 1e-3, "max": 1e-5}}, "not less than max"),
    ],
)
def test_parameter_gaps_are_rejected(params, message):
    errors = schema_errors(_config(parameters=params))
    assert any(message in e for e in errors), errors


@pytest.mark.parametrize(
    "early, message",
    [
        ({"type": "hyperband"}, "hyperband needs `min_iter`"),
        ({"type": "hyperband", "max_iter": 27}, "hyperband needs `min_iter`"),  # max_iter needs s
        ({"type": "hyperband", "min_iter": 0}, "min_iter: must be >= 1"),
        ({"type": "hyperband", "min_iter": 3, "eta": 1}, "eta: must be > 1"),
        ({"type": "hyperband", "min_iter": 3.5}, "min_iter: must be an integer"),
        ({"type": "hyperband", "min_iter": 3, "bands": [3]}, "unknown key(s) bands"),
        ({"type": "median"}, "W&B supports only"),
    ],
)
def test_hyperband_gaps_are_rejected(early, message):
    errors = schema_errors(_config(early_terminate=early))
    assert any(message in e for e in errors), errors


@pytest.mark.parametrize(
    "extra",
    [
        # ten times 0.1 sums to 0.9999999999999999 in floats: W&B compares with a tolerance
        {"parameters": {"x": {"values": list(range(10)), "probabilities": [0.1] * 10}}},
        {"parameters": {"lr": {"min": 1e-5, "max": 1e-3}, "n": {"min": 0, "max": 9}}},
        {"early_terminate": {"type": "hyperband", "min_iter": 3}},
        {"early_terminate": {"type": "hyperband", "max_iter": 27, "s": 2, "eta": 3, "strict": True}},
    ],
)
def test_what_wandb_accepts_still_passes(extra):
    assert schema_errors(_config(**extra)) == []
