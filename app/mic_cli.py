"""``percepnet mic {status,remove,self-test}``: the virtual microphone from the command line.

Wire into the main parser with ``add_parser(subparsers)`` and dispatch with ``run(args)``.
Output is one line per fact on stdout. Exit codes: 0 all well, 1 the microphone is absent,
broken or failed its self-test (or no sound server), 2 usage error.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Callable

__all__ = ["add_parser", "run"]

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``mic`` command to an ``add_subparsers()`` object; returns its parser."""
    p = subparsers.add_parser(
        "mic", help="the virtual microphone: status, self-test, remove",
        description="Inspect, test or remove the \"PercepNet Microphone\" that meeting apps "
        "record from. Exit status: 0 OK, 1 absent/broken/failed, 2 usage error.")
    sub = p.add_subparsers(dest="mic_command", metavar="ACTION")
    sub.add_parser("status", help="is the virtual microphone there, who uses it",
                   description="One line per fact: back-end, presence, devices, readers.")
    t = sub.add_parser("self-test", help="play a short 1 kHz tone through it and read it back",
                       description="Plays a 0.5 s 1 kHz tone into the virtual microphone and "
                       "checks that it comes back (anyone recording the microphone hears it).")
    t.add_argument("--timeout", type=float, default=3.0, metavar="S",
                   help="give up after S seconds (default: %(default)s)")
    sub.add_parser("remove", help="remove the virtual microphone (Linux)",
                   description="Unload the virtual microphone's modules (a running PercepNet "
                   "recreates it; quit it first).")
    p.set_defaults(mic_parser=p)
    return p


def _print_lines(lines: list[str], out: Callable[[str], Any]) -> None:
    for line in lines:
        out(line)


def run(args: argparse.Namespace, mic: Any = None) -> int:
    """Run ``percepnet mic ACTION``; ``mic`` overrides the platform back-end (tests)."""
    action = getattr(args, "mic_command", None)
    if action is None:
        parser = getattr(args, "mic_parser", None)
        if parser is not None:
            parser.print_usage(sys.stderr)
        print("percepnet mic: choose an action: status, self-test or remove", file=sys.stderr)
        return EXIT_USAGE
    if mic is None:
        from percepnet.app.mic_backends import get_backend

        mic = get_backend()  # status/self-test/remove never create, so nothing to undo
    if action == "status":
        st = mic.status()
        _print_lines(st.lines(), print)
        return EXIT_OK if st.present else EXIT_FAIL
    if action == "self-test":
        if args.timeout <= 0:
            print("percepnet mic self-test: --timeout must be positive", file=sys.stderr)
            return EXIT_USAGE
        st = mic.status()
        if not st.present:
            _print_lines(st.lines(), print)
            print("self-test: FAILED")
            return EXIT_FAIL
        res = mic.self_test(timeout_s=args.timeout)
        _print_lines(res.lines(), print)
        return EXIT_OK if res.ok else EXIT_FAIL
    if action == "remove":
        st = mic.status()
        if st.detail.startswith("no PulseAudio/PipeWire server reachable"):
            _print_lines(st.lines(), print)
            return EXIT_FAIL
        n = mic.remove()
        if st.backend not in ("pulse", "pulse-pipe"):
            print(f"nothing to remove: {st.backend} is a driver you installed "
                  "(uninstall it from the system if you want it gone)")
        elif n:
            print(f"removed: {n} module(s) of the virtual microphone")
        else:
            print("nothing to remove: no virtual microphone of ours was loaded")
        return EXIT_OK
    print(f"percepnet mic: unknown action {action!r}", file=sys.stderr)
    return EXIT_USAGE
