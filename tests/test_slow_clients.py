"""Slow or stalled uploads cannot take the web tier down.

The real gunicorn with the Procfile's settings (``integration.web.gunicorn_config``) serves the
app; two clients start uploads and trickle them; a normal signed request must still be
answered at once (a 1-second client deadline, about a hundred times its usual time), and the
slow uploads are cut off with 408 once their body deadline passes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import requests

from integration.web.intake import sign
from integration.web.receiver import BODY_READ_SECONDS
from tests.conftest import EVENTS_SECRET, web_event

ROOT = Path(__file__).parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SlowUpload(threading.Thread):
    """Sends the head of a POST with a large Content-Length, then one byte every half second."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.stopped = threading.Event()
        self.answer = b""

    def run(self) -> None:
        self.sock.sendall(b"POST /webhooks/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                          b"X-Leadloop-Signature: t=1,v1=00\r\nContent-Length: 100000\r\n\r\n[")
        self.sock.settimeout(0.5)
        while not self.stopped.is_set():
            try:
                self.sock.sendall(b" ")
                self.answer += self.sock.recv(4096)
                if self.answer:
                    return
            except TimeoutError:
                continue
            except OSError:
                return


def test_two_slow_uploads_do_not_delay_a_normal_request(config: dict[str, Any]):
    port = free_port()
    env = {**os.environ, **{k: v for k, v in config.items() if isinstance(v, str)}, "WEB_CONCURRENCY": "1"}
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    web = subprocess.Popen([gunicorn, "-c", "python:integration.web.gunicorn_config",
                            "--bind", f"127.0.0.1:{port}", "--chdir", str(ROOT), "wsgi:app"],
                           env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    slow: list[SlowUpload] = []
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        # One worker process on purpose: the slow uploads and the normal request share it.
        slow = [SlowUpload(port), SlowUpload(port)]
        for upload in slow:
            upload.start()
        time.sleep(1.5)  # both uploads are inside the app, reading their bodies
        body = json.dumps([web_event("while-slow", "page_view")]).encode()
        answer = requests.post(f"{base}/webhooks/events", data=body, timeout=1, headers={
            "Content-Type": "application/json", "X-Leadloop-Signature": sign(body, EVENTS_SECRET)})
        assert answer.status_code == 200 and answer.json()["accepted"] == 1
        # The trickling uploads are cut off once their body deadline has passed.
        for upload in slow:
            upload.join(timeout=BODY_READ_SECONDS + 20)
            assert upload.answer.startswith(b"HTTP/1.1 408"), upload.answer[:200]
    finally:
        for upload in slow:
            upload.stopped.set()
            upload.sock.close()
        os.killpg(web.pid, signal.SIGTERM)
        web.wait(timeout=30)
