"""The compiled twin of scoring's hot path (``scoring.native``): same results, used only when current."""

from __future__ import annotations

import dataclasses
import math
import os
import random
import shutil
import struct
import subprocess
import sys
import sysconfig
import zipfile
from datetime import timedelta
from pathlib import Path
from types import ModuleType

import pytest

import scoring
from bench.scoring import AS_OF, make_profile, make_signals
from scoring import Rules, Signal, load_rules_file, native
from scoring import engine as pure_engine
from scoring import prepared as pure_prepared
from scoring import timeline as pure_timeline

ROOT = Path(__file__).resolve().parent.parent
RULES_FILES = [ROOT / "rules" / "leadloop.yaml", ROOT / "tests" / "fixtures" / "rules" / "digest-rules.yaml"]


def _pure(rules: Rules) -> Rules:
    """The same rules prepared by the pure-Python ``prepare_rules``."""
    return dataclasses.replace(rules, prepared=pure_prepared.prepare_rules(rules.data))


def _bits(value: object) -> object:
    """Floats as their exact bits, so -0.0 != 0.0 and no rounding hides in a comparison."""
    if isinstance(value, float):
        return struct.pack("<d", value)
    if isinstance(value, tuple | list):
        return [_bits(item) for item in value]
    return value


def test_twin_is_active_unless_pure_python_is_requested() -> None:
    # Installing leadloop builds it; a failed build would otherwise only show as slow scoring.
    if native.pure_python_requested():
        assert native.twin() is None and scoring.score_lead is pure_engine.score_lead
    else:
        twin = native.twin()
        assert twin is not None, "leadloop_native missing or stale: run scripts/bootstrap.sh"
        assert scoring.score_lead is twin.engine.score_lead
        assert type(load_rules_file(RULES_FILES[0]).prepared) is twin.prepared.PreparedRules


@pytest.mark.parametrize("rules_file", RULES_FILES, ids=lambda p: p.name)
def test_twin_scores_exactly_like_pure_python(rules_file: Path) -> None:
    twin = native.twin()
    if twin is None:
        pytest.fail("no compiled twin in this environment to compare (LEADLOOP_PURE_PYTHON set or not built)")
    rules = load_rules_file(rules_file)
    pure_rules = _pure(rules)
    rng = random.Random(23)
    checked = 0
    for i in range(400):
        signals = make_signals(rng, rng.choice([0, 1, 5, 20, 40]), i)
        if signals and rng.random() < 0.3:  # duplicates and a future signal
            first = signals[0]
            signals += [first, Signal(first.kind, AS_OF + timedelta(days=2), first.properties, first.key + "-later")]
        profile = make_profile(rng, i)
        for as_of in (AS_OF, AS_OF + timedelta(hours=5, microseconds=250), AS_OF + timedelta(days=45)):
            penalty = rng.choice([0, 0, 7.5])
            native_result = twin.engine.score_lead(profile, signals, rules, as_of, penalty=penalty,
                                                   penalty_reason="recycled")
            pure_result = pure_engine.score_lead(profile, signals, pure_rules, as_of, penalty=penalty,
                                                 penalty_reason="recycled")
            assert _bits(native_result) == _bits(pure_result)
            assert type(native_result) is type(pure_result) is scoring.ScoreResult
            checked += 1
    assert checked == 1200


@pytest.mark.parametrize("rules_file", RULES_FILES, ids=lambda p: p.name)
def test_twin_finds_the_same_next_change_as_pure_python(rules_file: Path) -> None:
    twin = native.twin()
    if twin is None:
        pytest.fail("no compiled twin in this environment to compare (LEADLOOP_PURE_PYTHON set or not built)")
    assert scoring.next_change is twin.timeline.next_change
    rules = load_rules_file(rules_file)
    pure_rules = _pure(rules)
    rng = random.Random(29)
    found = 0
    for i in range(300):
        signals = make_signals(rng, rng.choice([0, 1, 5, 20, 40]), i)
        if signals and rng.random() < 0.3:  # a signal dated later
            first = signals[0]
            signals.append(Signal(first.kind, AS_OF + timedelta(days=rng.randint(0, 30)), first.properties, "later"))
        profile = make_profile(rng, i)
        for as_of in (AS_OF, AS_OF + timedelta(hours=5, microseconds=250)):
            penalty = rng.choice([0, 0, 7.5])
            compiled = twin.timeline.next_change(profile, signals, rules, as_of, penalty=penalty)
            pure = pure_timeline.next_change(profile, signals, pure_rules, as_of, penalty=penalty)
            assert compiled == pure
            found += compiled is not None
    assert found > 150


def test_a_changed_source_is_not_the_twin_it_was_built_from(tmp_path: Path) -> None:
    copy = tmp_path / "scoring"
    shutil.copytree(ROOT / "scoring", copy)
    assert native.source_digest(copy) == native.source_digest()
    engine_file = copy / "engine.py"
    engine_file.write_text(engine_file.read_text() + "\n# an edit\n")
    assert native.source_digest(copy) != native.source_digest()


def test_twin_modules_use_each_other_not_the_pure_ones() -> None:
    # The twin is a plain copy of the modules (they import each other relatively): one that imported a
    # sibling as scoring.<sibling> would run the pure sibling, and mix the two kinds of PreparedRules.
    twin = native.twin()
    if twin is None:
        pytest.fail("no compiled twin in this environment (LEADLOOP_PURE_PYTHON set or not built)")
    pure_siblings = {f"scoring.{name}" for name in native.MODULES}
    for name in native.MODULES:
        for attribute, value in vars(getattr(twin, name)).items():
            origin = value.__name__ if isinstance(value, ModuleType) else getattr(value, "__module__", None)
            assert origin not in pure_siblings, f"leadloop_native.{name}.{attribute} comes from {origin}"


def test_the_wheel_carries_the_compiled_twin(tmp_path: Path) -> None:
    # What `pip install .` installs, built from a copy of the sources in pip's isolated build
    # environment (pyproject.toml's build requirements); ~20 s, the compile is most of it.
    source = tmp_path / "source"
    shutil.copytree(ROOT / "scoring", source / "scoring", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "setup.py"):
        shutil.copy2(ROOT / name, source)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-v",
                            "-w", str(tmp_path / "dist"), str(source)], capture_output=True, text=True)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("leadloop-*.whl")
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    twin_files = {f"{native.PACKAGE}/{name}{suffix}" for name in (*native.MODULES, "lib__mypyc")}
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        record = {line.split(",")[0] for line in archive.read("leadloop-0.1.0.dist-info/RECORD").decode().splitlines()}
        archive.extractall(tmp_path / "installed")
    why = "\n".join(line for line in build.stderr.splitlines() if "hot path" in line)  # setup.py's warning
    assert twin_files <= names, f"no compiled twin in the wheel: {why or 'see pip wheel -v'}"
    assert {name for name in names if name.startswith(f"{native.PACKAGE}/")} == twin_files | {
        f"{native.PACKAGE}/__init__.py"}  # compiled modules only, no copies of their source
    assert twin_files <= record  # so pip uninstall removes them
    # Installed, it is what scoring runs (from outside the repository, so nothing else is imported).
    environment = {key: value for key, value in os.environ.items() if key != native.PURE_PYTHON_VARIABLE}
    probe = subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", "-c",
         "import scoring, scoring.native as n; print(n.active(), n.twin().__file__, scoring.score_lead.__module__)"],
        cwd=tmp_path, env={**environment, "PYTHONPATH": str(tmp_path / "installed")},
        capture_output=True, text=True)
    assert probe.stdout.split() == ["compiled", str(tmp_path / "installed" / native.PACKAGE / "__init__.py"),
                                    f"{native.PACKAGE}.engine"], probe.stderr


def test_pure_python_can_be_requested(monkeypatch: pytest.MonkeyPatch) -> None:
    native.twin.cache_clear()
    try:
        monkeypatch.setenv(native.PURE_PYTHON_VARIABLE, "1")
        assert native.twin() is None and native.active() == "pure Python"
        assert native.implementation() == ("pure Python", pure_engine.score_lead, pure_prepared.prepare_rules)
    finally:
        monkeypatch.delenv(native.PURE_PYTHON_VARIABLE)
        native.twin.cache_clear()
    assert native.twin() is (None if native.pure_python_requested() else sys.modules["leadloop_native"])


def _round1_cases() -> list[float]:
    rng = random.Random(5)
    edges = [0.0, -0.0, 0.05, -0.05, 0.04999999, -0.04, 0.15, 0.25, 2.675, 1.005, -2.5e-7, 999999.95, 1e6, -1e6,
             1e300, math.inf, -math.inf, 5e-324]
    halves = [k / 10 + d for k in range(-300, 300) for d in (0.05, -0.05, 0.0500000001, 0.0499999999, 1e-12)]
    decayed = [25 * math.exp(-math.log(2) / (14 * 86400) * rng.randint(0, 200 * 86400)) for _ in range(20000)]
    spread = [rng.uniform(-1, 1) * 10 ** rng.randint(-8, 7) for _ in range(20000)]
    return edges + halves + decayed + spread


@pytest.mark.parametrize("implementation", ["pure", "compiled"])
def test_round1_is_round_to_one_decimal_bit_for_bit(implementation: str) -> None:
    if implementation == "compiled":
        twin = native.twin()
        if twin is None:
            pytest.fail("no compiled twin in this environment (LEADLOOP_PURE_PYTHON set or not built)")
        round1 = twin.engine.round1
    else:
        round1 = pure_engine.round1
    cases = _round1_cases()
    assert [struct.pack("<d", round1(x)) for x in cases] == [struct.pack("<d", round(x, 1)) for x in cases]
    assert math.isnan(round1(math.nan))
