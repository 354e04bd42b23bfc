"""The training tests need the training extras (``pip install -e '.[train,data]'``: torch,
scipy, pyroomacoustics, G722, tqdm). Each training test module calls
:func:`require_training_extras` before importing them: without the extras it is skipped with
one reason, so a runtime-only install still runs the rest of the suite. ``make test`` installs
the extras and sets ``PERCEPNET_TEST_STRICT=1``, which turns a missing extra into a loud error
instead."""
from __future__ import annotations

import importlib
import os

import pytest

#: import names of the training extras (the G.722 decoder's module is ``G722``)
TRAINING_EXTRAS = ("torch", "scipy", "pyroomacoustics", "G722", "tqdm")


def missing_training_extras() -> list[str]:
    missing = []
    for name in TRAINING_EXTRAS:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


def require_training_extras() -> None:
    """Skip the calling test module (or fail, under ``PERCEPNET_TEST_STRICT=1``) when an
    extra is missing."""
    missing = missing_training_extras()
    if not missing:
        return
    reason = (f"training tests need the training extras (missing: {', '.join(missing)}); "
              "install them with: pip install -e '.[train,data]'")
    if os.environ.get("PERCEPNET_TEST_STRICT") == "1":
        pytest.fail(f"PERCEPNET_TEST_STRICT=1: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)
