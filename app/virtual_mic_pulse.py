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

The helpers live in modules of their own:

- :mod:`percepnet.app.mic_supervisor` (``start_supervision``): a thread that recreates the
  chain after a server restart or when our modules disappeared;
- :mod:`percepnet.app.mic_keep_alive` (``keep_alive``): a low-latency reader of the sink's
  monitor, without which the null sink renders in bursts;
- :mod:`percepnet.app.mic_self_test` (``self_test``): a tone through the chain, read back.

``KeepAlive``, ``Supervisor`` and ``kick_sink`` stay importable from here.
"""
from __future__ import annotations

import atexit
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from percepnet.app.devices import ROUTE_ENV_LOCK, pulse_client  # noqa: F401
from percepnet.app.mic_keep_alive import KeepAlive, kick_sink  # noqa: F401
from percepnet.app.mic_self_test import run_self_test
from percepnet.app.mic_supervisor import Supervisor
from percepnet.app.virtual_mic import (
    MIC_DESCRIPTION, PULSE_CLIENT_NAME, SAMPLE_RATE_HZ, SINK_NAME, SOURCE_NAME, MicStatus,
    PlayFn, SelfTestResult, VirtualMic, preferred_stream_device,
)

__all__ = ["PulseVirtualMic", "KeepAlive", "Supervisor", "ROUTE_ENV_LOCK", "module_arg",
           "kick_sink"]

log = logging.getLogger(__name__)


_INVALID_INDEX = 0xFFFFFFFF


def module_arg(argument: str | None, key: str) -> str | None:
    """Value of ``key=`` in a module argument string (quoted values unquoted), or None."""
    if not argument:
        return None
    m = re.search(r'(?:^|\s)' + re.escape(key) + r'=(?:"([^"]*)"|\'([^\']*)\'|(\S+))',
                  argument)
    if m is None:
        return None
    return next(g for g in m.groups() if g is not None)


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
#: After a build, the defaults are watched until unchanged for DEFAULTS_STABLE_S (s), for at
#: most DEFAULTS_SETTLE_S (s): WirePlumber picks a new default asynchronously.
DEFAULTS_STABLE_S = 0.15
DEFAULTS_SETTLE_S = 1.0


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
        return pulse_client(PULSE_CLIENT_NAME, server or self._address(),
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

    def _modules(self) -> list[tuple[str, str]]:
        """(module, arguments) to load, in order: the sink, then the remap source."""
        return [("module-null-sink", self.sink_args()),
                ("module-remap-source", self.source_args())]

    def _prepare_build(self) -> None:
        """Anything to do before the modules load (raises OSError with the reason)."""

    def _build(self, pulse) -> str | None:
        """Load the modules; None on success, else the reason (nothing left loaded)."""
        pulsectl = _pulsectl()
        info = pulse.server_info()
        old_sink, old_source = info.default_sink_name, info.default_source_name
        loaded: list[int] = []
        try:
            self._prepare_build()
            for module, args in self._modules():
                loaded.append(pulse.module_load(module, args))
            chain = self._inspect(pulse)
            deadline = time.monotonic() + BUILD_WAIT_S
            while not chain.complete and time.monotonic() < deadline:
                time.sleep(0.02)
                chain = self._inspect(pulse)
            if not chain.complete:
                raise _BuildError("; ".join(chain.problems))
        except (pulsectl.PulseError, _BuildError, OSError) as exc:
            for idx in reversed(loaded):
                try:
                    pulse.module_unload(idx)
                except Exception:
                    pass
            return f"could not create the virtual microphone: {exc}"
        self._restore_defaults(pulse, old_sink, old_source)
        return None

    def _restore_defaults(self, pulse, old_sink: str | None, old_source: str | None) -> None:
        """A server with module-switch-on-connect makes a new sink the default (the desktop's
        sound would go into the microphone), and WirePlumber makes a new source the default
        when there is no other (our own default input would record our output). Put the
        previous defaults back, and watch until they have stayed put for
        ``DEFAULTS_STABLE_S`` (WirePlumber decides some tens of ms after the node appears)."""
        ours_src = {self.source_name, f"{self.sink_name}.monitor"}
        deadline = time.monotonic() + DEFAULTS_SETTLE_S
        stable_since = time.monotonic()
        try:
            while True:
                info = pulse.server_info()
                changed = False
                if info.default_sink_name == self.sink_name and old_sink \
                        and old_sink != self.sink_name \
                        and any(s.name == old_sink for s in pulse.sink_list()):
                    pulse.sink_default_set(old_sink)
                    changed = True
                if info.default_source_name in ours_src and old_source \
                        and old_source not in ours_src \
                        and any(s.name == old_source for s in pulse.source_list()):
                    pulse.source_default_set(old_source)
                    changed = True
                now = time.monotonic()
                if changed:
                    stable_since = now
                if now - stable_since >= DEFAULTS_STABLE_S or now > deadline:
                    return
                time.sleep(0.02)
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
        writers = () if chain.sink is None else tuple(
            _app(o) for o in pulse.sink_input_list() if o.sink == chain.sink.index)
        warnings = []
        for obj, what in ((chain.source, "the microphone"), (chain.sink, "its sink")):
            if obj is None:  # a chain without a sink (the pipe source)
                continue
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

        Anyone recording from the microphone hears the beep. Never raises. The recording
        and the default player are ``pacat`` children (:mod:`percepnet.app.mic_self_test`
        says why); a keep-alive runs for the test unless one of ours already does.
        """
        st = self.status()
        if not st.present:
            return SelfTestResult(False, detail=f"virtual microphone absent: {st.detail}")
        sup_ka = self._supervisor.keep_alive if self._supervisor is not None else None
        running = any(k.running for k in self._keep_alives) or (
            sup_ka is not None and sup_ka.running)
        return run_self_test(self.sink_name, self.source_name, self.server,
                             play_device_fn=play_device_fn, timeout_s=timeout_s,
                             keep_alive=not running)
