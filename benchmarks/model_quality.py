"""Former name of :mod:`benchmarks.quality` (one implementation): same options.

    .venv/bin/python -m benchmarks.model_quality [--model weights/small.json] [--items 40]
"""
from __future__ import annotations

from benchmarks.quality import lsd, main, scores, si_sdr  # noqa: F401 (old import path)

if __name__ == "__main__":
    main()
