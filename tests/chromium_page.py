"""Headless Chromium on a local page that posts its results back: the real browser client of
the browser test (``tests/app/test_browser_client.py``) and of ``benchmarks.latency_browser``.

``PageServer(directory)`` serves the page's files on 127.0.0.1 and keeps what the page POSTs
(path -> bytes); ``wait_for`` waits for one such post (a post to ``/error`` fails at once);
``launch_chromium`` starts the browser on a sound server's session with the microphone
permission granted and no display.
"""
from __future__ import annotations

import shutil
import subprocess
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

__all__ = ["PageServer", "launch_chromium"]


class _Page(SimpleHTTPRequestHandler):
    """Serves the page and takes what it posts back."""

    results: dict[str, bytes]
    arrived: threading.Condition

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with self.arrived:
            self.results[self.path] = body
            self.arrived.notify_all()
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):  # quiet
        pass


class PageServer:
    """The page's files from ``directory`` on an ephemeral local port; a context manager."""

    def __init__(self, directory: Path) -> None:
        self.results: dict[str, bytes] = {}
        self.arrived = threading.Condition()
        handler = type("Page", (_Page,), {"results": self.results, "arrived": self.arrived})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0),
                                         partial(handler, directory=str(directory)))
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, page: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{page}"

    def wait_for(self, path: str, timeout_s: float) -> bytes:
        deadline = time.monotonic() + timeout_s
        with self.arrived:
            while path not in self.results and "/error" not in self.results:
                left = deadline - time.monotonic()
                assert left > 0, f"the page did not post {path} within {timeout_s} s: " \
                                 f"{self.results}"
                self.arrived.wait(left)
        assert "/error" not in self.results, self.results["/error"].decode()
        return self.results[path]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "PageServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def launch_chromium(server, url: str, tmp_path: Path) -> subprocess.Popen:
    """Headless Chromium on ``server``'s session (its PULSE_SERVER), a fresh profile under
    ``tmp_path``, the microphone permission granted, no display; its log in chromium.log."""
    exe = shutil.which("chromium")
    assert exe, "chromium is not installed (Debian: chromium; packaging/system-deps.sh --test)"
    home = tmp_path / "home"
    home.mkdir()
    env = server.child_env(HOME=str(home))
    env.pop("DISPLAY", None)
    return subprocess.Popen(
        [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--use-fake-ui-for-media-stream", "--autoplay-policy=no-user-gesture-required",
         f"--user-data-dir={tmp_path / 'profile'}", url],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "chromium.log").open("w"))
