"""The documentation's links resolve, and nothing in the repository points outside it.

Every relative Markdown link ``[text](path)``, ``[text](path#anchor)`` or ``[text](#anchor)`` in
every Markdown file must name an existing file inside the repository, and an anchor into a
Markdown file must match one of its headings, slugged the way GitHub does. http(s) and mailto
links are not fetched. Links inside code (fenced blocks, inline code spans) are not links.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Folders the glob fallback skips (hidden folders are skipped too); git already ignores them.
SKIP_DIRS = frozenset({".venv", "build", "dist", "instance", "node_modules", "__pycache__"})
TEXT_PATTERNS = ("*.py", "*.md", "*.yaml", "*.sh", "*.toml")
#: Research notes that live outside the repository; cite the vendor's documentation instead.
#: Built from two pieces each so that this file does not match itself.
FORBIDDEN = ("CRM_" + "PROTOCOLS", "../" + "shared")

FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
HTML_TAG = re.compile(r"<[^>\n]+>")
#: ``[text](target)`` or ``![alt](target "title")``; the text may hold one level of brackets.
INLINE_LINK = re.compile(
    r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]"
    r"\(\s*(<[^>\n]*>|[^\s()]+)(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)"
)
#: ``[label]: target`` reference definitions.
REFERENCE_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>\n]*>|\S+)")
EXTERNAL = re.compile(r"^(?:https?:|mailto:)", re.IGNORECASE)


def repository_files(*patterns: str, root: Path = ROOT) -> list[Path]:
    """Return the repository's files matching ``patterns`` (tracked or new, not ignored).

    Uses ``git ls-files``; outside a git checkout, a glob that skips ``SKIP_DIRS`` and hidden
    folders.
    """
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *patterns],
            cwd=root, capture_output=True, check=True,
        ).stdout.decode()
        files = {root / name for name in listed.split("\0") if name}
    except (OSError, subprocess.CalledProcessError):
        files = {
            path for pattern in patterns for path in root.rglob(pattern)
            if not any(part in SKIP_DIRS or part.startswith(".") for part in path.relative_to(root).parts[:-1])
        }
    return sorted(path for path in files if path.is_file())


def github_slug(heading: str) -> str:
    """Return the anchor GitHub gives a heading: lower case, punctuation but ``-``/``_`` dropped,
    each space a ``-``. Link and image markup count by their text, HTML tags not at all."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = HTML_TAG.sub("", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _prose_lines(text: str) -> list[tuple[int, str]]:
    """Return (line number, line) for every line outside fenced code blocks."""
    lines: list[tuple[int, str]] = []
    fence = ""
    for number, line in enumerate(text.splitlines(), start=1):
        match = FENCE.match(line)
        if fence:
            if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence):
                fence = ""
        elif match:
            fence = match.group(1)
        else:
            lines.append((number, line))
    return lines


def heading_anchors(path: Path) -> set[str]:
    """Return the anchors of every heading in the Markdown file (duplicates get ``-1``, ``-2`` …)."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    for _number, line in _prose_lines(path.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if not match:
            continue
        slug = github_slug(match.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def links(path: Path) -> list[tuple[int, str]]:
    """Return (line number, target) of every inline link and reference definition in ``path``."""
    found: list[tuple[int, str]] = []
    for number, line in _prose_lines(path.read_text(encoding="utf-8")):
        prose = CODE_SPAN.sub("", line)
        targets = [m.group(1) for m in INLINE_LINK.finditer(prose)]
        definition = REFERENCE_DEF.match(prose)
        if definition:
            targets.append(definition.group(1))
        found.extend((number, target.strip("<>")) for target in targets)
    return found


def link_problems(path: Path, root: Path = ROOT) -> list[str]:
    """Return one message per relative link in ``path`` that does not resolve; empty if all do."""
    root = root.resolve()
    problems: list[str] = []
    where = path.resolve().relative_to(root)
    for number, target in links(path):
        if EXTERNAL.match(target):
            continue
        file_part, _, anchor = target.partition("#")
        file_part = unquote(file_part)
        if not file_part:
            resolved = path.resolve()
        elif file_part.startswith("/"):
            resolved = (root / file_part.lstrip("/")).resolve()
        else:
            resolved = (path.resolve().parent / file_part).resolve()
        if not resolved.is_relative_to(root):
            problems.append(f"{where}:{number}: {target}: points outside the repository")
        elif not resolved.exists():
            problems.append(f"{where}:{number}: {target}: no such file")
        elif anchor and resolved.suffix == ".md" and unquote(anchor) not in heading_anchors(resolved):
            problems.append(f"{where}:{number}: {target}: no heading with anchor #{anchor} in {resolved.name}")
    return problems


def forbidden_mentions(path: Path, root: Path = ROOT) -> list[str]:
    """Return ``file:line: text`` for every line of ``path`` that names a ``FORBIDDEN`` string."""
    where = path.resolve().relative_to(root.resolve())
    return [
        f"{where}:{number}: {word}"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        for word in FORBIDDEN if word in line
    ]


MARKDOWN_FILES = repository_files("*.md")


def test_the_markdown_files_are_found():
    names = {path.relative_to(ROOT).as_posix() for path in MARKDOWN_FILES}
    assert "README.md" in names
    assert any(name.startswith("docs/") for name in names)


@pytest.mark.parametrize("path", MARKDOWN_FILES, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(path: Path):
    assert link_problems(path) == []


def test_every_docs_page_is_linked_from_the_readme():
    linked = {
        (ROOT / unquote(target.partition("#")[0])).resolve()
        for _number, target in links(ROOT / "README.md") if not EXTERNAL.match(target)
    }
    pages = [path for path in MARKDOWN_FILES if path.parent == ROOT / "docs"]
    assert [page.name for page in pages if page.resolve() not in linked] == []


def test_nothing_points_at_material_outside_the_repository():
    mentions = [line for path in repository_files(*TEXT_PATTERNS) for line in forbidden_mentions(path)]
    assert mentions == []


# The checker itself: it must be able to fail.

@pytest.mark.parametrize(("heading", "slug"), [
    ("Quick start", "quick-start"),
    ("Scoring speed: the compiled twin", "scoring-speed-the-compiled-twin"),
    ("How it works, and what it guarantees", "how-it-works-and-what-it-guarantees"),
    ("4. Webhooks (app subscriptions)", "4-webhooks-app-subscriptions"),
    ("`name`, `description`", "name-description"),
    ("Conditions (`when_any`)", "conditions-when_any"),
    ("6. Outbound message (Salesforce → leadloop)", "6-outbound-message-salesforce--leadloop"),
    ("See [the guide](guide.md) **now**", "see-the-guide-now"),
    ("Pre-authorise the integration user", "pre-authorise-the-integration-user"),
])
def test_github_slug(heading: str, slug: str):
    assert github_slug(heading) == slug


def test_the_checker_flags_broken_links_and_only_those(tmp_path: Path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "guide.md").write_text("# Guide\n\n## Set up: step 1\n\n## Notes\n\n## Notes\n")
    page = tmp_path / "README.md"
    page.write_text(
        "# Title\n"
        "[ok](docs/guide.md) [ok](docs/guide.md#set-up-step-1) [ok](docs/guide.md#notes-1)\n"
        "[ok](#title) [ok](https://example.com/missing.md) [ok](mailto:a@example.com) ![ok](docs/)\n"
        "`[not a link](missing.md)`\n"
        "```\n[not a link](missing.md)\n```\n"
        "[broken file](docs/missing.md)\n"
        "[broken anchor](docs/guide.md#step-1)\n"
        "[broken own anchor](#no-such-heading)\n"
        "[outside](../outside.md)\n"
        "[ref]: docs/gone.md\n",
        encoding="utf-8",
    )
    assert link_problems(page, root=tmp_path) == [
        "README.md:8: docs/missing.md: no such file",
        "README.md:9: docs/guide.md#step-1: no heading with anchor #step-1 in guide.md",
        "README.md:10: #no-such-heading: no heading with anchor #no-such-heading in README.md",
        "README.md:11: ../outside.md: points outside the repository",
        "README.md:12: docs/gone.md: no such file",
    ]


def test_the_checker_flags_pointers_outside_the_repository(tmp_path: Path):
    note = tmp_path / "module.py"
    note.write_text("# fine: https://example.com/docs\n# see " + FORBIDDEN[0] + ".md\nX = '" + FORBIDDEN[1] + "'\n")
    assert forbidden_mentions(note, root=tmp_path) == [
        f"module.py:2: {FORBIDDEN[0]}",
        f"module.py:3: {FORBIDDEN[1]}",
    ]
