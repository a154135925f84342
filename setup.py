"""leadloop's build step beyond pyproject.toml: scoring's compiled twin, the package ``leadloop_native``.

``build_ext`` copies the modules in ``scoring.native.MODULES`` unchanged (they import each other
relatively) into ``build/native/src/leadloop_native/``, next to an ``__init__.py`` that records
their ``SOURCE_DIGEST``, and compiles them with mypyc. The result is installed like any other part
of leadloop, so pip records it and ``pip uninstall leadloop`` removes it; an editable install
(``pip install -e .``) keeps it in ``build/native/lib/leadloop_native/`` instead, which
``scripts/bootstrap.sh`` rebuilds when the modules change. ``scoring/native.py`` says how it is used.

When the compile fails (no C compiler, a platform mypyc does not support) the build warns and
installs no twin: scoring then runs as pure Python, with the same results.
"""

from __future__ import annotations

import os
import runpy
import shutil
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
#: scoring/native.py on its own: the scoring package imports phonenumbers & co., not build requirements.
NATIVE = runpy.run_path(str(ROOT / "scoring" / "native.py"))
PACKAGE: str = NATIVE["PACKAGE"]
#: The twin's generated sources (mypyc's input), its C code and mypy's cache.
WORK = Path("build", "native")
#: Where an editable install keeps the built twin (``package_dir``); pip's other builds install it.
EDITABLE_DIR = WORK / "lib" / PACKAGE
#: mypyc's shared library for the compiled code (inside the package, named after ``group_name``).
SHARED_LIBRARY = "lib"
#: What mypyc makes: the shared library, and a small extension module per compiled module.
TWIN_EXTENSIONS = sorted([f"{PACKAGE}.{SHARED_LIBRARY}__mypyc", *(f"{PACKAGE}.{name}" for name in NATIVE["MODULES"])])
INIT = '''"""scoring's hot path compiled with mypyc by leadloop's build (setup.py); see scoring/native.py."""

SOURCE_DIGEST = "{digest}"
'''


def write_sources(target: Path) -> list[Path]:
    """Copy the modules into ``target`` (a fresh package dir) with the ``__init__.py``; return the modules."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    paths = [Path(shutil.copy2(ROOT / "scoring" / f"{name}.py", target)) for name in NATIVE["MODULES"]]
    (target / "__init__.py").write_text(INIT.format(digest=NATIVE["source_digest"]()))
    return paths


def twin_extensions() -> list[Extension]:
    """Return mypyc's extension modules for freshly written sources (raises when mypyc fails)."""
    from mypyc.build import mypycify  # a build requirement; missing under --no-build-isolation without it

    sources = ROOT / WORK / "src"
    paths = write_sources(sources / PACKAGE)
    os.environ["MYPYPATH"] = str(ROOT)  # mypy resolves the pure scoring modules the copies import
    # --no-site-packages: the same code whatever the build environment holds (pip's isolated one has
    # no phonenumbers & co., the virtualenv of an editable install has them with their types).
    options = ["--ignore-missing-imports", "--follow-imports=silent", "--no-site-packages",
               f"--cache-dir={ROOT / WORK / 'mypy_cache'}"]
    cwd = Path.cwd()
    os.chdir(sources)  # mypy names the modules after their paths: leadloop_native/engine.py
    try:
        return mypycify([*options, *(str(p.relative_to(sources)) for p in paths)], opt_level="3",
                        group_name=f"{PACKAGE}.{SHARED_LIBRARY}", target_dir=str(ROOT / WORK / "c"))
    finally:
        os.chdir(cwd)


class BuildTwin(build_ext):
    """``build_ext`` for the twin: mypyc's extensions plus its ``__init__.py``; on failure, a warning and no twin."""

    def run(self) -> None:
        inplace = self.inplace  # setuptools turns it off while building, and leaves it off if that fails
        built = [Path(self.build_lib, PACKAGE)] + ([ROOT / EDITABLE_DIR] if inplace else [])
        for package in built:  # no half-old twin, and no .so overwritten under a running process
            shutil.rmtree(package, ignore_errors=True)
        try:
            self._take_mypyc_extensions()
            if inplace:
                self.mkpath(str(ROOT / EDITABLE_DIR))  # setuptools copies the extensions there, but does not make it
            super().run()
        except (Exception, SystemExit) as err:  # noqa: BLE001 - no mypyc or C compiler, a platform they do not support
            self.inplace, self.extensions = inplace, []
            for package in built:
                shutil.rmtree(package, ignore_errors=True)
            self.warn(f"could not compile scoring's hot path ({type(err).__name__}: {err}); "
                      "installing without it: scoring runs as pure Python (same results, slower)")
            return
        for package in built:
            self.copy_file(str(ROOT / WORK / "src" / PACKAGE / "__init__.py"), str(package / "__init__.py"))

    def _take_mypyc_extensions(self) -> None:
        # Generated here, not when setup.py starts: only a build needs them, and mypyc takes seconds.
        # setup() declared the same names, which setuptools has set up its own state for.
        generated = {extension.name: extension for extension in twin_extensions()}
        if set(generated) != {extension.name for extension in self.extensions}:
            raise RuntimeError(f"mypyc made the extensions {sorted(generated)}, setup.py expects {TWIN_EXTENSIONS}")
        for extension in self.extensions:
            vars(extension).update(vars(generated[extension.name]))  # sources, flags, include dirs, ...

    def get_outputs(self) -> list[str]:
        outputs = super().get_outputs()  # all in the package's directory
        return [*outputs, os.path.join(os.path.dirname(outputs[0]), "__init__.py")] if outputs else outputs


setup(
    # The names only, for setuptools to plan the build; BuildTwin fills them in from mypyc.
    ext_modules=[Extension(name, sources=[]) for name in TWIN_EXTENSIONS],
    package_dir={PACKAGE: str(EDITABLE_DIR)},
    cmdclass={"build_ext": BuildTwin},
)
