"""The virtual microphone's supervisor thread (Linux, PulseAudio/PipeWire).

:class:`Supervisor` (started by ``PulseVirtualMic.start_supervision``) polls the server every
``interval_s`` over its own connection; when the server went away and came back (restart)
or our modules disappeared, it runs ``mic.ensure()`` again and calls ``on_change(status)`` so
the engine can reopen its streams. Each poll also moves other applications' streams off the
internal sink (``mic_sink_guard``: a browser offers it as a speaker) and reports them through
``on_change`` with ``MicStatus.moved`` set (a notice: nothing to reopen). It keeps retrying while no server is reachable, and
restarts the :class:`~percepnet.app.mic_keep_alive.KeepAlive` it runs on the sink when that
dies with the server.

The microphone (a :class:`percepnet.app.virtual_mic_pulse.PulseVirtualMic`) is passed in, not
imported: the microphone owns its supervisor.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import replace
from typing import Callable

from percepnet.app.mic_keep_alive import KeepAlive
from percepnet.app.mic_sink_guard import move_foreign_streams
from percepnet.app.virtual_mic import MicStatus

__all__ = ["Supervisor"]

log = logging.getLogger("percepnet.app.virtual_mic_pulse")


class Supervisor:
    """Background thread that keeps a ``PulseVirtualMic`` present (module docstring).

    Each poll (``interval_s``) costs one ``server_info`` and one module/sink/source listing
    over a persistent connection. After a failure it reconnects (first at once, then every
    interval); when the chain is incomplete it runs ``mic.ensure()``. ``on_change(status)``
    is called from this thread whenever the microphone appears or disappears, and after
    each rebuild (the engine reopens its output stream then). ``keep_alive``: also run a
    :class:`KeepAlive` on the sink and restart it when it dies (server restart).
    """

    def __init__(self, mic, interval_s: float = 0.5,
                 on_change: Callable[[MicStatus], None] | None = None,
                 keep_alive: bool = True) -> None:
        self.mic = mic
        self.interval_s = interval_s
        self.on_change = on_change
        self.keep_alive = KeepAlive(mic.sink_name, server=mic.server) if keep_alive else None
        self.rebuilds = 0
        #: other applications' streams moved off our sink (mic_sink_guard)
        self.moved_streams = 0
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
                moved = [] if chain.sink is None else move_foreign_streams(conn, chain.sink)
                if not moved:
                    return True, None
                self.moved_streams += len(moved)
                status = self.mic._status_on(conn, chain)
                return True, replace(status, moved=tuple(moved))
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
