"""Headless Chromium driven over the Chrome DevTools Protocol, with no extra Python packages: the
`websockets` client (an Airflow dependency) talks to the page's DevTools endpoint.

Chromium itself is a system package: `apt-get install -y chromium` (Debian). A missing browser
fails the test with that command; it is never skipped.
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

INSTALL_HINT = "install it with: apt-get install -y chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1400,1000"]


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if found := shutil.which(name):
            return found
    pytest.fail(f"the browser test needs Chromium and none is on PATH; {INSTALL_HINT}")


class Chromium:
    """One headless browser with one page; `with Chromium(tmp) as browser: browser.open(url)`."""

    def __init__(self, workdir: Path, timeout_s: float = 30.0):
        self.workdir, self.timeout_s = workdir, timeout_s
        self.process: subprocess.Popen | None = None
        self.ws: Any = None
        self.ids = itertools.count(1)
        self.events: list[dict] = []

    def __enter__(self) -> Chromium:
        profile = self.workdir / "chromium-profile"
        profile.mkdir(parents=True, exist_ok=True)
        (profile / "DevToolsActivePort").unlink(missing_ok=True)  # a previous browser's, in a reused folder
        self.log = self.workdir / "chromium.log"
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([chromium_binary(), *FLAGS, f"--user-data-dir={profile}",
                                             "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
                                             "about:blank"], stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            self._connect(profile / "DevToolsActivePort")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _connect(self, port_file: Path) -> None:
        from websockets.sync.client import connect

        deadline = time.monotonic() + self.timeout_s
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Chromium did not open its DevTools port:\n{self.log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
            page = next(t for t in json.loads(response.read()) if t["type"] == "page")
        self.ws = connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=10, ping_interval=None)
        self.call("Page.enable")
        self.call("Network.enable")

    def __exit__(self, *exc: object) -> None:
        if self.ws is not None:
            self.ws.close()
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def call(self, method: str, **params: Any) -> dict:
        """Send one CDP command and return its result; events that arrive meanwhile are kept."""
        call_id = next(self.ids)
        self.ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        deadline = time.monotonic() + self.timeout_s
        while True:
            message = json.loads(self.ws.recv(timeout=max(deadline - time.monotonic(), 0.1)))
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"CDP {method} failed: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def _wait_event(self, name: str) -> dict:
        deadline = time.monotonic() + self.timeout_s
        while True:
            for i, event in enumerate(self.events):
                if event.get("method") == name:
                    return self.events.pop(i)
            self.events.append(json.loads(self.ws.recv(timeout=max(deadline - time.monotonic(), 0.1))))

    def set_cookie(self, url: str, name: str, value: str) -> None:
        self.call("Network.setCookie", name=name, value=value, url=url, path="/")

    def open(self, url: str) -> None:
        """Navigate and wait for the load event."""
        self.events.clear()
        result = self.call("Page.navigate", url=url)
        if result.get("errorText"):
            raise RuntimeError(f"navigating to {url} failed: {result['errorText']}")
        self._wait_event("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r} raised: {result['exceptionDetails']}")
        return result["result"].get("value")

    def type_into(self, selector: str, text: str) -> None:
        """Focus the element, select what it holds and type `text` over it, as keystrokes a page's own
        handlers (React's) see."""
        found = self.evaluate(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); "
                              "if (!e) return false; e.focus(); e.select && e.select(); return true; })()")
        if not found:
            raise RuntimeError(f"no element matches {selector!r}")
        self.call("Input.insertText", text=text)

    def click(self, selector: str, text: str | None = None) -> None:
        """Click the first element matching `selector` (whose text contains `text`, if given), waiting for
        it to appear (a single-page app renders after its load event)."""
        pick = (f"Array.from(document.querySelectorAll({json.dumps(selector)}))"
                f".find(e => {json.dumps(text)} === null || e.innerText.includes({json.dumps(text)}))")
        try:
            self.wait_for(f"(() => {{ const e = {pick}; if (!e) return false; e.scrollIntoView(); e.click(); "
                          "return true; })()")
        except TimeoutError:
            raise RuntimeError(f"nothing to click: {selector!r} with text {text!r}") from None

    def wait_for(self, expression: str, timeout_s: float | None = None) -> Any:
        """Poll a JS expression until it is truthy; returns its value."""
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        while time.monotonic() < deadline:
            if value := self.evaluate(expression):
                return value
            time.sleep(0.25)
        raise TimeoutError(f"{expression!r} stayed falsy for {timeout_s or self.timeout_s}s")

    def screenshot(self, path: Path, width: int = 1400, max_height: int = 6000) -> Path:
        """The whole page (up to max_height px): the viewport is grown to the page first, since frames
        outside the viewport are not painted."""
        height = min(int(self.evaluate("document.documentElement.scrollHeight")), max_height)
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        time.sleep(0.5)  # let frames repaint at the new size
        data = self.call("Page.captureScreenshot", format="png")["data"]
        self.call("Emulation.clearDeviceMetricsOverride")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path
