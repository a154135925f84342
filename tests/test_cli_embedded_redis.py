"""The embedded Redis and the ``leadloop`` command: started when needed, reused, never left behind.

These tests run on the embedded Redis whatever ``REDIS_URL`` the suite has: it is what they test.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from integration.cli.main import main
from integration.embedded_redis import (
    ensure_embedded_redis,
    release_embedded_redis,
    running_pid,
    start_embedded_redis,
    stop_embedded_redis,
)

ROOT = Path(__file__).parents[1]


@pytest.fixture
def folder() -> Iterator[Path]:
    # Short: a unix socket path must stay under ~100 characters.
    path = Path(tempfile.mkdtemp(prefix="ll-cli-"))
    yield path
    stop_embedded_redis(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def embedded_defaults(config, folder, monkeypatch):
    """The environment of a machine without REDIS_URL: the command uses the embedded Redis."""
    for name, value in config.items():
        if isinstance(value, str):
            monkeypatch.setenv(name, value)
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("LEADLOOP_INSTANCE_DIR", str(folder))
    return folder


def redis_servers(folder: Path) -> list[int]:
    """The redis-server processes serving ``folder``'s socket."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if "redis-server" in command and str(folder / "redis.sock") in command and state != "Z":
                found.append(int(entry.name))
    return found


def test_a_command_stops_the_embedded_redis_it_started(embedded_defaults, capsys):
    folder = embedded_defaults
    assert redis_servers(folder) == []
    assert main(["dead-letters"]) == 0
    assert "failed jobs: 0" in capsys.readouterr().out
    assert redis_servers(folder) == [] and running_pid(folder) is None
    assert not (folder / "redis.pid").exists() and not (folder / "redis.sock").exists()


def test_a_command_reuses_a_running_embedded_redis_and_leaves_it_running(embedded_defaults):
    folder = embedded_defaults
    url = ensure_embedded_redis(folder)  # as a web process on the same instance folder would
    [pid] = redis_servers(folder)
    for _ in range(2):
        assert main(["dead-letters"]) == 0
        assert redis_servers(folder) == [pid]  # the same server, not a second one, and still up
    assert redis.Redis.from_url(url).ping()


def test_a_failing_command_stops_the_embedded_redis_too(embedded_defaults, monkeypatch, tmp_path, capsys):
    empty = tmp_path / "empty.db"
    empty.touch()
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{empty}")
    assert main(["dead-letters"]) == 2
    assert "run `leadloop db upgrade`" in capsys.readouterr().err
    assert redis_servers(embedded_defaults) == []


def test_the_worker_stops_the_embedded_redis_it_started(embedded_defaults):
    assert main(["worker", "--burst", "--simple"]) == 0
    assert redis_servers(embedded_defaults) == []


def test_the_starter_leaves_it_up_while_another_process_uses_it(folder):
    url, started = start_embedded_redis(folder)
    assert started and start_embedded_redis(folder) == (url, False)
    other = redis.Redis.from_url(url, client_name="a-web-process")
    other.ping()
    assert release_embedded_redis(folder, "me") == 1 and len(redis_servers(folder)) == 1
    other.close()
    assert release_embedded_redis(folder, "me") == 0 and redis_servers(folder) == []


def test_stop_stops_one_left_running(embedded_defaults, capsys):
    folder = embedded_defaults
    ensure_embedded_redis(folder)
    [pid] = redis_servers(folder)
    assert main(["stop", str(folder)]) == 0
    assert capsys.readouterr().out == f"stopped the embedded Redis in {folder.resolve()} (pid {pid})\n"
    assert redis_servers(folder) == []
    assert main(["stop", str(folder)]) == 0
    assert capsys.readouterr().out == f"no embedded Redis running in {folder}\n"


def test_a_server_whose_socket_vanished_is_replaced_not_duplicated(folder):
    ensure_embedded_redis(folder)
    [old] = redis_servers(folder)
    (folder / "redis.sock").unlink()
    ensure_embedded_redis(folder)
    [new] = redis_servers(folder)
    assert new != old


# --- the demo --------------------------------------------------------------------------------

DEMO = """
import sys
from pathlib import Path
import integration.demo.runner as runner
runner.DEMO_DIR = Path(sys.argv[1])
from integration.cli.main import main
sys.exit(main(["demo", "--leads", "4"]))
"""


def _demo(folder: Path) -> subprocess.Popen:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LOG_LEVEL": "WARNING"}
    return subprocess.Popen([sys.executable, "-u", "-c", DEMO, str(folder)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _web_and_worker(folder: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if f"LEADLOOP_INSTANCE_DIR={folder}".encode() in environ and int(entry.name) != os.getpid():
                found.append(int(entry.name))
    return found


def test_the_demo_leaves_nothing_running_when_it_ends(folder):
    demo = _demo(folder)
    out, err = demo.communicate(timeout=300)
    assert demo.returncode == 0, err.decode()[-2000:]
    assert b"done in" in out
    assert redis_servers(folder) == [] and _web_and_worker(folder) == []


def test_the_demo_leaves_nothing_running_after_ctrl_c(folder):
    demo = _demo(folder)
    deadline = time.monotonic() + 120
    while not (redis_servers(folder) and len(_web_and_worker(folder)) >= 2) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert redis_servers(folder), "the demo never started its Redis"
    demo.send_signal(signal.SIGINT)
    _out, err = demo.communicate(timeout=120)
    assert demo.returncode == 130 and b"Traceback" not in err, err.decode()[-2000:]
    assert redis_servers(folder) == [] and _web_and_worker(folder) == []
