"""`vidgen jdm cmi`: the average CMI Ī of every clip of a shard dataset (JDM Sec. 3.3, Eq. 12).

A local CLIP model embeds the clip's middle frame (``e_x0``) and its regional captions; Eq. 12
(``cmi_estimator``) contrasts each ordered caption pair with M = 1024 negatives: one regional
caption drawn (seeded) from each of the M clips whose middle-frame embeddings are nearest to
``e_x0`` (cosine; the clip itself excluded). The values are written beside the shard index,
``ROOT/jdm_cmi.json`` (``CMI_FILE``), where JDM training reads them (``combinations.make_transform``).

Middle frame (frame ``F // 2``): ``--frames DIR`` (``<key>.png|jpg``), or the raw videos
(``--videos DIR --annotations FILE``), or a VAE decode of the stored latents (``--vae``, slowest).
Nearest neighbours: ``ExactIndex`` (chunked exact top-k) or ``IVFIndex`` (spherical k-means
coarse quantiser, ~O(N^1.5 P), exact when nprobe = nlist) over a float16 memmap. Derivations:
docs/methods/jdm.md.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vidgen.errors import ConfigError, DataError
from vidgen.methods.jdm.cmi_estimator import (  # noqa: F401  (re-exported: the estimator's home)
    CRITICS,
    DEFAULT_CRITIC,
    DEFAULT_TEMPERATURE,
    _unit,
    average_cmi,
    check_critic,
    context_similarity,
    pair_log_ratios,
)

FORMAT = "vidgen-jdm-cmi"
CMI_FILE = "jdm_cmi.json"  # beside index.json: the per-clip Ī JDM training reads
DEFAULT_NEGATIVES = 1024
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


# ---------------------------------------------------------------------------------------------
# Nearest-neighbour indexes over L2-normalised embeddings


def _rows(emb, start: int, end: int, device) -> Tensor:
    block = emb[start:end]
    t = block if isinstance(block, Tensor) else torch.from_numpy(np.ascontiguousarray(block))
    t = t.to(device)
    return t.float() if t.device.type == "cpu" else t.half()


def _take(emb, ids: np.ndarray, device) -> Tensor:
    block = emb[torch.as_tensor(ids)] if isinstance(emb, Tensor) else emb[ids]
    t = block if isinstance(block, Tensor) else torch.from_numpy(np.ascontiguousarray(block))
    return t.to(device).float()


def _merge_topk(best_s, best_i, s, ids, k):
    s = torch.cat([best_s, s], dim=1)
    i = torch.cat([best_i, ids], dim=1)
    top, pos = s.topk(k, dim=1)
    return top, torch.gather(i, 1, pos)


class ExactIndex:
    """Exact top-k cosine search, chunked: ``embeddings`` [N, P] (a tensor or a float16 memmap,
    L2-normalised) is scanned in chunks of ``chunk_size`` rows per block of queries."""

    def __init__(self, embeddings, chunk_size: int = 65536, device: str | torch.device = "cpu"):
        self.emb = embeddings
        self.n = int(embeddings.shape[0])
        self.chunk_size = int(chunk_size)
        self.device = torch.device(device)

    def search(
        self, queries: Tensor, k: int, exclude: Tensor | None = None, query_batch: int = 4096
    ) -> tuple[Tensor, Tensor]:
        """Top-``k`` (scores, ids) ``[Q, k]`` per query; ``exclude [Q]`` (id or -1) is never returned.

        ``k`` is lowered to the number of candidates when the database is smaller.
        """
        k = min(int(k), self.n - (1 if exclude is not None else 0))
        q_all = _unit(queries)
        out_s, out_i = [], []
        for qs in range(0, q_all.shape[0], query_batch):
            q = q_all[qs : qs + query_batch].to(self.device)
            ex = None if exclude is None else exclude[qs : qs + query_batch].to(self.device)
            best_s = torch.full((q.shape[0], 0), -math.inf, device=self.device)
            best_i = torch.zeros((q.shape[0], 0), dtype=torch.long, device=self.device)
            for start in range(0, self.n, self.chunk_size):
                db = _rows(self.emb, start, min(start + self.chunk_size, self.n), self.device)
                s = (q.to(db.dtype) @ db.T).float()
                ids = torch.arange(start, start + db.shape[0], device=self.device).expand(q.shape[0], -1)
                if ex is not None:
                    s = s.masked_fill(ids == ex[:, None], -math.inf)
                best_s, best_i = _merge_topk(best_s, best_i, s, ids, min(k, best_s.shape[1] + s.shape[1]))
            out_s.append(best_s.cpu())
            out_i.append(best_i.cpu())
        return torch.cat(out_s), torch.cat(out_i)


class IVFIndex:
    """Inverted-file index: spherical k-means coarse quantiser with ``nlist`` lists; a query
    scans the rows of its ``nprobe`` nearest lists (exact search when ``nprobe >= nlist``)."""

    def __init__(
        self,
        embeddings,
        nlist: int | None = None,
        nprobe: int = 8,
        iters: int = 10,
        seed: int = 0,
        train_size: int = 65536,
        chunk_size: int = 65536,
        device: str | torch.device = "cpu",
    ):
        self.emb = embeddings
        self.n = int(embeddings.shape[0])
        self.device = torch.device(device)
        self.nlist = int(nlist or max(1, round(4 * math.sqrt(self.n))))
        self.nlist = min(self.nlist, self.n)
        self.nprobe = int(nprobe)
        g = torch.Generator().manual_seed(seed)
        train_ids = torch.randperm(self.n, generator=g)[: max(train_size, self.nlist)].sort().values.numpy()
        x = _take(self.emb, train_ids, self.device)
        cent = x[torch.randperm(x.shape[0], generator=g)[: self.nlist].to(self.device)].clone()
        for _ in range(int(iters)):
            assign = (x @ cent.T).argmax(dim=1)
            sums = torch.zeros_like(cent).index_add_(0, assign, x)
            counts = torch.bincount(assign, minlength=self.nlist)
            empty = counts == 0
            if empty.any():  # re-seed empty lists with random training rows
                pick = torch.randint(0, x.shape[0], (int(empty.sum()),), generator=g).to(self.device)
                sums[empty] = x[pick]
            cent = _unit(sums)
        self.centroids = cent
        assign = torch.empty(self.n, dtype=torch.long)
        for start in range(0, self.n, chunk_size):
            db = _rows(self.emb, start, min(start + chunk_size, self.n), self.device).float()
            assign[start : start + db.shape[0]] = (db @ cent.T).argmax(dim=1).cpu()
        order = torch.argsort(assign, stable=True)
        self.list_ids = order.numpy()
        self.offsets = torch.cat(
            [torch.zeros(1, dtype=torch.long), torch.bincount(assign, minlength=self.nlist).cumsum(0)]
        ).numpy()

    def search(self, queries: Tensor, k: int, exclude: Tensor | None = None) -> tuple[Tensor, Tensor]:
        k = min(int(k), self.n - (1 if exclude is not None else 0))
        q_all = _unit(queries).to(self.device)
        probes = (q_all @ self.centroids.T).topk(min(self.nprobe, self.nlist), dim=1).indices.cpu().numpy()
        out_s = torch.full((q_all.shape[0], k), -math.inf)
        out_i = torch.full((q_all.shape[0], k), -1, dtype=torch.long)
        for qi in range(q_all.shape[0]):
            cand = np.concatenate([self.list_ids[self.offsets[p] : self.offsets[p + 1]] for p in probes[qi]])
            if exclude is not None:
                cand = cand[cand != int(exclude[qi])]
            if cand.size == 0:
                continue
            s = _take(self.emb, cand, self.device) @ q_all[qi]
            kk = min(k, s.shape[0])
            top, pos = s.topk(kk)
            out_s[qi, :kk] = top.cpu()
            out_i[qi, :kk] = torch.from_numpy(cand)[pos.cpu()]
        return out_s, out_i


def make_index(embeddings, kind: str = "exact", **kwargs):
    if kind == "exact":
        return ExactIndex(embeddings, **{k: v for k, v in kwargs.items() if k in ("chunk_size", "device")})
    if kind == "ivf":
        return IVFIndex(embeddings, **kwargs)
    raise ConfigError(f"--index={kind!r}: use 'exact' (chunked exact top-k) or 'ivf' (coarse quantiser)")


def open_embeddings(path: Path, n: int, dim: int) -> np.memmap:
    """A float16 [n, dim] memmap (.npy) for L2-normalised embeddings."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(n, dim))


# ---------------------------------------------------------------------------------------------
# CLIP from a local folder

_CLIP_LAYOUT = (
    "expected a local transformers CLIP folder: config.json of a CLIPModel + its weights, the tokenizer "
    "files (in the folder or its tokenizer/ subfolder) and optionally preprocessor_config.json"
)


class ClipEncoder:
    """A transformers ``CLIPModel`` + tokenizer loaded from a local folder (nothing is downloaded).

    Images are preprocessed in torch: resize of the shorter side to the vision tower's
    ``image_size`` (bicubic, antialiased), centre crop, normalisation with the mean / std of
    ``preprocessor_config.json`` (OpenAI CLIP's when absent).
    """

    def __init__(self, path: str | Path, device: str | torch.device = "cpu", batch_size: int = 64):
        from transformers import AutoTokenizer, CLIPModel

        path = Path(path)
        if not path.is_dir():
            raise DataError(f"CLIP folder {path} does not exist (--clip); {_CLIP_LAYOUT}.")
        if not (path / "config.json").is_file():
            raise DataError(f"no config.json in CLIP folder {path} (--clip); {_CLIP_LAYOUT}.")
        try:
            self.model = CLIPModel.from_pretrained(path).to(device).eval().requires_grad_(False)
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot load a CLIPModel from {path} (--clip): {exc}. {_CLIP_LAYOUT}.") from exc
        tok_dir = path / "tokenizer" if (path / "tokenizer").is_dir() else path
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(tok_dir)
        except (OSError, ValueError) as exc:
            raise DataError(
                f"cannot load the CLIP tokenizer from {tok_dir} (--clip): {exc}. {_CLIP_LAYOUT}."
            ) from exc
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        self.image_size = int(self.model.config.vision_config.image_size)
        self.max_length = int(self.model.config.text_config.max_position_embeddings)
        mean, std = OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
        pre = path / "preprocessor_config.json"
        if pre.is_file():
            cfg = json.loads(pre.read_text(encoding="utf-8"))
            mean, std = cfg.get("image_mean", mean), cfg.get("image_std", std)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)

    @property
    def dim(self) -> int:
        return int(self.model.config.projection_dim)

    @staticmethod
    def _features(out) -> Tensor:
        return out if isinstance(out, Tensor) else out.pooler_output

    @torch.no_grad()
    def encode_text(self, texts: Sequence[str]) -> Tensor:
        """``[N, P]`` L2-normalised text embeddings."""
        outs = []
        for i in range(0, len(texts), self.batch_size):
            tok = self.tokenizer(
                list(texts[i : i + self.batch_size]),
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )
            feats = self.model.get_text_features(
                input_ids=tok.input_ids.to(self.device), attention_mask=tok.attention_mask.to(self.device)
            )
            outs.append(_unit(self._features(feats)).cpu())
        return torch.cat(outs) if outs else torch.zeros(0, self.dim)

    def preprocess(self, frames: Tensor) -> Tensor:
        """uint8 ``[N, H, W, 3]`` -> normalised ``[N, 3, S, S]``."""
        import torch.nn.functional as F

        x = frames.permute(0, 3, 1, 2).float() / 255.0
        h, w = x.shape[-2:]
        s = self.image_size
        scale = s / min(h, w)
        nh, nw = max(s, round(h * scale)), max(s, round(w * scale))
        x = F.interpolate(x, size=(nh, nw), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
        top, left = (nh - s) // 2, (nw - s) // 2
        x = x[:, :, top : top + s, left : left + s]
        return (x - self.mean) / self.std

    @torch.no_grad()
    def encode_images(self, frames: Tensor) -> Tensor:
        """uint8 ``[N, H, W, 3]`` -> ``[N, P]`` L2-normalised image embeddings."""
        outs = []
        for i in range(0, frames.shape[0], self.batch_size):
            pixels = self.preprocess(frames[i : i + self.batch_size]).to(self.device)
            outs.append(_unit(self._features(self.model.get_image_features(pixel_values=pixels))).cpu())
        return torch.cat(outs) if outs else torch.zeros(0, self.dim)


# ---------------------------------------------------------------------------------------------
# Middle frames


def middle_index(frames: int) -> int:
    return frames // 2


class FramesDirSource:
    """``DIR/<key>.png|jpg|jpeg``: the clip's middle frame, extracted ahead of time."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise DataError(
                f"frames folder {self.folder} does not exist (--frames); expected <key>.png or <key>.jpg files."
            )

    def __call__(self, i: int, clip: dict[str, Any]) -> Tensor:
        from PIL import Image

        for ext in (".png", ".jpg", ".jpeg"):
            path = self.folder / f"{clip['key']}{ext}"
            if path.is_file():
                with Image.open(path) as img:
                    return torch.from_numpy(np.asarray(img.convert("RGB")).copy())
        raise DataError(
            f"{self.folder}: no middle frame for sample {clip['key']!r} (looked for {clip['key']}.png/.jpg). "
            "Fix: extract frame F//2 of every clip into --frames, or use --videos/--annotations."
        )


class VideoSource:
    """The raw videos named by the precompute annotations (``--videos DIR --annotations FILE``)."""

    def __init__(self, videos: str | Path, annotations: str | Path):
        from vidgen.data.precompute import read_annotations

        self.videos = Path(videos)
        if not self.videos.is_dir():
            raise DataError(f"videos folder {self.videos} does not exist (--videos).")
        self.files = {r.key: r.video for r in read_annotations(annotations, videos, check_files=False)}
        self.annotations = annotations

    def __call__(self, i: int, clip: dict[str, Any]) -> Tensor:
        from vidgen.data.video_io import read_video, resize_crop

        path = self.files.get(clip["key"])
        if path is None:
            raise DataError(
                f"{self.annotations}: no line for sample {clip['key']!r}. Fix: pass the annotations the dataset was "
                "precomputed from (--annotations)."
            )
        f, h, w = clip["frame_size"]
        start = middle_index(f) * int(clip.get("stride") or 1)
        frames, _ = read_video(path, num_frames=1, start=start)
        pixels, _, _ = resize_crop(frames, h, w)
        return pixels[0]


class DecodeSource:
    """Decode the stored latents with the VAE and take the middle frame (one full decode per clip)."""

    def __init__(self, root: str | Path, vae: str | Path, kind: str, device="cpu"):
        from vidgen.data.encoders import load_vae
        from vidgen.data.shards import ShardDataset

        self.dataset = ShardDataset(root, fields=["latents", "text_embeds"])
        self.vae = load_vae(vae, kind, device=device)

    def __call__(self, i: int, clip: dict[str, Any]) -> Tensor:
        from vidgen.data.video_io import from_model_pixels

        video = self.vae.decode(self.dataset[i].latents[None].float())[0]  # [3, F, H, W]
        mid = middle_index(video.shape[1])
        return from_model_pixels(video[:, mid : mid + 1].cpu())[0]


# ---------------------------------------------------------------------------------------------
# The dataset pass


def read_clips(root: str | Path) -> list[dict[str, Any]]:
    """Per sample of a shard dataset: key, frame_size, stride and regional captions (annotations only)."""
    from vidgen.data.shards import iter_annotations

    return [
        {
            "key": ann["key"],
            "frame_size": ann["frame_size"],
            "stride": (ann.get("micro") or {}).get("stride", 1),
            "captions": [str(r["caption"]) for r in (ann.get("regions") or [])],
        }
        for _, ann in iter_annotations(root)
    ]


def compute_cmi(
    data: str | Path,
    clip: str | Path,
    out: str | Path | None,
    frame_source: Callable[[int, dict[str, Any]], Tensor] | None = None,
    negatives: int = DEFAULT_NEGATIVES,
    critic: str = DEFAULT_CRITIC,
    temperature: float = DEFAULT_TEMPERATURE,
    index: str = "exact",
    nlist: int | None = None,
    nprobe: int = 8,
    device: str = "cpu",
    batch_size: int = 64,
    seed: int = 0,
    work_dir: str | Path | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> dict[str, float]:
    """Ī for every clip of the shard dataset ``data``; writes ``out`` (.json or .safetensors;
    default ``data/jdm_cmi.json``, where training reads it)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    if negatives < 1:
        raise ConfigError(f"--negatives={negatives} must be >= 1")
    check_critic(critic, temperature)
    out = Path(out) if out is not None else Path(data) / CMI_FILE
    if out.suffix not in (".json", ".safetensors"):
        raise ConfigError(f"--out {out}: use a .json or .safetensors file name")
    clips = read_clips(data)
    if frame_source is None:
        raise ConfigError(
            "vidgen jdm cmi needs the middle frames: pass --frames DIR, or --videos DIR --annotations FILE, or "
            "--vae PATH --backbone NAME (decode the stored latents)."
        )
    if out.exists() and not overwrite:
        raise ConfigError(
            f"--out {out} already exists; pass --overwrite to replace it, or choose another --out"
        )
    encoder = ClipEncoder(clip, device=device, batch_size=batch_size)
    work = Path(work_dir) if work_dir is not None else out.with_name(out.name + ".work")
    work.mkdir(parents=True, exist_ok=True)
    n, p = len(clips), encoder.dim
    console = Console(stderr=True)
    columns = (
        TextColumn("[bold]jdm cmi {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )

    # captions: a bank of unique caption embeddings + per-clip caption ids (CSR)
    unique: dict[str, int] = {}
    cap_ids, offsets = [], [0]
    for c in clips:
        for text in c["captions"]:
            cap_ids.append(unique.setdefault(text, len(unique)))
        offsets.append(len(cap_ids))
    cap_ids_t = torch.tensor(cap_ids, dtype=torch.long)
    offsets_t = torch.tensor(offsets, dtype=torch.long)
    counts = offsets_t[1:] - offsets_t[:-1]
    texts = list(unique)
    bank = open_embeddings(work / "captions.npy", max(len(texts), 1), p)
    images = open_embeddings(work / "images.npy", n, p)
    with Progress(*columns, console=console, disable=not progress) as bar:
        t_task = bar.add_task("captions", total=len(texts))
        step = 4096
        for i in range(0, len(texts), step):
            bank[i : i + step] = encoder.encode_text(texts[i : i + step]).numpy().astype(np.float16)
            bar.advance(t_task, len(texts[i : i + step]))
        i_task = bar.add_task("frames", total=n)
        for i in range(0, n, batch_size):
            frames = [frame_source(j, clips[j]) for j in range(i, min(i + batch_size, n))]
            if frames and all(f.shape == frames[0].shape for f in frames):
                embs = encoder.encode_images(torch.stack(frames))
            else:
                embs = torch.cat([encoder.encode_images(f[None]) for f in frames]) if frames else None
            if embs is not None:
                images[i : i + len(frames)] = embs.numpy().astype(np.float16)
            bar.advance(i_task, len(frames))
        bank.flush()
        images.flush()

        # negatives come from clips with at least one caption
        db_ids = torch.nonzero(counts > 0).flatten()
        db_pos = torch.full((n,), -1, dtype=torch.long)
        db_pos[db_ids] = torch.arange(db_ids.numel())
        results: dict[str, float] = {c["key"]: 0.0 for c in clips}
        queries = torch.nonzero(counts >= 2).flatten()
        if db_ids.numel() >= 2 and queries.numel():
            db = open_embeddings(work / "db.npy", db_ids.numel(), p)
            db[:] = images[db_ids.numpy()]
            db.flush()
            if index == "ivf":
                nn_index = IVFIndex(db, nlist=nlist, nprobe=nprobe, seed=seed, device=device)
            else:
                nn_index = make_index(db, index, device=device)
            g = torch.Generator().manual_seed(seed)
            q_task = bar.add_task("pairs", total=queries.numel())
            qb = 1024
            for s in range(0, queries.numel(), qb):
                qs = queries[s : s + qb]
                qemb = torch.from_numpy(np.asarray(images[qs.numpy()])).float()
                _, nbr = nn_index.search(qemb, negatives, exclude=db_pos[qs])
                for row, ci in enumerate(qs.tolist()):
                    nb = nbr[row]
                    nb = nb[nb >= 0]
                    if nb.numel() == 0:
                        bar.advance(q_task)
                        continue
                    clip_ids = db_ids[nb]
                    pick = (
                        offsets_t[clip_ids]
                        + (torch.rand(clip_ids.numel(), generator=g) * counts[clip_ids]).long()
                    )
                    neg = torch.from_numpy(np.asarray(bank[cap_ids_t[pick].numpy()])).float()
                    own = cap_ids_t[offsets_t[ci] : offsets_t[ci + 1]]
                    reg = torch.from_numpy(np.asarray(bank[own.numpy()])).float()
                    ctx = torch.from_numpy(np.asarray(images[ci])).float()
                    results[clips[ci]["key"]] = average_cmi(reg, neg, ctx, critic, temperature)
                    bar.advance(q_task)
    meta = {
        "negatives": int(negatives),
        "critic": critic,
        "temperature": float(temperature) if critic == "exp" else None,
        "index": index,
        "clip": str(clip),
        "data": str(data),
        "similarity": "(t_i . t_j + 1) / 2 (cosine of [t, e_x0], parts L2-normalised)",
    }
    save_cmi(out, results, meta)
    import shutil

    if work_dir is None:
        shutil.rmtree(work, ignore_errors=True)
    return results


# ---------------------------------------------------------------------------------------------
# The file method.cmi_file reads


def save_cmi(path: str | Path, values: dict[str, float], meta: dict[str, Any] | None = None) -> Path:
    """``.json``: ``{"format", "version", "meta", "cmi": {key: Ī}}``; ``.safetensors``: tensor
    ``cmi`` [N] float32 with the keys (JSON list) in the metadata."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        keys = list(values)
        save_file(
            {"cmi": torch.tensor([values[k] for k in keys], dtype=torch.float32)},
            str(tmp),
            {"format": FORMAT, "version": "1", "keys": json.dumps(keys), "meta": json.dumps(meta or {})},
        )
    else:
        obj = {"format": FORMAT, "version": 1, "meta": meta or {}, "cmi": values}
        tmp.write_text(json.dumps(obj, indent=1), encoding="utf-8")
    os.replace(tmp, path)
    return path


def load_cmi(path: str | Path) -> dict[str, float]:
    """``{sample key: Ī}`` from a file written by ``vidgen jdm cmi`` (or a plain JSON mapping)."""
    path = Path(path)
    fix = "Fix: run `vidgen jdm cmi --data ROOT ... --out FILE` and set method.cmi_file=FILE, or set method.cmi_file=null (w' = w)."
    if not path.is_file():
        raise DataError(f"method.cmi_file: {path} does not exist. {fix}")
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as fh:
                keys = json.loads((fh.metadata() or {})["keys"])
                vals = fh.get_tensor("cmi").tolist()
            mapping = dict(zip(keys, vals))
        else:
            obj = json.loads(path.read_text(encoding="utf-8"))
            mapping = obj["cmi"] if isinstance(obj, dict) and obj.get("format") == FORMAT else obj
    except Exception as exc:
        raise DataError(f"method.cmi_file: {path} is not a readable CMI file ({exc}). {fix}") from exc
    if not isinstance(mapping, dict):
        raise DataError(f"method.cmi_file: {path} must map sample keys to numbers. {fix}")
    out = {}
    for k, v in mapping.items():
        if not isinstance(v, (int, float)) or not math.isfinite(float(v)):
            raise DataError(
                f"method.cmi_file: {path}: sample {k!r}: value {v!r} is not a finite number. {fix}"
            )
        out[str(k)] = float(v)
    return out
