"""Load, validate, version and summarise the rules file.

``load_rules`` reports every mistake at once as ``path: message`` lines in a ``RulesError``;
``check_rules_text`` is what ``leadloop rules check FILE`` prints (exit 0 when ok, else 1).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from marshmallow import ValidationError

from scoring import lifecycle_rules, native
from scoring.fields import BUILTIN_ACTIVITY_KINDS
from scoring.lifecycle_schemas import CrmVocabulary, crm_section_errors
from scoring.prepared import PreparedRules
from scoring.rules_fields import unknown_key_message
from scoring.rules_schema import BAND_NAMES, NEGATIVE_SIGNALS, RulesFileSchema
from scoring.rules_summary import describe_rules

#: Marshmallow's built-in messages in the words we use for the rest of the file.
PLAIN_MESSAGES: Mapping[str, str] = {
    "Missing data for required field.": "required",
    "Unknown field.": "unknown key",
    "Field may not be null.": "must have a value",
    "Not a valid integer.": "must be a whole number",
    "Not a valid number.": "must be a number",
    "Not a valid string.": "must be text",
    "Not a valid boolean.": "must be true or false",
    "Not a valid list.": "must be a list",
    "Not a valid mapping type.": "must be a mapping (key: value lines)",
    "Invalid input type.": "must be a mapping (key: value lines)",
    "Invalid type.": "must be a mapping (key: value lines)",
}
#: Rule lists whose entries carry an ``id``; ids are unique within each list.
RULE_LISTS: tuple[str, ...] = ("fit", "engagement", "overrides", "priority", "disqualify")


class RulesError(Exception):
    """The rules file has mistakes; ``errors`` holds one ``path: message`` line each."""

    def __init__(self, errors: list[str], source: str = "<string>"):
        self.errors = errors
        self.source = source
        super().__init__("\n".join(errors))


@dataclass(frozen=True, eq=False)
class Rules:
    """Validated, prepared rules, ready for ``score_lead``."""

    #: The normalised loaded data (defaults filled, durations spelled canonically).
    data: dict[str, Any]
    #: 12 hex characters of sha256 over the canonical JSON of ``data``.
    version: str
    #: Built-in activity kinds plus the file's ``activity_kinds``.
    activity_kinds: frozenset[str]
    #: What ``scoring.lifecycle_rules.build`` returned for the lifecycle sections.
    lifecycle: Any
    source: str = "<string>"
    prepared: PreparedRules = field(repr=False, default=None)  # type: ignore[assignment]
    #: ``path: message`` lines for old spellings that still load (the old route syntax), each
    #: saying what to write instead; not part of the version.
    warnings: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """Return the file's ``name``, or ``""``."""
        return self.data.get("name", "")


class _DuplicateKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that records keys written twice instead of silently keeping the last."""

    duplicates: list[str]

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if isinstance(key, str | int | float | bool) and key in seen:
                self.duplicates.append(f'line {key_node.start_mark.line + 1}: key "{key}" is written twice')
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _parse_yaml(text: str) -> tuple[Any, list[str]]:
    loader = _DuplicateKeyLoader(text)
    loader.duplicates = []
    try:
        return loader.get_single_data(), loader.duplicates
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        problem = getattr(err, "problem", None) or str(err)
        return None, [f"{where}: not valid YAML: {problem}"]
    finally:
        loader.dispose()


def _schema() -> RulesFileSchema:
    extra = {key: make_field() for key, make_field in lifecycle_rules.LIFECYCLE_SECTIONS.items()}
    return type("RulesWithLifecycleSchema", (RulesFileSchema,), extra)()  # type: ignore[return-value]


def flatten_errors(messages: Any, path: str = "") -> Iterator[str]:
    """Yield ``path: message`` lines for a marshmallow error dict."""
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            if key == "_schema":
                child = path
            elif isinstance(key, int):
                child = f"{path}[{key}]"
            else:
                child = f"{path}.{key}" if path else str(key)
            yield from flatten_errors(value, child)
    elif isinstance(messages, list):
        for message in messages:
            yield from flatten_errors(message, path)
    else:
        yield f"{path or '(top)'}: {PLAIN_MESSAGES.get(str(messages), str(messages))}"


def _natural(line: str) -> list[Any]:
    path = line.split(": ", 1)[0]
    return [int(part) if part.isdigit() else part for part in re.split(r"\[(\d+)\]", path)]


def load_rules(text: str, source: str = "<string>", crm_vocabulary: CrmVocabulary | None = None) -> Rules:
    """Return the ``Rules`` in a YAML text; raise ``RulesError`` listing every mistake.

    ``crm_vocabulary`` (crm -> its feedback fields' CRM name -> canonical name) names the CRMs
    the per-CRM sections may list; None accepts any CRM name (scoring knows no CRM itself).
    """
    raw, errors = _parse_yaml(text)
    if errors and raw is None:
        raise RulesError(errors, source)
    if raw is None:
        raise RulesError(["(top): the rules file is empty"], source)
    if not isinstance(raw, Mapping):
        raise RulesError(["(top): the rules file must be made of sections like fit: and bands:, not a list"], source)
    try:
        data = _schema().load(raw)
    except ValidationError as err:
        errors += flatten_errors(err.messages)
        data = None
    errors += _reference_errors(raw)
    for key in lifecycle_rules.CRM_SECTIONS:
        errors += flatten_errors({key: crm_section_errors(raw.get(key) or {}, crm_vocabulary)})
    lifecycle = None
    if data is not None and not errors:
        sections = {key: data[key] for key in lifecycle_rules.LIFECYCLE_SECTIONS if key in data}
        try:
            lifecycle = lifecycle_rules.build(sections, crm_vocabulary)
        except ValidationError as err:
            errors += flatten_errors(err.messages)
    if errors or data is None:
        raise RulesError(sorted(dict.fromkeys(errors), key=_natural), source)
    kinds = BUILTIN_ACTIVITY_KINDS | frozenset(data["activity_kinds"])
    return Rules(data=data, version=rules_version(data), activity_kinds=kinds, lifecycle=lifecycle,
                 source=source, prepared=native.implementation().prepare_rules(data),
                 warnings=tuple(lifecycle_rules.syntax_warnings(raw)))


def load_rules_file(path: str | Path, crm_vocabulary: CrmVocabulary | None = None) -> Rules:
    """Return the ``Rules`` in a YAML file; raise ``RulesError`` (also if it cannot be read)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise RulesError([f"(file): cannot read {path}: {err}"], str(path)) from None
    return load_rules(text, str(path), crm_vocabulary)


def rules_version(data: Mapping[str, Any]) -> str:
    """Return 12 hex characters of sha256 over the canonical JSON of loaded rules data."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


def check_rules_text(text: str, source: str = "<string>", crm_vocabulary: CrmVocabulary | None = None
                     ) -> tuple[bool, str]:
    """Return (True, a summary of the rules) or (False, every mistake, one per line).

    This is ``leadloop rules check FILE``: exit 0 when the first item is True, else 1. Old
    spellings that still load (``Rules.warnings``) follow the summary as ``warning: ...`` lines.
    """
    try:
        rules = load_rules(text, source, crm_vocabulary)
    except RulesError as err:
        count = len(err.errors)
        lines = [f"{source}: {count} mistake{'s' if count != 1 else ''}"]
        return False, "\n".join(lines + [f"  {line}" for line in err.errors])
    summary = describe_rules(rules.data, rules.version, source)
    return True, "\n".join([summary] + [f"warning: {line}" for line in rules.warnings])


def check_rules_file(path: str | Path, crm_vocabulary: CrmVocabulary | None = None) -> tuple[bool, str]:
    """Return ``check_rules_text`` of a file's content, or (False, why it cannot be read)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        return False, f"{path}: cannot read the file: {err}"
    return check_rules_text(text, str(path), crm_vocabulary)


def _names(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    return [item for item in items if isinstance(item, str)]


def _entries(raw: Mapping[str, Any], key: str) -> Iterator[tuple[int, Mapping[str, Any]]]:
    value = raw.get(key)
    if isinstance(value, list):
        yield from ((i, entry) for i, entry in enumerate(value) if isinstance(entry, Mapping))


def _conditions(raw: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for key in ("overrides", "priority", "disqualify"):
        for i, entry in _entries(raw, key):
            conditions = entry.get("when_any")
            for j, condition in enumerate(conditions if isinstance(conditions, list) else []):
                if isinstance(condition, Mapping):
                    yield f"{key}[{i}].when_any[{j}]", condition


def _signal_checks(raw: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for i, entry in _entries(raw, "engagement"):
        yield f"engagement[{i}]", entry
    yield from _conditions(raw)


def _reference_errors(raw: Mapping[str, Any]) -> list[str]:
    """Return mistakes that span sections: unknown kinds, assets, tags, groups, duplicate ids."""
    errors = []
    declared = raw.get("activity_kinds")
    kinds = sorted(BUILTIN_ACTIVITY_KINDS | set(_names(declared) if declared is not None else []))
    assets = raw.get("assets") if isinstance(raw.get("assets"), Mapping) else {}
    tags = {t for a in assets.values() if isinstance(a, Mapping) for t in _names(a.get("tags", []))}
    negative = raw.get("negative") if isinstance(raw.get("negative"), Mapping) else {}
    for path, check in _signal_checks(raw):
        for i, kind in enumerate(_names(check.get("kind", []))):
            if kind not in kinds:
                where = f"{path}.kind" + (f"[{i}]" if isinstance(check["kind"], list) else "")
                errors.append(f"{where}: {unknown_key_message(kind, kinds, 'event kind')}"
                              " (declare new kinds under activity_kinds)")
        for i, asset in enumerate(_names(check.get("asset", []))):
            if asset not in assets:
                where = f"{path}.asset" + (f"[{i}]" if isinstance(check["asset"], list) else "")
                errors.append(f"{where}: {unknown_key_message(asset, list(assets), 'asset')} "
                              "(list it under assets)")
        for i, tag in enumerate(_names(check.get("tag", []))):
            if tag not in tags:
                where = f"{path}.tag" + (f"[{i}]" if isinstance(check["tag"], list) else "")
                errors.append(f'{where}: no asset has the tag "{tag}"')
    for path, check in _conditions(raw):
        if path.startswith("disqualify") and "disqualified" in check:
            errors.append(f"{path}.disqualified: a disqualify rule cannot depend on being disqualified")
        name = check.get("negative")
        if not isinstance(name, str) or name not in NEGATIVE_SIGNALS:
            continue
        if name not in negative:
            errors.append(f"{path}.negative: negative.{name} is not set up, so this never holds")
        elif isinstance(negative[name], Mapping) and negative[name].get("enabled") is False:
            errors.append(f"{path}.negative: negative.{name} is switched off (enabled: false), "
                          "so this never holds")
    groups = {e.get("group") for _, e in _entries(raw, "engagement")}
    caps = raw.get("engagement_caps")
    cap_groups = caps.get("groups") if isinstance(caps, Mapping) else None
    for group in cap_groups if isinstance(cap_groups, Mapping) else {}:
        if group not in groups:
            errors.append(f'engagement_caps.groups.{group}: no engagement rule has group "{group}"')
    for key in RULE_LISTS:
        first_seen: dict[str, str] = {}
        for i, entry in _entries(raw, key):
            rule_id = entry.get("id")
            if isinstance(rule_id, str) and rule_id in first_seen:
                errors.append(f'{key}[{i}].id: "{rule_id}" is already used at {first_seen[rule_id]}')
            elif isinstance(rule_id, str):
                first_seen[rule_id] = f"{key}[{i}]"
    return errors


__all__ = ["BAND_NAMES", "Rules", "RulesError", "check_rules_file", "check_rules_text", "load_rules",
           "load_rules_file", "rules_version"]
