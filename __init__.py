"""PercepNet Desktop: real-time fullband noise and reverberation suppression.

Package map (each maps to a top-level folder of the repository):

- ``percepnet.dsp``: pure frame-based signal processing (framing, ERB bands, pitch, comb
  filter, strengths, postfilter, features and targets, streaming processor). Imports neither
  Qt nor sounddevice.
- ``percepnet.app``: command line, file I/O, (later) the audio engine, devices and routing.
- ``percepnet.ui``: the PyQt6 + pyqtgraph window (later).
- ``percepnet.weights``: trained model data and its manifest (later).
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
