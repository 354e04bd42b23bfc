"""Writing a benchmark's markdown report: one place for every benchmark."""
from __future__ import annotations

from pathlib import Path


def write_report(out_dir: Path, filename: str, lines: list[str]) -> str:
    """Join ``lines``, write ``out_dir/filename``, print it, and return the text."""
    report = "\n".join(lines)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / filename).write_text(report + "\n")
    print(report)
    return report
