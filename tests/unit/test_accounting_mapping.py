"""The loss mapping: every default rule, hierarchical reasons, the simulator's states, bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from asbuilt.events import PACKML_STATES, packml_state_number
from pipelines.accounting.mapping import (
    DEFAULT_MAPPING,
    MappingError,
    is_code_within,
    load_mapping,
    parse_mapping,
    state_from_number,
)
from pipelines.accounting.model import CATEGORIES

pytestmark = pytest.mark.unit

M = load_mapping()


@pytest.mark.parametrize(
    ("state", "mode", "reason", "flags", "category", "rule"),
    [
        ("Stopped", "Maintenance", "400.10", {}, "planned_downtime", "maintenance_mode"),
        ("Execute", "Maintenance", None, {}, "planned_downtime", "maintenance_mode"),
        ("Execute", "Manual", "300.10", {}, "setup", "manual_mode"),
        ("Stopped", "Manual", None, {}, "setup", "manual_mode"),
        ("Execute", "Produce", None, {}, "production", "producing"),
        ("Execute", "Produce", "100.20", {}, "production", "producing"),  # latched reason
        ("Idle", "Produce", "800.20", {}, "not_scheduled", "no_shift"),
        ("Stopped", "Produce", "800.10", {}, "planned_downtime", "break"),
        ("Starting", "Produce", "800.10", {}, "planned_downtime", "break"),
        ("Stopped", "Produce", "400", {}, "planned_downtime", "planned_maintenance"),
        ("Completing", "Produce", "300.10", {}, "setup", "setup_reason"),
        ("Held", "Produce", "100.20", {}, "breakdown", "equipment_failure"),
        ("Aborted", "Produce", "200.10", {}, "breakdown", "equipment_failure"),
        ("Stopped", "Produce", "200.30", {}, "breakdown", "equipment_failure"),
        ("Suspended", "Produce", "500.10", {}, "minor_stop", "minor_stop_reason"),
        ("Suspended", "Produce", "600.10", {"starved": True}, "external", "external_reason"),
        ("Idle", "Produce", "600.20", {"blocked": True}, "external", "external_reason"),
        ("Suspended", "Produce", None, {"blocked": True}, "external", "blocked"),
        ("Suspended", "Produce", None, {"starved": True}, "external", "starved"),
        ("Idle", "Produce", "800.30", {}, "idle", "no_order"),
        ("Idle", "Produce", "800.99", {}, "planned_downtime", "planned_stop_other"),
        ("Held", "Produce", None, {}, "breakdown", "failure_states"),
        ("Clearing", "Produce", None, {}, "breakdown", "failure_states"),
        ("Suspended", "Produce", None, {}, "minor_stop", "suspended_states"),
        ("Idle", "Produce", None, {}, "idle", "rest_states"),
        ("Complete", "Produce", None, {}, "idle", "rest_states"),
        ("Execute", "User4", None, {}, "unknown", None),
    ],
)
def test_default_rules(
    state: str, mode: str, reason: str | None, flags: dict[str, bool], category: str, rule: str
) -> None:
    assert M.classify(state, mode, reason, **flags) == category
    found = M.rule_for(state, mode, reason, **flags)
    assert (found.name if found else None) == rule


def test_every_default_rule_is_reachable_and_documented() -> None:
    text = DEFAULT_MAPPING.read_text()
    for rule in M.rules:
        assert rule.why, f"rule {rule.name} has no why"
        assert rule.category in CATEGORIES
    assert "version:" in text
    assert M.version == "1"


def test_every_state_classifies_in_produce_without_reason() -> None:
    for state in PACKML_STATES:
        assert M.classify(state, "Produce") != "unknown"


@pytest.mark.parametrize(
    ("code", "parent", "within"),
    [
        ("100", "100", True),
        ("100.20", "100", True),
        ("100.20.5", "100", True),
        ("1000", "100", False),
        ("100.2", "100.20", False),
        ("10", "100", False),
        ("100", "100.20", False),
    ],
)
def test_code_segments_not_string_prefixes(code: str, parent: str, within: bool) -> None:
    assert is_code_within(code, parent) is within


def test_children_inherit_and_the_1000_trap() -> None:
    m = parse_mapping(
        """
version: t1
rules:
  - {name: jam, when: {reason: '100.20'}, category: minor_stop}
  - {name: mech, when: {reason: '100'}, category: breakdown}
  - {name: thousand, when: {reason: '1000'}, category: setup}
"""
    )
    assert m.classify("Held", "Produce", "100") == "breakdown"
    assert m.classify("Held", "Produce", "100.10") == "breakdown"
    assert m.classify("Held", "Produce", "100.10.3") == "breakdown"
    assert m.classify("Held", "Produce", "100.20") == "minor_stop"  # the specific rule wins
    assert m.classify("Held", "Produce", "100.20.7") == "minor_stop"
    assert m.classify("Held", "Produce", "1000") == "setup"  # not a child of 100
    assert m.classify("Held", "Produce", "1000.5") == "setup"
    assert m.classify("Held", "Produce", "10") == "unknown"


def test_the_simulators_states_classify_sensibly() -> None:
    """Statuses simulator/engine.py writes (state, mode, reason, blocked, starved)."""
    cases = {
        ("Stopped", "Maintenance", "400.10", False, False): "planned_downtime",
        ("Idle", "Produce", "800.20", False, False): "not_scheduled",
        ("Stopped", "Produce", "800.10", False, False): "planned_downtime",
        ("Stopping", "Produce", "800.10", False, False): "planned_downtime",
        ("Execute", "Manual", "300.10", False, False): "setup",
        ("Execute", "Manual", "300.20", False, False): "setup",
        ("Complete", "Produce", "300.10", False, False): "setup",
        ("Execute", "Produce", None, False, False): "production",
        ("Holding", "Produce", "100.20", False, False): "breakdown",
        ("Unholding", "Produce", "100.20", False, False): "breakdown",
        ("Resetting", "Produce", "100.10", False, False): "breakdown",
        ("Suspending", "Produce", "500.30", False, False): "minor_stop",
        ("Suspended", "Produce", "600.10", False, True): "external",
        ("Suspending", "Produce", "600.20", True, False): "external",
        ("Unsuspending", "Produce", "600.10", False, False): "external",
        ("Idle", "Produce", "600.10", False, True): "external",
        ("Idle", "Produce", "800.30", False, False): "idle",
        ("Starting", "Produce", "800.30", False, False): "idle",
    }
    for (state, mode, reason, blocked, starved), category in cases.items():
        got = M.classify(state, mode, reason, blocked=blocked, starved=starved)
        assert got == category, (state, mode, reason)


@pytest.mark.parametrize("numbering", ["packtags", "opcua"])
def test_both_numberings_by_name(numbering: str) -> None:
    for state in PACKML_STATES:
        number = packml_state_number(state, numbering)  # type: ignore[arg-type]
        assert state_from_number(number, numbering) == state  # type: ignore[arg-type]
    execute = packml_state_number("Execute", numbering)  # type: ignore[arg-type]
    name = state_from_number(execute, numbering)  # type: ignore[arg-type]
    assert name is not None
    assert M.classify(name, "Produce") == "production"
    assert state_from_number(99, numbering) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules: []", "'version' is missing"),
        ("version: 1\nrules: []", "'rules' must be a non-empty list"),
        (
            "version: 1\nrules: [{name: a, when: {state: Exec}, category: production}]",
            "rule 1 ('a'): unknown state 'Exec'",
        ),
        (
            "version: 1\nrules: [{name: a, when: {state: '6'}, category: production}]",
            "states are names",
        ),
        (
            "version: 1\nrules: [{name: a, when: {reason: 100}, category: breakdown}]",
            "read as a number: quote codes",
        ),
        (
            "version: 1\nrules: [{name: a, when: {colour: red}, category: idle}]",
            "unknown conditions ['colour']",
        ),
        (
            "version: 1\nrules: [{name: a, when: {}, category: downtime}]",
            "category 'downtime' is not one of",
        ),
        (
            "version: 1\nrules: [{name: a, when: {blocked: yes please}, category: idle}]",
            "blocked must be true or false",
        ),
        (
            "version: 1\nrules:\n  - {name: a, when: {reason: '100'}, category: breakdown}\n"
            "  - {name: b, when: {reason: '100.20'}, category: minor_stop}",
            "rule 2 ('b') can never match: rule 1 ('a')",
        ),
        (
            "version: 1\nrules: [{name: a, category: idle}, {name: a, category: idle}]",
            "appear more than once",
        ),
        ("version: [1\n", "not valid YAML"),
        ("- a\n- b\n", "a loss mapping is a YAML mapping"),
    ],
)
def test_bad_files_say_file_rule_and_what(text: str, message: str) -> None:
    with pytest.raises(MappingError) as info:
        parse_mapping(text, "my.yaml")
    assert str(info.value).startswith("my.yaml")
    assert message in str(info.value)


def test_load_from_a_path_and_missing_file(tmp_path: Path) -> None:
    p = tmp_path / "m.yaml"
    p.write_text("version: v9\nrules: [{name: all, category: idle}]\n")
    m = load_mapping(p)
    assert m.version == "v9"
    assert m.classify("Execute", "Produce") == "idle"
    with pytest.raises(MappingError, match="cannot read the loss mapping"):
        load_mapping(tmp_path / "nope.yaml")
