"""The piecewise-linear LR (InstanceV Sec. 9.2) resumes bit-exact, and why it is not SequentialLR."""

from __future__ import annotations

import io

import pytest
import torch
from torch.optim.lr_scheduler import LinearLR, SequentialLR

from vidgen.optim import INSTANCEV_KNOTS, build_lr_schedule

KNOTS = [[0, 0.0], [20, 2e-4], [60, 2e-4], [100, 1e-5]]  # warm-up from 0, above the optimizer LR


def _fresh(lr: float = 1e-4, knots=KNOTS):
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=lr)
    sched, _ = build_lr_schedule(opt, "piecewise_linear", max_steps=120, knots=knots)
    return opt, sched


def _run(opt, sched, steps: int) -> list[float]:
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


@pytest.mark.parametrize("stop", [1, 20, 37, 99])
def test_lr_sequence_is_identical_across_a_save_and_restore(stop):
    straight = _run(*_fresh(), 120)
    opt, sched = _fresh()
    first = _run(opt, sched, stop)
    buf = io.BytesIO()
    torch.save({"optimizer": opt.state_dict(), "lr_scheduler": sched.state_dict()}, buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)  # checkpoints are never unpickled
    opt2, sched2 = _fresh()
    opt2.load_state_dict(state["optimizer"])
    sched2.load_state_dict(state["lr_scheduler"])
    assert first + _run(opt2, sched2, 120 - stop) == straight  # bit for bit, not approx
    assert straight[0] == 0.0 and straight[20] == pytest.approx(2e-4) and straight[110] == pytest.approx(1e-5)


def test_sequential_lr_cannot_reproduce_it():
    """Kept as LambdaLR on purpose: LinearLR factors must lie in (0, 1] of the optimizer LR, and
    its chainable update drifts from the closed form. If this test fails, torch lifted both limits."""
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=1e-4)
    with pytest.raises(ValueError):  # warm-up from 0
        LinearLR(opt, start_factor=0.0, end_factor=1.0, total_iters=20)
    with pytest.raises(ValueError):  # InstanceV's 5e-4 peak with the configured 1e-4 optimizer LR
        LinearLR(opt, start_factor=0.1, end_factor=5.0, total_iters=2000)
    # even where it is expressible (optimizer LR = the peak), the values differ in the last bits
    base = 5e-4
    opt_a = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=base)
    (s0, v0), (s1, v1), (s2, v2) = INSTANCEV_KNOTS[1:4]
    seq = SequentialLR(
        opt_a,
        [
            LinearLR(opt_a, v0 / base, v0 / base, total_iters=s0),
            LinearLR(opt_a, v0 / base, v1 / base, s1 - s0),
        ],
        milestones=[s0],
    )
    opt_b, lam = _fresh(base, [list(k) for k in INSTANCEV_KNOTS])
    a, b = _run(opt_a, seq, 3000), _run(opt_b, lam, 3000)
    assert a != b and max(abs(x - y) / y for x, y in zip(a, b)) < 1e-12
