"""Headless Chromium driven over the Chrome DevTools Protocol, with the standard library only.

Chromium started with ``--remote-debugging-pipe`` reads protocol commands from its file
descriptor 3 and writes answers and events to descriptor 4, one JSON object per message,
each ended by a NUL byte: no websocket, no driver binary, no Python package. The browser
runs with a fresh profile in a temporary folder and without network services (the machines
that run the tests may have no internet).

    with Chromium.start(profile_dir) as browser:
        page = browser.new_page()
        page.navigate("file:///tmp/report.html")
        page.wait_for("document.readyState === 'complete'")
        page.screenshot(path)
        assert not page.errors()
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

#: Names the Chromium binary goes by (Debian's package is ``chromium``).
BINARIES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

#: Headless, no sandbox (containers run as root), no GPU, and nothing that reaches the
#: network on its own (updates, sync, field trials, QUIC probes).
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
)


def find_chromium() -> str | None:
    """Path of a Chromium (or Chrome) binary on PATH, or None."""
    for name in BINARIES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _text(args: list[dict[str, Any]]) -> str:
    """The text of a console call's arguments (values, or descriptions of objects)."""
    return " ".join(str(a.get("value", a.get("description", ""))) for a in args)


class ProtocolError(RuntimeError):
    """Chromium answered a command with an error, or did not answer in time."""


class Chromium:
    """One headless Chromium process and its DevTools pipe."""

    def __init__(self, proc: subprocess.Popen[bytes], commands: int, answers: int) -> None:
        self.proc = proc
        self._out = os.fdopen(commands, "wb", buffering=0)
        self._answers = answers
        self._next_id = 0
        self._inbox: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.events: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @classmethod
    @contextmanager
    def start(
        cls, profile_dir: Path, size: tuple[int, int] = (1280, 900), binary: str | None = None
    ) -> Iterator[Chromium]:
        """Start Chromium with a fresh profile in ``profile_dir``; stop it on exit."""
        binary = binary or find_chromium()
        if binary is None:
            raise FileNotFoundError("no Chromium binary on PATH")
        profile_dir.mkdir(parents=True, exist_ok=True)
        # Chromium talks on descriptors 3 (in) and 4 (out); move ours out of the way first
        # and let bash put them there (dash's redirections stop at descriptor 9).
        to_chrome_r, to_chrome_w = os.pipe()
        from_chrome_r, from_chrome_w = os.pipe()
        child_in = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10)
        child_out = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        args = [
            binary,
            *FLAGS,
            f"--user-data-dir={profile_dir}",
            f"--window-size={size[0]},{size[1]}",
            "--remote-debugging-pipe",
            "about:blank",
        ]
        proc = subprocess.Popen(
            ["bash", "-c", f'exec "$0" "$@" 3<&{child_in} 4>&{child_out}', *args],
            pass_fds=(child_in, child_out),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(child_in)
        os.close(child_out)
        browser = cls(proc, to_chrome_w, from_chrome_r)
        try:
            browser.send("Browser.getVersion", timeout=30)
            yield browser
        finally:
            browser.close()

    # ----------------------------------------------------------------------- the pipe
    def _read(self) -> None:
        buffer = b""
        with os.fdopen(self._answers, "rb", buffering=0) as pipe:
            while True:
                chunk = pipe.read(1 << 16)
                if not chunk:
                    break
                buffer += chunk
                *messages, buffer = buffer.split(b"\0")
                for message in messages:
                    self._inbox.put(json.loads(message))
        self._inbox.put(None)

    def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        session: str | None = None,
        timeout: float = 30,
    ) -> dict[str, Any]:
        """Send one command and wait for its answer; events that come meanwhile are kept in
        :attr:`events`."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        self._out.write(json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ProtocolError(f"{method}: no answer within {timeout:g} s")
            try:
                answer = self._inbox.get(timeout=left)
            except queue.Empty:
                continue
            if answer is None:
                raise ProtocolError(f"{method}: Chromium closed the pipe")
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise ProtocolError(f"{method}: {answer['error']}")
                result: dict[str, Any] = answer.get("result", {})
                return result
            self.events.append(answer)

    def pump(self, seconds: float) -> None:
        """Collect events for ``seconds``."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self._inbox.get(timeout=left)
            except queue.Empty:
                return
            if event is None:
                return
            self.events.append(event)

    def new_page(self) -> Page:
        """A new tab with its console, log and errors being recorded."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        page = Page(self, session)
        for domain in ("Page.enable", "Runtime.enable", "Log.enable"):
            self.send(domain, session=session)
        return page

    def close(self) -> None:
        """Ask Chromium to quit; kill it if it does not."""
        try:
            if self.proc.poll() is None:
                self.send("Browser.close", timeout=5)
        except (ProtocolError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        with suppress(OSError):
            self._out.close()


class Page:
    """One tab of :class:`Chromium`."""

    def __init__(self, browser: Chromium, session: str) -> None:
        self.browser = browser
        self.session = session

    def send(self, method: str, params: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
        return self.browser.send(method, params, session=self.session, **kw)

    def navigate(self, url: str) -> None:
        answer = self.send("Page.navigate", {"url": url})
        if answer.get("errorText"):
            raise ProtocolError(f"cannot open {url}: {answer['errorText']}")

    def evaluate(self, expression: str, timeout: float = 30) -> Any:
        """The value of JavaScript ``expression`` in the page (promises are awaited)."""
        answer = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            timeout=timeout,
        )
        if "exceptionDetails" in answer:
            raise ProtocolError(f"{expression!r} threw: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30, every: float = 0.2) -> Any:
        """Evaluate ``expression`` until it is truthy and return it; fail after ``timeout``.
        An expression that throws (the page is not there yet) counts as false."""
        deadline = time.monotonic() + timeout
        last = "false"
        while True:
            try:
                value = self.evaluate(expression)
            except ProtocolError as exc:
                value, last = None, str(exc)
            if value:
                return value
            if time.monotonic() > deadline:
                raise ProtocolError(f"{expression!r} still {last} after {timeout:g} s")
            self.browser.pump(every)

    def screenshot(self, path: Path, full_page: bool = True) -> Path:
        """Save a PNG of the page (all of it with ``full_page``) to ``path``."""
        params: dict[str, Any] = {"format": "png", "captureBeyondViewport": full_page}
        if full_page:
            width, height = self.evaluate(
                "[document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
            )
            params["clip"] = {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}
        data = self.send("Page.captureScreenshot", params, timeout=60)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def _own(self) -> list[dict[str, Any]]:
        return [e for e in self.browser.events if e.get("sessionId") == self.session]

    def console(self) -> list[str]:
        """Every console message and log entry of the page, as ``level: text``."""
        out = []
        for e in self._own():
            params = e.get("params", {})
            if e.get("method") == "Runtime.consoleAPICalled":
                text = _text(params["args"])
                out.append(f"{params['type']}: {text}")
            elif e.get("method") == "Log.entryAdded":
                entry = params["entry"]
                out.append(f"{entry['level']}: {entry['text']} ({entry.get('url', '')})")
        return out

    def errors(self) -> list[str]:
        """JavaScript errors: uncaught exceptions, ``console.error`` calls and error-level log
        entries (failed loads among them)."""
        out = []
        for e in self._own():
            params = e.get("params", {})
            method = e.get("method")
            if method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                exception = details.get("exception", {})
                out.append(f"uncaught: {exception.get('description', details.get('text'))}")
            elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                text = _text(params["args"])
                out.append(f"console.{params['type']}: {text}")
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                entry = params["entry"]
                out.append(f"log: {entry['text']} ({entry.get('url', '')})")
        return out
