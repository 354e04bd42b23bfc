"""Train the PercepNet model on feature shards and export it for the runtime.

Background (loss, optimiser, weight range): docs/algorithm.md, 'Training'.

Input: two shard directories (``training.data``), one for training and one for validation,
each holding ``shard-*.npz`` files with float32 ``features`` [N, T, 70], ``gains``,
``strengths`` and ``mask`` [N, T, 34] (mask 1 = the band counts in the loss) and a
``meta.json``. Each epoch draws random crops of ``seq_frames`` frames from every example
(about one crop per ``seq_frames`` frames of data), in an order fixed by (seed, epoch), so a
run resumed from a checkpoint sees exactly the batches the uninterrupted run would have seen.

Loss (the PercepNet/RNNoise form): gain term (g^γ − ĝ^γ)² + C4·(g^γ − ĝ^γ)⁴ and strength term
((1−r)^γ − (1−r̂)^γ)², γ = 0.5, C4 = 10, each averaged over the bands the mask keeps.
``--loss compressed`` (against over-suppression: clean and high-SNR speech must come out
unharmed) replaces the gain term with a compressed one weighted by speech activity,
w·(g^0.25 − ĝ^0.25)², w = 1 + 5·vad, plus an over-attenuation penalty
λ·w·g·max(0, g^0.25 − ĝ^0.25)² that costs only where the prediction cuts below the target,
scaled by the target itself (speech-dominated bands); both averaged with the weights w over
the bands the mask keeps. The shards hold no clean signal, so the activity is read from the
targets: vad = clip((max over kept bands of g − 0.1) / 0.3, 0, 1) (a frame without speech
has ideal gains near 0 in every band). The strength term is unchanged.
Optimiser (our choice; the paper's is unknown): AdamW, per-step cosine learning rate from
1e-3 to 1e-5 over the run, gradient-norm clipping, weights clipped to ±0.5 after every step
(for int8 export).

Usage::

    python -m training.train --train DATA/train --val DATA/val --arch small --epochs 12 \\
        --batch 16 --seq-frames 1000 --out weights --name small --checkpoints CKPT [--resume]

A checkpoint (``<checkpoints>/last.pt``) is written after every epoch and when
``--max-minutes`` stops the run early (mid-epoch; ``--resume`` continues from that batch).
At the end (or at the time limit) the model is exported with ``training.export.write_model``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from percepnet.dsp.model_config import ARCHITECTURES

from training.export import write_model
from training.model import PercepNetModel

__all__ = ["ShardSet", "TrainConfig", "percepnet_loss", "compressed_loss", "speech_activity",
           "batch_errors", "epoch_crops",
           "feature_stats", "evaluate", "train", "main"]

GAMMA = 0.5
C4 = 10.0
#: the compressed loss (``loss="compressed"``): gain exponent, speech-activity weight
COMPRESSED_POWER = 0.25
VAD_WEIGHT = 5.0
LOSSES = ("percepnet", "compressed")
EPS = 1e-8
CHECKPOINT_NAME = "last.pt"


# --------------------------------------------------------------------------- data

class ShardSet:
    """All examples of a shard directory in memory, as float32 arrays per example (about
    42 kB per second of audio: 10 h of data is about 1.5 GB)."""

    ARRAYS = ("features", "gains", "strengths", "mask")

    def __init__(self, directory: str | Path) -> None:
        """directory: one shard directory, or several joined with ``os.pathsep`` (their
        examples are concatenated; ``meta`` then lists each directory's meta under "parts")."""
        dirs = [Path(d) for d in str(directory).split(os.pathsep) if d]
        self.directory = dirs[0]
        files, metas = [], []
        for d in dirs:
            found = sorted(d.glob("shard-*.npz"))
            if not found:
                raise FileNotFoundError(f"{d}: no shard-*.npz files")
            files += found
            meta_path = d / "meta.json"
            metas.append(json.loads(meta_path.read_text()) if meta_path.exists() else {})
        self.meta = metas[0] if len(dirs) == 1 else {
            "parts": [{"dir": str(d), **_meta_summary(m)} for d, m in zip(dirs, metas)]}
        self.examples: list[tuple[np.ndarray, ...]] = []
        for f in files:
            with np.load(f, allow_pickle=False) as z:
                arrays = [np.asarray(z[k], dtype=np.float32) for k in self.ARRAYS]
            feats, gains, strengths, mask = arrays
            if feats.ndim != 3 or gains.shape != strengths.shape or gains.shape != mask.shape \
                    or feats.shape[:2] != gains.shape[:2]:
                raise ValueError(f"{f}: inconsistent shapes {[a.shape for a in arrays]}")
            # Masked bands may hold anything; keep them finite so 0 * x stays 0.
            for i in range(feats.shape[0]):
                self.examples.append((
                    np.nan_to_num(feats[i]),
                    np.nan_to_num(gains[i]),
                    np.nan_to_num(strengths[i]),
                    np.nan_to_num(mask[i]),
                ))
        self.files = [f.name if len(dirs) == 1 else str(f) for f in files]

    def __len__(self) -> int:
        return len(self.examples)

    @property
    def n_frames(self) -> int:
        return sum(e[0].shape[0] for e in self.examples)

    def crop(self, index: int, start: int, length: int) -> tuple[np.ndarray, ...]:
        """Frames start..start+length of one example; past its end: zeros with mask 0."""
        out = []
        for a in self.examples[index]:
            part = a[start:start + length]
            if part.shape[0] < length:
                part = np.concatenate([part, np.zeros((length - part.shape[0], a.shape[1]),
                                                      np.float32)])
            out.append(part)
        return tuple(out)

    def batch(self, crops, length: int, device: str | torch.device = "cpu"
              ) -> tuple[torch.Tensor, ...]:
        """(features, gains, strengths, mask) of the crops, each [len(crops), length, C],
        on ``device``."""
        parts = [self.crop(i, s, length) for i, s in crops]
        return tuple(torch.from_numpy(np.stack([p[k] for p in parts])).to(device)
                     for k in range(4))


def feature_stats(data: ShardSet) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation over every frame of ``data`` (float64 sums)."""
    n = 0
    s = np.zeros(data.examples[0][0].shape[1])
    s2 = np.zeros_like(s)
    for feats, *_ in data.examples:
        f = feats.astype(np.float64)
        n += f.shape[0]
        s += f.sum(axis=0)
        s2 += (f * f).sum(axis=0)
    mean = s / max(n, 1)
    std = np.sqrt(np.maximum(s2 / max(n, 1) - mean * mean, 0.0))
    return mean, std


def epoch_crops(data: ShardSet, seq_frames: int, seed: int, epoch: int) -> list[tuple[int, int]]:
    """The shuffled (example, start) crops of one epoch; a function of (seed, epoch) only.

    An example of T frames gives max(1, round(T / seq_frames)) crops at random starts.
    """
    rng = np.random.default_rng([seed, epoch])
    crops = []
    for i, (feats, *_) in enumerate(data.examples):
        t = feats.shape[0]
        n = max(1, int(round(t / seq_frames)))
        hi = max(t - seq_frames, 0)
        for s in rng.integers(0, hi + 1, size=n):
            crops.append((i, int(s)))
    order = rng.permutation(len(crops))
    return [crops[k] for k in order]


def val_crops(data: ShardSet, seq_frames: int) -> list[tuple[int, int]]:
    """Every frame of ``data`` once: consecutive crops of each example (tail zero-padded)."""
    return [(i, s) for i, (feats, *_) in enumerate(data.examples)
            for s in range(0, feats.shape[0], seq_frames)]


# --------------------------------------------------------------------------- loss

def _loss_terms(gains, strengths, g_hat, r_hat, mask):
    # Both sides clamped to [EPS, 1] before the root: no NaN for out-of-range values and a
    # bounded gradient (0.5 / sqrt(EPS)) near 0; a perfect prediction still gives exactly 0.
    g = gains.clamp(EPS, 1.0)
    gh = g_hat.clamp(EPS, 1.0)
    r = (1.0 - strengths).clamp(EPS, 1.0)
    rh = (1.0 - r_hat).clamp(EPS, 1.0)
    dg = g.pow(GAMMA) - gh.pow(GAMMA)
    dr = r.pow(GAMMA) - rh.pow(GAMMA)
    m = mask.clamp(0.0, 1.0)
    dg = torch.where(m > 0, dg, torch.zeros_like(dg))
    dr = torch.where(m > 0, dr, torch.zeros_like(dr))
    dg2 = dg * dg
    return m, (m * (dg2 + C4 * dg2 * dg2)).sum(), (m * dr * dr).sum(), m.sum()


def percepnet_loss(gains: torch.Tensor, strengths: torch.Tensor, g_hat: torch.Tensor,
                   r_hat: torch.Tensor, mask: torch.Tensor,
                   strength_weight: float = 1.0) -> torch.Tensor:
    """PercepNet loss: gain term + strength_weight * strength term, each a mean over the bands
    mask keeps (strength_weight 1 = the paper's sum).

    All tensors (..., 34); targets ``gains``/``strengths``, predictions ``g_hat``/``r_hat``.
    Returns 0 (with a gradient path) when the mask keeps nothing.
    """
    _, lg, lr, msum = _loss_terms(gains, strengths, g_hat, r_hat, mask)
    denom = msum.clamp(min=1.0)
    return lg / denom + strength_weight * (lr / denom)


def speech_activity(gains: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-frame speech activity in [0, 1] read from the target gains [..., T, 34]: 0 when no
    kept band's ideal gain exceeds 0.1 (noise only or silence), 1 from 0.4 up. Returns
    [..., T]."""
    top = (gains.clamp(0.0, 1.0) * (mask > 0)).amax(dim=-1)
    return ((top - 0.1) / 0.3).clamp(0.0, 1.0)


def compressed_loss(gains: torch.Tensor, strengths: torch.Tensor, g_hat: torch.Tensor,
                    r_hat: torch.Tensor, mask: torch.Tensor, strength_weight: float = 1.0,
                    over_weight: float = 1.0, power: float = COMPRESSED_POWER,
                    vad_weight: float = VAD_WEIGHT) -> torch.Tensor:
    """Gain loss against over-suppression (see the module docstring): activity-weighted
    (g^power − ĝ^power)² + over_weight · the same weights · g · max(0, g^power − ĝ^power)²,
    both a weighted mean over the kept bands, + strength_weight · the PercepNet strength term.

    All tensors (..., T, 34); returns 0 (with a gradient path) when the mask keeps nothing.
    """
    g = gains.clamp(EPS, 1.0)
    gh = g_hat.clamp(EPS, 1.0)
    m = mask.clamp(0.0, 1.0)
    w = m * (1.0 + vad_weight * speech_activity(gains, mask)).unsqueeze(-1)
    d = g.pow(power) - gh.pow(power)
    d = torch.where(m > 0, d, torch.zeros_like(d))
    over = torch.relu(d)
    wsum = w.sum().clamp(min=1.0)
    gain_term = (w * d * d).sum() / wsum
    over_term = (w * g * over * over).sum() / wsum
    _, _, lr, msum = _loss_terms(gains, strengths, g_hat, r_hat, mask)
    return gain_term + over_weight * over_term + strength_weight * lr / msum.clamp(min=1.0)


def batch_errors(gains, strengths, g_hat, r_hat, mask) -> dict[str, float]:
    """Sums for validation figures: gain/strength loss numerators, |g - ĝ| sum, mask sum."""
    m, lg, lr, msum = _loss_terms(gains, strengths, g_hat, r_hat, mask)
    abs_err = (m * (gains.clamp(0, 1) - g_hat).abs()).sum()
    return {"gain": float(lg), "strength": float(lr), "abs_gain": float(abs_err),
            "mask": float(msum)}


@torch.no_grad()
def evaluate(model: PercepNetModel, data: ShardSet, seq_frames: int, batch: int) -> dict:
    """Validation figures over every frame of ``data`` (crops of ``seq_frames``)."""
    was_training = model.training
    device = next(model.parameters()).device
    model.eval()
    totals = {"gain": 0.0, "strength": 0.0, "abs_gain": 0.0, "mask": 0.0}
    crops = val_crops(data, seq_frames)
    for k in range(0, len(crops), batch):
        feats, gains, strengths, mask = data.batch(crops[k:k + batch], seq_frames, device)
        g_hat, r_hat = model(feats)
        for key, v in batch_errors(gains, strengths, g_hat, r_hat, mask).items():
            totals[key] += v
    model.train(was_training)
    denom = max(totals["mask"], 1.0)
    return {
        "loss": (totals["gain"] + totals["strength"]) / denom,
        "gain_loss": totals["gain"] / denom,
        "strength_loss": totals["strength"] / denom,
        "gain_mae": totals["abs_gain"] / denom,
        "frames": data.n_frames,
        "examples": len(data),
    }


# --------------------------------------------------------------------------- training

@dataclass
class TrainConfig:
    train_dir: str
    val_dir: str
    arch: str | dict = "small"
    epochs: int = 12
    batch: int = 16
    seq_frames: int = 1000
    out_dir: str = "weights"
    name: str = "small"
    checkpoints: str = "checkpoints"
    resume: bool = False
    max_minutes: float | None = None
    #: wall-clock schedule (for an accelerator lent for a fixed time): the cosine learning
    #: rate runs over this many minutes of training instead of over the steps of ``epochs``,
    #: and the run ends (validation, export) when they are spent; ``epochs`` is then an
    #: upper bound. Not reproducible step for step, unlike the step schedule.
    schedule_minutes: float | None = None
    #: export the weights of the epoch with the lowest validation loss instead of the last
    #: one (for long runs over a fixed data set that may start to overfit); a resumed run
    #: compares the epochs since its resume
    export_best: bool = False
    seed: int = 1
    lr: float = 1e-3
    lr_min: float = 1e-5
    weight_decay: float = 1e-2
    grad_clip: float = 1.0
    #: weight of the strength term in the training loss (1 = the PercepNet loss). Below 1 the
    #: shared layers spend more of their capacity on the band gains, which is what users hear while
    #: the comb filter is off (its registry default).
    strength_weight: float = 1.0
    #: "percepnet" (the PercepNet loss) or "compressed" (``compressed_loss``: against
    #: over-suppression); over_weight: its over-attenuation penalty
    loss: str = "percepnet"
    over_weight: float = 1.0
    threads: int | None = None
    #: torch device to train on ("cpu", "cuda", "cuda:1", ...); not part of the fingerprint:
    #: a run may resume on another device (checkpoints are loaded onto the CPU first)
    device: str = "cpu"
    progress_every: int = 10
    quiet: bool = False
    export: bool = True
    #: start from the weights and feature normalisation of this checkpoint (a ``last.pt`` of
    #: the same architecture) with a fresh optimiser and schedule: fine-tuning stage
    init: str | None = None
    extra: dict = field(default_factory=dict)

    def arch_dict(self) -> dict:
        return ARCHITECTURES[self.arch] if isinstance(self.arch, str) else dict(self.arch)

    def fingerprint(self) -> dict:
        """What must match for a resume to continue the same run."""
        fp = {"arch": self.arch_dict(), "epochs": self.epochs, "batch": self.batch,
              "seq_frames": self.seq_frames, "seed": self.seed, "lr": self.lr,
              "lr_min": self.lr_min, "weight_decay": self.weight_decay,
              "grad_clip": self.grad_clip}
        if self.strength_weight != 1.0:
            fp["strength_weight"] = self.strength_weight
        if self.loss != "percepnet":
            fp["loss"] = {"name": self.loss, "over_weight": self.over_weight}
        if self.init:
            fp["init"] = str(self.init)
        if self.schedule_minutes:
            fp["schedule_minutes"] = self.schedule_minutes
        return fp


def lr_at(step: int, total: int, lr: float, lr_min: float) -> float:
    """Cosine decay from ``lr`` at step 0 to ``lr_min`` at step ``total``."""
    frac = min(max(step / max(total, 1), 0.0), 1.0)
    return lr_min + 0.5 * (lr - lr_min) * (1.0 + math.cos(math.pi * frac))


def _fmt_time(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h:d}:{m:02d}:{s:02d}"


class _Progress:
    """A tqdm bar over all training steps (epoch, batch, loss and lr every ``every`` batches)
    and the lines printed between epochs; silent when ``quiet``."""

    def __init__(self, total_steps: int, quiet: bool, every: int, desc: str,
                 start: int = 0) -> None:
        self.quiet, self.every = quiet, max(every, 1)
        self.bar = tqdm(total=total_steps, initial=start, desc=desc, unit="batch",
                        disable=quiet)

    def update(self, step: int, epoch: int, epochs: int, i: int, n: int, loss: float,
               lr: float, force: bool = False) -> None:
        if force or i % self.every == 0 or i == n:
            self.bar.set_postfix_str(f"epoch {epoch + 1}/{epochs} batch {i}/{n} "
                                     f"loss {loss:.4f} lr {lr:.2e}", refresh=False)
        self.bar.update(step - self.bar.n)

    def line(self, text: str) -> None:
        if not self.quiet:
            self.bar.write(text, file=sys.stderr)

    def close(self) -> None:
        self.bar.close()


def _save_checkpoint(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _threads(cfg: TrainConfig) -> int:
    if cfg.threads:
        return cfg.threads
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _device_name(device: torch.device) -> str:
    """'cpu' or the accelerator's name (for the manifest)."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


def _is_exported(path: str | Path) -> bool:
    return Path(path).suffix in (".json", ".npz")


def _load_init(path: str, arch: dict) -> dict:
    """State dict to start a fine-tuning run from: a training checkpoint (``last.pt``) or an
    exported model (``weights/<name>.json``/``.npz``, its int8 weights dequantised, so the
    run starts from exactly what ships)."""
    if _is_exported(path):
        from percepnet.app.models import load_model

        from training.export import model_from_arrays

        m = load_model(path)
        if m.members:
            raise ValueError(f"{path}: an ensemble; fine-tune one of its members")
        if dict(m.arch) != dict(arch):
            raise ValueError(f"{path}: model has another architecture")
        return model_from_arrays(m.weights, m.arch).state_dict()
    init = torch.load(path, weights_only=True, map_location="cpu")
    if init["fingerprint"]["arch"] != arch:
        raise ValueError(f"{path}: checkpoint has another architecture")
    return init["model"]


def _init_summary(path: str | None) -> dict | None:
    """What a fine-tuning run started from: the checkpoint and that run's epoch history, or
    the exported model and its sha256."""
    if not path:
        return None
    if _is_exported(path):
        manifest = Path(path).with_suffix(".json")
        info = json.loads(manifest.read_text()) if manifest.exists() else {}
        return {"model": str(path), "sha256": info.get("sha256")}
    state = torch.load(path, weights_only=True, map_location="cpu")
    return {"checkpoint": str(path), "steps": state["step"],
            "history": json.loads(state["history"])}


def _meta_summary(meta: dict) -> dict:
    """A shard directory's meta.json for the manifest: per-shard lists dropped, long lists
    reduced to their length."""
    out = {}
    for k, v in meta.items():
        if k == "shards":
            continue
        out[k] = f"{len(v)} entries" if isinstance(v, (list, dict)) and len(v) > 50 else v
    return out


def train(cfg: TrainConfig) -> dict:
    """Run (or resume) training; returns a summary dict (also in the exported manifest).

    Summary keys: ``completed`` (all epochs done), ``epoch``, ``step``, ``history``
    (per-epoch train/val figures), ``validation`` (latest), ``manifest`` (export path or None).
    """
    threads_before = torch.get_num_threads()
    torch.set_num_threads(_threads(cfg))
    try:
        return _train(cfg)
    finally:
        torch.set_num_threads(threads_before)


def _train(cfg: TrainConfig) -> dict:
    arch = cfg.arch_dict()
    train_data = ShardSet(cfg.train_dir)
    val_data = ShardSet(cfg.val_dir)
    ckpt_path = Path(cfg.checkpoints) / CHECKPOINT_NAME

    torch.manual_seed(cfg.seed)
    device = torch.device(cfg.device)
    model = PercepNetModel(arch).to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n_batches = math.ceil(len(epoch_crops(train_data, cfg.seq_frames, cfg.seed, 0)) / cfg.batch)
    total_steps = n_batches * cfg.epochs

    epoch, batch_index, step, history, elapsed_before = 0, 0, 0, [], 0.0
    if cfg.resume and ckpt_path.exists():
        state = torch.load(ckpt_path, weights_only=True, map_location="cpu")
        if state["fingerprint"] != cfg.fingerprint():
            raise ValueError(f"{ckpt_path}: checkpoint is from a different configuration "
                             f"({state['fingerprint']})")
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        torch.set_rng_state(state["torch_rng"])
        epoch, batch_index, step = state["epoch"], state["batch_index"], state["step"]
        history = json.loads(state["history"])
        elapsed_before = state["elapsed_s"]
    elif cfg.init:
        model.load_state_dict(_load_init(cfg.init, arch))  # includes feat_mean/feat_std
    else:
        mean, std = feature_stats(train_data)
        model.set_normalisation(mean, std)
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")  # TF32 matrix products; GRUs use cuDNN

    progress = _Progress(total_steps, cfg.quiet, cfg.progress_every, f"training {cfg.name}",
                         start=step)
    progress.line(f"training {cfg.name}: {len(train_data)} examples "
                  f"({train_data.n_frames / 100 / 3600:.2f} h), {n_batches} batches/epoch, "
                  f"{cfg.epochs} epochs, "
                  + (f"{_threads(cfg)} threads" if device.type == "cpu" else str(device))
                  + (f", resuming at epoch {epoch + 1} batch {batch_index}" if step else ""))
    t_start = time.monotonic()
    deadline = t_start + cfg.max_minutes * 60 if cfg.max_minutes else None
    stopped_early = False
    budget_s = cfg.schedule_minutes * 60 if cfg.schedule_minutes else None
    budget_spent = False
    best: tuple[float, int, dict] | None = None

    def trained_s() -> float:
        return elapsed_before + time.monotonic() - t_start

    def checkpoint() -> None:
        _save_checkpoint(ckpt_path, {
            "fingerprint": cfg.fingerprint(),
            "model": model.state_dict(),
            "optimiser": optimiser.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "epoch": epoch, "batch_index": batch_index, "step": step,
            "history": json.dumps(history),
            "elapsed_s": elapsed_before + time.monotonic() - t_start,
            "feat_mean": model.feat_mean.clone(), "feat_std": model.feat_std.clone(),
        })

    model.train()
    while epoch < cfg.epochs and not stopped_early and not budget_spent:
        crops = epoch_crops(train_data, cfg.seq_frames, cfg.seed, epoch)
        loss_sum, loss_n, t_epoch = 0.0, 0, time.monotonic()
        while batch_index < n_batches:
            part = crops[batch_index * cfg.batch:(batch_index + 1) * cfg.batch]
            feats, gains, strengths, mask = train_data.batch(part, cfg.seq_frames, device)
            if budget_s is None:
                lr = lr_at(step, total_steps, cfg.lr, cfg.lr_min)
            else:
                lr = lr_at(int(trained_s() * 1000), int(budget_s * 1000), cfg.lr, cfg.lr_min)
            for group in optimiser.param_groups:
                group["lr"] = lr
            g_hat, r_hat = model(feats)
            if cfg.loss == "compressed":
                loss = compressed_loss(gains, strengths, g_hat, r_hat, mask,
                                       cfg.strength_weight, cfg.over_weight)
            else:
                loss = percepnet_loss(gains, strengths, g_hat, r_hat, mask, cfg.strength_weight)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimiser.step()
            model.clip_weights()
            batch_index += 1
            step += 1
            loss_sum += float(loss.detach())
            loss_n += 1
            progress.update(step, epoch, cfg.epochs, batch_index, n_batches, loss_sum / loss_n, lr)
            if budget_s is not None and trained_s() >= budget_s:
                budget_spent = True  # this (maybe partial) epoch is validated and exported
                break
            if deadline is not None and time.monotonic() >= deadline and batch_index < n_batches:
                stopped_early = True
                break
        if stopped_early:
            checkpoint()
            progress.line(f"stopped by --max-minutes at epoch {epoch + 1} batch {batch_index}; "
                          f"checkpoint {ckpt_path} (--resume continues)")
            break
        val = evaluate(model, val_data, cfg.seq_frames, cfg.batch)
        if cfg.export_best and (best is None or val["loss"] < best[0]):
            best = (val["loss"], epoch + 1,
                    {k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
        history.append({"epoch": epoch + 1, "train_loss": loss_sum / max(loss_n, 1),
                        "val_loss": val["loss"], "val_gain_loss": val["gain_loss"],
                        "val_gain_mae": val["gain_mae"],
                        "seconds": round(time.monotonic() - t_epoch, 1)})
        progress.line(f"epoch {epoch + 1}/{cfg.epochs}: train loss {history[-1]['train_loss']:.4f} "
                      f"val loss {val['loss']:.4f} (gains {val['gain_loss']:.4f}) "
                      f"val gain MAE {val['gain_mae']:.4f} "
                      f"({_fmt_time(history[-1]['seconds'])})")
        epoch += 1
        batch_index = 0
        checkpoint()
        if deadline is not None and time.monotonic() >= deadline and epoch < cfg.epochs:
            stopped_early = True
            progress.line(f"stopped by --max-minutes after epoch {epoch}; --resume continues")
    progress.close()

    if best is not None:
        model.load_state_dict(best[2])
        progress.line(f"exporting the weights of epoch {best[1]} (lowest validation loss "
                      f"{best[0]:.4f})")
    validation = evaluate(model, val_data, cfg.seq_frames, cfg.batch)
    elapsed = trained_s()
    summary = {
        "completed": epoch >= cfg.epochs or budget_spent,
        "epoch": epoch,
        "step": step,
        "history": history,
        "validation": validation,
        "manifest": None,
    }
    if cfg.export:
        training_info = {
            "trainer": "training.train",
            "completed": summary["completed"],
            "epochs_done": epoch, "epochs_planned": cfg.epochs, "steps": step,
            "batch": cfg.batch, "seq_frames": cfg.seq_frames, "seed": cfg.seed,
            "optimiser": {"name": "AdamW", "lr": cfg.lr, "lr_min": cfg.lr_min,
                          "schedule": ("cosine per step" if budget_s is None else
                                       f"cosine over {cfg.schedule_minutes:g} min of training"),
                          "weight_decay": cfg.weight_decay, "grad_clip_norm": cfg.grad_clip},
            "loss": ({"gamma": GAMMA, "c4": C4, "strength_weight": cfg.strength_weight}
                     if cfg.loss == "percepnet" else
                     {"name": "compressed", "power": COMPRESSED_POWER, "vad_weight": VAD_WEIGHT,
                      "over_weight": cfg.over_weight, "strength_weight": cfg.strength_weight,
                      "validation_loss": "the spec loss (gamma 0.5, C4 10), comparable "
                                         "across runs"}),
            "init": _init_summary(cfg.init),
            "train_data": {"dir": str(cfg.train_dir), "files": train_data.files,
                           "examples": len(train_data), "frames": train_data.n_frames,
                           "meta": _meta_summary(train_data.meta)},
            "val_data": {"dir": str(cfg.val_dir), "files": val_data.files,
                         "examples": len(val_data), "frames": val_data.n_frames,
                         "meta": _meta_summary(val_data.meta)},
            "history": history,
            "seconds": round(elapsed, 1),
            "threads": _threads(cfg),
            "exported_epoch": best[1] if best is not None else epoch,
            "device": _device_name(device),
            **cfg.extra,
        }
        model.eval()
        model.cpu()
        manifest = write_model(model, cfg.out_dir, cfg.name, training=training_info,
                               validation={k: validation[k] for k in
                                           ("loss", "gain_loss", "strength_loss", "gain_mae",
                                            "frames", "examples")})
        summary["manifest"] = str(manifest)
        progress.line(f"exported {manifest} (val loss {validation['loss']:.4f}, "
                      f"gain MAE {validation['gain_mae']:.4f}, {_fmt_time(elapsed)})")
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.split("\n")[0])
    p.add_argument("--train", required=True, nargs="+",
                   help="training shard directory (several: their examples are combined)")
    p.add_argument("--val", required=True, help="validation shard directory")
    p.add_argument("--arch", choices=sorted(ARCHITECTURES), default="small")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq-frames", type=int, default=1000, help="frames per crop (100 = 1 s)")
    p.add_argument("--out", default="weights", help="directory for <name>.npz/.json")
    p.add_argument("--name", default=None, help="model name (default: the arch)")
    p.add_argument("--checkpoints", default=None,
                   help="checkpoint directory (default: ~/.cache/percepnet/checkpoints/<name>)")
    p.add_argument("--resume", action="store_true", help="continue from <checkpoints>/last.pt")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="stop (checkpoint + export) after this much training time")
    p.add_argument("--schedule-minutes", type=float, default=None, metavar="M",
                   help="cosine learning rate over M minutes of training time (not over the "
                        "steps of --epochs, which becomes an upper bound); the run ends, "
                        "validated and exported, when they are spent")
    p.add_argument("--export-best", action="store_true",
                   help="export the epoch with the lowest validation loss, not the last")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lr-min", type=float, default=1e-5)
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: all cores; use fewer on a busy machine, "
                        "oversubscribed threads slow training down many times)")
    p.add_argument("--init", default=None, metavar="CHECKPOINT",
                   help="fine-tune: start from this checkpoint's weights, or an exported "
                        "model's (weights/NAME.json), same architecture, with a fresh "
                        "optimiser and learning-rate schedule")
    p.add_argument("--strength-weight", type=float, default=1.0,
                   help="weight of the comb-strength term in the loss (default: 1, the paper's)")
    p.add_argument("--loss", choices=LOSSES, default="percepnet",
                   help="percepnet: the spec's gain loss (default); compressed: power-0.25 "
                        "gain loss weighted by speech activity plus an over-attenuation "
                        "penalty (against over-suppression of clean and high-SNR speech)")
    p.add_argument("--over-weight", type=float, default=1.0,
                   help="weight of the over-attenuation penalty of --loss compressed")
    p.add_argument("--device", default="cpu",
                   help="torch device: cpu (default), cuda, cuda:N; 'auto' picks cuda when "
                        "one is available")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    if a.device == "auto":
        a.device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        torch.device(a.device)
    except RuntimeError as exc:
        p.error(f"--device: {exc}")
    if torch.device(a.device).type == "cuda" and not torch.cuda.is_available():
        p.error(f"--device {a.device}: torch sees no CUDA device on this machine")
    if not 0.0 <= a.strength_weight <= 10.0:
        p.error("--strength-weight must be within 0..10")
    name = a.name or a.arch
    cfg = TrainConfig(
        train_dir=os.pathsep.join(a.train), val_dir=a.val, arch=a.arch, epochs=a.epochs, batch=a.batch,
        seq_frames=a.seq_frames, out_dir=a.out, name=name,
        checkpoints=a.checkpoints or str(Path.home() / ".cache" / "percepnet" / "checkpoints" / name),
        resume=a.resume, max_minutes=a.max_minutes, seed=a.seed, lr=a.lr, lr_min=a.lr_min,
        threads=a.threads, quiet=a.quiet, init=a.init,
        strength_weight=a.strength_weight, device=a.device, loss=a.loss,
        over_weight=a.over_weight,
        schedule_minutes=a.schedule_minutes, export_best=a.export_best)
    summary = train(cfg)
    return 0 if summary["manifest"] else 1


if __name__ == "__main__":
    sys.exit(main())
