"""Linux back-end of the virtual microphone: PulseAudio, or PipeWire through pipewire-pulse.

The chain (the ``pactl`` vocabulary both servers accept, driven through ``pulsectl``)::

    engine output stream --PULSE_SINK--> null sink "percepnet_mic_sink" (mono, 48 kHz)
        percepnet_mic_sink.monitor --module-remap-source--> source "percepnet_mic"
        ("PercepNet Microphone", mono, 48 kHz, a real source: browsers hide monitors)

Our modules are recognised by their arguments in ``module_list()`` (``sink_name=`` of a
``module-null-sink``, ``source_name=`` or ``master=<sink>.monitor`` of a
``module-remap-source``), so the state left by a crashed run is found at the next start:
exactly one complete, correctly linked pair is kept, anything else of ours (duplicates,
a sink without its source, a source without its sink) is unloaded and rebuilt. A failed
build unloads what it loaded: never a half-built chain. The modules are unloaded at
interpreter exit (``atexit``) by the process that ensured them, on the server they were
created on.

Two helpers keep it working while the app runs:

- :class:`Supervisor` (``PulseVirtualMic.start_supervision``) polls the server every
  ``interval_s`` over its own connection; when the server went away and came back (restart)
  or our modules disappeared, it runs ``ensure()`` again and calls ``on_change(status)`` so
  the engine can reopen its streams. It keeps retrying while no server is reachable.
- :class:`KeepAlive`: a null sink that nobody records from is rendered in large bursts, so
  an output stream writing to it gets its callbacks in bursts too (measured here: the first
  ~2 s of a 480-frame output stream gave 3-6 callbacks/s instead of 100). A low-latency
  reader of ``<sink>.monitor`` that throws the data away makes the sink run in real time.
"""
from __future__ import annotations

import atexit
import logging
import os
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from percepnet.app.devices import (ROUTE_ENV_LOCK, child_env, pulse_client,  # noqa: F401
                                   routed_env)
from percepnet.app.virtual_mic import (
    MIC_DESCRIPTION, SAMPLE_RATE_HZ, SINK_NAME, SOURCE_NAME, MicStatus, PlayFn, SelfTestResult,
    VirtualMic, analyse_tone, make_tone, preferred_stream_device,
)

__all__ = ["PulseVirtualMic", "KeepAlive", "Supervisor", "ROUTE_ENV_LOCK", "module_arg",
           "kick_sink"]

log = logging.getLogger(__name__)


_INVALID_INDEX = 0xFFFFFFFF
_CLIENT_NAME = "percepnet-virtual-mic"
_KEEP_ALIVE_CLIENT = "percepnet-keep-alive"
#: runs "$@" (pacat) in place of the shell; a background subshell kills it when our end of
#: its stdin pipe closes, which happens whenever this process ends, kill -9 included. (A
#: PR_SET_PDEATHSIG preexec_fn would need preexec_fn, unsafe with threads, and would fire
#: when the *thread* that spawned it ends.)
_TIED_TO_PARENT_SH = 'exec 3<&0; (read _ <&3; kill $$ 2>/dev/null) & exec "$@"'


def module_arg(argument: str | None, key: str) -> str | None:
    """Value of ``key=`` in a module argument string (quoted values unquoted), or None."""
    if not argument:
        return None
    m = re.search(r'(?:^|\s)' + re.escape(key) + r'=(?:"([^"]*)"|\'([^\']*)\'|(\S+))',
                  argument)
    if m is None:
        return None
    return next(g for g in m.groups() if g is not None)


def kick_sink(pulse, sink_name: str) -> bool:
    """Suspend and resume an idle null sink so it re-arms its render timer at once.

    An idle null sink sleeps for its maximum latency (2 s) between renders and only picks
    up a new, lower requested latency when it wakes: a reader that connects waits up to
    2 s for its first data (measured 2.0 s) unless the sink is kicked (then 0.08 s). Skipped
    (False) while something plays into the sink, which a suspend would interrupt.
    """
    sink = next((s for s in pulse.sink_list() if s.name == sink_name), None)
    if sink is None or any(si.sink == sink.index for si in pulse.sink_input_list()):
        return False
    pulse.sink_suspend(sink.index, 1)
    pulse.sink_suspend(sink.index, 0)
    return True


def _pulsectl():
    import pulsectl  # libpulse through ctypes; imported lazily (OSError without libpulse)

    return pulsectl


def _server_label(info: Any) -> str:
    name = str(getattr(info, "server_name", "") or "")
    version = str(getattr(info, "server_version", "") or "")
    if "pipewire" in name.lower():
        return name  # "PulseAudio (on PipeWire 0.3.65)"
    if name.lower() == "pulseaudio":
        name = "PulseAudio"
    return f"{name} {version}".strip()


#: Longest wait for the server to finish unloading our modules, s (it unloads them on its
#: next main-loop turn, normally within a few ms).
UNLOAD_WAIT_S = 2.0
# How long a freshly loaded chain may take to show up, in s. pipewire-pulse acknowledges
# ``module-remap-source`` before its filter node exists (the source is listed some tens of
# ms later, more on a loaded 2-core machine); PulseAudio lists it at once.
BUILD_WAIT_S = 3.0


@dataclass
class _Chain:
    """Our objects as found on the server."""

    sink_modules: list = field(default_factory=list)
    source_modules: list = field(default_factory=list)
    sink: Any = None
    source: Any = None
    problems: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.problems

    @property
    def empty(self) -> bool:
        return not (self.sink_modules or self.source_modules or self.sink or self.source)


class _BuildError(Exception):
    pass


class PulseVirtualMic(VirtualMic):
    """The virtual microphone on a PulseAudio or pipewire-pulse server (see module docstring).

    ``server``: a PulseAudio server string; default ``$PULSE_SERVER`` or libpulse's own
    discovery, resolved on each call and remembered by :meth:`ensure` for the removal at
    exit. Thread-safe: ensure/remove/status hold one lock.
    """

    backend = "pulse"

    def __init__(self, sink_name: str = SINK_NAME, source_name: str = SOURCE_NAME,
                 description: str = MIC_DESCRIPTION, server: str | None = None,
                 remove_at_exit: bool = True, connect_timeout_s: float | None = None) -> None:
        self.sink_name = sink_name
        self.source_name = source_name
        self.description = description
        self.server = server
        self.remove_at_exit = remove_at_exit
        self.connect_timeout_s = connect_timeout_s
        self._lock = threading.RLock()
        self._owned_server: str | None = None  # server address of our ensure(), for exit
        self._owned = False
        self._atexit = False
        self._is_pipewire = False
        self._supervisor: Supervisor | None = None
        self._keep_alives: list[KeepAlive] = []

    # ------------------------------------------------------------------ module arguments
    @property
    def sink_description(self) -> str:
        return f"{self.description} Sink"

    def sink_args(self) -> str:
        # nested quotes: a description with spaces needs "prop='a b'" (pulsectl fails to load the module otherwise)
        return (f"sink_name={self.sink_name} rate={SAMPLE_RATE_HZ} channels=1 channel_map=mono "
                f"sink_properties=\"device.description='{self.sink_description}'\"")

    def source_args(self) -> str:
        return (f"source_name={self.source_name} master={self.sink_name}.monitor "
                f"rate={SAMPLE_RATE_HZ} channels=1 channel_map=mono "
                f"source_properties=\"device.description='{self.description}'\"")

    # ------------------------------------------------------------------ connection
    def _address(self) -> str | None:
        return self.server or os.environ.get("PULSE_SERVER") or None

    def _connect(self, server: str | None = None):
        _pulsectl()  # the clear error when pulsectl is missing
        # pulsectl 24.12 with a timeout waits the whole timeout even when the connection
        # is up at once (measured 2.0 s per connect), so none by default: a missing
        # server fails at once on its socket
        return pulse_client(_CLIENT_NAME, server or self._address(),
                            timeout_s=self.connect_timeout_s)

    def _status(self, present: bool, **kw: Any) -> MicStatus:
        return MicStatus(present=present, backend=self.backend, sink_name=self.sink_name,
                         source_name=self.source_name, description=self.description, **kw)

    def _unreachable(self, exc: BaseException) -> MicStatus:
        if isinstance(exc, (ImportError, OSError)) and "pulse" in str(exc).lower() \
                and "connect" not in str(exc).lower():
            msg = f"PulseAudio client library unavailable (install libpulse0): {exc}"
        else:
            msg = f"no PulseAudio/PipeWire server reachable: {exc}"
        return self._status(False, detail=msg, reachable=False)

    # ------------------------------------------------------------------ inspection
    def _inspect(self, pulse) -> _Chain:
        chain = _Chain()
        monitor = f"{self.sink_name}.monitor"
        for m in pulse.module_list():
            if m.name == "module-null-sink" \
                    and module_arg(m.argument, "sink_name") == self.sink_name:
                chain.sink_modules.append(m)
            elif m.name == "module-remap-source" and (
                    module_arg(m.argument, "source_name") == self.source_name
                    or module_arg(m.argument, "master") == monitor):
                chain.source_modules.append(m)
        chain.sink = next((s for s in pulse.sink_list() if s.name == self.sink_name), None)
        chain.source = next((s for s in pulse.source_list() if s.name == self.source_name), None)
        p = chain.problems
        if chain.sink is None:
            p.append(f"sink {self.sink_name} missing")
        if chain.source is None:
            p.append(f"source {self.source_name} missing")
        if not chain.sink_modules and not chain.source_modules:
            # objects by those names but no module arguments to match (a server that hides
            # them): accept a linked pair as is, we cannot repair what we cannot unload
            monitor_of = getattr(chain.source, "monitor_of_sink", None)
            if chain.source is not None and monitor_of not in (None, _INVALID_INDEX):
                p.append(f"{self.source_name} is a monitor, not a real source")
            return chain
        if len(chain.sink_modules) != 1:
            p.append(f"{len(chain.sink_modules)} null-sink modules of ours (want 1)")
        if len(chain.source_modules) != 1:
            p.append(f"{len(chain.source_modules)} remap-source modules of ours (want 1)")
        if len(chain.source_modules) == 1:
            m = chain.source_modules[0]
            if module_arg(m.argument, "master") != monitor:
                p.append(f"remap source reads {module_arg(m.argument, 'master')}, not {monitor}")
            if module_arg(m.argument, "source_name") != self.source_name:
                p.append("remap source of an older name")
        for obj, mods, what in ((chain.sink, chain.sink_modules, "sink"),
                                (chain.source, chain.source_modules, "source")):
            owner = getattr(obj, "owner_module", None) if obj is not None else None
            if obj is not None and len(mods) == 1 and owner not in (None, _INVALID_INDEX) \
                    and owner != mods[0].index:
                p.append(f"{what} {obj.name} belongs to another module ({owner})")
        return chain

    def _unload(self, pulse, chain: _Chain) -> int:
        """Unload the chain's modules and wait (up to ``UNLOAD_WAIT_S``) until the server has
        dropped them: PulseAudio acknowledges an unload before it runs it (a deferred event),
        and a sink built again meanwhile would find its name taken (``<name>.2``)."""
        n = 0
        indices = [m.index for m in list(chain.source_modules) + list(chain.sink_modules)]
        for index in indices:
            try:
                pulse.module_unload(index)
                n += 1
            except Exception as exc:  # already gone (the remap goes with its master)
                log.debug("unload of module %s failed: %s", index, exc)
        deadline = time.monotonic() + UNLOAD_WAIT_S
        while indices and time.monotonic() < deadline:
            if not {m.index for m in pulse.module_list()} & set(indices):
                break
            time.sleep(0.01)
        return n

    def _build(self, pulse) -> str | None:
        """Load sink + remap source; None on success, else the reason (nothing left loaded)."""
        pulsectl = _pulsectl()
        info = pulse.server_info()
        old_sink, old_source = info.default_sink_name, info.default_source_name
        loaded: list[int] = []
        try:
            loaded.append(pulse.module_load("module-null-sink", self.sink_args()))
            loaded.append(pulse.module_load("module-remap-source", self.source_args()))
            chain = self._inspect(pulse)
            deadline = time.monotonic() + BUILD_WAIT_S
            while not chain.complete and time.monotonic() < deadline:
                time.sleep(0.02)
                chain = self._inspect(pulse)
            if not chain.complete:
                raise _BuildError("; ".join(chain.problems))
        except (pulsectl.PulseError, _BuildError) as exc:
            for idx in reversed(loaded):
                try:
                    pulse.module_unload(idx)
                except Exception:
                    pass
            return f"could not create the virtual microphone: {exc}"
        self._restore_defaults(pulse, old_sink, old_source)
        return None

    def _restore_defaults(self, pulse, old_sink: str | None, old_source: str | None) -> None:
        """A server with module-switch-on-connect makes a new sink the default: then the
        desktop's sound would go into the microphone. Put the previous defaults back."""
        ours_src = {self.source_name, f"{self.sink_name}.monitor"}
        try:
            info = pulse.server_info()
            if info.default_sink_name == self.sink_name and old_sink \
                    and old_sink != self.sink_name \
                    and any(s.name == old_sink for s in pulse.sink_list()):
                pulse.sink_default_set(old_sink)
            if info.default_source_name in ours_src and old_source and old_source not in ours_src \
                    and any(s.name == old_source for s in pulse.source_list()):
                pulse.source_default_set(old_source)
        except Exception as exc:
            log.warning("could not restore the default sink/source: %s", exc)

    def _status_on(self, pulse, chain: _Chain | None = None, repaired: bool = False) -> MicStatus:
        info = pulse.server_info()
        server = _server_label(info)
        self._is_pipewire = "pipewire" in server.lower()
        chain = chain if chain is not None else self._inspect(pulse)
        if not chain.complete:
            detail = ("not created: start PercepNet (it creates the microphone)" if chain.empty
                      else "broken: " + "; ".join(chain.problems)
                      + " (PercepNet repairs it at start)")
            return self._status(False, server=server, detail=detail)

        def _app(obj) -> str:
            props = getattr(obj, "proplist", {}) or {}
            return str(props.get("application.name") or getattr(obj, "name", "") or "?")

        readers = tuple(_app(o) for o in pulse.source_output_list()
                        if o.source == chain.source.index)
        writers = tuple(_app(o) for o in pulse.sink_input_list() if o.sink == chain.sink.index)
        warnings = []
        for obj, what in ((chain.source, "the microphone"), (chain.sink, "its sink")):
            if getattr(obj, "mute", 0):
                warnings.append(f"{what} ({obj.name}) is muted")
            vol = getattr(getattr(obj, "volume", None), "value_flat", 1.0)
            if vol < 0.99:
                warnings.append(f"{what} ({obj.name}) volume is {100 * vol:.0f} %")
        return self._status(True, server=server, readers=readers, writers=writers,
                            repaired=repaired, warnings=tuple(warnings))

    # ------------------------------------------------------------------ the interface
    def ensure(self) -> MicStatus:
        """Create or repair the chain; idempotent. Never raises; see ``MicStatus.detail``."""
        with self._lock:
            address = self._address()
            try:
                pulse = self._connect(address)
            except Exception as exc:
                return self._unreachable(exc)
            try:
                return self._ensure_on(pulse, address)
            except Exception as exc:  # the server went away midway
                return self._unreachable(exc)
            finally:
                pulse.close()

    def _ensure_on(self, pulse, address: str | None) -> MicStatus:
        chain = self._inspect(pulse)
        repaired = False
        if not chain.complete:
            repaired = not chain.empty
            if repaired:
                log.warning("virtual microphone: rebuilding a broken chain (%s)",
                            "; ".join(chain.problems))
                self._unload(pulse, chain)
            err = self._build(pulse)
            if err is not None:
                st = self._status_on(pulse)
                return self._status(False, server=st.server, detail=err)
        self._owned = True
        self._owned_server = address
        if self.remove_at_exit and not self._atexit:
            atexit.register(self._remove_at_exit)
            self._atexit = True
        return self._status_on(pulse, repaired=repaired)

    def status(self) -> MicStatus:
        with self._lock:
            try:
                pulse = self._connect()
            except Exception as exc:
                return self._unreachable(exc)
            try:
                return self._status_on(pulse)
            except Exception as exc:
                return self._unreachable(exc)
            finally:
                pulse.close()

    def remove(self, server: str | None = None) -> int:
        """Stop supervision and keep-alives, unload every module of ours; returns the count.

        Raises nothing; with no server reachable it returns 0.
        """
        self.stop_supervision()
        for ka in list(self._keep_alives):
            ka.stop()
        self._keep_alives.clear()
        with self._lock:
            self._owned = False
            try:
                pulse = self._connect(server)
            except Exception:
                return 0
            try:
                return self._unload(pulse, self._inspect(pulse))
            except Exception:
                return 0
            finally:
                pulse.close()

    def _remove_at_exit(self) -> None:
        if self._owned:
            try:
                self.remove(self._owned_server)
            except Exception:  # pragma: no cover - never fail interpreter exit
                pass

    def output_route(self) -> dict[str, str]:
        """Env for the engine's output stream: ``PULSE_SINK`` (ALSA ``pulse``/``default``
        device through libpulse) and, on PipeWire, ``PIPEWIRE_NODE`` (native ``pipewire``
        ALSA device). Set them right before opening the stream, restore them after."""
        route = {"PULSE_SINK": self.sink_name}
        if self._is_pipewire:
            route["PIPEWIRE_NODE"] = self.sink_name
        return route

    def output_device(self, devices: Sequence[Mapping[str, Any]] | None = None) -> str:
        if devices is None:
            import sounddevice as sd

            devices = sd.query_devices()
        return preferred_stream_device(devices)

    # ------------------------------------------------------------------ helpers for the engine
    def keep_alive(self, start: bool = True, method: str = "auto") -> "KeepAlive":
        """A :class:`KeepAlive` on our sink's monitor (started unless ``start=False``);
        stopped by :meth:`remove` and at exit."""
        ka = KeepAlive(self.sink_name, method=method, server=self.server)
        self._keep_alives.append(ka)
        if start:
            ka.start()
        return ka

    def start_supervision(self, interval_s: float = 0.5,
                          on_change: Callable[[MicStatus], None] | None = None,
                          keep_alive: bool = True) -> "Supervisor":
        """Start (or return the running) :class:`Supervisor` for this microphone."""
        if self._supervisor is not None and self._supervisor.running:
            return self._supervisor
        self._supervisor = Supervisor(self, interval_s=interval_s, on_change=on_change,
                                      keep_alive=keep_alive)
        self._supervisor.start()
        return self._supervisor

    def stop_supervision(self) -> None:
        sup, self._supervisor = self._supervisor, None
        if sup is not None:
            sup.stop()

    # ------------------------------------------------------------------ self-test
    def self_test(self, play_device_fn: PlayFn | None = None,
                  timeout_s: float = 3.0) -> SelfTestResult:
        """Play a 0.5 s 1 kHz tone into the sink, record "PercepNet Microphone" meanwhile.

        Anyone recording from the microphone hears the beep. Never raises.
        """
        st = self.status()
        if not st.present:
            return SelfTestResult(False, detail=f"virtual microphone absent: {st.detail}")
        tone = make_tone()
        deadline = time.monotonic() + timeout_s
        rec = _Recorder(self.source_name, self.server)
        # without a low-latency reader on the sink's monitor the first audio can take
        # seconds to arrive (the null sink renders in bursts): run one for the test
        ka = None if any(k.running for k in self._keep_alives) or (
            self._supervisor is not None and self._supervisor.keep_alive is not None
            and self._supervisor.keep_alive.running) else KeepAlive(self.sink_name,
                                                                    server=self.server)
        try:
            if ka is not None:
                ka.start()
            rec.start()
            if not rec.wait_first_data(min(2.5, max(0.1, deadline - time.monotonic()))):
                return SelfTestResult(False, detail="no audio came from the microphone "
                                      f"({rec.describe_failure()})")
            if play_device_fn is not None:
                play_device_fn(tone, SAMPLE_RATE_HZ)
            else:
                _play(tone, self.sink_name, self.server, max(0.5, deadline - time.monotonic()))
            time.sleep(min(0.3, max(0.0, deadline - time.monotonic())))
            recorded = rec.stop()
        except Exception as exc:
            return SelfTestResult(False, detail=f"the self-test could not run: {exc}")
        finally:
            rec.stop()
            if ka is not None:
                ka.stop()
        return analyse_tone(recorded, SAMPLE_RATE_HZ, played=tone)


# --------------------------------------------------------------------------- audio helpers

def _pacat() -> str | None:
    return shutil.which("pacat")


def _pacat_args(server: str | None) -> list[str]:
    return [f"--server={server}"] if server else []


def _open_routed(stream_factory: Callable[[], Any], env: Mapping[str, str]) -> Any:
    """Open and start a PortAudio stream with ``env`` set (routing for the ALSA plugins)."""
    with routed_env(env):
        stream = stream_factory()
        stream.start()
    return stream


class _Recorder:
    """Records float32 mono 48 kHz from a source in the background (pacat, or sounddevice)."""

    def __init__(self, source: str, server: str | None) -> None:
        self.source, self.server = source, server
        self._chunks: list[bytes] = []
        self._proc: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None
        self._stream = None
        self._got = threading.Event()
        self._stopped = False
        self._stderr = b""

    def start(self) -> None:
        exe = _pacat()
        if exe is not None:
            self._proc = subprocess.Popen(
                [exe, "--record", "--raw", f"--device={self.source}", "--format=float32le",
                 f"--rate={SAMPLE_RATE_HZ}", "--channels=1", "--latency-msec=10",
                 "--client-name=percepnet-self-test", *_pacat_args(self.server)],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env())
            self._thread = threading.Thread(target=self._read, daemon=True,
                                            name="percepnet-selftest-rec")
            self._thread.start()
            return
        import sounddevice as sd

        def cb(indata, frames, t, status):  # noqa: ARG001
            self._chunks.append(indata.tobytes())
            self._got.set()

        self._stream = _open_routed(
            lambda: sd.InputStream(device="pulse", samplerate=SAMPLE_RATE_HZ, channels=1,
                                   dtype="float32", blocksize=480, latency="low", callback=cb),
            {"PULSE_SOURCE": self.source})

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        while True:
            b = self._proc.stdout.read1(65536)
            if not b:
                break
            self._chunks.append(b)
            self._got.set()

    def wait_first_data(self, timeout_s: float) -> bool:
        return self._got.wait(timeout_s)

    def describe_failure(self) -> str:
        if self._proc is not None and self._proc.poll() is not None:
            err = (self._proc.stderr.read() if self._proc.stderr else b"").decode(errors="replace")
            return f"pacat exited {self._proc.returncode}: {err.strip()}"
        return "nothing recorded within the time limit"

    def stop(self) -> np.ndarray:
        if not self._stopped:
            self._stopped = True
            if self._proc is not None:
                self._proc.terminate()
                try:
                    self._proc.wait(2.0)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
                if self._thread is not None:
                    self._thread.join(2.0)
                for f in (self._proc.stdout, self._proc.stderr):
                    if f is not None:
                        f.close()
            if self._stream is not None:
                self._stream.stop()
                self._stream.close()
        data = b"".join(self._chunks)
        data = data[: len(data) // 4 * 4]
        return np.frombuffer(data, dtype="<f4").astype(np.float32)


def _play(samples: np.ndarray, sink: str, server: str | None, timeout_s: float) -> None:
    """Play mono float32 48 kHz samples into ``sink``, blocking until played."""
    data = np.ascontiguousarray(samples, dtype="<f4")
    exe = _pacat()
    if exe is not None:
        proc = subprocess.run(
            [exe, "--playback", "--raw", f"--device={sink}", "--format=float32le",
             f"--rate={SAMPLE_RATE_HZ}", "--channels=1", "--latency-msec=20",
             "--client-name=percepnet-self-test", *_pacat_args(server)],
            input=data.tobytes(), capture_output=True, timeout=timeout_s + 2.0, env=child_env())
        if proc.returncode != 0:
            raise RuntimeError(f"pacat --playback exited {proc.returncode}: "
                               f"{proc.stderr.decode(errors='replace').strip()}")
        return
    import sounddevice as sd

    pos = [0]
    done = threading.Event()

    def cb(outdata, frames, t, status):  # noqa: ARG001
        n = min(frames, data.size - pos[0])
        outdata[:n, 0] = data[pos[0]:pos[0] + n]
        outdata[n:] = 0
        pos[0] += n
        if pos[0] >= data.size:
            done.set()

    stream = _open_routed(
        lambda: sd.OutputStream(device="pulse", samplerate=SAMPLE_RATE_HZ, channels=1,
                                dtype="float32", blocksize=480, latency="low", callback=cb),
        {"PULSE_SINK": sink})
    try:
        done.wait(timeout_s)
        time.sleep(0.1)
    finally:
        stream.stop()
        stream.close()


# --------------------------------------------------------------------------- keep-alive

class KeepAlive:
    """Drains ``<sink>.monitor`` at low latency and discards the data (see module docstring).

    ``method``: ``"pacat"`` (a ``pacat --record --latency-msec=10`` child writing to
    /dev/null, tied to this process: it ends when we end, ``kill -9`` included), or
    ``"sounddevice"`` (an in-process ``InputStream`` on the ALSA ``pulse`` device, routed by
    ``PULSE_SOURCE`` while it opens), or ``"auto"`` (pacat when installed). The pacat child
    also ends when the server goes away; :meth:`start` again (the :class:`Supervisor` does).
    """

    def __init__(self, sink_name: str = SINK_NAME, method: str = "auto",
                 server: str | None = None, latency_ms: int = 10) -> None:
        if method not in ("auto", "pacat", "sounddevice"):
            raise ValueError(f"unknown keep-alive method {method!r}")
        self.sink_name, self.server, self.latency_ms = sink_name, server, latency_ms
        self.method = ("pacat" if _pacat() else "sounddevice") if method == "auto" else method
        self._proc: subprocess.Popen | None = None
        self._stream = None
        self._lock = threading.Lock()

    @property
    def monitor(self) -> str:
        return f"{self.sink_name}.monitor"

    @property
    def running(self) -> bool:
        if self._proc is not None:
            return self._proc.poll() is None
        if self._stream is not None:
            return bool(self._stream.active)
        return False

    def start(self, kick: bool = True) -> bool:
        """Start (or restart a dead) reader; True when running. Never raises.

        ``kick``: then wake the sink so the low latency applies at once (:func:`kick_sink`;
        skipped while something plays into the sink)."""
        with self._lock:
            if self.running:
                return True
            self._stop_locked()
            try:
                if self.method == "pacat":
                    exe = _pacat()
                    if exe is None:
                        raise FileNotFoundError("pacat not found (install pulseaudio-utils)")
                    self._proc = subprocess.Popen(
                        ["sh", "-c", _TIED_TO_PARENT_SH, "sh", exe, "--record", "--raw",
                         f"--device={self.monitor}", "--format=s16le", f"--rate={SAMPLE_RATE_HZ}",
                         "--channels=1", f"--latency-msec={self.latency_ms}",
                         f"--client-name={_KEEP_ALIVE_CLIENT}", *_pacat_args(self.server)],
                        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL, env=child_env())
                else:
                    import sounddevice as sd

                    self._stream = _open_routed(
                        lambda: sd.InputStream(device="pulse", samplerate=SAMPLE_RATE_HZ,
                                               channels=1, dtype="int16", blocksize=480,
                                               latency="low", callback=lambda *a: None),
                        {"PULSE_SOURCE": self.monitor})
            except Exception as exc:
                log.warning("keep-alive on %s could not start: %s", self.monitor, exc)
                self._stop_locked()
                return False
        if kick:
            self._kick()
        return True

    def _kick(self, wait_s: float = 1.0) -> None:
        """Once our reader is connected, kick the sink (:func:`kick_sink`) so the reader's
        low latency applies now rather than after the sink's next 2 s sleep."""
        try:
            server = self.server or os.environ.get("PULSE_SERVER")
            with pulse_client(_CLIENT_NAME, server) as pulse:
                deadline = time.monotonic() + wait_s
                while time.monotonic() < deadline:
                    # the pacat child is connected when its record stream is listed (the
                    # remap source has its own stream on the monitor, so match the name)
                    if self._proc is None or any(
                            (o.proplist or {}).get("application.name") == _KEEP_ALIVE_CLIENT
                            for o in pulse.source_output_list()):
                        kick_sink(pulse, self.sink_name)
                        return
                    time.sleep(0.02)
        except Exception as exc:
            log.debug("keep-alive kick failed: %s", exc)

    def _stop_locked(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.stdin is not None:
                proc.stdin.close()  # the tie: the watcher subshell kills pacat
            try:
                proc.wait(2.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
                stream.close()
            except Exception:
                pass

    def stop(self) -> None:
        with self._lock:
            self._stop_locked()

    def __enter__(self) -> "KeepAlive":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


# --------------------------------------------------------------------------- supervisor

class Supervisor:
    """Background thread that keeps a :class:`PulseVirtualMic` present (module docstring).

    Each poll (``interval_s``) costs one ``server_info`` and one module/sink/source listing
    over a persistent connection. After a failure it reconnects (first at once, then every
    interval); when the chain is incomplete it runs ``mic.ensure()``. ``on_change(status)``
    is called from this thread whenever the microphone appears or disappears, and after
    each rebuild (the engine reopens its output stream then). ``keep_alive``: also run a
    :class:`KeepAlive` on the sink and restart it when it dies (server restart).
    """

    def __init__(self, mic: PulseVirtualMic, interval_s: float = 0.5,
                 on_change: Callable[[MicStatus], None] | None = None,
                 keep_alive: bool = True) -> None:
        self.mic = mic
        self.interval_s = interval_s
        self.on_change = on_change
        self.keep_alive = KeepAlive(mic.sink_name, server=mic.server) if keep_alive else None
        self.rebuilds = 0
        self.last_status: MicStatus | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> "Supervisor":
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="percepnet-virtual-mic-supervisor")
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 3.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)
        if self.keep_alive is not None:
            self.keep_alive.stop()

    def _notify(self, status: MicStatus) -> None:
        self.last_status = status
        if self.on_change is not None:
            try:
                self.on_change(status)
            except Exception:  # a broken callback must not end supervision
                log.exception("virtual microphone on_change callback failed")

    def _poll(self, conn) -> tuple[bool, MicStatus | None]:
        """One check over ``conn``; returns (present, status to report or None)."""
        conn.server_info()  # raises on a dead connection
        with self.mic._lock:
            if self._stop.is_set():
                return True, None
            chain = self.mic._inspect(conn)
            if chain.complete:
                return True, None
        status = self.mic.ensure()
        self.rebuilds += 1
        return status.present, status

    def _run(self) -> None:
        conn = None
        present: bool | None = None
        retry_now = False
        while not self._stop.is_set():
            status: MicStatus | None = None
            try:
                if conn is None:
                    conn = self.mic._connect()
                now, status = self._poll(conn)
                retry_now = False
            except Exception as exc:
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:
                        pass
                    conn = None
                    retry_now = True  # the server may already be back: reconnect at once
                now = False
                status = self.mic._unreachable(exc)
            if self._stop.is_set():
                break
            if now and self.keep_alive is not None and not self.keep_alive.running:
                self.keep_alive.start()
            if now != present or (status is not None and now):
                self._notify(status if status is not None else self.mic.status())
            present = now
            if retry_now and not now:
                retry_now = False
                continue
            self._stop.wait(self.interval_s)
        if conn is not None:
            conn.close()
