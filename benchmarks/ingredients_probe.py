"""Why the routing loss may not move the right-ID fraction: probes for benchmarks/ingredients_routing.py.

``--probe`` runs these after stage 1 and after each stage-2 arm, on the same held-out batch and the
same sampler noise as the right-ID fraction (paired):
- ``face_use_loss``: teacher-forced v-loss with the next clip's canvas / routed features / both, and
  without the routed features.
- ``pathways``: the right-ID fraction with one input (canvas, routed features, both, caption, all)
  taken from the next held-out clip, scored against this clip's references and the next clip's;
  with the routed features off (``face_keep=0``), the canvas off, and other sampler noise.
- ``routing``: per face region found in the generation, the share of its pixels whose token is
  routed to the region's majority ID (``purity``) and to the ID whose reference has the region's
  colour (``agreement``), over every sampler step and routed block.
- ``label_coverage``: training faces without a labelled token. ``ablations``: ``--ablations``.
"""

from __future__ import annotations

import contextlib
import dataclasses

import torch
from torch import Tensor

from vidgen.data.shapes import NUM_IDENTITIES
from vidgen.data.shapes_face_detect import component_labels, palette
from vidgen.methods.ingredients.injection import masked_logits
from vidgen.methods.ingredients.transform import ID_GLOBAL, ID_LOCAL, ID_VALID, LABELS

FACE_KEYS = (ID_GLOBAL, ID_LOCAL, ID_VALID)


@contextlib.contextmanager
def with_face_keep(module, keep: float):
    """A context in which ``module.face_inputs`` also passes face_keep = ``keep`` (0: no routed features)."""
    original = module.face_inputs
    module.face_inputs = lambda b: {**original(b), "face_keep": torch.full((len(b),), keep)}
    try:
        yield
    finally:
        module.face_inputs = original


def from_next_clip(batch, canvas: bool = False, features: bool = False, caption: bool = False):
    """``batch`` with the chosen inputs (the canvas image latent, the routed face features, the caption)
    taken from the next clip of the batch (rolled by one)."""
    changes = {}
    if canvas:
        changes["image_latents"] = batch.image_latents.roll(-1, 0)
    if features:
        changes["extras"] = {**batch.extras, **{k: batch.extras[k].roll(-1, 0) for k in FACE_KEYS}}
    if caption:
        changes["text_embeds"] = batch.text_embeds.roll(-1, 0)
        changes["text_mask"] = batch.text_mask.roll(-1, 0)
    return dataclasses.replace(batch, **changes)


# `--ablations` (the first probe, kept for its recorded results)
def ablations(right_id, module, dm, batch, indices, seed: int) -> dict:
    """Where the identity comes from: generations without the caption (faces only: "a orange face"
    names ID 0's skin, so the caption alone could colour a face right), and with the next clip's faces
    (composite + ID features) under this clip's caption, scored against the faces given."""
    null = module.null_text_embeds.to(batch.text_embeds.dtype)[None].expand_as(batch.text_embeds)
    no_caption = dataclasses.replace(
        batch, text_embeds=null, text_mask=module.null_text_mask[None].expand_as(batch.text_mask)
    )
    swapped = from_next_clip(batch, canvas=True, features=True)
    next_refs = [dm.dataset.clip(i).face_ids for i in indices[1:] + indices[:1]]
    return {
        "no_caption": right_id(module, dm, no_caption, indices, seed),
        "next_clip_faces": right_id(module, dm, swapped, indices, seed, refs=next_refs),
        "next_clip_faces_vs_caption_ids": right_id(module, dm, swapped, indices, seed),
    }


def generate(module, dm, batch, sampler_seed: int | None = None) -> Tensor:
    """The batch's generations [B, 3, F, H, W]; ``sampler_seed``: other sampler noise than the run's seed."""
    seed = module.cfg.seed
    module.eval()
    try:
        if sampler_seed is not None:
            module.cfg.seed = sampler_seed
        return module.generated_clips(batch, dm)
    finally:
        module.cfg.seed = seed
        module.train()


def pathways(right_id, module, dm, batch, indices, seed: int) -> dict:
    """Right-ID fraction (``right_id`` of the benchmark) with one input removed or taken from the next
    held-out clip, scored against this clip's references (``_vs_own``) and the next clip's (``_vs_next``);
    ``other_noise``: the same inputs under other sampler noise."""
    own = [dm.dataset.clip(i).face_ids for i in indices]
    nxt = own[1:] + own[:1]
    swaps = {
        "features_next": from_next_clip(batch, features=True),
        "canvas_next": from_next_clip(batch, canvas=True),
        "faces_next": from_next_clip(batch, canvas=True, features=True),
        "caption_next": from_next_clip(batch, caption=True),
        # every input of the next clip; only the sampler noise row stays
        "all_next": from_next_clip(batch, canvas=True, features=True, caption=True),
    }
    no_canvas = dataclasses.replace(batch, image_latents=torch.zeros_like(batch.image_latents))
    with with_face_keep(module, 0.0):
        features_off = right_id(module, dm, batch, indices, seed, videos=generate(module, dm, batch))
    out = {
        "full": right_id(module, dm, batch, indices, seed),
        "other_noise": right_id(
            module, dm, batch, indices, seed, videos=generate(module, dm, batch, seed + 1000)
        ),
        "features_off": features_off,
        "canvas_off": right_id(module, dm, no_canvas, indices, seed),
    }
    for name, swapped in swaps.items():
        videos = generate(module, dm, swapped)
        out[f"{name}_vs_own"] = right_id(module, dm, swapped, indices, seed, videos=videos)
        out[f"{name}_vs_next"] = right_id(module, dm, swapped, indices, seed, refs=nxt, videos=videos)
    return out


@torch.no_grad()
def face_use(module, batch, seed: int) -> dict:
    """Teacher-forced v-loss of the held-out clips at t = 250 / 500 / 750 (same noise) with their own
    faces, the next clip's (canvas, features, both) and without the routed features: the model uses a
    pathway when swapping or removing it raises the loss."""
    variants = {
        "own": batch,
        "canvas_next": from_next_clip(batch, canvas=True),
        "features_next": from_next_clip(batch, features=True),
        "both_next": from_next_clip(batch, canvas=True, features=True),
    }
    out = {}
    for name, b in [*variants.items(), ("features_off", batch)]:
        gen = torch.Generator().manual_seed(seed)
        faces = module.face_inputs(b)
        keep = torch.zeros(len(b)) if name == "features_off" else None
        losses = []
        for step in (250, 500, 750):
            noise = torch.randn(b.latents.shape, generator=gen)
            t = torch.full((len(b),), step)
            x_t = module.objective.add_noise(b.latents, noise, t)
            pred = module.model(x_t, t, b.text_embeds, b.text_mask, b.image_latents, **faces, face_keep=keep)
            losses.append(float(module.objective.loss(pred, b.latents, noise, x_t, t).mean()))
        out[name] = sum(losses) / len(losses)
    return out


def token_index(frames: int, height: int, width: int, grid: tuple[int, int, int], t: int) -> Tensor:
    """Token of every pixel [H, W] of pixel frame ``frames``: latent frame 0 = frame 0, latent frame j
    = frames 4(j - 1) + 1 .. 4j (the codec's first-frame-plus-groups layout); grid (F', gh, gw)."""
    f_lat, gh, gw = grid
    lf = 0 if frames == 0 else (frames - 1) // t + 1
    ys = torch.arange(height) * gh // height
    xs = torch.arange(width) * gw // width
    return lf * gh * gw + ys[:, None] * gw + xs[None, :]


def region_routing(
    video: Tensor, background: str, refs: Tensor, routed: Tensor, grid, t: int, min_pixels: int
):
    """Per detected face region of video [3, F, H, W]: (pixels, tokens, purity, agreement, frame share,
    colour is a reference). agreement: share of its (pixel, step-block) pairs routed to the ID whose
    reference has the region's colour; frame share: the same over every token of the frame (what
    agreement is when the router's layout is unrelated to where that colour is painted).

    routed [S, L]: the routed ID per token for S (step, block) pairs."""
    colours = palette(background)
    nearest = (video.float()[None] - colours.view(-1, 3, 1, 1, 1)).pow(2).sum(1).argmin(0)  # [F, H, W]
    skin = nearest[None] == torch.arange(1, NUM_IDENTITIES + 1).view(-1, 1, 1, 1)  # [I, F, H, W]
    f, h, w = nearest.shape
    labels = component_labels(skin.flatten(0, 1)).view(NUM_IDENTITIES, f, h, w)
    rows = []
    for frame in range(f):
        tokens = token_index(frame, h, w, grid, t)  # [H, W]
        for ident in range(NUM_IDENTITIES):
            lab = labels[ident, frame]
            for region in lab.unique()[1:]:
                mask = lab == region
                if int(mask.sum()) < min_pixels:
                    continue
                ids = routed[:, tokens[mask]]  # [S, P]
                counts = torch.nn.functional.one_hot(ids, routed.max() + 1).sum(1)  # [S, N]
                purity = float(counts.max(1).values.sum()) / ids.numel()
                match = (refs == ident).nonzero()
                k = int(match[0]) if len(match) else -1
                agree = float((ids == k).float().mean())
                frame_ids = routed[:, tokens.unique()]  # every token of this frame
                share = float((frame_ids == k).float().mean())
                rows.append((int(mask.sum()), len(tokens[mask].unique()), purity, agree, share, k >= 0))
    return rows


def routing(module, dm, batch, indices, min_pixels: int) -> dict:
    """Routing of the generations at inference (every sampler step, every routed block, the CFG
    conditional half), per face region found in the decoded generation."""
    b = len(batch)
    per_step: list[Tensor] = []

    def keep(model, args, output):
        logits = model.routing_logits
        valid = batch.extras[ID_VALID].bool()
        per_step.extend(masked_logits(phi[-b:], valid).argmax(-1) for phi in logits)  # [B, L] each

    handle = module.model.register_forward_hook(keep)
    module.eval()
    try:
        videos = module.generated_clips(batch, dm)
    finally:
        handle.remove()
        module.train()
    routed = torch.stack(per_step, 1)  # [B, S, L]
    _, _, f_lat, h_lat, w_lat = batch.latents.shape
    _, p_h, p_w = module.spec.patch_size
    grid = (f_lat, h_lat // p_h, w_lat // p_w)
    t = dm.codec().t
    rows, distinct = [], []
    for video, i, r in zip(videos, indices, routed):
        clip = dm.dataset.clip(i)
        rows += region_routing(video, clip.background, clip.face_ids, r, grid, t, min_pixels)
        per_frame = r.view(r.shape[0], f_lat, -1)  # [S, F', tokens]
        distinct += [len(x.unique()) for x in per_frame.flatten(0, 1)]
    pixels = torch.tensor([r[0] for r in rows], dtype=torch.float64)
    known = [r for r in rows if r[5]]
    kp = torch.tensor([r[0] for r in known], dtype=torch.float64)

    def weighted(values, weights) -> float:
        return float(sum(w * v for w, v in zip(weights, values)) / weights.sum().clamp(min=1))

    return {
        "regions": len(rows),
        "tokens_per_region": sum(r[1] for r in rows) / max(len(rows), 1),
        "purity": weighted([r[2] for r in rows], pixels),
        "agreement": weighted([r[3] for r in known], kp),
        "agreement_frame_share": weighted([r[4] for r in known], kp),
        "regions_of_a_reference_colour": len(known),
        "distinct_ids_per_latent_frame": sum(distinct) / max(len(distinct), 1),
    }


def label_coverage(samples, clips) -> dict:
    """Training clips' routing labels: faces with no labelled token, labelled tokens per face."""
    faces = unlabelled = tokens = 0
    for s, c in zip(samples, clips):
        lab = s.extras[LABELS]
        for k in range(len(c.face_ids)):
            n = int((lab == k).sum())
            faces, unlabelled, tokens = faces + 1, unlabelled + (n == 0), tokens + n
    return {
        "faces": faces,
        "faces_without_label": unlabelled,
        "labelled_tokens_per_face": tokens / max(faces, 1),
    }


def probe(right_id, module, dm, batch, indices, seed: int, min_pixels: int) -> dict:
    return {
        "face_use_loss": face_use(module, batch, seed),
        "pathways": pathways(right_id, module, dm, batch, indices, seed),
        "routing": routing(module, dm, batch, indices, min_pixels),
    }
