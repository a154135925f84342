"""Compile scoring's hot path with mypyc into this Python's site-packages as ``leadloop_native``.

    python scripts/build_native.py [--force] [--check]

The modules in ``scoring.native.MODULES`` are copied to ``build/native/src/leadloop_native/``
with their ``scoring.<module>`` imports pointed at the copies, compiled with mypyc (the copies
are the same code: only the package name differs), and installed next to the other packages
of the interpreter running this script. ``leadloop_native.SOURCE_DIGEST`` records what it was
built from; ``scoring.native`` uses the build only while the source still has that digest.

Does nothing when the installed build is current (unless ``--force``). ``--check`` only says
whether it is. Exit code 0 when built or current, 1 when the build failed (scoring then runs
as pure Python: same results, slower).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import re
import shutil
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _native_info():
    # scoring/native.py on its own: importing the scoring package would load phonenumbers & co.
    spec = importlib.util.spec_from_file_location("_leadloop_native_info", ROOT / "scoring" / "native.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def installed_digest(site: Path, package: str) -> str | None:
    """Return the SOURCE_DIGEST line of an installed build, or None."""
    init = site / package / "__init__.py"
    if not init.is_file():
        return None
    found = re.search(r'^SOURCE_DIGEST = "([0-9a-f]+)"$', init.read_text(), re.MULTILINE)
    return found.group(1) if found else None


def write_sources(info, target: Path, digest: str) -> list[Path]:
    """Copy the modules into ``target`` (the package dir) with imports renamed; return the paths."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    names = "|".join(info.MODULES)
    pattern = re.compile(rf"^(\s*)from scoring\.({names}) import ", re.MULTILINE)
    paths = []
    for name in info.MODULES:
        text = (ROOT / "scoring" / f"{name}.py").read_text()
        copy = target / f"{name}.py"
        copy.write_text(pattern.sub(rf"\1from {info.PACKAGE}.\2 import ", text))
        paths.append(copy)
    (target / "__init__.py").write_text(
        f'"""scoring\'s hot path compiled with mypyc by scripts/build_native.py; see scoring/native.py."""\n\n'
        f'SOURCE_DIGEST = "{digest}"\n')
    return paths


def compile_package(paths: list[Path], source_root: Path, out: Path, package: str) -> None:
    """Build the extension modules of ``paths`` into ``out`` (mypyc, then setuptools' build_ext)."""
    from mypyc.build import mypycify
    from setuptools import Distribution

    os.environ["MYPYPATH"] = str(ROOT)  # mypy resolves the pure scoring modules the copies import
    cwd = Path.cwd()
    os.chdir(source_root)
    try:
        extensions = mypycify(
            ["--ignore-missing-imports", "--follow-imports=silent",
             *[str(p.relative_to(source_root)) for p in paths]],
            opt_level="3", group_name=package)
        dist = Distribution({"name": package, "ext_modules": extensions})
        build = dist.get_command_obj("build_ext")
        build.build_lib = str(out)
        build.build_temp = str(source_root.parent / "temp")
        dist.run_command("build_ext")
    finally:
        os.chdir(cwd)


def install(out: Path, site: Path, package: str, sources: Path) -> None:
    """Replace the installed build with the one in ``out`` (package dir + mypyc's shared library)."""
    if (site / package).exists():
        shutil.rmtree(site / package)
    for old in site.glob(f"{package}__mypyc.*"):
        old.unlink()
    shutil.copytree(out / package, site / package)
    shutil.copy2(sources / "__init__.py", site / package / "__init__.py")
    for shared in out.glob(f"{package}__mypyc.*"):
        shutil.copy2(shared, site / shared.name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild even when the installed build is current")
    parser.add_argument("--check", action="store_true", help="only report whether the installed build is current")
    args = parser.parse_args()
    info = _native_info()
    site = Path(sysconfig.get_paths()["purelib"])
    digest = info.source_digest(ROOT / "scoring")
    current = installed_digest(site, info.PACKAGE) == digest
    if args.check:
        print(f"{info.PACKAGE}: {'current' if current else 'missing or stale'} in {site}")
        return 0 if current else 1
    if current and not args.force:
        return 0
    print(f"compiling scoring's hot path with mypyc into {site / info.PACKAGE} ...", file=sys.stderr)
    work = ROOT / "build" / "native"
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    source_root = work / "src"
    try:
        paths = write_sources(info, source_root / info.PACKAGE, digest)
        with tempfile.TemporaryDirectory(dir=work) as out, _output_to(work / "build.log"):
            compile_package(paths, source_root, Path(out), info.PACKAGE)
            install(Path(out), site, info.PACKAGE, source_root / info.PACKAGE)
    except (Exception, SystemExit) as err:  # noqa: BLE001 - any failure leaves scoring on pure Python
        print(f"could not compile scoring's hot path ({type(err).__name__}: {err}; see {work / 'build.log'}); "
              "scoring runs as pure Python (same results, slower)", file=sys.stderr)
        return 1
    print(f"compiled in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return 0


@contextlib.contextmanager
def _output_to(log: Path) -> Iterator[None]:
    """Send this process's stdout and stderr (the compiler's too) to ``log`` meanwhile."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with log.open("w") as handle:
        os.dup2(handle.fileno(), 1)
        os.dup2(handle.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


if __name__ == "__main__":
    sys.exit(main())
