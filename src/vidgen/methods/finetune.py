"""Plain fine-tuning: the "backbone" / "direct fine-tuning" row of every paper's table.

The backbone is trained with its own pre-training objective and nothing added, e.g. JDM
Fig. 4's "fine-tune the base model on the same (filtered) dataset" baseline.
"""

from __future__ import annotations

from vidgen.methods.base import DiffusionModule


class FineTuneModule(DiffusionModule):
    required_fields = {"latents", "text_embeds"}
