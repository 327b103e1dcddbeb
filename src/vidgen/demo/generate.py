"""Generate a video and its mask from each demo clip's caption, through the public sampling hooks.

The prompt is the clip's regional caption (its regions' captions, joined by ", "): the prompt JDM
pairs with a clip's object masks when it trains the joint video + mask output (Eq. 11, L_fine). The
global caption ("a video of ... on a <colour> background") trains the video alone (Eq. 3, L_diff).

The same path as `vidgen sample`: the data's text encoder, `module.generate` (the shared sampler
loop with the configured guidance), `module.latent_shape` and `module.decode_sample`, which for a
joint method returns video | signal side by side ([B, 3, F, H, 2W]; the mask binarised to -1/+1).
"""

from __future__ import annotations

import torch
from torch import Tensor

from vidgen.data.shapes import ShapesClip


def prompt_of(clip: ShapesClip) -> str:
    """The regional caption of all the clip's regions (for a one-shape clip: its instance prompt)."""
    return ", ".join(clip.region_captions)


@torch.no_grad()
def generate_from_captions(
    module,
    datamodule,
    clips: list[ShapesClip],
    *,
    steps: int,
    guidance: str,
    guidance_scale: float,
    seed: int,
) -> tuple[Tensor, Tensor]:
    """-> (videos [N, 3, F, H, W] in [-1, 1], masks [N, F, H, W] bool), one per clip, from `prompt_of(clip)`."""
    encoder = datamodule.text_encoder()
    embeds, mask = encoder.encode([prompt_of(c) for c in clips])
    null_embeds, null_mask = encoder.encode([""])
    _, frames, height, width = clips[0].video.shape
    latents = module.generate(
        embeds,
        mask,
        null_embeds,
        null_mask,
        latent_shape=module.latent_shape(frames, height, width),
        steps=steps,
        guidance=guidance,
        guidance_scale=guidance_scale,
        seed=seed,
    )
    pair = module.decode_sample(latents, datamodule.codec())  # [N, 3, F, H, 2W]: video | mask
    if pair.shape[-1] != 2 * width:
        raise ValueError(
            f"method {module.cfg.method.name!r} does not generate a mask beside the video "
            f"(decoded width {pair.shape[-1]}, expected {2 * width}); the demo needs a joint method such as jdm"
        )
    videos, masks = pair[..., :width], pair[..., width:]
    return videos, masks.mean(dim=1) > 0
