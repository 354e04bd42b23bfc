"""Audio devices as the user sees them: sound-server sources/sinks plus PortAudio devices.

On Linux desktops PortAudio (Debian's 19.6, ALSA host API only) shows just ``pulse`` and
``default`` for everything the sound server has, so microphones and speakers are listed from
PulseAudio / PipeWire-pulse through ``pulsectl`` and opened through PortAudio's ``pulse``
device with libpulse routing (see ``stream_routing.StreamRouter.pa_device``). Other PortAudio devices
(hardware ``hw:``, the native ``pipewire`` device, macOS/Windows devices) are listed too.
Monitors of sinks and our own virtual microphone are not offered as inputs (feedback loop).
"""
from __future__ import annotations

import logging
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterable, Iterator, Mapping

__all__ = ["Device", "list_devices", "has_microphone", "has_output", "OWN_NAMES",
           "ROUTE_ENV_LOCK", "routed_env", "child_env", "pulse_client", "default_devices", "special_devices",
           "device_listing", "check_device"]

log = logging.getLogger("percepnet.devices")

#: ``input_device`` value selecting the bundled, looped demo clip instead of a microphone.
DEMO_DEVICE = "demo"
#: ``output_device`` value for "no sound card": a thread paces the engine in real time.
NULL_DEVICE = "null"

#: sources/sinks created by our virtual microphone: never offered as input or output
OWN_NAMES = ("percepnet_mic", "percepnet_mic_sink")


#: Held while the process environment carries stream routing (PULSE_SINK/SOURCE/PROP):
#: libpulse inside PortAudio's ALSA plugin reads it when a stream is opened.
ROUTE_ENV_LOCK = threading.RLock()


@contextmanager
def routed_env(env: Mapping[str, str], clear: Iterable[str] = ()) -> Iterator[None]:
    """Set ``env`` (after removing the ``clear`` variables) for the duration of a stream
    open, under :data:`ROUTE_ENV_LOCK`; the previous environment is restored after."""
    with ROUTE_ENV_LOCK:
        keys = set(env) | set(clear)
        saved = {k: os.environ.get(k) for k in keys}
        try:
            for k in clear:
                os.environ.pop(k, None)
            os.environ.update(env)
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def _is_routing_var(name: str) -> bool:
    return name in ("PULSE_SOURCE", "PULSE_SINK") or name.startswith("PULSE_PROP")


def child_env() -> dict[str, str]:
    """The environment for a child process (``pacat``, ...): the process environment without
    the stream-routing variables, read under :data:`ROUTE_ENV_LOCK`, so a child spawned while
    another thread opens a routed stream never inherits that stream's routing or properties
    (pipewire-pulse copies ``PULSE_PROP`` onto every stream of a client)."""
    with ROUTE_ENV_LOCK:
        return {k: v for k, v in os.environ.items() if not _is_routing_var(k)}


def pulse_client(name: str, server: str | None = None, *, timeout_s: float | None = None):
    """A connected pulsectl client, connected under :data:`ROUTE_ENV_LOCK` (libpulse reads
    ``PULSE_PROP`` from the environment when it connects, so a connection made while a
    stream is being opened would otherwise carry that stream's properties). Raises what
    pulsectl raises when no server answers."""
    import pulsectl

    pulse = pulsectl.Pulse(name, server=server, connect=False)
    try:
        with ROUTE_ENV_LOCK:
            pulse.connect(autospawn=False, wait=False, timeout=timeout_s)
    except Exception:
        pulse.close()
        raise
    return pulse


@dataclass(frozen=True)
class Device:
    id: str  # what goes into the input_device / output_device setting
    label: str  # what the user reads
    kind: str  # "input" | "output"
    backend: str  # "pulse" | "portaudio"


def _pulse_devices(timeout_s: float = 1.0) -> list[Device] | None:
    try:
        import pulsectl  # noqa: F401 - an ImportError means no server support at all
    except ImportError:
        return None
    try:
        with pulse_client("percepnet-devices", timeout_s=timeout_s) as pulse:
            out = []
            for s in pulse.source_list():
                if s.monitor_of_sink != 0xFFFFFFFF or s.name.endswith(".monitor"):
                    continue
                if s.name in OWN_NAMES:
                    continue
                out.append(Device(s.name, s.description or s.name, "input", "pulse"))
            for s in pulse.sink_list():
                if s.name in OWN_NAMES:
                    continue
                out.append(Device(s.name, s.description or s.name, "output", "pulse"))
            return out
    except Exception as exc:  # noqa: BLE001 - no server: fall back to PortAudio
        log.debug("no sound server: %s", exc)
        return None


def _portaudio_devices() -> list[Device]:
    try:
        import sounddevice as sd

        devs = sd.query_devices()
    except Exception as exc:  # noqa: BLE001 - no PortAudio at all
        log.debug("PortAudio unavailable: %s", exc)
        return []
    out = []
    for d in devs:
        name = d["name"]
        if d["max_input_channels"] > 0:
            out.append(Device(name, f"{name} (PortAudio)", "input", "portaudio"))
        if d["max_output_channels"] > 0:
            out.append(Device(name, f"{name} (PortAudio)", "output", "portaudio"))
    return out


def list_devices() -> list[Device]:
    """Sound-server devices first (when a server answers), then PortAudio's own."""
    pulse = _pulse_devices()
    pa = _portaudio_devices()
    if pulse is None:
        return pa
    # 'pulse'/'default' duplicate the server's devices; keep the rest (hw:, pipewire, ...)
    return pulse + [d for d in pa if d.id not in ("pulse", "default", "sysdefault")]


def has_microphone(devices: list[Device] | None = None) -> bool:
    """Is there a real capture device (not a monitor, not our own virtual mic)?"""
    devices = list_devices() if devices is None else devices
    pulse_present = any(d.backend == "pulse" for d in devices)
    for d in devices:
        if d.kind != "input":
            continue
        if d.backend == "pulse":
            return True
        if not pulse_present and d.id not in ("pulse", "default", "sysdefault"):
            return True
    return False


def has_output(devices: list[Device] | None = None) -> bool:
    devices = list_devices() if devices is None else devices
    return any(d.kind == "output" for d in devices)


def default_devices() -> tuple[str, str]:
    """(input, output) device ids the system uses when none is chosen: the sound server's
    default source and sink when a server answers, else PortAudio's defaults ("" unknown)."""
    try:
        with pulse_client("percepnet-devices", timeout_s=1.0) as pulse:
            info = pulse.server_info()
            return info.default_source_name or "", info.default_sink_name or ""
    except Exception:  # noqa: BLE001 - no server: PortAudio's defaults
        pass
    try:
        import sounddevice as sd

        names = []
        for kind in ("input", "output"):
            try:
                names.append(str(sd.query_devices(kind=kind)["name"]))
            except Exception:  # noqa: BLE001 - no default of this kind
                names.append("")
        return names[0], names[1]
    except Exception:  # noqa: BLE001
        return "", ""


def special_devices() -> dict[str, tuple[str, str]]:
    """kind -> (name, what it does) of the device names that are not hardware."""
    return {"input": (DEMO_DEVICE, "the bundled demo clip (noisy speech, looped)"),
            "output": (NULL_DEVICE, f"no playback (with the {DEMO_DEVICE} input only: the "
                                    "clip is processed in real time, not heard)")}


def device_listing(devices: list[Device] | None = None) -> list[str]:
    """What ``percepnet devices`` prints: per kind, the names ``--input-device`` /
    ``--output-device`` accept (``*`` = the system default), then the special names."""
    devices = list_devices() if devices is None else devices
    defaults = dict(zip(("input", "output"), default_devices()))
    special = special_devices()
    lines = []
    for kind, title in (("input", "inputs (--input-device NAME)"),
                        ("output", "outputs (--output-device NAME)")):
        lines.append(f"{title}:")
        mine = [d for d in devices if d.kind == kind]
        width = max([len(d.id) for d in mine] + [len(special[kind][0]), 12])
        if not mine:
            lines.append(f"    {'(none found)':<{width}}")
        for d in mine:
            mark = "*" if d.id == defaults[kind] else " "
            label = d.label + (" (default)" if mark == "*" else "")
            lines.append(f"  {mark} {d.id:<{width}}  {label}")
        name, what = special[kind]
        lines.append(f"    {name:<{width}}  {what}")
    lines.append("(no flag, or an empty name: the system default, marked *)")
    return lines


def check_device(name: str, kind: str, devices: list[Device] | None = None) -> str | None:
    """None when ``name`` is a ``kind`` ("input"/"output") device the engine can open now
    (a listed name, the special name of its kind, a PortAudio device name or index, or ""
    = the default); else a one-line error naming the choices."""
    if not name:
        return None
    special = special_devices()[kind][0]
    if name == special:
        return None
    devices = list_devices() if devices is None else devices
    ids = [d.id for d in devices if d.kind == kind]
    if name in ids:
        return None
    try:  # PortAudio's own names ('default', 'pulse') and indexes also open
        import sounddevice as sd

        for i, d in enumerate(sd.query_devices()):
            if name in (d["name"], str(i)) and d[f"max_{kind}_channels"] > 0:
                return None
    except Exception:  # noqa: BLE001 - no PortAudio: only the listed names
        pass
    other = "output" if kind == "input" else "input"
    hint = (f" ({name!r} is an {other})" if name in [d.id for d in devices if d.kind == other]
            or name == special_devices()[other][0] else "")
    return (f"no {kind} device {name!r}{hint}; choose one of: {', '.join(ids + [special])} "
            f"(percepnet devices lists them)")
