"""The headless service: ``percepnet run`` (no window), for a systemd user unit or a shell.

Settings come from the shared config file (the window writes the same file); command-line
flags override them for this run (``--save`` also stores them). With no microphone the
service runs on the bundled demo clip and says so; with no output device either it paces
itself ("null output"). Logs a one-line status every ``--status-interval`` seconds, stops
cleanly on SIGINT/SIGTERM or after ``--duration`` seconds.
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time

from .settings import Settings, add_arguments, apply_arguments

__all__ = ["add_parser", "run", "build_engine"]

log = logging.getLogger("percepnet.service")


def add_parser(sub) -> argparse.ArgumentParser:
    from .devices import DEMO_DEVICE, NULL_DEVICE

    p = sub.add_parser("run", help="run the suppressor without a window (headless service)",
                       description="Run the real-time suppressor headless: microphone -> "
                       "PercepNet -> output device (or the virtual microphone). Flags "
                       "override the shared config file for this run.",
                       epilog=f"Devices: the names 'percepnet devices' lists; "
                       f"--input-device {DEMO_DEVICE} plays the bundled demo clip instead of "
                       f"a microphone, --output-device {NULL_DEVICE} plays nothing (with the "
                       "demo input only: the clip is then processed in real time). An unknown "
                       "name is an error (exit 2).")
    # every setting the registry marks for the command line (Param.cli), as the window
    # builds its controls from the same registry
    add_arguments(p)
    p.add_argument("--duration", type=float, default=None, metavar="S",
                   help="stop after S seconds (default: run until SIGINT/SIGTERM)")
    p.add_argument("--status-interval", type=float, default=10.0, metavar="S",
                   help="seconds between status lines (default: %(default)s)")
    p.add_argument("--save", action="store_true", help="store the given flags in the config file")
    p.add_argument("--config", default=None, metavar="PATH",
                   help="config file (default: the user config dir, or $PERCEPNET_CONFIG)")
    return p


def _load_model_or_passthrough(name: str):
    """The model, or None (pass-through) with an error logged: the audio never stops."""
    from .models import ModelError, default_model_name, load_model

    try:
        return load_model(name or default_model_name())
    except ModelError as exc:
        log.error("cannot load the model (%s); running as pass-through", exc)
        return None


def build_engine(settings: Settings, *, on_status=None, telemetry=None, demo_reason=None,
                 spectra: bool = True):
    """An :class:`Engine` for ``settings``; picks the demo clip when there is no microphone
    and the null output when there is no output device. ``spectra``: compute the spectra
    only a window shows (the headless service passes False). Returns (engine, notes)."""
    from .devices import DEMO_DEVICE, NULL_DEVICE, has_microphone, has_output, list_devices
    from .engine import Engine
    from .settings import engine_kwargs

    notes = []
    model = _load_model_or_passthrough(settings.model)
    if model is None:
        notes.append("no model: pass-through")
    devices = list_devices()
    input_device = settings.input_device
    output_device = settings.output_device
    if input_device != DEMO_DEVICE and not input_device and not has_microphone(devices):
        input_device = DEMO_DEVICE
        notes.append(demo_reason or "no microphone found: playing the bundled demo clip "
                     "(noisy speech, looped)")
    if input_device == DEMO_DEVICE and not output_device and not has_output(devices):
        output_device = NULL_DEVICE
        notes.append("no output device: processing in real time without playback")
    engine = Engine(model, input_device=input_device, output_device=output_device,
                    **engine_kwargs(settings), on_status=on_status, telemetry=telemetry,
                    # first start: audio flows at once, the kernels compile meanwhile
                    prepare_in_background=True, spectra=spectra)
    return engine, notes


def check_device_flags(args: argparse.Namespace) -> str | None:
    """A one-line error for a ``--input-device`` / ``--output-device`` the engine cannot
    open (with the names it can), else None. Only flags are checked: a device stored in the
    config file may be unplugged for now, and the engine moves to it when it is back."""
    from .devices import check_device, list_devices

    given = [(kind, getattr(args, f"{kind}_device", None)) for kind in ("input", "output")]
    given = [(kind, name) for kind, name in given if name]
    if not given:
        return None
    devices = list_devices()
    for kind, name in given:
        problem = check_device(name, kind, devices)
        if problem is not None:
            return problem
    return None


def check_null_output(settings: Settings) -> str | None:
    """The null output only paces the demo clip: with a microphone there is no stream to
    open (the engine would retry forever, silent). A one-line error then, else None."""
    from .devices import has_microphone
    from .devices import DEMO_DEVICE, NULL_DEVICE

    if settings.output_device != NULL_DEVICE or settings.input_device == DEMO_DEVICE:
        return None
    if not settings.input_device and not has_microphone():
        return None  # no microphone: the demo clip plays (build_engine), paced
    return (f"--output-device {NULL_DEVICE} (no playback) works only with --input-device "
            f"{DEMO_DEVICE}; choose an output from 'percepnet devices'")


def run(args: argparse.Namespace) -> int:
    problem = check_device_flags(args)
    if problem is not None:
        print(f"percepnet run: error: {problem}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = Settings.load(args.config)
    apply_arguments(settings, args)
    problem = None if settings.virtual_mic else check_null_output(settings)
    if problem is not None:
        print(f"percepnet run: error: {problem}", file=sys.stderr)
        return 2
    if args.save:
        log.info("settings saved to %s", settings.save())
    vmic = None
    speakers = settings.output_device  # "listen to myself" plays here in virtual-mic mode
    if settings.virtual_mic:
        try:
            from .mic_backends import get_backend
        except ImportError as exc:
            log.error("virtual microphone unavailable: %s", exc)
        else:
            vmic = get_backend()
            status = vmic.ensure()
            if getattr(status, "present", False):
                settings.output_device = vmic.sink_name
                log.info("virtual microphone ready: %s", status)
            else:
                log.error("virtual microphone could not be created: %s", status)
                vmic = None
    stop = threading.Event()
    interval = max(args.status_interval, 0.5)
    last = [0.0]

    def on_status(diag) -> None:
        now = time.monotonic()
        if now - last[0] >= interval:
            last[0] = now
            print(diag.status_line(), flush=True)

    engine, notes = build_engine(settings, on_status=on_status, spectra=False)  # no window
    if settings.monitor and vmic is not None:
        engine.monitor_device = speakers
        engine.monitor = True
    elif settings.monitor:
        notes.append("--monitor (listen to myself) only applies with the virtual microphone; "
                     "the output device already plays the cleaned voice")
    for n in notes:
        print(f"note: {n}", flush=True)

    def handle(signum, frame):  # noqa: ARG001
        stop.set()

    old = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        if vmic is not None:
            def mic_changed(status) -> None:
                if getattr(status, "moved", ()):  # another app's stream moved off our sink
                    return  # (the supervisor logged it): the microphone itself is unchanged
                # the sound server restarted or our modules vanished and were rebuilt:
                # reopen the output stream onto the new sink
                log.info("virtual microphone rebuilt (%s); reopening the output stream",
                         getattr(status, "detail", status))
                engine.set_devices(output_device=vmic.sink_name)

            # the supervisor also keeps a low-latency reader on the sink (an idle null sink
            # is drained in 2 s bursts and would stall our stream)
            vmic.start_supervision(on_change=mic_changed)
        engine.start()
        print(f"running: input={engine.input_device or 'default'} "
              f"output={engine.output_device or 'default'} model={engine.core.model_name} "
              f"audio threads: {engine.audio_priority} (Ctrl+C stops)", flush=True)
        stop.wait(args.duration)
    finally:
        engine.stop()  # before the mic goes: the server would move our stream to the speakers
        if vmic is not None and hasattr(vmic, "stop_supervision"):
            try:
                vmic.stop_supervision()
            except Exception:  # noqa: BLE001
                pass
        if vmic is not None:
            try:
                vmic.remove()
            except Exception as exc:  # noqa: BLE001
                log.warning("removing the virtual microphone failed: %s", exc)
        for s, h in old.items():
            signal.signal(s, h)
    diag = engine.diagnostics()
    print(diag.status_line(), flush=True)
    return 0
