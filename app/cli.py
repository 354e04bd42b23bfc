"""The ``percepnet`` command line.

Commands so far:
- ``percepnet gui [--demo] [--minimized] [--self-test SECONDS]``: the window.
- ``percepnet run [--input-device DEV] [--output-device DEV] [--atten-limit-db DB]
  [--virtual-mic] [--duration S]``: the headless real-time service.
- ``percepnet mic {status,remove,self-test}``: the virtual microphone.
- ``percepnet denoise IN OUT [--model NAME|PATH] [--atten-limit-db DB] [--[no-]use-comb]
  [--[no-]use-postfilter]``: files or folders.
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


from percepnet import __version__

#: settings (``percepnet.app.settings.PARAMS``) that ``percepnet denoise`` takes as flags;
#: their defaults are the registry's (the config file is for the live app)
DENOISE_PARAMS = ("atten_limit_db", "use_comb", "use_postfilter", "use_decay_cap")

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

    n = sub.add_parser("denoise", help="denoise a sound file, or every sound file in a folder",
                       description="Denoise IN into OUT (file to file, or folder to folder). "
                       "Any sample rate and channel count; the output is aligned with the input "
                       "and keeps its length, rate and channels. The input is never overwritten.")
    n.add_argument("input", type=Path, metavar="IN", help="input file or folder")
    n.add_argument("output", type=Path, metavar="OUT", help="output file or folder")
    n.add_argument("--model", default=None, metavar="NAME|PATH",
                   help="installed model name or path to its .json/.npz (default: the shipped model)")
    from percepnet.app import settings

    # defined once in the settings registry (default, range, unit, help), like `run`'s flags
    settings.add_arguments(n, DENOISE_PARAMS)

    from percepnet.app import service

    service.add_parser(sub)
    try:
        from percepnet.app import mic_cli
    except ImportError:  # pragma: no cover - the virtual-mic back-end is optional
        mic_cli = None
    if mic_cli is not None:
        mic_cli.add_parser(sub)
    from percepnet.ui import launcher  # imports no Qt until the window opens

    launcher.add_parser(sub)

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
    from percepnet.app.models import ModelError

    try:
        if args.command == "oracle":
            from percepnet.app.offline import run_oracle_files

            run_oracle_files(args.clean, args.noisy, args.output, args.stages)
            print(f"wrote {args.output}")
        elif args.command == "denoise":
            from percepnet.app.models import default_model_name, load_model
            from percepnet.app.offline import denoise_paths
            # flags not given stay None: denoise_signal takes the registry's defaults
            opts = {k: getattr(args, k) for k in DENOISE_PARAMS}
            model = load_model(args.model if args.model is not None else default_model_name())
            if denoise_paths(args.input, args.output, model, **opts):
                return 1
            if not args.input.is_dir():
                print(f"wrote {args.output}")
        elif args.command == "run":
            from percepnet.app import service

            return service.run(args)
        elif args.command == "gui":
            from percepnet.ui import launcher

            return launcher.run(args)
        elif args.command == "mic":
            from percepnet.app import mic_cli

            return mic_cli.run(args)
        elif args.command == "demo":
            from percepnet.app.offline import run_demo

            run_demo(args.out_dir)
    except (AudioFileError, ModelError) as exc:
        print(f"percepnet: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
