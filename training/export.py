"""Export a trained PyTorch model to the runtime format: int8 ``.npz`` plus JSON manifest.

The ``.npz`` holds int8 weight matrices with per-row float32 scales and float32 biases
(layout in ``percepnet.dsp.network``), loadable with ``allow_pickle=False``; the manifest
records what the runtime checks before using it (format version, frame layout, band edges,
architecture, sha256) and what a reader wants to know (training data, validation figures).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from percepnet.dsp.bands import BAND_EDGES
from percepnet.dsp.constants import HOP_SIZE, LOOKAHEAD_FRAMES, SAMPLE_RATE_HZ, WINDOW_SIZE
from percepnet.dsp.model_config import n_weights
from percepnet.dsp.network import dequantize_weights, quantize_rows

__all__ = ["FORMAT_VERSION", "runtime_layout", "model_to_arrays", "model_from_arrays", "write_model",
           "write_model_arrays"]

FORMAT_VERSION = 1


def _np(t) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float64)


def _matrix(out: dict, name: str, w: np.ndarray, b: np.ndarray) -> None:
    q, scale = quantize_rows(w)
    out[f"{name}.w_q"], out[f"{name}.w_scale"] = q, scale
    out[f"{name}.b"] = b.astype(np.float32)


def _gru(out: dict, name: str, gru) -> None:
    for part, w in (("wih", gru.weight_ih_l0), ("whh", gru.weight_hh_l0)):
        q, scale = quantize_rows(_np(w))
        out[f"{name}.{part}_q"], out[f"{name}.{part}_scale"] = q, scale
    out[f"{name}.bih"] = _np(gru.bias_ih_l0).astype(np.float32)
    out[f"{name}.bhh"] = _np(gru.bias_hh_l0).astype(np.float32)


def _conv_matrix(conv) -> np.ndarray:
    # torch (C_out, C_in, k) -> runtime (C_out, k*C_in): column j*C_in + c is tap j (oldest
    # first) of input channel c.
    w = _np(conv.weight)
    return w.transpose(0, 2, 1).reshape(w.shape[0], -1)


def model_to_arrays(model) -> dict:
    """The runtime's weight dict of a ``training.model.PercepNetModel``."""
    out = {
        "feat_mean": _np(model.feat_mean).astype(np.float32),
        "feat_std": _np(model.feat_std).astype(np.float32),
    }
    _matrix(out, "dense", _np(model.dense.weight), _np(model.dense.bias))
    _matrix(out, "conv1", _conv_matrix(model.conv1), _np(model.conv1.bias))
    _matrix(out, "conv2", _conv_matrix(model.conv2), _np(model.conv2.bias))
    for i, gru in enumerate(model.grus):
        _gru(out, f"gru{i}", gru)
    _gru(out, "gru_gain", model.gru_gain)
    _gru(out, "gru_strength", model.gru_strength)
    _matrix(out, "gain_head", _np(model.gain_head.weight), _np(model.gain_head.bias))
    _matrix(out, "strength_head", _np(model.strength_head.weight), _np(model.strength_head.bias))
    return out


def model_from_arrays(arrays, arch: dict):
    """The inverse of ``model_to_arrays``: a float ``PercepNetModel`` (eval mode) whose
    weights are the dequantised int8 rows (``percepnet.dsp.network.dequantize_weights``), so
    it computes what the runtime does up to float rounding (max gain difference ~0.01 against
    the runtime's u8 activations)."""
    import torch

    from training.model import PercepNetModel

    model = PercepNetModel(arch)
    fw = dequantize_weights(arrays)

    def t(key: str):
        return torch.from_numpy(fw[key].astype(np.float32))

    with torch.no_grad():
        model.feat_mean.copy_(t("feat_mean"))
        model.feat_std.copy_(t("feat_std"))
        for name in ("dense", "gain_head", "strength_head"):
            layer = getattr(model, name)
            layer.weight.copy_(t(f"{name}.w"))
            layer.bias.copy_(t(f"{name}.b"))
        for name in ("conv1", "conv2"):
            conv = getattr(model, name)
            c_out, c_in, k = conv.weight.shape
            # runtime (C_out, k*C_in) -> torch (C_out, C_in, k); see _conv_matrix
            conv.weight.copy_(t(f"{name}.w").reshape(c_out, k, c_in).permute(0, 2, 1))
            conv.bias.copy_(t(f"{name}.b"))
        grus = [(f"gru{i}", g) for i, g in enumerate(model.grus)]
        grus += [("gru_gain", model.gru_gain), ("gru_strength", model.gru_strength)]
        for name, gru in grus:
            gru.weight_ih_l0.copy_(t(f"{name}.wih"))
            gru.weight_hh_l0.copy_(t(f"{name}.whh"))
            gru.bias_ih_l0.copy_(t(f"{name}.bih"))
            gru.bias_hh_l0.copy_(t(f"{name}.bhh"))
    return model.eval()


def write_model(model, directory: str | Path, name: str, *, training: dict | None = None,
                validation: dict | None = None) -> Path:
    """Write a PyTorch model as ``<directory>/<name>.npz`` + ``<name>.json``; returns the
    manifest path."""
    return write_model_arrays(model_to_arrays(model), model.arch, directory, name,
                              training=training, validation=validation)


def runtime_layout() -> dict:
    """The manifest fields the runtime checks a model against: rate, frame and band layout."""
    return {"sample_rate_hz": SAMPLE_RATE_HZ, "hop_size": HOP_SIZE, "window_size": WINDOW_SIZE,
            "lookahead_frames": LOOKAHEAD_FRAMES,
            "band_edges_bins": [int(e) for e in BAND_EDGES]}


def write_model_arrays(arrays: dict, arch: dict, directory: str | Path, name: str, *,
                       training: dict | None = None, validation: dict | None = None) -> Path:
    """Write runtime weight arrays (``percepnet.dsp.network`` layout) and their manifest."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    npz = directory / f"{name}.npz"
    np.savez(npz, **arrays)
    manifest = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "weights_file": npz.name,
        "sha256": hashlib.sha256(npz.read_bytes()).hexdigest(),
        "architecture": arch,
        "n_weights": n_weights(arch),
        "quantisation": "int8 weights, per-row symmetric float32 scales, float32 biases",
        **runtime_layout(),
        "features": "percepnet.dsp.features, 70 values; standardised with feat_mean/feat_std",
        "training": training or {},
        "validation": validation or {},
    }
    path = directory / f"{name}.json"
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path
