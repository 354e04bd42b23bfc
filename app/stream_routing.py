"""Where the engine's streams go on the sound server, and whether they are still there.

Debian's PortAudio reaches PulseAudio / PipeWire only through the ALSA ``pulse`` device, so a
source or sink chosen by name is routed with libpulse's ``PULSE_SOURCE`` / ``PULSE_SINK``,
set (under :data:`devices.ROUTE_ENV_LOCK`) only while a stream is opened. Each stream also
carries ``percepnet.stream=<token>``, so the supervisor can find it on the server and see
whether the server moved it (device unplugged, or back again). A token alone is not proof:
a child process could inherit it, so a stream is ours only if it also comes from this
process.

Everything here runs on the engine's control side (its supervisor thread or the caller of
``start``/``set_devices``), never in the audio callback.
"""
from __future__ import annotations

import os
from typing import Any

from .devices import DEMO_DEVICE, NULL_DEVICE, pulse_client, routed_env
from .mic_pipe import pipe_path

__all__ = ["StreamRouter", "sounddevice", "close_quietly", "rescan_portaudio"]

#: the routing variable of each direction
_VAR = {"input": "PULSE_SOURCE", "output": "PULSE_SINK"}


def sounddevice():
    import sounddevice as sd  # imported lazily: dsp/ and the offline CLI never need it

    return sd


def rescan_portaudio() -> str:
    """Re-initialise PortAudio, whose device list is fixed at initialisation (every stream
    must be closed); "" on success, else why it failed."""
    sd = sounddevice()
    try:
        sd._terminate()
        sd._initialize()
        return ""
    except Exception as exc:  # noqa: BLE001
        return f"PortAudio re-initialisation failed: {exc}"


def close_quietly(stream) -> None:
    """Abort and close a sounddevice stream (or None), whatever state it is in: a stream of
    a vanished device or a dead server may fail either step."""
    if stream is None:
        return
    try:
        stream.abort(ignore_errors=True)
        stream.close(ignore_errors=True)
    except Exception:  # noqa: BLE001
        pass


class StreamRouter:
    """Routing of one engine's streams. ``routed``: the (source, sink) names routed through
    libpulse ("" where not); ``gone``: the routing variables whose chosen device vanished
    (left out when opening, so the stream runs on the server's default until it is back)."""

    def __init__(self, owner_id: int) -> None:
        self.token = f"{os.getpid()}-{owner_id:x}"
        self.routed = ("", "")
        self.gone: set[str] = set()
        self._pulse = None  # the supervisor's pulsectl connection (lazy)

    # ------------------------------------------------------------------ opening
    @staticmethod
    def pa_device(name: str, kind: str) -> tuple[Any, dict[str, str]]:
        """(PortAudio device, env for libpulse) for a device setting."""
        sd = sounddevice()
        if name in ("", None):
            return None, {}
        try:
            return int(name), {}
        except ValueError:
            pass
        names = [d["name"] for d in sd.query_devices()]
        if name in names:
            return name, {}
        # anything else is a PulseAudio / PipeWire source or sink name, routed through the
        # ALSA 'pulse' device with libpulse's PULSE_SOURCE / PULSE_SINK (read at open time)
        return ("pulse" if "pulse" in names else None), {_VAR[kind]: name}

    def open_with_env(self, env: dict[str, str], factory):
        """Run ``factory`` (which opens a stream) with the routing of ``env`` (vanished
        devices left out) and our stream tag in the process environment."""
        tagged = {**{k: v for k, v in env.items() if k not in self.gone},
                  "PULSE_PROP": (f"application.name=PercepNet media.role=phone "
                                 f"percepnet.stream={self.token}")}
        with routed_env(tagged, clear=tuple(_VAR.values())):
            return factory()

    @staticmethod
    def pulse_device_listed() -> bool:
        """Whether PortAudio lists its ALSA ``pulse`` device. PortAudio enumerates devices
        once, when it is initialised: started before the sound server (a login race, or a
        process that touched audio earlier) it lacks ``pulse`` until it is re-initialised,
        and every routed stream would then open the wrong device or none."""
        try:
            return any(d["name"] == "pulse" for d in sounddevice().query_devices())
        except Exception:  # noqa: BLE001
            return False

    def update_routed(self, input_device: str, output_device: str) -> tuple[str, str]:
        """Look up (once per stream open, not per check) which devices the server routes."""
        def name(dev: str, kind: str) -> str:
            if dev in ("", DEMO_DEVICE, NULL_DEVICE) or pipe_path(dev):
                return ""
            try:
                _, env = self.pa_device(dev, kind)
            except Exception:  # noqa: BLE001
                return ""
            return env.get(_VAR[kind], "")
        self.routed = (name(input_device, "input"), name(output_device, "output"))
        return self.routed

    # ------------------------------------------------------------------ the server's view
    def connection(self):
        """The pulsectl connection (opened lazily), or None if the server is unreachable."""
        try:
            if self._pulse is None:
                self._pulse = pulse_client("percepnet-supervisor")
            return self._pulse
        except Exception:  # noqa: BLE001
            self.drop()
            return None

    def drop(self) -> None:
        if self._pulse is not None:
            try:
                self._pulse.close()
            except Exception:  # noqa: BLE001
                pass
        self._pulse = None

    def missing(self) -> set[str]:
        """PULSE_SOURCE / PULSE_SINK whose chosen device the sound server does not have."""
        src, snk = self.routed
        p = self.connection() if (src or snk) else None
        if p is None:
            return set()
        try:
            missing = set()
            if src and src not in {d.name for d in p.source_list()}:
                missing.add(_VAR["input"])
            if snk and snk not in {d.name for d in p.sink_list()}:
                missing.add(_VAR["output"])
            return missing
        except Exception:  # noqa: BLE001
            self.drop()
            return set()

    def take_missing(self) -> str:
        """Leave chosen devices the server lacks out of the routing (its default stands in
        until they appear: the supervisor's route check moves the stream then); returns the
        message saying so, or "" when nothing new is missing. Asked before every open:
        PulseAudio refuses a stream on a missing device, but pipewire-pulse opens it on the
        default without a word, so the failed open alone would not tell."""
        missing = self.missing() - self.gone
        if not missing:
            return ""
        self.gone |= missing
        src, snk = self.routed
        names = [n for n, var in ((src, _VAR["input"]), (snk, _VAR["output"])) if var in missing]
        return (f"{' and '.join(names)} not found on the sound server; "
                "using its default until it appears")

    def is_ours(self, proplist: dict[str, str]) -> bool:
        """A server stream is this engine's when it carries our token *and* comes from this
        process (libpulse and pipewire-pulse record the client's pid): a child process that
        inherited the token can never pass for our capture stream."""
        pid = proplist.get("application.process.id")
        return (proplist.get("percepnet.stream") == self.token
                and (pid is None or pid == str(os.getpid())))

    def state(self) -> tuple[str, set[str]]:
        """Where the sound server has our streams against the chosen source/sink: ("ok", {})
        (on it, or not routed), ("gone", vars) (a chosen device disappeared: vars are its
        PULSE_SOURCE / PULSE_SINK) or ("back", {}) (we are elsewhere and the chosen device
        exists again)."""
        src, snk = self.routed
        if not src and not snk:
            return "ok", set()
        gone: set[str] = set()
        p = self.connection()
        if p is None:
            return "ok", set()
        try:
            for name, streams, devices, attr, var in (
                    (src, p.source_output_list, p.source_list, "source", _VAR["input"]),
                    (snk, p.sink_input_list, p.sink_list, "sink", _VAR["output"])):
                if not name:
                    continue
                ours = [st for st in streams() if self.is_ours(st.proplist)]
                want = [d for d in devices() if d.name == name]
                if not want:
                    gone.add(var)
                elif var in self.gone or (ours and getattr(ours[0], attr) != want[0].index):
                    return "back", set()
        except Exception:  # noqa: BLE001 - server gone: the stall check handles it
            self.drop()
            return "ok", set()
        return ("gone", gone) if gone else ("ok", set())

    def fallback(self) -> str:
        """The chosen devices the server's default stands in for: "", "input", "output" or
        "input and output"."""
        return " and ".join(kind for kind, var in _VAR.items() if var in self.gone)
