"""Headless Chromium driven over the DevTools protocol, from the pipeline's own environment.

Selenium lives only in ``.venv-superset``; a test that also runs Dagster jobs between its page visits
needs the browser here. Debian's ``chromium`` is started with a fresh profile and a debugging port
chosen by itself (read back from ``DevToolsActivePort``), and spoken to through ``websockets`` (in the
lock through uvicorn). Each :class:`Browser` is its own process and profile: two stewards, two browsers,
no shared cookie. Nothing is fetched from the internet: every host but 127.0.0.1 is unresolvable.
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import time
from pathlib import Path

import requests
from websockets.sync.client import connect

FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1400,1800", "--lang=sv-SE",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--remote-debugging-port=0",
)  # fmt: skip


class Browser:
    def __init__(self, profile: Path) -> None:
        chromium = shutil.which("chromium")
        assert chromium, "the browser tests need Debian's chromium (.ci/run installs it)"
        profile.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [chromium, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        port_file, deadline = profile / "DevToolsActivePort", time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text().strip():
            assert time.monotonic() < deadline and self.process.poll() is None, "chromium did not start"
            time.sleep(0.2)
        port = port_file.read_text().split()[0]
        [page] = [
            t
            for t in requests.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
            if t["type"] == "page"
        ]
        self.ws = connect(page["webSocketDebuggerUrl"], max_size=None)
        self.ids = itertools.count(1)
        self.send("Page.enable")

    def send(self, method: str, **params) -> dict:
        """One protocol command and its result (events arriving meanwhile are skipped)."""
        ident = next(self.ids)
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=60))
            if message.get("id") == ident:
                assert "error" not in message, message["error"]
                return message.get("result", {})

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def goto(self, url: str) -> None:
        self._navigating(lambda: self.send("Page.navigate", url=url))

    def fill(self, selector: str, text: str) -> None:
        """Type into a text field as a user would (focus, clear, insert the text)."""
        self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); e.focus(); e.select(); }})()"
        )
        self.send("Input.insertText", text=text)

    def set_value(self, selector: str, value: str) -> None:
        """A date or a choice (Chromium's date picker takes no typed text in headless mode)."""
        self.evaluate(f"document.querySelector({json.dumps(selector)}).value = {json.dumps(value)}")

    def click(self, selector: str) -> None:
        """Click a submit button and wait for the page the form leads to."""
        self._navigating(lambda: self.evaluate(f"document.querySelector({json.dumps(selector)}).click()"))

    def text(self, selector: str = "body") -> str:
        return self.evaluate(f"document.querySelector({json.dumps(selector)})?.innerText ?? ''")

    @property
    def url(self) -> str:
        return self.evaluate("location.href")

    def screenshot(self, path: Path) -> Path:
        data = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def _navigating(self, action) -> None:
        """Run ``action`` and wait until a new document has loaded."""
        self.evaluate("window.__old_page = true")
        action()
        deadline = time.monotonic() + 60
        while True:
            try:
                if self.evaluate("window.__old_page === undefined && document.readyState === 'complete'"):
                    return
            except AssertionError:
                pass  # the context went away mid-navigation
            assert time.monotonic() < deadline, "the page did not load"
            time.sleep(0.1)

    def close(self) -> None:
        self.ws.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
