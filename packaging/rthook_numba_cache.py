"""PyInstaller runtime hook: make sure numba has a writable cache directory.

Runs in the frozen app before ``percepnet`` is imported. ``percepnet/__init__.py`` points
``NUMBA_CACHE_DIR`` at the per-user cache directory (keyed on the ``dsp/*.py`` sources, which
the spec collects as source files); numba's ``cache=True`` raises RuntimeError at import time
when no cache location can be written, and the bundle itself may be read-only. When the user
cache directory cannot be written (read-only or missing HOME, a sandbox), the cache goes to
a per-user folder in the temporary directory instead, keyed on the same sources (compiled
again after a reboot, but the app starts). An explicit ``NUMBA_CACHE_DIR`` is left alone.
"""
import hashlib
import os
import sys
import tempfile


def _writable(path):
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path):
            pass
        return True
    except OSError:
        return False


def _fallback_dir():
    digest = hashlib.sha1()
    dsp = os.path.join(getattr(sys, "_MEIPASS", ""), "percepnet", "dsp")
    for name in sorted(os.listdir(dsp)) if os.path.isdir(dsp) else ():
        if name.endswith(".py"):
            with open(os.path.join(dsp, name), "rb") as f:
                digest.update(name.encode() + b"\0" + f.read())
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return os.path.join(tempfile.gettempdir(), f"percepnet-numba-{uid}", digest.hexdigest()[:16])


if "NUMBA_CACHE_DIR" not in os.environ:
    try:
        import platformdirs

        _user = os.path.join(platformdirs.user_cache_dir("percepnet", appauthor=False), "numba")
    except Exception:  # noqa: BLE001 - any failure means: use the fallback
        _user = None
    if _user is None or not _writable(_user):
        os.environ["NUMBA_CACHE_DIR"] = _fallback_dir()
