"""The typed config schema (vidgen.schema): bad values and unknown keys are refused at start-up,
naming the key, the value and the fix; every shipped config option has a schema section."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from vidgen import train as train_mod
from vidgen.config import CONF_DIR, group_options, load_config
from vidgen.errors import ConfigError
from vidgen.methods import METHODS
from vidgen.schema.check import option_sections
from vidgen.schema.trainer import PASS_THROUGH, pass_through_kwargs


def _option_name(group: str, option: str) -> str:
    """The `name:` an option file sets (sections are keyed by it: stiv_adafactor is an adafactor)."""
    return str(OmegaConf.load(CONF_DIR / group / f"{option}.yaml").name)


def test_every_method_and_group_option_has_a_schema_section():
    assert set(METHODS) <= set(option_sections()["method"])
    for group in ("method", "data", "optim", "schedule", "strategy"):
        names = {_option_name(group, option) for option in group_options(group)}
        assert names <= set(option_sections()[group]), group


@pytest.mark.parametrize("group", ["method", "data", "optim", "schedule", "strategy"])
def test_every_option_of_every_group_validates(group):
    for option in group_options(group):
        load_config([f"{group}={option}", "preset=smoke"])  # raises on a key the schema lacks


@pytest.mark.parametrize("variant", group_options("variant"))
def test_every_variant_validates(variant):
    # a method's variants live in conf/variant/<method>/ and are composed with that method's experiment
    exp = {
        "stiv": "stiv_t2v_xl",
        "instancev": "instancev_wan",
        "ingredients": "ingredients_stage2",
        "instancediffusion": "instancediffusion_sd15",
    }.get(variant.split("/")[0], "jdm_cogvideox")
    load_config([f"exp={exp}", f"variant={variant}"])


@pytest.mark.parametrize(
    "override, needles",
    [
        ("train.max_steps=abc", ["train.max_steps=abc", "valid integer", "integer >= 0"]),
        ("train.max_steps=-5", ["train.max_steps=-5", "greater than or equal to 0", "integer >= 0"]),
        ("train.max_steps=3.5", ["train.max_steps=3.5", "valid integer", "integer >= 0"]),
        ("train.cfg_dropout=1.5", ["train.cfg_dropout=1.5", "less than or equal to 1", "[0, 1]"]),
        ("trainer.devices=0", ["trainer.devices=0", "auto, an integer >= 1"]),
        ("trainer.devices=-1", ["trainer.devices=-1", "auto, an integer >= 1"]),
        ("trainer.num_nodes=0", ["trainer.num_nodes=0", "integer >= 1"]),
        ("optim.lr=0", ["optim.lr=0", "greater than 0"]),
        ("optim.betas=[0.9,1.5]", ["optim.betas=[0.9, 1.5]", "[0, 1)"]),
        ("backbone.size=huge", ["backbone.size=huge", "real or tiny"]),
        ("backbone.init=1", ["backbone.init=1", "pretrained or random"]),
        ("train.eval_at_end=1", ["train.eval_at_end=1", "valid boolean", "true or false"]),
        ("data.num_workers=-1", ["data.num_workers=-1", "integer >= 0"]),
    ],
)
def test_bad_values_name_the_key_the_value_and_the_fix(override, needles):
    with pytest.raises(ConfigError) as err:
        load_config(["preset=smoke", override])
    for needle in needles:
        assert needle in str(err.value)


def test_method_section_is_checked_by_the_chosen_method():
    with pytest.raises(ConfigError, match=r"method.signal=canny: input should be 'mask', 'hed' or 'depth'"):
        load_config(["exp=jdm_cogvideox", "method.signal=canny"])
    with pytest.raises(ConfigError, match=r"method.num_combinations=0: .*integer >= 1"):
        load_config(["exp=jdm_cogvideox", "method.num_combinations=0"])


def test_zero_steps_and_integral_floats_are_valid():
    assert load_config(["preset=smoke", "train.max_steps=0"]).train.max_steps == 0
    # Hydra reads 5e7 as a float; an integral float is an integer (3.5 is refused above)
    load_config(["strategy=deepspeed_zero2", "strategy.reduce_bucket_size=5e7", "train.max_steps=3.0"])


@pytest.mark.parametrize(
    "override, meant",
    [
        ("trainer.max_steps=3", "did you mean train.max_steps?"),  # Hydra would suggest +trainer.max_steps=3
        ("+trainer.max_steps=3", "did you mean train.max_steps?"),  # ... which trained with it ignored
        ("train.max_stepz=3", "did you mean train.max_steps?"),
        ("+train.max_stepz=3", "did you mean train.max_steps?"),
        ("trian.max_steps=3", "did you mean train.max_steps?"),
        ("+optim.lrr=1e-3", "did you mean optim.lr?"),
        ("+trainer.gradient_clip_val=1", "did you mean train.grad_clip?"),
        ("+trainer.max_epochs=3", "use train.max_steps"),
        (
            "+trainer.barebones=true",
            "passed through are: benchmark, detect_anomaly, profiler, sync_batchnorm",
        ),
    ],
)
def test_unknown_keys_are_refused_with_what_was_meant(override, meant):
    with pytest.raises(ConfigError) as err:
        load_config(["preset=smoke", override])
    assert meant in str(err.value)
    assert "To append to your config use +" not in str(err.value)  # Hydra's advice is not repeated


def test_a_key_of_another_option_is_named_as_such():
    with pytest.raises(ConfigError, match=r"optim.betas is not a key .* it is a key of optim=adamw"):
        load_config(["optim=adafactor", "+optim.betas=[0.9,0.99]"])


def test_optional_key_without_plus_says_how_to_add_it():
    with pytest.raises(ConfigError, match=r"add it with \+trainer.auto_requeue=VALUE"):
        load_config(["trainer.auto_requeue=false"])


def test_pass_through_trainer_arguments_reach_the_trainer(tmp_path):
    cfg = load_config(["preset=smoke", "logger=none", "+trainer.detect_anomaly=true", f"run.dir={tmp_path}"])
    assert pass_through_kwargs(cfg.trainer) == {"detect_anomaly": True}
    assert set(PASS_THROUGH) == {"benchmark", "detect_anomaly", "profiler", "sync_batchnorm"}
    trainer = train_mod.build_trainer(cfg, tmp_path, "x")
    assert trainer._detect_anomaly is True


def test_train_cli_refuses_before_writing_anything(tmp_path, capsys):
    run_dir = tmp_path / "run"
    rc = train_mod.main(["preset=smoke", "train.max_steps=abc", f"run.dir={run_dir}"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "train.max_steps=abc" in err and "Traceback" not in err
    assert not run_dir.exists()
