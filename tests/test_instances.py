"""The shared instance-conditioning package: token masks, guarded masked attention, sentinels, checks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vidgen.data.sample import Instances
from vidgen.errors import ConfigError, DataError
from vidgen.instances import (
    check_instances,
    grounding_frames,
    instance_token_masks,
    masked_attention,
    sentinel_count,
    sentinel_prompts,
    token_attention_mask,
)
from vidgen.instances.attention import mask_bytes
from vidgen.instances.grounding import box_token_masks
from vidgen.instances.sentinels import check_sentinels


def test_grounding_frames_are_multiples_of_the_vae_temporal_factor():
    assert grounding_frames(81, 4).tolist() == list(range(0, 81, 4))  # 21 latent frames of Wan at 81 frames
    assert len(grounding_frames(81, 4)) == (81 - 1) // 4 + 1
    assert grounding_frames(16, 1).tolist() == list(range(16))


def test_box_token_masks_cover_cell_centres_and_keep_tiny_boxes():
    grid = (4, 4)
    left_half = box_token_masks(torch.tensor([0.0, 0.0, 0.5, 1.0]), grid).view(4, 4)
    assert left_half[:, :2].all() and not left_half[:, 2:].any()
    tiny = box_token_masks(torch.tensor([0.80, 0.05, 0.82, 0.07]), grid).view(4, 4)
    assert tiny.sum() == 1 and tiny[0, 3]  # the cell holding the box centre
    assert not box_token_masks(torch.tensor([0.5, 0.5, 0.5, 0.9]), grid).any()  # empty box


def test_instance_token_masks_respect_visibility_padding_and_frames():
    boxes = torch.tensor([0.0, 0.0, 0.5, 0.5]).expand(1, 2, 9, 4).clone()  # [B, N, F, 4]
    visible = torch.ones(1, 2, 9, dtype=torch.bool)
    visible[0, 0, 4] = False  # pixel frame 4 grounds latent frame 1
    valid = torch.tensor([[True, False]])
    m = instance_token_masks(boxes, visible, valid, latent_frames=3, t_ds=4, grid=(2, 2))
    assert m.shape == (1, 3, 2, 4)
    assert m[0, :, 0].tolist() == [[True, False, False, False], [False] * 4, [True, False, False, False]]
    assert not m[0, :, 1].any()  # padding instance
    with pytest.raises(ValueError, match="latents have 5 frames"):
        instance_token_masks(boxes, visible, valid, latent_frames=5, t_ds=4, grid=(2, 2))
    masks = torch.zeros(1, 2, 9, 8, 8, dtype=torch.bool)
    masks[..., 4:, 4:] = True  # bottom-right quarter
    mm = instance_token_masks(
        boxes, torch.ones_like(visible), torch.ones_like(valid), 3, 4, (2, 2), masks, "mask"
    )
    assert mm[0, 0, 0].tolist() == [False, False, False, True]


def _naive_sdpa(q, k, v, attn_mask=None):
    """Softmax attention without torch's safe softmax: a fully masked row gives NaN, as in some kernels."""
    s = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    s = s.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool else s + attn_mask
    return s.softmax(-1) @ v


@pytest.mark.parametrize("kernel", ["torch", "naive"])
def test_masked_attention_guards_rows_that_attend_to_nothing(kernel, monkeypatch):
    if kernel == "naive":  # the guard must not rely on the kernel's own handling of all -inf rows
        monkeypatch.setattr(F, "scaled_dot_product_attention", _naive_sdpa)
    torch.manual_seed(0)
    q = torch.randn(2, 3, 5, 8, requires_grad=True)  # [B, h, S, d]
    k, v = torch.randn(2, 3, 4, 8), torch.randn(2, 3, 4, 8)
    mask = torch.rand(2, 1, 5, 4) > 0.5
    mask[0, 0, 1] = False  # token 1 of batch 0 is covered by no instance
    mask[1, 0, 3] = False
    out = masked_attention(q, k, v, mask)
    assert torch.isfinite(out).all()
    assert torch.equal(out[0, :, 1], torch.zeros_like(out[0, :, 1]))
    assert torch.equal(out[1, :, 3], torch.zeros_like(out[1, :, 3]))
    ok = mask.any(-1, keepdim=True).expand_as(mask[..., :1])[..., 0]  # [B, 1, S]
    ref = _naive_sdpa(q, k, v, attn_mask=mask | ~mask.any(-1, keepdim=True))
    assert torch.allclose(out[ok.expand(-1, 3, -1)], ref[ok.expand(-1, 3, -1)])
    out.sum().backward()
    assert torch.isfinite(q.grad).all()
    # the float mask of Sec. 10.2 is guarded the same way
    fmask = torch.where(mask, torch.zeros(()), torch.full((), float("-inf")))
    assert torch.isfinite(masked_attention(q, k, v, fmask)).all()


def test_float_mask_ranks_instances_by_area_descending():
    cover = torch.ones(1, 1, 3, 2, dtype=torch.bool)  # [B, F', N, S]: 3 instances cover both tokens
    cover[0, 0, 1, 1] = False
    areas = torch.tensor([[5.0, 1.0, 9.0]])  # descending order: 2, 0, 1 -> ranks 1, 2, 3
    m = token_attention_mask(cover, tokens_per_instance=2, mask_base=0.1, areas=areas)
    assert m.shape == (1, 1, 1, 2, 6)
    assert torch.allclose(m[0, 0, 0, 0], torch.tensor([0.2, 0.2, 0.3, 0.3, 0.1, 0.1]))
    assert torch.isinf(m[0, 0, 0, 1, 2:4]).all()  # instance 1 does not cover token 1
    b = token_attention_mask(cover, tokens_per_instance=2)
    assert b.dtype == torch.bool and b[0, 0, 0, 1].tolist() == [True, True, False, False, True, True]


def test_mask_memory_at_wan_480p_with_10_instances():
    """81x480x832 -> 21 latent frames of 30x52 tokens; 10 instances x 512 tokens; CFG batch 2."""
    n = mask_bytes(batch=2, latent_frames=21, tokens=30 * 52, instances=10, tokens_per_instance=512)
    assert n == 335_462_400  # 320 MiB as bool; one copy per batch row and frame, none per head (12 heads)


class _Tok:
    def __init__(self, n):
        self.vocab = {**{f"<extra_id_{k}>": 1000 + k for k in range(n)}, "hello": 5}

    def get_vocab(self):
        return self.vocab


def test_sentinels_are_counted_from_the_tokenizer():
    assert sentinel_prompts(3) == ["<extra_id_0>", "<extra_id_1>", "<extra_id_2>"]
    assert sentinel_count(_Tok(300)) == 300 and sentinel_count(_Tok(384)) == 384
    check_sentinels(_Tok(8), 8, "here")
    with pytest.raises(
        ConfigError, match=r"tokenizer has 4 <extra_id_N> sentinel tokens but method.max_instances=8"
    ):
        check_sentinels(_Tok(4), 8, "data.text_encoder=/x")


def _inst(n=2, prompts=None, lo=0.0, hi=1.0):
    boxes = torch.full((n, 3, 4), lo)
    boxes[..., 2:] = hi
    return Instances(boxes=boxes, visible=torch.ones(n, 3, dtype=torch.bool), prompts=prompts or ["a"] * n)


def test_check_instances_errors_name_sample_field_and_fix():
    check_instances(_inst(), "k", 8, "data=x")
    with pytest.raises(DataError, match=r"sample 'k'.*outside \[0, 1\].*clip them"):
        check_instances(_inst(hi=1.2), "k", 8, "data=x")
    with pytest.raises(DataError, match=r"3 instances, more than method.max_instances=2"):
        check_instances(_inst(3), "k", 2, "data=x")
    with pytest.raises(DataError, match=r"instances.prompts has 1 entries but instances.boxes has 2"):
        check_instances(_inst(2, prompts=["a"]), "k", 8, "data=x")
    with pytest.raises(DataError, match=r"has no instances"):
        check_instances(None, "k", 8, "data=x")


def test_layout_file_static_and_per_frame_boxes(tmp_path):
    import json

    from vidgen.instances.layout_file import draw_layout, load_layout

    path = tmp_path / "layout.json"
    path.write_text(json.dumps([
        {"prompt": "a red square", "box": [0.0, 0.0, 0.5, 0.5]},
        {"prompt": "a blue circle", "boxes": [[0.5, 0.5, 1.0, 1.0], None, [0.25, 0.25, 0.75, 1.0]]},
    ]))  # fmt: skip
    inst = load_layout(path, frames=3, max_instances=2)
    assert inst.prompts == ["a red square", "a blue circle"]
    assert inst.boxes.shape == (2, 3, 4) and inst.visible.tolist() == [[True] * 3, [True, False, True]]
    assert inst.boxes[1, 2].tolist() == [0.25, 0.25, 0.75, 1.0]
    video = -torch.ones(3, 3, 9, 9)
    drawn = draw_layout(video, inst)
    assert drawn[:, 0, 0, :5].eq(1).all() and drawn[:, 0, 0, 5:].eq(-1).all()  # top edge of box 0 only
    assert drawn[0, 0].eq(1).sum() == 16 + 16 - 1 and drawn[0, 1].eq(1).sum() == 16  # box 1 absent in frame 1
    inst.boxes[1, 1] = torch.tensor(
        [0.5, 0.5, 1.0, 1.0]
    )  # a box where the instance is not visible: not drawn
    assert draw_layout(video, inst)[0, 1].eq(1).sum() == 16


@pytest.mark.parametrize(
    "content, match",
    [
        (None, "no such file"),
        ("{not json", "not valid JSON"),
        ('{"instances": []}', "non-empty list under 'instances'"),
        ('[{"box": [0, 0, 1, 1]}]', r"instances\[0\].prompt is missing"),
        ('[{"prompt": "a", "box": [0, 0, 1]}]', r"instances\[0\].box = \[0, 0, 1\] is not a box"),
        ('[{"prompt": "a", "box": [0.5, 0, 0.2, 1]}]', "x2 <= x1"),
        ('[{"prompt": "a", "boxes": [[0, 0, 1, 1]]}]', r"instances\[0\].boxes has 1 entries, the clip has 3 frames"),
        ('[{"prompt": "a", "box": [0, 0, 1, 1], "boxes": []}]', "exactly one of 'box'"),
        ('[{"prompt": "a", "box": [0, 0, 1.2, 1]}]', r"outside \[0, 1\]"),
        ('[{"prompt": "a", "box": [0, 0, 1, 1]}, {"prompt": "b", "box": [0, 0, 1, 1]}, '
         '{"prompt": "c", "box": [0, 0, 1, 1]}]', "more than method.max_instances=2"),
    ],
)  # fmt: skip
def test_layout_file_errors_name_file_field_and_fix(tmp_path, content, match):
    from vidgen.errors import DataError
    from vidgen.instances.layout_file import load_layout

    path = tmp_path / "layout.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(DataError, match=match) as err:
        load_layout(path, frames=3, max_instances=2)
    assert str(path) in str(err.value) and "Fix" in str(err.value)
