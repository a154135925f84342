"""Fuzz leadloop's HTTP API from its own ``/openapi.json`` (schemathesis), against a live server.

Starts gunicorn on a free loopback port, on ``DATABASE_URL``/``REDIS_URL`` if given (a database
whose name contains ``test``: it is emptied, like the test suite's; Redis database 15 unless the
URL names one) or else on SQLite and the embedded Redis in a temporary folder. Then it sends the
document's examples (each must be accepted), schemathesis' deterministic coverage cases
(boundaries, missing parts, undeclared methods) and Hypothesis-generated cases, valid per the
document and not, over ``--jobs`` processes, and runs schemathesis' checks on every answer: no
5xx; status code, content type, headers and body as documented; invalid data refused.

Each case is prepared by ``fuzz_cases``: made authentic the way the real senders do it (one in
eight left as generated), sometimes with a known-nasty value planted.

    .venv/bin/python scripts/fuzz_api.py [--cases 10000] [--jobs 2] [--seed N] [--reasons N] [--keep DIR]

Prints the answers by operation and status and a closing line with the case and 5xx counts;
exits 1 on any 5xx, failed check, transport error or server traceback, listing each distinct
failure with the request that caused it.
"""

from __future__ import annotations

import argparse
import collections
import json
import multiprocessing
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import requests
import schemathesis
from fuzz_cases import SECRETS, SigningSession, prepare_case
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from redis import Redis
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    missing_required_header,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)
from sqlalchemy import text
from sqlalchemy.engine import make_url

from integration.embedded_redis import ensure_embedded_redis, stop_embedded_redis
from integration.services import make_engine
from integration.store.migrate import upgrade
from integration.store.models import Base

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, negative_data_rejection, unsupported_method, missing_required_header]
COVERAGE = "coverage"
#: Share of the case budget per operation (the rest have no input to vary: one case each).
WEIGHTS = {"POST /webhooks/events": 3, "POST /webhooks/hubspot": 2, "POST /webhooks/hubspot/workflow": 2,
           "POST /webhooks/salesforce/{token}": 2, "POST /webhooks/salesforce/{token}/flow": 2}
NEGATIVE_SHARE = 0.3
#: Most cases one task sends (tasks are spread over the fuzzing processes).
CHUNK = 400
SHOWN_FAILURES = 20
ROOT = Path(__file__).resolve().parent.parent


def load_schema(document: dict[str, Any]) -> Any:
    # An explicit configuration: a schemathesis.toml lying around must not change what is checked.
    return schemathesis.openapi.from_dict(document, config=schemathesis.Config())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def prepare_stores(workdir: Path) -> tuple[str, str]:
    """Return (database URL, Redis URL), both stores migrated and empty; without ``REDIS_URL`` an
    embedded Redis in ``workdir/redis``."""
    database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{workdir / 'fuzz.db'}"
    if database_url.startswith(("postgresql://", "postgres://")):
        database_url = "postgresql+psycopg://" + database_url.split("://", 1)[1]
    if os.environ.get("DATABASE_URL") and "test" not in (make_url(database_url).database or "").lower():
        sys.exit(f"refusing to fuzz database {make_url(database_url).database!r}: its name must contain 'test' "
                 "(the fuzzer empties it)")
    engine = make_engine(database_url)
    upgrade(engine)
    with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(text(f"DELETE FROM {table.name}"))
    engine.dispose()
    redis_url = os.environ.get("REDIS_URL")
    if redis_url:
        if redis_url.startswith("redis") and redis_url.split("://", 1)[1].rstrip("/").count("/") == 0:
            redis_url = redis_url.rstrip("/") + "/15"  # as the test suite: database 15 unless named
    else:
        redis_url = ensure_embedded_redis(workdir / "redis")
    Redis.from_url(redis_url).flushdb()
    return database_url, redis_url


def stores_label(database_url: str, redis_url: str) -> str:
    database = make_url(database_url)
    return (f"{database.get_backend_name()} database {Path(database.database or '').name}, "
            f"Redis {'embedded' if redis_url.startswith('unix://') else redis_url.rsplit('@', 1)[-1]}")


def start_server(workdir: Path, database_url: str, redis_url: str) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = free_port()
    log_path = workdir / "server.log"
    env = {**os.environ, **SECRETS.server_environment(), "DATABASE_URL": database_url, "REDIS_URL": redis_url,
           "LEADLOOP_INSTANCE_DIR": str(workdir / "instance"), "LOG_LEVEL": "WARNING", "CRM_WRITE_MODE": "shadow"}
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2", "--timeout", "30",
         "wsgi:app"], cwd=ROOT, env=env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT)
    return server, f"http://127.0.0.1:{port}", log_path


def wait_until_ready(server: subprocess.Popen[bytes], base_url: str, log_path: Path) -> None:
    """Return once ``/healthz`` answers; exit if the server stops or is not up within 60 s."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"the server exited at start-up:\n{log_path.read_text()[-3000:]}")
        try:
            if requests.get(base_url + "/healthz", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            time.sleep(0.2)
    sys.exit("the server did not answer /healthz within 60 s")


class Tally:
    """What was sent and answered, and every distinct failure with one request reproducing it."""

    def __init__(self) -> None:
        self.statuses: dict[str, collections.Counter[int]] = collections.defaultdict(collections.Counter)
        self.failures: dict[tuple[str, str], dict[str, Any]] = {}
        self.failure_count = 0
        self.errors = 0
        self.reasons: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)

    def merge(self, other: Tally) -> None:
        for label, counter in other.statuses.items():
            self.statuses[label].update(counter)
        for label, counter in other.reasons.items():
            self.reasons[label].update(counter)
        for key, failure in other.failures.items():
            self.failures.setdefault(key, failure)
        self.failure_count += other.failure_count
        self.errors += other.errors

    @property
    def cases(self) -> int:
        return sum(sum(counter.values()) for counter in self.statuses.values())

    @property
    def server_errors(self) -> int:
        return sum(n for counter in self.statuses.values() for status, n in counter.items() if status >= 500)

    def fail(self, label: str, title: str, response: requests.Response | None, detail: str) -> None:
        self.failure_count += 1
        key = (label, title)
        if key not in self.failures:
            sent = response.request if response is not None else None
            body = sent.body if sent is not None else None
            self.failures[key] = {
                "operation": label, "failure": title, "detail": detail[:2000],
                "status": response.status_code if response is not None else None,
                "request": None if sent is None else {
                    "method": sent.method, "path": sent.path_url, "headers": dict(sent.headers),
                    "body": body.decode("utf-8", "backslashreplace") if isinstance(body, bytes) else body},
                "answer": None if response is None else response.text[:1000]}


def run_case(case: Any, session: SigningSession, base_url: str, tally: Tally, metrics_served: bool) -> None:
    label = case.operation.label
    prepare_case(case, session)
    try:
        response = case.call(base_url=base_url, session=session, timeout=30)
    except requests.RequestException as exc:
        tally.errors += 1
        tally.fail(label, f"transport error: {type(exc).__name__}", None, str(exc))
        return
    raw = session.last_response
    tally.statuses[label][response.status_code] += 1
    if 400 <= response.status_code < 500:
        tally.reasons[label][refusal_reason(response.text)] += 1
    if label == "GET /metrics" and not metrics_served and response.status_code == 404:
        return  # /metrics is documented ahead of the build that serves it
    try:
        case.validate_response(response, checks=CHECKS, transport_kwargs={"base_url": base_url})
    except FailureGroup as group:
        for failure in group.exceptions:
            tally.fail(label, failure.title, raw, failure.message)


def refusal_reason(answer: str) -> str:
    """The reason of a refusal without positions and values, to count refusals by kind."""
    reason = re.sub(r"<[^>]*>", " ", answer)
    reason = re.sub(r"\[\d+\]|'[^']*'|\d+", "#", reason.split(";")[0])
    return " ".join(reason.split())[:90]


def fuzz_operation(operation: Any, mode: GenerationMode, count: int, run_seed: int, session: SigningSession,
                   base_url: str, tally: Tally, metrics_served: bool) -> None:
    @hypothesis_seed(run_seed)
    @settings(max_examples=count, deadline=None, database=None, phases=[Phase.generate], print_blob=False,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def test(case: Any) -> None:
        run_case(case, session, base_url, tally, metrics_served)

    test()


#: What a worker process fuzzes against, set once per process (``start_worker``).
_WORKER: dict[str, Any] = {}


def start_worker(document: dict[str, Any], base_url: str, metrics_served: bool) -> None:
    _WORKER.update(schema=load_schema(document), session=SigningSession(),
                   base_url=base_url, metrics_served=metrics_served)


def run_task(label: str, mode: str, count: int, task_seed: int) -> Tally:
    """Send ``count`` generated cases of one operation (in a worker process), or with mode
    ``coverage`` schemathesis' deterministic boundary cases; return what happened."""
    schema = _WORKER["schema"]
    operation = schema.find_operation_by_label(label)
    tally = Tally()
    if mode == COVERAGE:
        for case in schema.iter_coverage_cases(
                operation, generation_modes=list(GenerationMode),
                generation_config=schema.config.generation_for(operation=operation)):
            run_case(case, _WORKER["session"], _WORKER["base_url"], tally, _WORKER["metrics_served"])
        return tally
    for attempt in range(3):  # Hypothesis may stop short of max_examples (nothing left to vary): top up
        missing = count - tally.cases
        if missing <= 0 or (attempt and count == 1):
            break
        fuzz_operation(operation, GenerationMode(mode), missing, task_seed + attempt, _WORKER["session"],
                       _WORKER["base_url"], tally, _WORKER["metrics_served"])
    return tally


def plan_tasks(labels: list[str], budget: int, run_seed: int) -> list[tuple[str, str, int, int]]:
    """Split the case budget into tasks of at most ``CHUNK`` cases: (operation, mode, cases, seed)."""
    total_weight = sum(WEIGHTS.get(label, 0) for label in labels)
    tasks = []
    for index, label in enumerate(labels):
        share = WEIGHTS.get(label, 0) * budget // total_weight
        if not share:
            tasks.append((label, GenerationMode.POSITIVE.value, 1, run_seed + index))
            continue
        negative = int(share * NEGATIVE_SHARE)
        for mode, cases in ((GenerationMode.POSITIVE, share - negative), (GenerationMode.NEGATIVE, negative)):
            chunks = -(-cases // CHUNK)
            for chunk in range(chunks):
                size = cases // chunks + (1 if chunk < cases % chunks else 0)
                tasks.append((label, mode.value, size, run_seed + 7919 * index + 101 * chunk + len(tasks)))
    return sorted(tasks, key=lambda task: -task[2])


def send_examples(schema: Any, document: dict[str, Any], session: SigningSession, base_url: str,
                  tally: Tally) -> int:
    """Send each operation's documented example, signed; each must be accepted (200)."""
    sent = 0
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for media_type, content in operation.get("requestBody", {}).get("content", {}).items():
                if "example" not in content:
                    continue
                api_operation = schema[path][method.upper()]
                params = {"token": SECRETS.salesforce_token} if "{token}" in path else {}
                case = api_operation.Case(body=content["example"], media_type=media_type, path_parameters=params)
                session.plan(sign=True, label=api_operation.label)
                response = case.call(base_url=base_url, session=session, timeout=30)
                tally.statuses[api_operation.label][response.status_code] += 1
                sent += 1
                if response.status_code != 200:
                    tally.fail(api_operation.label, "documented example refused", session.last_response,
                               response.text)
    return sent


def report(tally: Tally, elapsed: float, log_path: Path, run_seed: int, reasons: int) -> int:
    print(f"\n{'operation':<42} {'cases':>6}  answers by status")
    for label in sorted(tally.statuses):
        counter = tally.statuses[label]
        shown = ", ".join(f"{status}: {n}" for status, n in sorted(counter.items()))
        print(f"{label:<42} {sum(counter.values()):>6}  {shown}")
        for reason, n in tally.reasons[label].most_common(reasons):
            print(f"{'':<42} {n:>6}  refused: {reason}")
    log = log_path.read_text(errors="replace")
    tracebacks = log.count("Traceback (most recent call last)")
    for failure in list(tally.failures.values())[:SHOWN_FAILURES]:
        print(f"\nFAILED {failure['operation']}: {failure['failure']} (answer {failure['status']})")
        print(json.dumps(failure["request"], ensure_ascii=True)[:3000])
        print(failure["detail"][:1500])
    if tracebacks:
        print(f"\nthe server logged {tracebacks} traceback(s); the last lines of its log:\n{log[-4000:]}")
    print(f"\nfuzz: {tally.cases} cases in {elapsed:.0f} s (seed {run_seed}), {tally.server_errors} answers >= 500, "
          f"{tally.failure_count} failed checks ({len(tally.failures)} distinct), {tally.errors} transport errors, "
          f"{tracebacks} server tracebacks")
    ok = not (tally.server_errors or tally.failure_count or tally.errors or tracebacks)
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000, help="cases to send in all, at least (default 10000)")
    parser.add_argument("--seed", type=int, default=None, help="Hypothesis seed (default: random, printed)")
    parser.add_argument("--jobs", type=int, default=2, help="fuzzing processes (default 2)")
    parser.add_argument("--reasons", type=int, default=0, metavar="N",
                        help="show the N most frequent refusal reasons per operation")
    parser.add_argument("--keep", type=Path, default=None, help="write the failures (JSON) and server log here")
    args = parser.parse_args()
    run_seed = args.seed if args.seed is not None else random.randrange(2**32)
    workdir = Path(tempfile.mkdtemp(prefix="ll-fuzz-"))
    server = None
    try:
        database_url, redis_url = prepare_stores(workdir)
        server, base_url, log_path = start_server(workdir, database_url, redis_url)
        wait_until_ready(server, base_url, log_path)
        started = time.monotonic()
        document = requests.get(base_url + "/openapi.json", timeout=10).json()
        schema = load_schema(document)
        print(f"fuzzing {base_url} ({stores_label(database_url, redis_url)}), seed {run_seed}, {args.jobs} processes")
        metrics_served = requests.get(base_url + "/metrics", timeout=10).status_code != 404
        if not metrics_served:
            print("GET /metrics: not served by this build (404); documented ahead, its 404 is accepted")
        tally = Tally()
        send_examples(schema, document, SigningSession(), base_url, tally)
        labels = [result.ok().label for result in schema.get_all_operations()]
        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("fork"), initializer=start_worker,
                                 initargs=(document, base_url, metrics_served)) as pool:
            # Schemathesis' deterministic cases first (boundaries, missing parts, undeclared methods),
            # then Hypothesis-generated ones up to the budget.
            for result in pool.map(run_task, labels, [COVERAGE] * len(labels), [0] * len(labels),
                                   [run_seed] * len(labels)):
                tally.merge(result)
            tasks = plan_tasks(labels, args.cases - tally.cases, run_seed)
            for result in pool.map(run_task, *zip(*tasks, strict=True)):
                tally.merge(result)
        code = report(tally, time.monotonic() - started, log_path, run_seed, args.reasons)
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            (args.keep / "failures.json").write_text(json.dumps(list(tally.failures.values()), indent=1))
            shutil.copy(log_path, args.keep / "server.log")
        return code
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        if (workdir / "redis").exists():
            stop_embedded_redis(workdir / "redis")
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
