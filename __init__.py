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
# package still caches its kernels. It must be set before numba is first imported.
if "NUMBA_CACHE_DIR" not in _os.environ:
    try:
        import platformdirs as _platformdirs

        _os.environ["NUMBA_CACHE_DIR"] = _os.path.join(
            _platformdirs.user_cache_dir("percepnet", appauthor=False), "numba"
        )
    except ImportError:  # pragma: no cover - platformdirs is a hard dependency
        pass
