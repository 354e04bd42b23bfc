"""Finding, checking and loading model files (``weights/<name>.json`` + ``<name>.npz``).

A model is a JSON manifest next to an ``.npz`` of int8 weights (written by
``training/export.py``). Loading checks everything the runtime relies on and reports a
problem as :class:`ModelError` with a one-line message: unreadable or malformed manifest,
unsupported format version, another frame or band layout, checksum mismatch, arrays that
cannot be loaded without pickle, wrong shapes or non-finite values.

An *ensemble* model is a manifest with ``"kind": "ensemble"`` and no weights of its own:
``"members"`` lists two models in the same folder by name and the sha256 of their weights;
the Denoiser runs both networks on the same features and uses the mean of their outputs
(``percepnet.dsp.denoiser``). Loading it loads and checks every member, and refuses a member
whose weights are not the ones the ensemble was made with.
"""
from __future__ import annotations

import hashlib
import json
import zipfile
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from percepnet.dsp.bands import BAND_EDGES
from percepnet.dsp.constants import HOP_SIZE, LOOKAHEAD_FRAMES, SAMPLE_RATE_HZ, WINDOW_SIZE
from percepnet.dsp.network import validate_weights

__all__ = ["ModelError", "Model", "load_model", "installed_models", "default_model_name",
           "SUPPORTED_FORMAT", "DEFAULT_MODEL", "MAX_ENSEMBLE_MEMBERS"]

SUPPORTED_FORMAT = 1
#: The model used when none is named: the ensemble ``weights/pair.json`` (``small`` +
#: ``small-gpu``, two independently trained `small` networks; weights/README.md).
DEFAULT_MODEL = "pair"
#: How many networks an ensemble may hold (what ``percepnet.dsp.denoiser`` runs per frame).
MAX_ENSEMBLE_MEMBERS = 2


class ModelError(Exception):
    """A model file that cannot be used, with a message fit for the user."""


@dataclass(frozen=True)
class Model:
    """A loaded model. ``arch``/``weights``: the network (empty for an ensemble);
    ``members``: an ensemble's member models (empty for a plain model)."""
    name: str
    arch: dict
    weights: dict
    manifest: dict
    path: Path
    members: tuple = ()


def _weights_dir() -> Path:
    return Path(str(resources.files("percepnet.weights")))


def installed_models() -> list[str]:
    """Names of the models shipped in ``percepnet/weights``."""
    return sorted(p.stem for p in _weights_dir().glob("*.json"))


def default_model_name() -> str:
    """The shipped default model, or a clear error while none is installed."""
    if (_weights_dir() / f"{DEFAULT_MODEL}.json").exists():
        return DEFAULT_MODEL
    raise ModelError("no trained model is installed yet (percepnet/weights/ is empty); "
                     "pass --model PATH to a .json/.npz model")


def _manifest_path(name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".json", ".npz") or p.exists() or len(p.parts) > 1:
        return p.with_suffix(".json")
    shipped = _weights_dir() / f"{p.name}.json"
    if not shipped.exists():
        names = ", ".join(installed_models()) or "none"
        raise ModelError(f"no model named {p.name!r} (installed: {names}); give a path to a .json/.npz")
    return shipped


def load_model(name_or_path: str | Path, *, _member_of: Path | None = None) -> Model:
    """Load and check a model by installed name or by path to its ``.json`` or ``.npz``."""
    mpath = _manifest_path(name_or_path)
    try:
        manifest = json.loads(mpath.read_text())
    except FileNotFoundError:
        raise ModelError(f"{mpath}: model manifest not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{mpath}: unreadable model manifest ({exc})") from None
    if not isinstance(manifest, dict):
        raise ModelError(f"{mpath}: the manifest is not a JSON object")
    version = manifest.get("format_version")
    if type(version) is not int or version != SUPPORTED_FORMAT:  # JSON true == 1 in Python
        raise ModelError(f"{mpath}: model format version {version!r} is not supported "
                         f"(this version reads {SUPPORTED_FORMAT})")
    expected = {"sample_rate_hz": SAMPLE_RATE_HZ, "hop_size": HOP_SIZE,
                "window_size": WINDOW_SIZE, "lookahead_frames": LOOKAHEAD_FRAMES}
    for key, value in expected.items():
        if manifest.get(key) != value:
            raise ModelError(f"{mpath}: model made for {key} = {manifest.get(key)!r}, "
                             f"this runtime uses {value}")
    if list(manifest.get("band_edges_bins", [])) != [int(e) for e in BAND_EDGES]:
        raise ModelError(f"{mpath}: model made for another band layout")
    if manifest.get("kind") == "ensemble":
        if _member_of is not None:
            raise ModelError(f"{_member_of}: ensemble member {mpath.stem!r} is itself an ensemble")
        return _load_ensemble(mpath, manifest)
    arch = manifest.get("architecture")
    if not isinstance(arch, dict):
        raise ModelError(f"{mpath}: manifest has no architecture")
    npz = mpath.parent / str(manifest.get("weights_file", ""))
    try:
        blob = npz.read_bytes()
    except OSError as exc:
        raise ModelError(f"{npz}: cannot read the weights ({exc.strerror or exc})") from None
    if hashlib.sha256(blob).hexdigest() != manifest.get("sha256"):
        raise ModelError(f"{npz}: checksum mismatch (the weights file is damaged or not the one "
                         "its manifest describes)")
    try:
        with np.load(npz, allow_pickle=False) as data:
            weights = {k: data[k] for k in data.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise ModelError(f"{npz}: cannot load the weights ({exc})") from None
    try:
        validate_weights(arch, weights)
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{npz}: {exc}") from None
    return Model(str(manifest.get("name", mpath.stem)), arch, weights, manifest, mpath)


def _load_ensemble(mpath: Path, manifest: dict) -> Model:
    members = manifest.get("members")
    if (not isinstance(members, list) or not 1 <= len(members) <= MAX_ENSEMBLE_MEMBERS
            or not all(isinstance(m, dict) for m in members)):
        raise ModelError(f"{mpath}: an ensemble lists 1 to {MAX_ENSEMBLE_MEMBERS} members "
                         "as {name, sha256} objects")
    loaded = []
    for entry in members:
        name = entry.get("name")
        if not isinstance(name, str) or not name or Path(name).name != name:
            raise ModelError(f"{mpath}: ensemble member {name!r} is not a model name")
        member_path = mpath.parent / f"{name}.json"
        if not member_path.exists():
            raise ModelError(f"{mpath}: ensemble member {name!r} not found ({member_path})")
        member = load_model(member_path, _member_of=mpath)
        if member.manifest.get("sha256") != entry.get("sha256"):
            raise ModelError(f"{mpath}: ensemble member {name!r} has other weights than the "
                             "ensemble was made with (its sha256 differs)")
        loaded.append(member)
    return Model(str(manifest.get("name", mpath.stem)), {}, {}, manifest, mpath, tuple(loaded))
