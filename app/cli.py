"""The ``percepnet`` command line.

Commands so far:
- ``percepnet oracle --clean C --noisy N -o OUT [--stages gains|comb|all]``: the streaming
  PercepNet chain driven by oracle gains computed from the clean file.
- ``percepnet demo [--out-dir DIR]``: the oracle chain on the bundled demo clip (what
  ``make run`` does until the live app lands).
- ``percepnet --version``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from percepnet import __version__

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="percepnet",
        description="PercepNet Desktop: real-time fullband noise and reverberation suppression.",
    )
    parser.add_argument("--version", action="version", version=f"percepnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("oracle", help="enhance a noisy file with oracle gains from its clean reference",
                       description="Run the real streaming chain with gains and comb strengths "
                       "computed from the clean file (an upper bound for a trained model). "
                       "The output is aligned with the noisy input and has its length, rate "
                       "and channel count.")
    p.add_argument("--clean", required=True, type=Path, help="clean reference (any rate)")
    p.add_argument("--noisy", required=True, type=Path, help="noisy input, aligned with --clean")
    p.add_argument("-o", "--output", required=True, type=Path, help="output file (.wav/.flac/.ogg)")
    p.add_argument("--stages", choices=("gains", "comb", "all"), default="all",
                   help="gains: band gains only; comb: + pitch filtering; all: + envelope "
                   "postfilter (default: %(default)s)")

    d = sub.add_parser("demo", help="run the oracle chain on the bundled demo clip",
                       description="Mix the bundled demo speech with noise at 5 dB and write the "
                       "noisy input and the three oracle stages as WAV files.")
    d.add_argument("--out-dir", type=Path, default=Path("demo-out"),
                   help="folder for the WAV files (default: %(default)s)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    from percepnet.app.audio_io import AudioFileError

    try:
        if args.command == "oracle":
            from percepnet.app.offline import run_oracle_files

            run_oracle_files(args.clean, args.noisy, args.output, args.stages)
            print(f"wrote {args.output}")
        elif args.command == "demo":
            from percepnet.app.offline import run_demo

            run_demo(args.out_dir)
    except AudioFileError as exc:
        print(f"percepnet: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
