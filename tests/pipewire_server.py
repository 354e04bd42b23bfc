"""A real, isolated PipeWire session for tests: ``pipewire``, ``wireplumber`` and
``pipewire-pulse`` on a private D-Bus, everything under one scratch directory (the recipe is
in ``docs/sound-servers.md``). Clients reach it through pipewire-pulse exactly as they reach
PulseAudio, so :class:`PipeWireServer` has :class:`PulseServer`'s interface (``pactl``,
``load_null_sink``, ``restart``, ...) and the same tests run on both servers.

A missing binary is an error, never a skip: ``make test`` installs them
(``packaging/system-deps.sh --test``).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from pulse_server import DEFAULT_SINK, PulseServer, PulseServerError

__all__ = ["PipeWireServer"]

#: started in this order, stopped in the reverse one
_DAEMONS = ("dbus-daemon", "pipewire", "wireplumber", "pipewire-pulse")


class PipeWireServer(PulseServer):
    """Start/stop a private PipeWire session under ``base``; ``env`` is what clients need."""

    kind = "pipewire"

    def __init__(self, base: str | Path) -> None:
        super().__init__(base)
        run = self.run_dir
        self.env = {
            "XDG_RUNTIME_DIR": str(run),
            "PIPEWIRE_RUNTIME_DIR": str(run),
            "XDG_CONFIG_HOME": str(self.base / "config"),
            "XDG_STATE_HOME": str(self.base / "state"),
            "XDG_DATA_HOME": str(self.base / "data"),
            "DBUS_SESSION_BUS_ADDRESS": f"unix:path={run / 'bus'}",
            "PULSE_SERVER": f"unix:{run / 'pulse' / 'native'}",
        }
        self._procs: list[subprocess.Popen] = []

    def start(self, timeout_s: float = 15.0) -> "PipeWireServer":
        exes = {name: shutil.which(name) for name in _DAEMONS}
        missing = [n for n, e in exes.items() if e is None]
        if missing:
            raise PulseServerError(f"{', '.join(missing)} not installed (make test installs "
                                   "them: packaging/system-deps.sh --test)")
        for d in ("config", "state", "data"):
            (self.base / d).mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.run_dir, 0o700)
        env = self.child_env()
        for k in ("PULSE_SINK", "PULSE_SOURCE", "PULSE_COOKIE", "PULSE_CONFIG",
                  "PULSE_RUNTIME_PATH", "PULSE_STATE_PATH"):
            env.pop(k, None)
        log = (self.base / "pipewire.log").open("a")
        cmds = [[exes["pipewire"]], [exes["wireplumber"]], [exes["pipewire-pulse"]]]
        if not self._procs:  # the session bus outlives a restart of the audio daemons
            cmds.insert(0, [exes["dbus-daemon"], "--session", "--nofork",
                            f"--address={self.env['DBUS_SESSION_BUS_ADDRESS']}"])
        for cmd in cmds:
            self._procs.append(subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                                                stdout=log, stderr=log))
            self._wait_started(cmd[0])
        self.wait_ready(timeout_s)
        self._wait_for_default_sink(timeout_s)
        return self

    def restart(self) -> None:
        """Restart the audio daemons (pipewire, wireplumber, pipewire-pulse) the way a
        desktop does (``systemctl --user restart pipewire ...``): the session bus stays. A
        restart that also replaced the bus once left the new pipewire daemon dying 0.6 s
        after start in a full run."""
        self._kill_audio()
        self.start()

    def _kill_audio(self, sig: int = signal.SIGTERM, wait_s: float = 5.0) -> None:
        bus = [p for p in self._procs[:1] if p.args and "dbus-daemon" in str(p.args[0])]
        audio = [p for p in self._procs if p not in bus]
        self._procs = audio
        self.kill(sig, wait_s, keep=("bus",))
        self._procs = bus

    def _wait_started(self, exe: str) -> None:
        """Each daemon needs its predecessor up: wait for its socket (or a moment)."""
        name = os.path.basename(exe)
        sockets = {"dbus-daemon": self.run_dir / "bus", "pipewire": self.run_dir / "pipewire-0"}
        deadline = time.monotonic() + 10
        path = sockets.get(name)
        while path is not None and not path.exists():
            if self._procs[-1].poll() is not None or time.monotonic() > deadline:
                raise PulseServerError(f"{name} did not start: {self.log_tail()}")
            time.sleep(0.02)
        if name == "wireplumber":
            time.sleep(0.5)  # its session policy loads asynchronously

    def _wait_for_default_sink(self, timeout_s: float) -> None:
        """wireplumber creates no sink on a machine without a sound card: add the same
        dummy output PulseAudio's test server has, and make it the default."""
        if not any(r[1] == DEFAULT_SINK for r in self.short_list("sinks") if len(r) > 1):
            self.load_null_sink(DEFAULT_SINK, "Test_Dummy_Output")
        deadline = time.monotonic() + timeout_s
        while self.pactl("set-default-sink", DEFAULT_SINK, check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise PulseServerError("pipewire-pulse: no default sink")
            time.sleep(0.05)

    def pid(self) -> int | None:
        """The pipewire-pulse daemon's pid (the server clients talk to)."""
        if self._procs and self._procs[-1].poll() is None:
            return self._procs[-1].pid
        return None

    def kill(self, sig: int = signal.SIGTERM, wait_s: float = 5.0,
             keep: tuple[str, ...] = ()) -> None:
        for proc in reversed(self._procs):
            if proc.poll() is None:
                proc.send_signal(sig)
                try:
                    proc.wait(wait_s)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(wait_s)
        self._procs.clear()
        for stale in ("bus", "pipewire-0", "pipewire-0.lock", "pipewire-0-manager",
                      "pipewire-0-manager.lock"):
            if stale in keep:
                continue
            try:
                (self.run_dir / stale).unlink()
            except OSError:
                pass

    def stop(self) -> None:
        self.kill()

    def child_env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("PULSE_") or k == "PULSE_PROP"}
        env.update(self.env)
        env.update(extra)
        return env

    def log_tail(self, n: int = 20) -> str:
        try:
            lines = (self.base / "pipewire.log").read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(lines[-n:])
