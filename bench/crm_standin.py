"""A local HubSpot stand-in for the live-mode benchmarks: the calls leadloop's HubSpot client makes,
answered in HubSpot's documented shapes, under HubSpot's burst limit.

- ``POST /crm/objects/<version>/contacts/batch/update`` (and ``batch/upsert``): 200
  ``{"status": "COMPLETE", "results": [...], "startedAt", "completedAt"}``;
- ``GET /crm/objects/<version>/tasks/<key>?idProperty=leadloop_task_key``: 404 (no such task yet) or
  the task; ``POST /crm/objects/<version>/tasks``: 201 with the new task's id;
- every answer carries ``X-HubSpot-RateLimit-Max`` / ``-Remaining`` / ``-Interval-Milliseconds``;
  a call beyond ``--limit`` calls in the last 10 s (rolling) is answered 429 with HubSpot's
  ``TEN_SECONDLY_ROLLING`` body and counted.

Each call is appended to ``--log`` as one JSON line: ``{"at", "method", "path", "status", "inputs"}``
(``inputs``: records in a batch call). Run: ``python -m bench.crm_standin --port 8765 --log calls.jsonl``.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

STAMP = "2026-11-30T10:00:00.000Z"
WINDOW_SECONDS = 10.0
BATCH = re.compile(r"^/crm/objects/[^/]+/contacts/batch/(update|upsert|read)$")
TASKS = re.compile(r"^/crm/objects/[^/]+/tasks$")
TASK = re.compile(r"^/crm/objects/[^/]+/tasks/([^/?]+)$")


class StandIn:
    """The stand-in's state: the rolling window of calls, the tasks, the call log."""

    def __init__(self, limit: int, log_path: str):
        self.limit = limit
        self.lock = threading.Lock()
        self.window: collections.deque[float] = collections.deque()
        self.tasks: dict[str, str] = {}
        self.log = open(log_path, "a", buffering=1)  # noqa: SIM115 - open for the server's life

    def admit(self) -> tuple[bool, int]:
        """Count a call in the rolling window; return (within the limit, calls left)."""
        with self.lock:
            now = time.monotonic()
            while self.window and self.window[0] <= now - WINDOW_SECONDS:
                self.window.popleft()
            if len(self.window) >= self.limit:
                return False, 0
            self.window.append(now)
            return True, self.limit - len(self.window)

    def record(self, method: str, path: str, status: int, inputs: int) -> None:
        with self.lock:
            self.log.write(json.dumps({"at": time.time(), "method": method, "path": path, "status": status,
                                       "inputs": inputs}) + "\n")


def handler_for(state: StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _answer(self, status: int, body: Any, remaining: int) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-HubSpot-RateLimit-Max", str(state.limit))
            self.send_header("X-HubSpot-RateLimit-Remaining", str(remaining))
            self.send_header("X-HubSpot-RateLimit-Interval-Milliseconds", str(int(WINDOW_SECONDS * 1000)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"null") if length else None
            path, _, query = self.path.partition("?")
            admitted, remaining = state.admit()
            inputs = len(body.get("inputs", [])) if isinstance(body, dict) else 0
            if not admitted:
                state.record(method, path, 429, inputs)
                self._answer(429, {"status": "error", "message": "You have reached your ten_secondly_rolling limit.",
                                   "errorType": "RATE_LIMIT", "correlationId": str(uuid.uuid4()),
                                   "policyName": "TEN_SECONDLY_ROLLING", "requestId": uuid.uuid4().hex}, 0)
                return
            status, answer = self._route(method, path, query, body)
            state.record(method, path, status, inputs)
            self._answer(status, answer, remaining)

        def _route(self, method: str, path: str, query: str, body: Any) -> tuple[int, Any]:
            batch = BATCH.match(path)
            if method == "POST" and batch:
                results = [{"id": str(item.get("id")), "properties": item.get("properties", {}), "createdAt": STAMP,
                            "updatedAt": STAMP, "archived": False,
                            **({"new": False, "objectWriteTraceId": item.get("objectWriteTraceId")}
                               if batch.group(1) == "upsert" else {})}
                           for item in body["inputs"]]
                return 200, {"status": "COMPLETE", "results": results, "startedAt": STAMP, "completedAt": STAMP}
            if method == "POST" and TASKS.match(path):
                task_id = str(len(state.tasks) + 90_000)
                state.tasks[body["properties"].get("leadloop_task_key", task_id)] = task_id
                return 201, {"id": task_id, "properties": body["properties"], "createdAt": STAMP,
                             "updatedAt": STAMP, "archived": False}
            task = TASK.match(path)
            if method == "GET" and task:
                key = unquote(task.group(1))
                task_id = state.tasks.get(key) if "idProperty=" in query else key
                if task_id is None:
                    return 404, {"status": "error", "message": "Object not found", "category": "OBJECT_NOT_FOUND",
                                 "correlationId": str(uuid.uuid4())}
                return 200, {"id": task_id, "properties": {"hs_task_status": "NOT_STARTED"}, "createdAt": STAMP,
                             "updatedAt": STAMP, "archived": False}
            return 404, {"status": "error", "message": f"no route {method} {path}", "category": "OBJECT_NOT_FOUND",
                         "correlationId": str(uuid.uuid4())}

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            self._handle("POST")

        def do_GET(self) -> None:  # noqa: N802
            self._handle("GET")

    return Handler


def read_log(path: str) -> list[dict[str, Any]]:
    with open(path) as lines:
        return [json.loads(line) for line in lines if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--limit", type=int, default=190, help="calls per rolling 10 s (HubSpot's burst limit)")
    parser.add_argument("--log", required=True)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler_for(StandIn(args.limit, args.log)))
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
