"""Virtual microphone, OS-independent parts: device-list decisions and the tone analysis.

The device lists are ``sounddevice.query_devices()`` / ``query_hostapis()`` output in the
shape PortAudio reports it: the Linux/PulseAudio list was recorded on this machine; the
PipeWire, macOS and Windows lists follow real listings (names as PortAudio prints them,
MME's 31-character truncation included).
"""
from __future__ import annotations

import numpy as np
import pytest

from percepnet.app.mic_backends import get_backend
from percepnet.app.virtual_mic import (
    TONE_FREQ_HZ, analyse_tone, make_tone, preferred_stream_device,
)
from percepnet.app.virtual_mic_cable import (
    BLACKHOLE, VB_CABLE, CableVirtualMic, find_cable,
)
from percepnet.app.virtual_mic_pipe import PipeVirtualMic
from percepnet.app.virtual_mic_pulse import PulseVirtualMic, module_arg


def _dev(index, name, hostapi, ins, outs, rate=48000.0):
    return {"name": name, "index": index, "hostapi": hostapi, "max_input_channels": ins,
            "max_output_channels": outs, "default_samplerate": rate}


# Debian 12 + PulseAudio 16.1, PortAudio 19.6 ALSA host API (recorded here)
LINUX_PULSE = [_dev(0, "pulse", 0, 32, 32, 44100.0), _dev(1, "default", 0, 32, 32, 44100.0)]
# a PipeWire desktop with pipewire-alsa and the pulse plugin, plus a real card
LINUX_PIPEWIRE = [
    _dev(0, "HDA Intel PCH: ALC257 Analog (hw:0,0)", 0, 2, 2, 44100.0),
    _dev(1, "HDA Intel PCH: HDMI 0 (hw:0,3)", 0, 0, 8, 44100.0),
    _dev(2, "sysdefault", 0, 128, 128, 48000.0),
    _dev(3, "front", 0, 0, 2, 44100.0),
    _dev(4, "pipewire", 0, 64, 64, 44100.0),
    _dev(5, "pulse", 0, 32, 32, 44100.0),
    _dev(6, "default", 0, 64, 64, 44100.0),
]
# ALSA only, no sound server plugins (what a container without libasound2-plugins shows)
LINUX_BARE = [_dev(0, "HDA Intel PCH: ALC257 Analog (hw:0,0)", 0, 2, 2, 44100.0),
              _dev(1, "sysdefault", 0, 128, 128, 48000.0)]
# 'pipewire' listed output-only (a broken pipewire-alsa config) must not win
LINUX_PIPEWIRE_OUT_ONLY = [_dev(0, "pipewire", 0, 0, 64), _dev(1, "pulse", 0, 32, 32),
                           _dev(2, "default", 0, 32, 32)]

MAC_HOSTAPIS = [{"name": "Core Audio"}]
MAC_BLACKHOLE = [
    _dev(0, "BlackHole 16ch", 0, 16, 16),
    _dev(1, "MacBook Pro Microphone", 0, 1, 0),
    _dev(2, "MacBook Pro Speakers", 0, 0, 2),
    _dev(3, "BlackHole 2ch", 0, 2, 2),
    _dev(4, "ZoomAudioDevice", 0, 2, 2),
    _dev(5, "Microsoft Teams Audio", 0, 2, 2),
]
MAC_NONE = [_dev(0, "MacBook Pro Microphone", 0, 1, 0), _dev(1, "MacBook Pro Speakers", 0, 0, 2),
            _dev(2, "ZoomAudioDevice", 0, 2, 2)]

WIN_HOSTAPIS = [{"name": "MME"}, {"name": "Windows DirectSound"}, {"name": "Windows WASAPI"},
                {"name": "Windows WDM-KS"}]
WIN_VBCABLE = [
    _dev(0, "Microsoft Sound Mapper - Input", 0, 2, 0, 44100.0),
    _dev(1, "Microphone (Realtek(R) Audio)", 0, 2, 0, 44100.0),
    _dev(2, "CABLE Output (VB-Audio Virtual ", 0, 8, 0, 44100.0),
    _dev(3, "Microsoft Sound Mapper - Output", 0, 0, 2, 44100.0),
    _dev(4, "Speakers (Realtek(R) Audio)", 0, 0, 2, 44100.0),
    _dev(5, "CABLE Input (VB-Audio Virtual C", 0, 0, 8, 44100.0),
    _dev(6, "Primary Sound Capture Driver", 1, 2, 0, 44100.0),
    _dev(7, "Microphone (Realtek(R) Audio)", 1, 2, 0, 44100.0),
    _dev(8, "CABLE Output (VB-Audio Virtual Cable)", 1, 8, 0, 44100.0),
    _dev(9, "Primary Sound Driver", 1, 0, 2, 44100.0),
    _dev(10, "Speakers (Realtek(R) Audio)", 1, 0, 2, 44100.0),
    _dev(11, "CABLE Input (VB-Audio Virtual Cable)", 1, 0, 8, 44100.0),
    _dev(12, "CABLE In 16ch (VB-Audio Virtual Cable)", 1, 0, 16, 44100.0),
    _dev(13, "Speakers (Realtek(R) Audio)", 2, 0, 2, 48000.0),
    _dev(14, "CABLE Input (VB-Audio Virtual Cable)", 2, 0, 2, 48000.0),
    _dev(15, "Microphone (Realtek(R) Audio)", 2, 2, 0, 48000.0),
    _dev(16, "CABLE Output (VB-Audio Virtual Cable)", 2, 2, 0, 48000.0),
    _dev(17, "CABLE-A Input (VB-Audio Cable A)", 2, 0, 8, 48000.0),
    _dev(18, "Speakers (Realtek HD Audio output)", 3, 0, 2, 48000.0),
    _dev(19, "CABLE Output (VB-Audio Point)", 3, 8, 0, 44100.0),
    _dev(20, "Output (VB-Audio Point)", 3, 0, 8, 44100.0),
]
WIN_NONE = [_dev(0, "Microphone (Realtek(R) Audio)", 0, 2, 0),
            _dev(1, "Speakers (Realtek(R) Audio)", 0, 0, 2),
            _dev(2, "CABLE-A Input (VB-Audio Cable A)", 2, 0, 8),
            _dev(3, "Speakers (Realtek(R) Audio)", 2, 0, 2)]
# a half-installed VB-Cable (playback end only, e.g. before the reboot)
WIN_HALF = [_dev(0, "Speakers (Realtek(R) Audio)", 2, 0, 2),
            _dev(1, "CABLE Input (VB-Audio Virtual Cable)", 2, 0, 2)]


def _win_mic(devices):
    return CableVirtualMic(VB_CABLE, devices_fn=lambda: devices, hostapis_fn=lambda: WIN_HOSTAPIS)


# --------------------------------------------------------------------------- Linux device choice

@pytest.mark.parametrize("devices, expected", [
    (LINUX_PIPEWIRE, "pipewire"),
    (LINUX_PULSE, "pulse"),
    (LINUX_BARE, "default"),
    ([], "default"),
    (LINUX_PIPEWIRE_OUT_ONLY, "pulse"),
])
def test_preferred_stream_device(devices, expected):
    assert preferred_stream_device(devices) == expected


def test_pulse_backend_output_device_and_route():
    mic = PulseVirtualMic()
    assert mic.output_device(LINUX_PIPEWIRE) == "pipewire"
    assert mic.output_device(LINUX_PULSE) == "pulse"
    assert mic.output_route() == {"PULSE_SINK": "percepnet_mic_sink"}


# --------------------------------------------------------------------------- macOS / Windows

def test_blackhole_found_prefers_2ch():
    m = find_cable(MAC_BLACKHOLE, BLACKHOLE, MAC_HOSTAPIS)
    assert m is not None
    assert (m.output_index, m.output_name, m.output_channels) == (3, "BlackHole 2ch", 2)
    assert (m.input_index, m.input_name) == (3, "BlackHole 2ch")
    assert m.hostapi == "Core Audio"


def test_blackhole_missing_says_what_to_install():
    assert find_cable(MAC_NONE, BLACKHOLE, MAC_HOSTAPIS) is None
    mic = CableVirtualMic(BLACKHOLE, devices_fn=lambda: MAC_NONE, hostapis_fn=lambda: MAC_HOSTAPIS)
    st = mic.ensure()
    assert not st.present
    assert "BlackHole is not installed" in st.detail
    assert "brew install blackhole-2ch" in st.detail
    assert mic.output_device() is None
    assert mic.remove() == 0
    assert not mic.self_test().ok


def test_blackhole_present_status():
    mic = CableVirtualMic(BLACKHOLE, devices_fn=lambda: MAC_BLACKHOLE,
                          hostapis_fn=lambda: MAC_HOSTAPIS)
    st = mic.ensure()
    assert st.present and st.detail == ""
    assert (st.backend, st.sink_name, st.source_name) == \
        ("blackhole", "BlackHole 2ch", "BlackHole 2ch")
    assert mic.output_device() == 3
    assert mic.output_route() == {}
    assert 'virtual microphone: present, pick "BlackHole 2ch" in your meeting app' in st.lines()
    assert not any(line.startswith("recording from it") for line in st.lines())  # unknown here


def test_vb_cable_prefers_wasapi_and_full_names():
    m = find_cable(WIN_VBCABLE, VB_CABLE, WIN_HOSTAPIS)
    assert m is not None
    assert (m.output_index, m.output_name) == (14, "CABLE Input (VB-Audio Virtual Cable)")
    assert (m.input_index, m.input_name) == (16, "CABLE Output (VB-Audio Virtual Cable)")
    assert m.hostapi == "Windows WASAPI"
    assert m.pick_name == "CABLE Output (VB-Audio Virtual Cable)"
    assert m.output_channels == 2


def test_vb_cable_follows_the_engine_host_api():
    # a duplex stream needs both ends on one host API: MME gives the truncated names
    m = find_cable(WIN_VBCABLE, VB_CABLE, WIN_HOSTAPIS, prefer_hostapi="MME")
    assert (m.output_index, m.output_name) == (5, "CABLE Input (VB-Audio Virtual C")
    assert (m.input_index, m.input_name) == (2, "CABLE Output (VB-Audio Virtual")
    assert m.hostapi == "MME"
    assert m.pick_name == "CABLE Output (VB-Audio Virtual Cable)"  # the user sees the full name
    m = find_cable(WIN_VBCABLE, VB_CABLE, WIN_HOSTAPIS, prefer_hostapi="Windows DirectSound")
    assert (m.output_index, m.input_index) == (11, 8)  # 'CABLE In 16ch' is another endpoint


def test_vb_cable_without_host_api_names_still_found():
    m = find_cable(WIN_VBCABLE, VB_CABLE)
    assert m is not None and m.output_name.startswith("CABLE Input")
    assert m.input_name.startswith("CABLE Output") and m.hostapi == ""


def test_vb_cable_missing_and_half_installed():
    assert find_cable(WIN_NONE, VB_CABLE, WIN_HOSTAPIS) is None  # Cable A is another product
    st = _win_mic(WIN_NONE).status()
    assert not st.present
    assert "VB-CABLE" in st.detail and "https://vb-audio.com/Cable/" in st.detail
    assert "CABLE Output (VB-Audio Virtual Cable)" in st.detail
    st = _win_mic(WIN_HALF).status()
    assert not st.present and "recording end" in st.detail


def test_vb_cable_present_status_and_device():
    mic = _win_mic(WIN_VBCABLE)
    st = mic.status()
    assert st.present and st.backend == "vb-cable" and st.server == "Windows WASAPI"
    assert st.sink_name == "CABLE Input (VB-Audio Virtual Cable)"
    assert st.source_name == "CABLE Output (VB-Audio Virtual Cable)"
    assert mic.output_device() == 14
    assert mic.output_device(WIN_VBCABLE) in (5, 11, 14)  # no host API names: any listed end


@pytest.mark.parametrize("platform, cls, backend", [
    ("darwin", CableVirtualMic, "blackhole"),
    ("win32", CableVirtualMic, "vb-cable"),
])
def test_get_backend_by_platform(platform, cls, backend):
    mic = get_backend(platform)
    assert isinstance(mic, cls) and mic.backend == backend


def test_linux_gets_the_pipe_source_on_a_local_server(sound_server, monkeypatch):
    """A local server, PipeWire or PulseAudio: the pipe source; a server on another machine
    (it cannot open our FIFO) or none answering: the null-sink chain."""
    mic = get_backend("linux")
    assert type(mic) is PipeVirtualMic and mic.backend == "pulse-pipe"
    monkeypatch.setenv("PULSE_SERVER", "tcp:192.0.2.1:4713")
    assert type(get_backend("linux")) is PulseVirtualMic
    monkeypatch.setenv("PULSE_SERVER", "unix:/nonexistent/pulse/native")
    assert type(get_backend("linux")) is PulseVirtualMic


# --------------------------------------------------------------------------- module arguments

def test_module_arg_parsing():
    arg = ('source_name=percepnet_mic master=percepnet_mic_sink.monitor channels=1 '
           'source_properties="device.description=\'PercepNet Microphone\'"')
    assert module_arg(arg, "source_name") == "percepnet_mic"
    assert module_arg(arg, "master") == "percepnet_mic_sink.monitor"
    assert module_arg(arg, "source_properties") == "device.description='PercepNet Microphone'"
    assert module_arg(arg, "name") is None  # not a suffix of source_name
    assert module_arg(None, "master") is None
    assert module_arg("sink_name='a b' x=1", "sink_name") == "a b"


# --------------------------------------------------------------------------- tone analysis

def _embed(x, rate=48000, lead_s=0.3, tail_s=0.3, noise_db=-70.0, seed=1):
    rng = np.random.default_rng(seed)
    y = np.concatenate([np.zeros(int(lead_s * rate)), x, np.zeros(int(tail_s * rate))])
    return y + rng.standard_normal(y.size) * 10 ** (noise_db / 20)


def test_analyse_tone_accepts_the_tone():
    tone = make_tone()
    res = analyse_tone(_embed(tone))
    assert res.ok, res.detail
    assert abs(res.freq_hz - TONE_FREQ_HZ) < 1.0
    assert abs(res.level_db - res.expected_db) < 0.5
    assert res.expected_db == pytest.approx(-9.14, abs=0.05)  # peak-0.5 sine (-9.03) with fades
    assert res.snr_db > 40


@pytest.mark.parametrize("make, words", [
    (lambda t: 0.1 * t, "level"),                                   # -14 dB: volume down
    (lambda t: make_tone(freq_hz=1200.0), "frequency"),             # wrong tone
    (lambda t: t * (np.arange(t.size) % 4800 < 2400), "dropouts"),  # half the audio lost
    (lambda t: t + 0.3 * np.random.default_rng(2).standard_normal(t.size), "other sound"),
    (lambda t: 0 * t, "silence"),
])
def test_analyse_tone_rejects_a_broken_chain(make, words):
    res = analyse_tone(_embed(make(make_tone()), noise_db=-200.0))
    assert not res.ok
    assert words in res.detail


def test_analyse_tone_too_short():
    res = analyse_tone(np.zeros(100))
    assert not res.ok and "samples" in res.detail
