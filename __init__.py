"""PercepNet Desktop: real-time fullband noise and reverberation suppression.

Package map (each maps to a top-level folder or file of the repository):

- ``percepnet.dsp``: pure frame-based signal processing (framing, ERB bands, pitch, comb
  filter, strengths, postfilter, features and targets, streaming processor, the int8 network
  runtime and the ``Denoiser``). Imports neither Qt nor sounddevice.
- ``percepnet.app``: the real-time audio engine, devices and routing, the virtual
  microphone (PulseAudio/PipeWire, BlackHole, VB-Cable), settings, model loading and
  offline file processing.
- ``percepnet.ui``: the PyQt6 + pyqtgraph window (live spectrograms, band gains, pitch
  track, controls, virtual-microphone panel).
- ``percepnet.weights``: the shipped trained models (int8 ``.npz`` weights and ``.json``
  manifests; see ``weights/README.md``).
- ``percepnet.cli`` (``cli.py``, run by ``__main__.py``): the ``percepnet`` command.

``training/`` (not part of the installed package) builds the training data and trains and
exports the models. How the signal chain works: ``docs/algorithm.md``; the virtual microphone
and the sound servers: ``docs/sound-servers.md``.
"""
import os as _os

__version__ = "0.1.0"

# Numba's on-disk cache goes to the per-user cache directory, so an installed (read-only)
# package still caches its kernels; it must be set before numba is first imported. numba
# invalidates a cached function when its own file changes, not when a kernel it calls from
# another module does, so the folder is keyed on the contents of all dsp/ sources: any edit
# or upgrade starts a fresh cache (a few MB; older folders are left for the user to clear).
if "NUMBA_CACHE_DIR" not in _os.environ:
    try:
        import hashlib as _hashlib

        import platformdirs as _platformdirs

        _digest = _hashlib.sha1()
        _dsp = _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "dsp")
        for _name in sorted(_os.listdir(_dsp)) if _os.path.isdir(_dsp) else ():
            if _name.endswith(".py"):
                with open(_os.path.join(_dsp, _name), "rb") as _f:
                    _digest.update(_name.encode() + b"\0" + _f.read())
        _os.environ["NUMBA_CACHE_DIR"] = _os.path.join(
            _platformdirs.user_cache_dir("percepnet", appauthor=False), "numba",
            _digest.hexdigest()[:16])
    except (ImportError, OSError):  # pragma: no cover - fall back to numba's default
        pass
