"""macOS and Windows back-ends of the virtual microphone: an installed virtual-cable driver.

Neither OS lets an app create an audio device at run time without a driver, so these
back-ends find one the user installed, by name in the PortAudio device list:

- macOS: BlackHole (``BlackHole 2ch``, also 16/64 ch builds; one device that is both the
  output we write to and the input meeting apps record from);
- Windows: VB-Audio Virtual Cable: we write to ``CABLE Input (VB-Audio Virtual Cable)``,
  meeting apps record from ``CABLE Output (VB-Audio Virtual Cable)``. MME truncates names to
  31 characters (``CABLE Input (VB-Audio Virtual C``), so names are matched by prefix.

:func:`find_cable` is a pure function of a ``sounddevice.query_devices()``-style list (plus,
optionally, ``query_hostapis()``), so it is tested with recorded lists, without the OS.
When the driver is missing, ``MicStatus.detail`` says plainly what to install.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from percepnet.app.virtual_mic import (
    SAMPLE_RATE_HZ, MicStatus, PlayFn, SelfTestResult, VirtualMic, analyse_tone, make_tone,
)

__all__ = ["CableSpec", "CableMatch", "BLACKHOLE", "VB_CABLE", "find_cable", "CableVirtualMic"]

DeviceList = Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class CableSpec:
    """How to recognise one virtual-cable product and what to tell a user who lacks it."""

    backend: str
    product: str
    output_pattern: str          # regex on the device we write to (needs output channels)
    input_pattern: str           # regex on the device meeting apps record from (input channels)
    pick_name: str               # what the user picks as microphone in the meeting app
    install_hint: str
    hostapi_preference: tuple[str, ...]  # PortAudio host APIs, best first


BLACKHOLE = CableSpec(
    backend="blackhole",
    product="BlackHole",
    output_pattern=r"^BlackHole\b",
    input_pattern=r"^BlackHole\b",
    pick_name="BlackHole 2ch",
    install_hint=("BlackHole is not installed. Install it with `brew install blackhole-2ch` "
                  "or the installer from https://existential.audio/blackhole/ , then restart "
                  "PercepNet and your meeting app, and pick \"BlackHole 2ch\" as the microphone."),
    hostapi_preference=("Core Audio",),
)

VB_CABLE = CableSpec(
    backend="vb-cable",
    product="VB-Audio Virtual Cable",
    output_pattern=r"^CABLE Input\b",
    input_pattern=r"^CABLE Output\b",
    pick_name="CABLE Output (VB-Audio Virtual Cable)",
    install_hint=("VB-Audio Virtual Cable (VB-CABLE) is not installed. Download it from "
                  "https://vb-audio.com/Cable/ , unzip it, run VBCABLE_Setup_x64.exe as "
                  "administrator, click \"Install Driver\" and reboot; then pick "
                  "\"CABLE Output (VB-Audio Virtual Cable)\" as the microphone in your "
                  "meeting app."),
    hostapi_preference=("Windows WASAPI", "Windows DirectSound", "MME", "Windows WDM-KS"),
)


@dataclass(frozen=True)
class CableMatch:
    """The devices of an installed cable, as PortAudio lists them."""

    output_index: int            # PortAudio index of the device the engine writes to
    output_name: str
    output_channels: int         # channels to open (write the mono voice to each)
    input_index: int | None      # the recording end (for the self-test)
    input_name: str | None
    hostapi: str                 # host API of both ends ("" when unknown)
    pick_name: str               # what to pick in the meeting app (full, untruncated name)


def _hostapi_name(dev: Mapping[str, Any], hostapis: Sequence[Mapping[str, Any]] | None) -> str:
    idx = dev.get("hostapi")
    if hostapis is not None and isinstance(idx, int) and 0 <= idx < len(hostapis):
        return str(hostapis[idx].get("name", ""))
    return ""


def find_cable(devices: DeviceList, spec: CableSpec,
               hostapis: Sequence[Mapping[str, Any]] | None = None,
               prefer_hostapi: str | None = None) -> CableMatch | None:
    """The best output/input pair of ``spec`` in ``devices``, or None when not installed.

    Outputs need output channels and inputs input channels; both ends come from the same
    host API when possible (PortAudio duplex streams need it). Host API order:
    ``prefer_hostapi`` first, then ``spec.hostapi_preference``, then list order; among
    equals the fewest channels (``BlackHole 2ch`` before ``16ch``). Indexes are the
    ``index`` field when present, else the position in the list.
    """
    out_re, in_re = re.compile(spec.output_pattern, re.I), re.compile(spec.input_pattern, re.I)
    order = ([prefer_hostapi] if prefer_hostapi else []) + list(spec.hostapi_preference)

    def rank(item: tuple[int, Mapping[str, Any]], channels_key: str) -> tuple:
        pos, dev = item
        api = _hostapi_name(dev, hostapis)
        return (order.index(api) if api in order else len(order), int(dev[channels_key]), pos)

    listed = [(int(d.get("index", i)), d) for i, d in enumerate(devices)]
    outs = [x for x in listed if int(x[1].get("max_output_channels", 0)) > 0
            and out_re.search(str(x[1].get("name", "")).strip())]
    ins = [x for x in listed if int(x[1].get("max_input_channels", 0)) > 0
           and in_re.search(str(x[1].get("name", "")).strip())]
    if not outs:
        return None
    outs.sort(key=lambda x: rank(x, "max_output_channels"))
    out_idx, out = outs[0]
    api = _hostapi_name(out, hostapis)
    same_api = [x for x in ins if _hostapi_name(x[1], hostapis) == api]
    ins.sort(key=lambda x: rank(x, "max_input_channels"))
    inp = (sorted(same_api, key=lambda x: rank(x, "max_input_channels")) or ins or [None])[0]
    # the user-facing name: the longest listed spelling of the chosen recording end (MME
    # truncates names to 31 characters)
    pick = spec.pick_name
    if inp is not None:
        short = str(inp[1]["name"]).strip()
        pick = max((n for n in (str(d.get("name", "")).strip() for _, d in ins)
                    if n.startswith(short)), key=len, default=short)
    return CableMatch(
        output_index=out_idx, output_name=str(out["name"]).strip(),
        output_channels=max(1, min(2, int(out["max_output_channels"]))),
        input_index=None if inp is None else inp[0],
        input_name=None if inp is None else str(inp[1]["name"]).strip(),
        hostapi=api, pick_name=pick)


class CableVirtualMic(VirtualMic):
    """BlackHole / VB-Cable behind the :class:`VirtualMic` interface.

    ``devices_fn`` / ``hostapis_fn`` return the PortAudio lists (default: sounddevice's
    ``query_devices`` / ``query_hostapis``); nothing is created or removed, the driver is
    the user's.
    """

    def __init__(self, spec: CableSpec,
                 devices_fn: Callable[[], DeviceList] | None = None,
                 hostapis_fn: Callable[[], Sequence[Mapping[str, Any]]] | None = None,
                 prefer_hostapi: str | None = None) -> None:
        self.spec = spec
        self.backend = spec.backend
        self.description = spec.pick_name
        self.source_name = spec.pick_name
        self.sink_name = None
        self.prefer_hostapi = prefer_hostapi
        self._devices_fn = devices_fn
        self._hostapis_fn = hostapis_fn
        self.match: CableMatch | None = None

    def _lists(self) -> tuple[DeviceList, Sequence[Mapping[str, Any]] | None]:
        if self._devices_fn is None:
            import sounddevice as sd

            return sd.query_devices(), sd.query_hostapis()
        return self._devices_fn(), (self._hostapis_fn() if self._hostapis_fn else None)

    def status(self) -> MicStatus:
        try:
            devices, hostapis = self._lists()
        except Exception as exc:
            return MicStatus(False, self.backend, None, None, self.description,
                             detail=f"cannot list audio devices: {exc}")
        m = find_cable(devices, self.spec, hostapis, self.prefer_hostapi)
        self.match = m
        if m is None:
            self.sink_name = None
            return MicStatus(False, self.backend, None, None, self.spec.pick_name,
                             detail=self.spec.install_hint)
        self.sink_name, self.source_name, self.description = m.output_name, m.pick_name, m.pick_name
        detail = ""
        if m.input_index is None:
            detail = (f"{self.spec.product}: the output end \"{m.output_name}\" is listed but "
                      "not its recording end; reinstall the driver and reboot")
        return MicStatus(m.input_index is not None, self.backend, m.output_name,
                         m.input_name, m.pick_name, detail=detail,
                         server=m.hostapi or self.spec.product)

    def ensure(self) -> MicStatus:
        return self.status()

    def remove(self) -> int:
        return 0  # the driver stays installed; nothing of ours to remove

    def output_device(self, devices: DeviceList | None = None) -> int | None:
        if devices is not None:
            m = find_cable(devices, self.spec, None, self.prefer_hostapi)
            return None if m is None else m.output_index
        if self.match is None:
            self.status()
        return None if self.match is None else self.match.output_index

    def self_test(self, play_device_fn: PlayFn | None = None,
                  timeout_s: float = 3.0) -> SelfTestResult:
        """Play the tone to the cable's output end while recording its input end."""
        st = self.status()
        if not st.present or self.match is None or self.match.input_index is None:
            return SelfTestResult(False, detail=f"virtual microphone absent: {st.detail}")
        tone = make_tone()
        try:
            import sounddevice as sd

            m = self.match
            pad = np.zeros(int(0.4 * SAMPLE_RATE_HZ), np.float32)
            if play_device_fn is None:
                out = np.concatenate([tone, pad])[:, None].repeat(m.output_channels, axis=1)
                rec = sd.playrec(out, SAMPLE_RATE_HZ, channels=1,
                                 device=(m.input_index, m.output_index), dtype="float32")
                sd.wait()
            else:
                frames = tone.size + pad.size
                rec = sd.rec(frames, SAMPLE_RATE_HZ, channels=1, device=m.input_index,
                             dtype="float32")
                play_device_fn(tone, SAMPLE_RATE_HZ)
                sd.wait()
        except Exception as exc:
            return SelfTestResult(False, detail=f"the self-test could not run: {exc}")
        return analyse_tone(np.asarray(rec)[:, 0], SAMPLE_RATE_HZ, played=tone)
