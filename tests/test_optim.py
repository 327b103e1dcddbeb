"""Tests for vidgen.optim: optimizers, LR schedules (driven through a real optimizer), batch math."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vidgen.errors import ConfigError
from vidgen.optim import (
    INSTANCEV_KNOTS,
    accumulation_steps,
    build_lr_schedule,
    build_optimizer,
    piecewise_linear_lr,
)


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 8)
        self.norm = nn.LayerNorm(8)
        self.out = nn.Linear(8, 2, bias=False)
        self.frozen = nn.Linear(2, 2)
        self.frozen.requires_grad_(False)

    def forward(self, x):
        return self.out(self.norm(self.proj(x)))


def _opt(lr=1e-4, name="adamw", **kw):
    return build_optimizer(Tiny(), name=name, lr=lr, **kw)


def _lrs(optimizer, scheduler, steps):
    """LR in effect at each optimizer step 0..max(steps) (read before that step's update)."""
    out, wanted = {}, set(steps)
    for step in range(max(steps) + 1):
        if step in wanted:
            out[step] = optimizer.param_groups[0]["lr"]
        optimizer.step()  # grads are None: no update, but the step order is the real one
        scheduler.step()
    return out


# --- optimizers -----------------------------------------------------------------------------------
def test_adamw_param_groups_no_decay_for_norm_and_bias():
    model = Tiny()
    opt = build_optimizer(model, "adamw", lr=3e-4, weight_decay=0.1, betas=(0.9, 0.95), eps=1e-6)
    assert isinstance(opt, torch.optim.AdamW)
    decay, nodecay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and nodecay["weight_decay"] == 0.0
    ids = lambda ps: {id(p) for p in ps}  # noqa: E731
    assert ids(decay["params"]) == ids([model.proj.weight, model.out.weight])
    assert ids(nodecay["params"]) == ids([model.proj.bias, model.norm.weight, model.norm.bias])
    assert decay["betas"] == (0.9, 0.95) and decay["eps"] == 1e-6 and decay["lr"] == 3e-4
    # knob off -> one group, frozen params never included
    opt = build_optimizer(model, "adamw", lr=1e-4, weight_decay=0.1, no_decay_norm_bias=False)
    assert len(opt.param_groups) == 1 and len(opt.param_groups[0]["params"]) == 5
    # named parameters and bare parameters work too
    opt = build_optimizer(model.named_parameters(), lr=1e-4, weight_decay=0.1)
    assert [len(g["params"]) for g in opt.param_groups] == [2, 3]
    opt = build_optimizer([p for p in model.parameters() if p.requires_grad], lr=1e-4, weight_decay=0.1)
    assert [len(g["params"]) for g in opt.param_groups] == [2, 3]


def test_adafactor_follows_lr_schedule():
    from transformers.optimization import Adafactor

    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    deltas = []
    for lr in (1e-3, 2e-3):
        torch.manual_seed(0)
        model = Tiny()
        opt = build_optimizer(model, "adafactor", lr=lr)
        assert isinstance(opt, Adafactor)
        g = opt.param_groups[0]
        assert g["relative_step"] is False and g["scale_parameter"] is False and g["warmup_init"] is False
        before = model.out.weight.detach().clone()
        model(x).sum().backward()
        opt.step()
        deltas.append(model.out.weight.detach() - before)
    # the step is proportional to the LR (no relative step / parameter scaling in between)
    assert deltas[0].abs().max() > 1e-4
    torch.testing.assert_close(deltas[1], 2 * deltas[0], rtol=1e-4, atol=1e-8)


def test_optimizer_errors():
    with pytest.raises(ConfigError, match="valid names: adamw, adafactor"):
        _opt(name="sgd")
    with pytest.raises(ConfigError, match="invalid option"):
        _opt(momentum=0.9)


# --- LR schedules -----------------------------------------------------------------------------------
def test_constant_and_constant_with_warmup():
    opt = _opt(2e-4)
    sched, interval = build_lr_schedule(opt, "constant", max_steps=100)
    assert interval == "step"
    assert set(_lrs(opt, sched, [0, 50, 99]).values()) == {2e-4}
    opt = _opt(2e-4)
    sched, _ = build_lr_schedule(opt, "constant_with_warmup", max_steps=100, warmup_steps=10)
    lrs = _lrs(opt, sched, [0, 5, 10, 50])
    assert lrs[0] == 0.0
    assert lrs[5] == pytest.approx(1e-4)  # mid warm-up: half the LR
    assert lrs[10] == pytest.approx(2e-4) and lrs[50] == pytest.approx(2e-4)


def test_cosine_with_restarts():
    opt = _opt(1e-4)
    sched, _ = build_lr_schedule(opt, "cosine_with_restarts", max_steps=110, warmup_steps=10, num_cycles=2)
    lrs = _lrs(opt, sched, [5, 10, 35, 59, 60, 85])
    assert lrs[5] == pytest.approx(5e-5)
    assert lrs[10] == pytest.approx(1e-4)
    assert lrs[35] == pytest.approx(5e-5)  # half-way through the first cosine cycle
    assert lrs[59] < 2e-7 and lrs[60] == pytest.approx(1e-4)  # hard restart
    assert lrs[85] == pytest.approx(5e-5)


def test_onecycle_peak_and_ends():
    opt = _opt(1e-3)
    betas = opt.param_groups[0]["betas"]
    sched, _ = build_lr_schedule(opt, "onecycle", max_steps=100, pct_start=0.2, div_factor=10.0,
                                 final_div_factor=100.0)  # fmt: skip
    lrs = _lrs(opt, sched, [0, 10, 19, 60, 99])
    assert lrs[0] == pytest.approx(1e-4)  # max_lr / div_factor
    assert lrs[19] == pytest.approx(1e-3)  # peak at pct_start * total - 1
    assert lrs[10] == pytest.approx(
        1e-4 + (1e-3 - 1e-4) * 0.5 * (1 - __import__("math").cos(3.14159265 * 10 / 19))
    )
    assert lrs[99] == pytest.approx(1e-6)  # initial_lr / final_div_factor
    assert 1e-6 < lrs[60] < 1e-3
    assert opt.param_groups[0]["betas"] == betas  # cycle_momentum off by default


def test_piecewise_linear_custom_knots():
    opt = _opt(1e-4)
    sched, _ = build_lr_schedule(
        opt, "piecewise_linear", max_steps=100, knots=[[10, 2e-4], [30, 0.0], [40, 1e-4]]
    )
    lrs = _lrs(opt, sched, [0, 10, 20, 30, 35, 40, 60])
    expected = {0: 2e-4, 10: 2e-4, 20: 1e-4, 30: 0.0, 35: 5e-5, 40: 1e-4, 60: 1e-4}
    for step, value in expected.items():
        assert lrs[step] == pytest.approx(value, rel=1e-9, abs=1e-15), step


def test_instancev_staged_exact_values():
    # InstanceV Sec. 9.2: 1e-5 (0-1000) -> linear 5e-4 at 3000 -> hold to 8000 -> linear 1e-5 at 10000
    assert INSTANCEV_KNOTS == ((0, 1e-5), (1000, 1e-5), (3000, 5e-4), (8000, 5e-4), (10000, 1e-5))
    opt = _opt(1e-4)  # the optimizer's LR is irrelevant: knots are absolute
    sched, interval = build_lr_schedule(opt, "instancev_staged", max_steps=12000)
    assert interval == "step"
    expected = {
        0: 1e-5,
        500: 1e-5,
        1000: 1e-5,
        2000: 2.55e-4,  # 1e-5 + 0.5 * (5e-4 - 1e-5)
        3000: 5e-4,
        5000: 5e-4,
        8000: 5e-4,
        9000: 2.55e-4,  # 5e-4 - 0.5 * (5e-4 - 1e-5)
        10000: 1e-5,
        12000: 1e-5,
    }
    lrs = _lrs(opt, sched, list(expected))
    for step, value in expected.items():
        assert lrs[step] == pytest.approx(value, rel=1e-9), step
    assert piecewise_linear_lr(1500, INSTANCEV_KNOTS) == pytest.approx(1e-5 + 0.25 * 4.9e-4)
    # the config can override the knots
    opt = _opt(1e-4)
    sched, _ = build_lr_schedule(opt, "instancev_staged", max_steps=10, knots=[[0, 3e-5]])
    assert _lrs(opt, sched, [0, 5]) == {0: pytest.approx(3e-5), 5: pytest.approx(3e-5)}
    # the scheduler state round-trips (checkpointing)
    sched.load_state_dict(sched.state_dict())


def test_lr_schedule_errors():
    with pytest.raises(ConfigError) as exc:
        build_lr_schedule(_opt(), "linear", max_steps=10)
    msg = str(exc.value)
    for name in ("constant", "constant_with_warmup", "cosine_with_restarts", "onecycle", "piecewise_linear",
                 "instancev_staged"):  # fmt: skip
        assert name in msg
    with pytest.raises(ConfigError, match="num_cycles"):
        build_lr_schedule(_opt(), "cosine_with_restarts", max_steps=10, cycles=2)
    with pytest.raises(ConfigError, match="knots"):
        build_lr_schedule(_opt(), "piecewise_linear", max_steps=10)
    with pytest.raises(ConfigError, match="strictly increasing"):
        build_lr_schedule(_opt(), "piecewise_linear", max_steps=10, knots=[[5, 1e-4], [5, 2e-4]])
    with pytest.raises(ConfigError, match="constant_with_warmup"):
        build_lr_schedule(_opt(), "constant", max_steps=10, warmup_steps=5)


# --- gradient accumulation -------------------------------------------------------------------------
def test_accumulation_steps():
    assert accumulation_steps(64, 2, 8) == 4
    assert accumulation_steps(8, 1, 8) == 1
    assert accumulation_steps(12, 3, 1) == 4
    with pytest.raises(ConfigError) as exc:
        accumulation_steps(100, 4, 8)
    msg = str(exc.value)
    assert "train.global_batch_size=100" in msg and "32" in msg and "96 or 128" in msg
    with pytest.raises(ConfigError, match="nearest valid values: 16"):
        accumulation_steps(10, 2, 8)
    with pytest.raises(ConfigError, match="positive integer"):
        accumulation_steps(0, 1, 1)
