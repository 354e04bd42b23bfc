"""Write an ensemble model: a manifest naming two shipped networks whose outputs are averaged.

Why: the errors of independently trained networks on unseen speakers are partly
independent, so the mean of their band gains is a better estimate than either (our idea;
the paper says nothing about ensembles). Distilling that mean back into one network
recovers only part of it (each round of ``training.distill`` gained less: +0.02, then
+0.01 PESQ-WB), so the default model runs both networks on the same features and averages
their gains and comb strengths (``percepnet.dsp.denoiser``): twice the network cost,
still a few % of one core.

The manifest (``<dir>/<name>.json``, no weights file of its own) records each member's name
and weights sha256 (``percepnet.app.models`` refuses a member whose weights changed), the
members' training summaries, and validation figures of the averaged float models on the
validation shards, computed exactly as ``training.train`` computes a single model's.

    python -m training.ensemble --dir weights --name pair --member small --member small-gpu \\
        --val ~/.cache/percepnet/train-data/val
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from training.export import FORMAT_VERSION, model_from_arrays, runtime_layout

__all__ = ["mean_of_models", "write_ensemble", "main"]


def mean_of_models(models):
    """A torch module running float ``models`` side by side; its outputs are their mean
    gains and mean strengths (what the runtime computes for an ensemble)."""
    import torch

    class MeanOfModels(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.members = torch.nn.ModuleList(models)

        def forward(self, x):
            outs = [m(x) for m in self.members]
            return (sum(g for g, _ in outs) / len(outs), sum(r for _, r in outs) / len(outs))

    return MeanOfModels()


def _member_summary(model) -> dict:
    t = model.manifest.get("training", {})
    keep = ("trainer", "completed", "epochs_done", "steps", "batch", "seed", "seconds",
            "threads", "device", "exported_epoch", "note")
    return {"name": model.path.stem, "sha256": model.manifest["sha256"],
            "architecture": model.arch, "n_weights": int(model.manifest.get("n_weights", 0)),
            "training": {k: t[k] for k in keep if k in t},
            "validation_as_shipped": model.manifest.get("validation", {})}


def write_ensemble(directory: str | Path, name: str, members: list[str],
                   val_dir: str | Path | None = None, seq_frames: int = 1000,
                   batch: int = 16) -> Path:
    """Write ``<directory>/<name>.json`` for ``members`` (model names in ``directory``);
    with ``val_dir``, add validation figures of the members and of their mean. Returns the
    manifest path (loadable with ``percepnet.app.models.load_model``)."""
    from percepnet.app.models import MAX_ENSEMBLE_MEMBERS, load_model

    directory = Path(directory)
    if not 1 <= len(members) <= MAX_ENSEMBLE_MEMBERS:
        raise ValueError(f"an ensemble holds 1 to {MAX_ENSEMBLE_MEMBERS} members, got {len(members)}")
    if name in members:
        raise ValueError(f"the ensemble {name!r} cannot be its own member")
    loaded = [load_model(directory / f"{m}.json") for m in members]
    for m in loaded:
        if m.members:
            raise ValueError(f"{m.name}: an ensemble cannot be a member")
    validation: dict = {}
    if val_dir is not None:
        from training.train import ShardSet, evaluate

        data = ShardSet(val_dir)
        floats = [model_from_arrays(m.weights, m.arch) for m in loaded]
        validation = evaluate(mean_of_models(floats), data, seq_frames, batch)
        validation["data"] = str(val_dir)
        validation["members"] = {m.path.stem: evaluate(f, data, seq_frames, batch)
                                 for m, f in zip(loaded, floats)}
    manifest = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "kind": "ensemble",
        "members": [{"name": m.path.stem, "sha256": m.manifest["sha256"]} for m in loaded],
        "combine": "mean of the members' band gains and comb strengths, before the band "
                   "smoothing (percepnet.dsp.denoiser)",
        "n_weights": sum(int(m.manifest.get("n_weights", 0)) for m in loaded),
        **runtime_layout(),
        "training": {"completed": all(m.manifest.get("training", {}).get("completed") is True
                                      for m in loaded),
                     "members": [_member_summary(m) for m in loaded]},
        "validation": validation,
    }
    path = directory / f"{name}.json"
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.ensemble", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", default="weights", help="folder holding the members (default weights)")
    p.add_argument("--name", required=True, help="the ensemble's model name")
    p.add_argument("--member", action="append", required=True,
                   help="a member model name in --dir (give it twice)")
    p.add_argument("--val", default=None, help="validation shard folder for the figures")
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    a = p.parse_args(argv)
    if a.threads:
        import torch
        torch.set_num_threads(a.threads)
    path = write_ensemble(a.dir, a.name, a.member, a.val)
    v = json.loads(path.read_text())["validation"]
    extra = f" (validation loss {v['loss']:.4f}, gain MAE {v['gain_mae']:.4f})" if v else ""
    print(f"wrote {path}{extra}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
