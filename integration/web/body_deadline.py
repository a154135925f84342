"""A deadline for the whole request body, so a trickling or stalled upload frees its thread.

A socket timeout bounds one ``recv``; a client sending a byte every few seconds never trips it.
``BodyWatch`` keeps the sockets of the bodies being read with their deadlines; one daemon
thread per process checks them every ``CHECK_SECONDS`` and shuts the reading side of an overdue
one, which ends the blocked read at once. The response can still be written.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

#: How often the watcher looks at the deadlines.
CHECK_SECONDS = 0.5


class BodyWatch:
    """The bodies being read in this process, each with its deadline."""

    def __init__(self) -> None:
        self._reading: dict[int, tuple[float, socket.socket]] = {}
        self._overdue: set[int] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def deadline(self, sock: socket.socket | None, seconds: float) -> Iterator[BodyReading]:
        """Watch ``sock`` while the body is read; ``.overdue`` says whether it was cut off."""
        reading = BodyReading(self, id(sock) if sock is not None else 0)
        if sock is None:  # not under gunicorn (the test client): nothing to watch
            yield reading
            return
        with self._lock:
            self._reading[reading.key] = (time.monotonic() + seconds, sock)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._watch, name="body-deadlines", daemon=True)
                self._thread.start()
        try:
            yield reading
        finally:
            with self._lock:
                self._reading.pop(reading.key, None)
                reading.overdue = reading.key in self._overdue
                self._overdue.discard(reading.key)

    def _watch(self) -> None:
        while True:
            time.sleep(CHECK_SECONDS)
            now = time.monotonic()
            with self._lock:
                late = [(key, sock) for key, (due, sock) in self._reading.items() if due <= now]
                for key, _sock in late:
                    del self._reading[key]
                    self._overdue.add(key)
            for _key, sock in late:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RD)


class BodyReading:
    """One watched body read."""

    def __init__(self, watch: BodyWatch, key: int):
        self._watch, self.key = watch, key
        self.overdue = False

    def is_overdue(self) -> bool:
        """True once the watcher has cut this read off (also while still inside it)."""
        with self._watch._lock:
            return self.overdue or self.key in self._watch._overdue


#: The process's watcher (gunicorn workers are separate processes; threads share it).
WATCH = BodyWatch()
