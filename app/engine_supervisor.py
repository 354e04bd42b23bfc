"""The engine's supervisor thread: every 0.1 s it checks the running stream and repairs it.

- a dead or stalled stream (device unplugged, sound server restarted): reopen it, with a
  PortAudio rescan where the device is not routed by the sound server;
- the sound server moved our stream (the chosen device vanished, or is back): reopen on
  the server's default, or back on the chosen device;
- buffered audio piling up (the end-to-end delay grew): reopen at a quiet moment, which
  drops it (a latency re-sync);
- a "listen to myself" request the window could not apply without waiting;
- the status callback, about once a second.

It takes the engine's lock for each tick; the audio callback never takes it.
"""
from __future__ import annotations

import logging
import threading
import time

from percepnet.dsp.constants import SAMPLE_RATE_HZ

from .engine_core import BLOCK_SIZE

__all__ = ["Supervisor", "STALL_TIMEOUT_S", "FIRST_CALLBACK_TIMEOUT_S", "STARTUP_BLOCKS",
           "RESYNC_QUIET_DB"]

log = logging.getLogger("percepnet.engine")

#: Period of the supervisor's checks (s).
TICK_S = 0.1
#: A stream whose callback has not run for this long is considered dead (s).
STALL_TIMEOUT_S = 0.75
#: ... and one that has not delivered its first callback this long after opening (the
#: sound server may take a moment to start a stream) (s).
FIRST_CALLBACK_TIMEOUT_S = 3.0
#: Until a stream has delivered this many blocks (1 s of audio) it is still starting: the
#: sound server runs the first few callbacks at once to fill its buffers, then may pause up
#: to about a second before the device clock takes over (measured with PulseAudio's
#: module-sine-source: 3 callbacks, then 0.85 s of nothing), so the start-up timeout applies.
STARTUP_BLOCKS = SAMPLE_RATE_HZ // BLOCK_SIZE
#: How often the stream's place on the sound server is checked (s).
ROUTE_CHECK_S = 0.5
#: A quiet moment for a latency re-sync: the input's block peak below this (dBFS).
RESYNC_QUIET_DB = -40.0
#: A PortAudio rescan on every this many failed reopenings of a routed device.
RESCAN_EVERY = 5


class Supervisor:
    """The supervisor thread of one :class:`engine.Engine` (passed in, not imported: the
    engine owns its supervisor)."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="percepnet-supervisor",
                                        daemon=True)
        self._last_route_check = 0.0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread() and self._thread.is_alive():
            self._thread.join(timeout=3.0)

    def _run(self) -> None:
        eng = self.engine
        last_status = 0.0
        while not self._stop.wait(TICK_S):
            now = time.monotonic()
            with eng._lock:
                if eng._monitor_request != eng._mon.enabled:
                    eng._apply_monitor()
                if eng._state == "running":
                    self._check_running(now)
                elif eng._state == "reconnecting":
                    # a routed (sound-server) device only needs reopening; a PortAudio one
                    # needs a rescan to be seen again
                    src, snk = eng._router.routed
                    eng._reinit(rescan=not (src or snk)
                                or eng._reconnect_tries % RESCAN_EVERY == RESCAN_EVERY - 1)
                    eng._reconnect_tries += 1
            if eng.on_status is not None and now - last_status >= 1.0:
                last_status = now
                try:
                    eng.on_status(eng.diagnostics())
                except Exception:  # noqa: BLE001
                    log.exception("status callback failed")

    def _check_running(self, now: float) -> None:
        """One tick on a running stream: dead or stalled, moved by the server, or buffered
        audio piling up."""
        eng = self.engine
        st = eng._stream
        router = eng._router
        if eng._callbacks_since_open < STARTUP_BLOCKS:
            stalled = now - eng._last_callback > FIRST_CALLBACK_TIMEOUT_S
        else:
            stalled = now - eng._last_callback > STALL_TIMEOUT_S
        if st is not None and (not st.active or stalled):
            log.warning("audio stream stopped (device gone or server restarted: %s); "
                        "re-initialising",
                        "stream inactive" if not st.active else
                        f"no callback for {now - eng._last_callback:.2f} s after "
                        f"{eng._callbacks_since_open} callbacks")
            src, snk = router.routed
            eng._reinit(rescan=not (src or snk))
            return
        if now - self._last_route_check >= ROUTE_CHECK_S:
            self._last_route_check = now
            route, gone = router.state()
            if route == "back":
                log.info("the chosen device is back; moving the stream to it")
                router.gone = set()
                eng._reinit(rescan=False)
                return
            if route == "gone" and not gone <= router.gone:
                # Reopen on the server's default (the vanished device left out): a capture
                # stream the server moved onto an idle source can replay stale buffer
                # contents (the unplugged mic's last audio) for seconds, until the ALSA
                # layer happens to recover.
                log.warning("the chosen device disappeared; using the sound server's default "
                            "until it is back")
                router.gone |= gone
                eng._reinit(rescan=False)
                return
        self._check_latency(now)

    def _check_latency(self, now: float) -> None:
        """Latency re-sync: reopen the stream when buffered audio has piled up (see
        :class:`latency_tracker.LatencyTracker`), which drops it; counted apart from
        restarts."""
        eng = self.engine
        tracker = eng._latency
        grown_s = tracker.check(now - eng._stream_started, now,
                                quiet=eng.core.input_level_db < RESYNC_QUIET_DB,
                                requested_s=eng.latency_ms / 1000.0)
        if grown_s > 0.0:
            base_ms = 1000.0 * tracker.baseline_s
            eng._reinit(rescan=False, resync=True)
            if eng._state == "running":
                log.info("latency re-sync %d: the device round trip was %.0f ms (lowest %.0f ms)",
                         eng.resyncs, 1000.0 * grown_s, base_ms)
