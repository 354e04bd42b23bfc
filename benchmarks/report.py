"""Writing a benchmark's markdown report: one place for every benchmark."""
from __future__ import annotations

import json
from pathlib import Path


def write_report(out_dir: Path, filename: str, lines: list[str]) -> str:
    """Join ``lines``, write ``out_dir/filename``, print it, and return the text."""
    report = "\n".join(lines)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / filename).write_text(report + "\n")
    print(report)
    return report


def write_results(out_dir: Path, stem: str, lines: list[str], meta: dict,
                  items: list[dict]) -> str:
    """``stem``.json (the meta and every item's figures) beside the ``stem``.md report of
    :func:`write_report`; returns the report's text."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{stem}.json").write_text(json.dumps({"meta": meta, "items": items},
                                                     indent=1, default=float) + "\n")
    return write_report(out_dir, f"{stem}.md", lines)
