"""The knobs `preset=demo` needs: `backbone.tiny_config` (a wider tiny model) and the shapes world's face mix."""

from __future__ import annotations

import pytest
import torch

from vidgen.backbones import build_backbone, get_backbone
from vidgen.config import load_config
from vidgen.data.shapes_datamodule import ShapesDataModule
from vidgen.errors import ConfigError
from vidgen.methods import method_class


def test_tiny_config_widens_the_tiny_model_and_nothing_else():
    spec = get_backbone("cogvideox-2b")
    plain = build_backbone(spec, "tiny", init="random")
    wide = build_backbone(spec, "tiny", init="random", tiny_config={"num_attention_heads": 4})
    assert plain.model.config.num_attention_heads == 2 and wide.model.config.num_attention_heads == 4
    assert wide.model.config.attention_head_dim == plain.model.config.attention_head_dim
    assert spec.tiny_config["num_attention_heads"] == 2  # the registry's config is not changed


def test_preset_demo_builds_the_wider_jdm_model_from_the_config():
    cfg = load_config(["exp=jdm_cogvideox", "preset=demo"])
    module = method_class(cfg.method.name)(cfg)
    inner = module.model.model.config
    assert (inner.num_attention_heads, inner.attention_head_dim, inner.in_channels) == (4, 32, 32)  # 2C: JDM
    assert load_config(["exp=jdm_cogvideox", "preset=smoke"]).backbone.tiny_config == {}


@pytest.mark.parametrize(
    "size, tiny_config, message",
    [
        ("real", {"num_attention_heads": 4}, "applies to backbone.size=tiny only"),
        ("tiny", {"no_such_argument": 1}, "rejects it"),
    ],
)
def test_tiny_config_errors_name_the_key(size, tiny_config, message):
    with torch.device("meta"), pytest.raises(ConfigError, match=message):  # meta: a real size costs nothing
        build_backbone("cogvideox-2b", size, init="random", tiny_config=tiny_config)


def test_face_mix_of_the_shapes_world():
    kw = dict(num_clips=6, frames=5, height=32, width=32, latent_channels=4, vae_scale=(1, 8, 8))
    flat = ShapesDataModule(**kw, face_prob=0.0, min_faces=0).world
    assert all(s.identity < 0 for i in range(6) for s in flat.render_clip(i).specs)
    default = ShapesDataModule(**kw).world  # the default keeps at least one face per clip
    assert all(any(s.identity >= 0 for s in default.render_clip(i).specs) for i in range(6))
    with pytest.raises(ConfigError, match="data.face_prob=1.5"):
        ShapesDataModule(**kw, face_prob=1.5)


SD_LEVELS = (
    "+backbone.tiny_config={block_out_channels:[8,16],layers_per_block:2,norm_num_groups:4,"
    "down_block_types:[CrossAttnDownBlock2D,CrossAttnDownBlock2D],up_block_types:[CrossAttnUpBlock2D,CrossAttnUpBlock2D]}"
)


def test_tiny_config_from_the_command_line_exports_and_reloads(tmp_path):
    """A list-valued `+backbone.tiny_config` reaches diffusers as plain lists (its config.json is
    written on export), and its weights load only with the same tiny_config, checked before loading."""
    cfg = load_config(["exp=ft_sd15", "preset=smoke", SD_LEVELS])
    model = method_class(cfg.method.name)(cfg).model.model
    assert list(model.config.block_out_channels) == [8, 16] and model.config.layers_per_block == 2
    model.save_pretrained(tmp_path / "unet")  # json.dumps of the config: a ListConfig fails here
    tiny_config = {**cfg.backbone.tiny_config}
    loaded = build_backbone("sd1.5", "tiny", weights=str(tmp_path), tiny_config=tiny_config)
    assert torch.equal(loaded.model.conv_in.weight, model.conv_in.weight)
    with pytest.raises(ConfigError, match=r"layers_per_block=2 .*tiny_config they were trained with"):
        build_backbone("sd1.5", "tiny", weights=str(tmp_path))
    with pytest.raises(ConfigError, match="applies to backbone.size=tiny only"):  # not ignored with weights
        build_backbone("sd1.5", "real", weights=str(tmp_path), tiny_config=tiny_config)
