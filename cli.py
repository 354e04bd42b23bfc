"""The ``percepnet`` command line: one dispatcher above the engine (``percepnet.app``) and the
window (``percepnet.ui``), so neither layer imports the other to be started.

User commands, in the order ``--help`` lists them:
- ``percepnet gui [--demo] [--minimized] [--self-test SECONDS]``: the window.
- ``percepnet run [every setting as a flag] [--duration S] [--save]``: the headless
  real-time service (flags generated from ``percepnet.app.settings.PARAMS``).
- ``percepnet devices``: the input and output names ``run`` takes.
- ``percepnet denoise IN OUT [--model NAME|PATH] [--jobs N] [--overwrite] [stage flags]``:
  files or folders, any format libsndfile reads, to any format it writes.
- ``percepnet mic {status,remove,self-test}``: the virtual microphone.

Developer tools:
- ``percepnet oracle --clean C --noisy N -o OUT [--stages gains|comb|all]``: the streaming
  chain driven by oracle gains computed from the clean file.
- ``percepnet demo [--out-dir DIR]``: the oracle chain on the bundled demo clip.

Exit status: 0 done, 1 some files of a folder failed (or a check failed), 2 usage or input
error (one line on stderr).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from percepnet import __version__

#: settings (``percepnet.app.settings.PARAMS``) that ``percepnet denoise`` takes as flags;
#: their defaults are the registry's (the config file is for the live app)
DENOISE_PARAMS = ("atten_limit_db", "use_comb", "use_postfilter", "use_decay_cap")

#: the commands ``--help`` lists first, then the developer tools
USER_COMMANDS = ("gui", "run", "devices", "denoise", "mic")
DEVELOPER_COMMANDS = ("oracle", "demo")

__all__ = ["main", "build_parser", "USER_COMMANDS", "DEVELOPER_COMMANDS"]


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="percepnet",
        description="PercepNet Desktop: real-time fullband noise and reverberation suppression.",
        epilog="developer tools (the oracle upper bound): " + ", ".join(DEVELOPER_COMMANDS)
        + ". 'percepnet COMMAND --help' describes each command.")
    parser.add_argument("--version", action="version", version=f"percepnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    # ---------------------------------------------------------------- user commands
    from percepnet.ui import launcher  # imports no Qt until the window opens

    launcher.add_parser(sub)

    from percepnet.app import service

    service.add_parser(sub)

    sub.add_parser("devices", help="list the input and output devices 'run' takes",
                   description="List the microphones and outputs by the exact names "
                   "'percepnet run --input-device/--output-device' accept (* marks the system "
                   "default), plus the special names 'demo' (input: the bundled clip) and "
                   "'null' (output: no playback).")

    n = sub.add_parser("denoise", help="denoise a sound file, or every sound file in a folder",
                       description="Denoise IN into OUT (file to file, or folder to folder). "
                       "Any format libsndfile reads (wav, flac, ogg, mp3, aiff, ...); the "
                       "output format follows OUT's extension (a folder keeps each file's). "
                       "Any sample rate and channel count; the output is aligned with the "
                       "input and keeps its length, rate and channels. The input is never "
                       "overwritten; an existing output only with --overwrite.")
    n.add_argument("input", type=Path, metavar="IN", help="input file or folder")
    n.add_argument("output", type=Path, metavar="OUT", help="output file or folder")
    n.add_argument("--model", default=None, metavar="NAME|PATH",
                   help="installed model name or path to its .json/.npz (default: the shipped model)")
    from percepnet.app.offline import usable_cores

    n.add_argument("--jobs", type=_positive_int, default=None, metavar="N",
                   help="folder mode: denoise N files at a time, in N processes (default: one "
                   f"per CPU core, {usable_cores()} here)")
    n.add_argument("--overwrite", action="store_true",
                   help="replace existing output files (default: refuse them)")
    from percepnet.app import settings

    # defined once in the settings registry (default, range, unit, help), like `run`'s flags
    settings.add_arguments(n, DENOISE_PARAMS)

    try:
        from percepnet.app import mic_cli
    except ImportError:  # pragma: no cover - the virtual-mic back-end is optional
        mic_cli = None
    if mic_cli is not None:
        mic_cli.add_parser(sub)

    # ---------------------------------------------------------------- developer tools
    p = sub.add_parser("oracle", help="developer tool: enhance a noisy file with oracle gains "
                       "from its clean reference",
                       description="Run the real streaming chain with gains and comb strengths "
                       "computed from the clean file (an upper bound for a trained model). "
                       "The output is aligned with the noisy input and has its length, rate "
                       "and channel count.")
    p.add_argument("--clean", required=True, type=Path, help="clean reference (any rate)")
    p.add_argument("--noisy", required=True, type=Path, help="noisy input, aligned with --clean")
    p.add_argument("-o", "--output", required=True, type=Path,
                   help="output file (its extension picks the format: .wav, .flac, .ogg, ...)")
    p.add_argument("--stages", choices=("gains", "comb", "all"), default="all",
                   help="gains: band gains only; comb: + pitch filtering; all: + envelope "
                   "postfilter (default: %(default)s)")

    d = sub.add_parser("demo", help="developer tool: run the oracle chain on the bundled demo "
                       "clip",
                       description="Mix the bundled demo speech with noise at 5 dB and write the "
                       "noisy input and the three oracle stages as WAV files.")
    d.add_argument("--out-dir", type=Path, default=Path("demo-out"),
                   help="folder for the WAV files (default: %(default)s)")
    return parser


def _denoise(args: argparse.Namespace) -> int:
    from percepnet.app.models import default_model_name, load_model
    from percepnet.app.offline import Interrupted, denoise_paths, stop_on_signals

    # flags not given stay None: denoise_signal takes the registry's defaults
    opts = {k: getattr(args, k) for k in DENOISE_PARAMS}
    model = load_model(args.model if args.model is not None else default_model_name())

    def report(line: str) -> None:
        print(line, file=sys.stderr if line.startswith("percepnet: error:") else sys.stdout,
              flush=True)

    # Ctrl-C and SIGTERM (kill, systemd) stop within one block: the file in progress is not
    # written, --jobs workers are stopped, not orphaned
    try:
        with stop_on_signals():
            results = denoise_paths(args.input, args.output, model, jobs=args.jobs,
                                    overwrite=args.overwrite, report=report, **opts)
    except Interrupted as exc:
        print("percepnet: interrupted", file=sys.stderr)
        return 128 + exc.signum
    if not args.input.is_dir():
        print(f"wrote {args.output}")
        return 0
    return 1 if any(r.error for r in results) else 0


def _devices() -> int:
    from percepnet.app.devices import device_listing

    for line in device_listing():
        print(line)
    return 0


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
            return _denoise(args)
        elif args.command == "devices":
            return _devices()
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
    except KeyboardInterrupt:  # Ctrl-C: no traceback (files in progress were cleaned up)
        print("percepnet: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
