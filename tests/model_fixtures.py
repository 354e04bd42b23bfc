"""Small random-weight models for runtime tests (no trained model needed, no torch)."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from percepnet.dsp.constants import N_BANDS, N_FEATURES
from percepnet.dsp.network import random_weights

TINY_ARCH = {
    "n_features": N_FEATURES, "n_bands": N_BANDS, "dense": 16, "conv1": 32, "conv1_kernel": 5,
    "conv2": 32, "conv2_kernel": 3, "gru": [24, 24], "gru_gain": 24, "gru_strength": 16,
}


def tiny_model(seed: int = 0) -> SimpleNamespace:
    """An in-memory model object (``.arch``, ``.weights``) as the Denoiser takes it."""
    return SimpleNamespace(arch=TINY_ARCH, weights=random_weights(TINY_ARCH, seed=seed))


def write_tiny_model(directory: Path, name: str = "tiny", seed: int = 0) -> Path:
    """Write a tiny random model as .npz + .json; returns the manifest path."""
    from training.export import write_model_arrays

    return write_model_arrays(random_weights(TINY_ARCH, seed=seed), TINY_ARCH, directory, name,
                              training={"note": "random weights for tests"})


def write_tiny_ensemble(directory: Path, name: str = "duo", seeds=(0, 1)) -> Path:
    """Write tiny random members ``<name>-a``, ``<name>-b`` and their ensemble manifest
    (``training.ensemble``, no validation figures); returns the ensemble's manifest path."""
    from training.ensemble import write_ensemble

    members = []
    for suffix, seed in zip("abcdefgh", seeds):
        write_tiny_model(directory, f"{name}-{suffix}", seed=seed)
        members.append(f"{name}-{suffix}")
    return write_ensemble(directory, name, members)
