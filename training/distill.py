"""Ensemble distillation: relabel training mixtures with the averaged gains of trained models.

Why: on the validation speakers the average of the band gains of two independently trained
models scores far above either model alone (PESQ-WB on the acceptance set: `small` 1.83,
`full` 1.86, their average 1.92), while running two networks per frame costs their sum in
CPU. The models' errors on unseen speakers are partly independent, so the average is a
better target than either: this module writes a copy of a shard directory whose ``gains``
are a blend of the mixture's ideal gains and the teachers' mean prediction, and
``training.train --init`` then fine-tunes one `small` network on it (``make train``, stage 4).

Per example and band, where the band mask is on:

    target = (1 - teacher_weight) * ideal_gain + teacher_weight * mean_k teacher_k(features)

Outside the mask (above the clip's bandwidth) the ideal gain is kept; the loss ignores it
anyway. Features, comb strengths and masks are copied unchanged. Teachers are shipped models
(``<name>.json`` + ``.npz``), run as float PyTorch models with their dequantised int8 weights
(``percepnet.app.models.load_model`` checks them, ``training.export.model_from_arrays``), so
they compute what the runtime computes.

Cost on the 2-core CPU: 3000 examples of 10 s with `small` + `full` as teachers took 15 min
(two torch threads, 0.3 s per example).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

__all__ = ["teacher_mean", "blend_targets", "distill_shards", "main"]

#: Default share of the teachers' mean in the target (the rest is the ideal gain).
TEACHER_WEIGHT = 0.7


def teacher_mean(models, features: np.ndarray, batch: int = 32) -> np.ndarray:
    """Mean band gains of ``models`` (float ``PercepNetModel``s in eval mode).

    features: float32 [N, T, 70] raw features -> float32 [N, T, 34] in [0, 1].
    """
    import torch

    out = np.zeros(features.shape[:2] + (models[0].arch["n_bands"],), np.float32)
    with torch.no_grad():
        for start in range(0, features.shape[0], batch):
            x = torch.from_numpy(np.ascontiguousarray(features[start:start + batch],
                                                      dtype=np.float32))
            acc = None
            for m in models:
                g, _ = m(x)
                acc = g if acc is None else acc + g
            out[start:start + batch] = (acc / len(models)).numpy()
    return out


def blend_targets(ideal: np.ndarray, teacher: np.ndarray, mask: np.ndarray,
                  teacher_weight: float) -> np.ndarray:
    """(1 - w) ideal + w teacher where mask > 0, ideal elsewhere; all [..., 34], float32."""
    if not 0.0 <= teacher_weight <= 1.0:
        raise ValueError(f"teacher_weight must be in [0, 1], got {teacher_weight}")
    blended = (1.0 - teacher_weight) * ideal + teacher_weight * teacher
    return np.where(mask > 0, blended, ideal).astype(np.float32)


def distill_shards(src: str | Path, out: str | Path, teachers: list[str | Path],
                   teacher_weight: float = TEACHER_WEIGHT, batch: int = 32,
                   threads: int | None = None, progress: bool = False) -> dict:
    """Write ``out/shard-*.npz`` (the shards of ``src`` with blended gains) and
    ``out/meta.json``; returns the meta dict. Shards already written with the same teachers
    and weight are kept (an interrupted run continues)."""
    import torch

    from percepnet.app.models import load_model
    from training.export import model_from_arrays

    if not 0.0 <= teacher_weight <= 1.0:
        raise ValueError(f"teacher_weight must be in [0, 1], got {teacher_weight}")
    src, out = Path(src), Path(out)
    files = sorted(src.glob("shard-*.npz"))
    if not files:
        raise FileNotFoundError(f"{src}: no shard-*.npz files")
    if not teachers:
        raise ValueError("at least one teacher model is needed")
    loaded = [load_model(t) for t in teachers]
    # an ensemble teacher (weights/pair) counts as its members
    models = [model_from_arrays(p.weights, p.arch) for m in loaded for p in (m.members or (m,))]
    src_meta_path = src / "meta.json"
    src_meta = json.loads(src_meta_path.read_text()) if src_meta_path.exists() else {}
    teacher_info = [{"name": m.name, "manifest": str(m.path),
                     "sha256": (m.manifest["sha256"] if not m.members
                                else [p.manifest["sha256"] for p in m.members])}
                    for m in loaded]
    recipe = {"teachers": teacher_info, "teacher_weight": teacher_weight,
              "source": str(src)}
    out.mkdir(parents=True, exist_ok=True)
    done_path = out / "distill-progress.json"
    done = json.loads(done_path.read_text()) if done_path.exists() else {}
    if done.get("recipe") != recipe:
        done = {"recipe": recipe, "files": []}

    threads_before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    stats = {"abs_shift": 0.0, "mask": 0.0}
    bar = tqdm(total=len(files), desc="distill", unit="shard", disable=not progress)
    try:
        for f in files:
            if f.name in done["files"] and (out / f.name).exists():
                bar.update(1)
                continue
            with np.load(f, allow_pickle=False) as z:
                arrays = {key: np.asarray(z[key]) for key in z.files}
            feats = np.nan_to_num(arrays["features"].astype(np.float32))
            mask = arrays["mask"]
            teacher = teacher_mean(models, feats, batch)
            ideal = np.nan_to_num(arrays["gains"].astype(np.float32))
            arrays["gains"] = blend_targets(ideal, teacher, mask, teacher_weight)
            m = mask > 0
            stats["abs_shift"] += float(np.abs(arrays["gains"] - ideal)[m].sum())
            stats["mask"] += float(m.sum())
            tmp = out / (f.stem + ".tmp.npz")
            np.savez(tmp, **arrays)
            os.replace(tmp, out / f.name)
            done["files"].append(f.name)
            done_path.write_text(json.dumps(done))
            bar.update(1)
    finally:
        bar.close()
        torch.set_num_threads(threads_before)
    meta = dict(src_meta)
    meta["distilled"] = {**recipe,
                         "mean_abs_target_shift": (stats["abs_shift"] / stats["mask"]
                                                   if stats["mask"] else None)}
    meta["shards"] = src_meta.get("shards", [{"file": f.name} for f in files])
    (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    return meta


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m training.distill",
        description="Relabel a shard directory with the averaged gains of teacher models "
                    "(ensemble distillation targets for training.train).")
    p.add_argument("--src", required=True, help="shard directory (training.data output)")
    p.add_argument("--out", required=True, help="directory for the relabelled shards")
    p.add_argument("--teacher", action="append", required=True, metavar="MODEL",
                   help="an installed model name or a manifest/.npz path (repeat for several; "
                        "gains are averaged)")
    p.add_argument("--teacher-weight", type=float, default=TEACHER_WEIGHT,
                   help="share of the teachers' mean in the target, 0-1 "
                        f"(default {TEACHER_WEIGHT})")
    p.add_argument("--batch", type=int, default=32, help="examples per forward pass")
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    args = p.parse_args(argv)
    from percepnet.app.models import ModelError

    try:
        meta = distill_shards(args.src, args.out, args.teacher, args.teacher_weight,
                              args.batch, args.threads, progress=True)
    except (FileNotFoundError, ValueError, KeyError, ModelError) as e:
        print(f"training.distill: {e}", file=sys.stderr)
        return 2
    shift = meta["distilled"]["mean_abs_target_shift"]
    print(f"wrote {args.out}: teachers {[t['name'] for t in meta['distilled']['teachers']]}, "
          f"weight {args.teacher_weight}"
          + (f", mean |target shift| {shift:.3f}" if shift is not None else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
