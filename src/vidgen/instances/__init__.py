"""Instance conditioning shared by InstanceV, GLIGEN and InstanceDiffusion.

- ``grounding``  pixel boxes / masks -> per-latent-frame token masks [B, F', N, S] (Sec. 3.2 frames)
- ``attention``  token masks -> SDPA masks (bool or float "MaskBase"), all -inf rows guarded
- ``sentinels``  the text encoder's ``<extra_id_k>`` tokens (SAUG's empty instance prompts)
- ``validate``   one clean error per malformed instance annotation
"""

from vidgen.instances.attention import masked_attention, token_attention_mask
from vidgen.instances.grounding import grounding_frames, instance_token_masks
from vidgen.instances.sentinels import sentinel_count, sentinel_prompts
from vidgen.instances.validate import check_instances

__all__ = [
    "check_instances",
    "grounding_frames",
    "instance_token_masks",
    "masked_attention",
    "sentinel_count",
    "sentinel_prompts",
    "token_attention_mask",
]
