"""PackML state × unit mode × stop reason (× blocked/starved) → time :data:`Category`.

The rules live in a versioned YAML file (the bundled default is ``loss_mapping.yaml`` next to
this module, which documents every rule's reason; ``settings.loss_mapping`` points at another
one). The first rule whose conditions all hold wins; a field a rule does not mention matches
anything; nothing matched gives ``default`` (``unknown``).

Stop reasons are hierarchical dotted codes: a rule for ``100`` matches ``100``, ``100.20`` and
``100.20.5``, never ``1000`` (code *segments* are compared, not string prefixes -- the trap the
open-source anchor fell into). A more specific rule must come before its parent; a rule that
an earlier rule fully covers can never match and is refused at load time, so the order in the
file is the order of precedence with no surprises.

States are PackML *names*: the connector converts both numberings (PackTags ``StateCurrent``
and the OPC UA companion spec) to names. :func:`state_from_number` does the same for callers
that hold a number.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from asbuilt.errors import ConfigError
from asbuilt.events import PACKML_STATES, PackMLState, StateNumbering, packml_state_name
from pipelines.accounting.model import CATEGORIES, Category

__all__ = [
    "DEFAULT_MAPPING",
    "LossMapping",
    "MappingError",
    "Rule",
    "is_code_within",
    "load_mapping",
    "parse_mapping",
    "state_from_number",
]

DEFAULT_MAPPING: Final = Path(__file__).with_name("loss_mapping.yaml")

_FIELDS: Final = frozenset({"state", "mode", "reason", "has_reason", "blocked", "starved"})
_RULE_KEYS: Final = frozenset({"name", "when", "category", "why"})
_TOP_KEYS: Final = frozenset({"version", "default", "rules"})


class MappingError(ConfigError):
    """The loss mapping file is unreadable or breaks a rule (the message says file and rule)."""


def _segments(code: str) -> tuple[str, ...]:
    return tuple(code.split("."))


def is_code_within(code: str, parent: str) -> bool:
    """True if reason ``code`` is ``parent`` or one of its descendants ('100.20' in '100').

    Compares dot-separated segments: '1000' is not within '100', '100.2' is not within '100.20'.
    """
    c, p = _segments(code), _segments(parent)
    return c[: len(p)] == p


@dataclass(frozen=True, slots=True)
class Rule:
    """One mapping rule: conditions (None = any) and the category they give."""

    name: str
    category: Category
    states: frozenset[str] | None = None
    modes: frozenset[str] | None = None
    reasons: tuple[str, ...] | None = None
    has_reason: bool | None = None
    blocked: bool | None = None
    starved: bool | None = None
    why: str = ""

    def matches(
        self, state: str, mode: str, reason: str | None, blocked: bool, starved: bool
    ) -> bool:
        if self.states is not None and state not in self.states:
            return False
        if self.modes is not None and mode not in self.modes:
            return False
        if self.has_reason is not None and self.has_reason != (reason is not None):
            return False
        if self.blocked is not None and self.blocked != blocked:
            return False
        if self.starved is not None and self.starved != starved:
            return False
        if self.reasons is not None:
            if reason is None:
                return False
            return any(is_code_within(reason, r) for r in self.reasons)
        return True

    def covers(self, other: Rule) -> bool:
        """True if every input ``other`` matches is also matched by this rule."""
        if self.states is not None and (other.states is None or not other.states <= self.states):
            return False
        if self.modes is not None and (other.modes is None or not other.modes <= self.modes):
            return False
        for mine, theirs in (
            (self.blocked, other.blocked),
            (self.starved, other.starved),
        ):
            if mine is not None and mine != theirs:
                return False
        if self.has_reason is not None:
            implied = True if other.reasons is not None else other.has_reason
            if implied != self.has_reason:
                return False
        if self.reasons is not None:
            if other.reasons is None:
                return False
            return all(any(is_code_within(o, r) for r in self.reasons) for o in other.reasons)
        return True


@dataclass(slots=True)
class LossMapping:
    """A loaded mapping: ``version``, ``default`` and ordered ``rules``; see :meth:`classify`."""

    version: str
    rules: tuple[Rule, ...]
    default: Category = "unknown"
    source: str = "<string>"
    _cache: dict[tuple[str, str, str | None, bool, bool], Category] = field(
        default_factory=dict, repr=False, compare=False
    )

    def rule_for(
        self,
        state: str,
        mode: str,
        reason: str | None = None,
        *,
        blocked: bool = False,
        starved: bool = False,
    ) -> Rule | None:
        """The first rule that matches, None when none does (the default applies)."""
        for rule in self.rules:
            if rule.matches(state, mode, reason, blocked, starved):
                return rule
        return None

    def classify(
        self,
        state: str,
        mode: str,
        reason: str | None = None,
        *,
        blocked: bool = False,
        starved: bool = False,
    ) -> Category:
        """The time category of a state (results are cached: a plant has few distinct states)."""
        key = (state, mode, reason, blocked, starved)
        hit = self._cache.get(key)
        if hit is None:
            rule = self.rule_for(state, mode, reason, blocked=blocked, starved=starved)
            hit = self.default if rule is None else rule.category
            if len(self._cache) < 100_000:
                self._cache[key] = hit
        return hit


def state_from_number(number: int, numbering: StateNumbering) -> PackMLState | None:
    """A PackML state name from a number in ``numbering`` ('packtags' or 'opcua'); None if unknown.

    The mapping only takes names; this is for callers holding a raw ``StateCurrent`` number.
    """
    return packml_state_name(number, numbering)


# --- loading -----------------------------------------------------------------------------------


def _names(value: Any, where: str, what: str, allowed: Iterable[str] | None) -> frozenset[str]:
    items = value if isinstance(value, list) else [value]
    out: set[str] = set()
    for item in items:
        if not isinstance(item, str) or not item:
            msg = f"{where}: {what} must be a name or a list of names, got {item!r}"
            raise MappingError(msg)
        if allowed is not None and item not in allowed:
            if item.isdigit():
                hint = " (states are names, e.g. 'Execute', never PackML numbers)"
            else:
                hint = f" (one of {', '.join(sorted(allowed))})"
            msg = f"{where}: unknown {what} {item!r}{hint}"
            raise MappingError(msg)
        out.add(item)
    if not out:
        msg = f"{where}: {what} is an empty list"
        raise MappingError(msg)
    return frozenset(out)


def _codes(value: Any, where: str) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, str | int):
            msg = f"{where}: reason must be a code or a list of codes, got {item!r}"
            raise MappingError(msg)
        if isinstance(item, int):
            msg = f"{where}: reason {item!r} was read as a number: quote codes, e.g. '{item}'"
            raise MappingError(msg)
        parts = item.split(".")
        if not all(p and all(ch.isalnum() or ch in "_-" for ch in p) for p in parts):
            msg = f"{where}: reason {item!r} is not a dotted code such as '100.20'"
            raise MappingError(msg)
        out.append(item)
    if not out:
        msg = f"{where}: reason is an empty list"
        raise MappingError(msg)
    return tuple(out)


def _bool(value: Any, where: str, what: str) -> bool:
    if not isinstance(value, bool):
        msg = f"{where}: {what} must be true or false, got {value!r}"
        raise MappingError(msg)
    return value


def _category(value: Any, where: str) -> Category:
    if value not in CATEGORIES:
        msg = f"{where}: category {value!r} is not one of {', '.join(CATEGORIES)}"
        raise MappingError(msg)
    category: Category = value
    return category


def _rule(raw: Any, index: int, source: str) -> Rule:
    where = f"{source}: rule {index + 1}"
    if not isinstance(raw, dict):
        msg = f"{where}: a rule is a mapping with name, when, category, why"
        raise MappingError(msg)
    name = raw.get("name")
    if isinstance(name, str) and name:
        where = f"{source}: rule {index + 1} ({name!r})"
    else:
        name = f"rule{index + 1}"
    unknown = set(raw) - _RULE_KEYS
    if unknown:
        msg = f"{where}: unknown keys {sorted(unknown)} (a rule has {sorted(_RULE_KEYS)})"
        raise MappingError(msg)
    when = raw.get("when") or {}
    if not isinstance(when, dict):
        msg = f"{where}: 'when' must be a mapping of conditions, got {when!r}"
        raise MappingError(msg)
    bad = set(when) - _FIELDS
    if bad:
        msg = f"{where}: unknown conditions {sorted(bad)} (use {', '.join(sorted(_FIELDS))})"
        raise MappingError(msg)
    if "category" not in raw:
        msg = f"{where}: no category"
        raise MappingError(msg)
    return Rule(
        name=name,
        category=_category(raw["category"], where),
        states=_names(when["state"], where, "state", PACKML_STATES) if "state" in when else None,
        modes=_names(when["mode"], where, "mode", None) if "mode" in when else None,
        reasons=_codes(when["reason"], where) if "reason" in when else None,
        has_reason=_bool(when["has_reason"], where, "has_reason") if "has_reason" in when else None,
        blocked=_bool(when["blocked"], where, "blocked") if "blocked" in when else None,
        starved=_bool(when["starved"], where, "starved") if "starved" in when else None,
        why=str(raw.get("why") or ""),
    )


def parse_mapping(text: str, source: str = "<string>") -> LossMapping:
    """Validate the YAML ``text`` of a loss mapping; :class:`MappingError` says what is wrong."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        msg = f"{source}: not valid YAML: {exc}"
        raise MappingError(msg) from exc
    if not isinstance(data, dict):
        msg = f"{source}: a loss mapping is a YAML mapping with version, default and rules"
        raise MappingError(msg)
    unknown = set(data) - _TOP_KEYS
    if unknown:
        msg = f"{source}: unknown keys {sorted(unknown)} (use {', '.join(sorted(_TOP_KEYS))})"
        raise MappingError(msg)
    version = data.get("version")
    if version is None or isinstance(version, bool) or str(version).strip() == "":
        msg = f"{source}: 'version' is missing (it is written into every row: e.g. version: \"1\")"
        raise MappingError(msg)
    default = _category(data.get("default", "unknown"), f"{source}: default")
    raw_rules = data.get("rules")
    if not isinstance(raw_rules, list) or not raw_rules:
        msg = f"{source}: 'rules' must be a non-empty list"
        raise MappingError(msg)
    rules = tuple(_rule(r, i, source) for i, r in enumerate(raw_rules))
    names = [r.name for r in rules]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        msg = f"{source}: rule names {dupes} appear more than once"
        raise MappingError(msg)
    for j, later in enumerate(rules):
        for earlier in rules[:j]:
            if earlier.covers(later):
                msg = (
                    f"{source}: rule {j + 1} ({later.name!r}) can never match: rule "
                    f"{names.index(earlier.name) + 1} ({earlier.name!r}) before it matches "
                    "everything it would; put the more specific rule first"
                )
                raise MappingError(msg)
    return LossMapping(version=str(version), rules=rules, default=default, source=source)


def load_mapping(path: Path | str | None = None) -> LossMapping:
    """Read a loss mapping file; None reads the bundled default (:data:`DEFAULT_MAPPING`)."""
    p = DEFAULT_MAPPING if path is None else Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        msg = f"{p}: cannot read the loss mapping: {exc}"
        raise MappingError(msg) from exc
    return parse_mapping(text, str(p))


def categories_by_rule(mapping: LossMapping) -> Mapping[str, Category]:
    """Rule name → category (for documentation and tests)."""
    return {r.name: r.category for r in mapping.rules}
