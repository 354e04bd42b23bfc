"""A real, isolated PulseAudio server for tests (no sound card, no systemd, no D-Bus).

Recipe in ``docs/sound-servers.md``: everything under one scratch directory, the
daemon started with ``-n`` and a minimal script, stopped through its pid file. Nothing is
written to the real ``$HOME``.

Use :class:`PulseServer` directly or the ``pulse_server`` fixture (``conftest.py``). While a
server is up, ``PULSE_SERVER`` (and friends) point this process and its children at it, so
``pactl``, ``paplay``, ``pulsectl`` and PortAudio's ALSA ``pulse`` device all talk to it.
A missing ``pulseaudio`` binary is an error, never a skip: ``make test`` installs it.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

__all__ = ["PulseServer", "PulseServerError", "DEFAULT_SINK"]

#: The null sink both test servers make their default output (the stand-in speakers).
DEFAULT_SINK = "pn_test_dummy"

_DAEMON_CONF = """default-sample-rate = 48000
alternate-sample-rate = 48000
default-sample-channels = 1
default-fragments = 2
default-fragment-size-msec = 5
"""

_MINIMAL_PA = f"""load-module module-native-protocol-unix
load-module module-null-sink sink_name={DEFAULT_SINK} rate=48000 channels=1 sink_properties=device.description=Test_Dummy_Output
set-default-sink {DEFAULT_SINK}
"""

_ENV_KEYS = ("XDG_RUNTIME_DIR", "PULSE_SERVER", "PULSE_CONFIG", "PULSE_RUNTIME_PATH",
             "PULSE_STATE_PATH", "PULSE_COOKIE", "PULSE_SINK", "PULSE_SOURCE",
             "PIPEWIRE_RUNTIME_DIR", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME",
             "DBUS_SESSION_BUS_ADDRESS")


class PulseServerError(RuntimeError):
    pass


class PulseServer:
    """Start/stop an isolated PulseAudio daemon under ``base``; ``env`` is what clients need."""

    kind = "pulseaudio"

    def __init__(self, base: str | Path) -> None:
        self.base = Path(base)
        self.run_dir = self.base / "run"
        self.env = {
            "XDG_RUNTIME_DIR": str(self.run_dir),
            "PULSE_RUNTIME_PATH": str(self.run_dir / "pulse"),
            "PULSE_STATE_PATH": str(self.base / "state"),
            "PULSE_SERVER": f"unix:{self.run_dir / 'pulse' / 'native'}",
            "PULSE_CONFIG": str(self.base / "daemon.conf"),
            "PULSE_COOKIE": str(self.base / "cookie"),
        }
        self._saved_env: dict[str, str | None] = {}
        self.answered_at: float | None = None  # set by wait_ready

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout_s: float = 10.0) -> "PulseServer":
        exe = shutil.which("pulseaudio")
        if exe is None:
            raise PulseServerError("pulseaudio is not installed (make test installs it: "
                                   "packaging/system-deps.sh)")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.run_dir, 0o700)
        (self.base / "state").mkdir(exist_ok=True)
        (self.base / "daemon.conf").write_text(_DAEMON_CONF)
        (self.base / "minimal.pa").write_text(_MINIMAL_PA)
        self._apply_env()
        cmd = [exe, "--daemonize=yes", "-n", "-F", str(self.base / "minimal.pa"),
               "--exit-idle-time=-1", "--use-pid-file=yes",
               f"--log-target=file:{self.base / 'pulse.log'}"]
        proc = subprocess.run(cmd, env=self.child_env(), stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=30)
        if proc.returncode != 0:
            raise PulseServerError(f"pulseaudio failed to start ({proc.returncode}): "
                                   f"{proc.stderr.strip()} {self.log_tail()}")
        self.wait_ready(timeout_s)
        self._raise_priority()
        return self

    def _raise_priority(self) -> None:
        """Best effort: the daemon at nice -11 (what it asks for on a desktop with rtkit), so
        a busy test machine does not starve the sound server."""
        pid = self.pid()
        if pid is not None:
            try:
                os.setpriority(os.PRIO_PROCESS, pid, -11)
            except OSError:
                pass

    def wait_ready(self, timeout_s: float = 10.0) -> None:
        """Wait until clients get an answer; ``answered_at`` (``time.monotonic()``) is then
        the first moment they did, what "back within N s of the server" counts from."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            asked = time.monotonic()
            if self.pactl("info", check=False).returncode == 0:
                self.answered_at = asked  # the earliest it can have answered: strict
                return
            time.sleep(0.05)
        raise PulseServerError(f"pulseaudio did not answer within {timeout_s} s: {self.log_tail()}")

    def pid(self) -> int | None:
        """The daemon's pid, from its pid file; None when the file is missing or stale (a
        daemon killed with SIGKILL leaves it behind, and its number may since belong to
        another process: never signal that one)."""
        try:
            pid = int((self.run_dir / "pulse" / "pid").read_text().split()[0])
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
        except (OSError, ValueError, IndexError):
            return None
        return pid if comm.startswith("pulseaudio") else None

    def kill(self, sig: int = signal.SIGTERM, wait_s: float = 5.0) -> None:
        """Stop the daemon (the server stays configured; :meth:`restart` brings it back)."""
        pid = self.pid()
        if pid is None:
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.02)
        os.kill(pid, signal.SIGKILL)

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        self.kill()
        self._restore_env()

    def __enter__(self) -> "PulseServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ helpers
    def child_env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.env)
        env.update(extra)
        return env

    def pactl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(["pactl", *args], env=self.child_env(), capture_output=True,
                              text=True, timeout=20, stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise PulseServerError(f"pactl {' '.join(args)}: {proc.stderr.strip()}")
        return proc

    def load_null_sink(self, name: str, description: str | None = None,
                       channels: int = 1) -> int:
        """A null sink (its ``<name>.monitor`` is a source); returns the module index."""
        desc = description or name
        out = self.pactl("load-module", "module-null-sink", f"sink_name={name}", "rate=48000",
                         f"channels={channels}",
                         f"sink_properties=device.description={desc}").stdout
        index = int(out.strip())
        # the server renames a sink whose name is still taken (``<name>.2``): then every
        # client naming ``name`` would reach another sink or none, and the test would measure
        # garbage. Fail here, with the reason, instead.
        names = [row[1] for row in self.short_list("sinks") if len(row) > 1]
        if name not in names:
            self.unload_module(index)
            raise PulseServerError(f"null sink {name!r} not created as named (sinks: {names})")
        return index

    def load_remap_source(self, name: str, master: str, timeout_s: float = 5.0) -> int:
        """A source ``name`` remapping ``master`` (say a null sink's monitor: an ordinary
        source, where the product lists no monitors as microphones); returns the module index
        once the server lists it (pipewire-pulse lists it a moment after the load returns)."""
        index = int(self.pactl("load-module", "module-remap-source", f"source_name={name}",
                               f"master={master}", "channels=1").stdout.strip())
        deadline = time.monotonic() + timeout_s
        while not any(len(r) > 1 and r[1] == name for r in self.short_list("sources")):
            if time.monotonic() >= deadline:
                self.unload_module(index)
                raise PulseServerError(f"source {name!r} not listed {timeout_s} s after its load")
            time.sleep(0.02)
        return index

    def unload_module(self, index: int, wait_s: float = 3.0) -> None:
        """Unload and wait until the server has dropped the module: PulseAudio acknowledges
        an unload before it runs it, and a sink of the same name loaded meanwhile (the next
        test's fixture) would be renamed ``<name>.2``."""
        self.pactl("unload-module", str(index))
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if not any(row and row[0] == str(index) for row in self.short_list("modules")):
                return
            time.sleep(0.02)
        raise PulseServerError(f"module {index} still loaded {wait_s} s after its unload")

    def short_list(self, what: str) -> list[list[str]]:
        """``pactl list short <what>``, one row (its tab-separated fields) per object.

        A field may span lines: pipewire-pulse lists its own ``libpipewire-module-*`` with
        their multi-line configuration as the argument. A row starts with its index."""
        out = self.pactl("list", "short", what).stdout
        rows: list[str] = []
        for line in out.splitlines():
            if rows and not re.match(r"\d+\t", line):
                rows[-1] += "\n" + line
            elif line.strip():
                rows.append(line)
        return [row.split("\t") for row in rows]

    def log_tail(self, n: int = 20) -> str:
        try:
            lines = (self.base / "pulse.log").read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(lines[-n:])

    @contextmanager
    def active(self) -> Iterator["PulseServer"]:
        """Point this process (and its children) at this server for a while, then back at
        whatever it pointed at (two servers can run side by side in one test session)."""
        saved = {k: os.environ.get(k) for k in _ENV_KEYS}
        for k in ("PULSE_SERVER", "PULSE_SINK", "PULSE_SOURCE", "PULSE_COOKIE", "PULSE_CONFIG",
                  "PULSE_RUNTIME_PATH", "PULSE_STATE_PATH", "PIPEWIRE_RUNTIME_DIR",
                  "DBUS_SESSION_BUS_ADDRESS"):
            if k not in self.env:
                os.environ.pop(k, None)
        os.environ.update(self.env)
        try:
            yield self
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def _apply_env(self) -> None:
        for k in _ENV_KEYS:
            if k not in self._saved_env:
                self._saved_env[k] = os.environ.get(k)
        for k in ("PULSE_SINK", "PULSE_SOURCE"):
            os.environ.pop(k, None)
        os.environ.update(self.env)

    def _restore_env(self) -> None:
        for k, v in self._saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        self._saved_env.clear()
