"""The plant model: the default plant loads, scales, and bad models fail with clear messages."""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from asbuilt.plant import (
    DEFAULT_PLANT,
    MAX_ASSETS,
    PlantModel,
    PlantModelError,
    default_plant,
    load_plant,
    parse_plant,
)

pytestmark = pytest.mark.unit

ASSET_RE = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+){0,4}$")  # asbuilt.events' pattern
RAW: dict[str, Any] = yaml.safe_load(DEFAULT_PLANT.read_text())


def raw() -> dict[str, Any]:
    return copy.deepcopy(RAW)


def parse(data: dict[str, Any]) -> PlantModel:
    return parse_plant(yaml.safe_dump(data), "bad-plant.yaml")


def error_of(data: dict[str, Any]) -> str:
    with pytest.raises(PlantModelError) as info:
        parse(data)
    return str(info.value)


# --- the default plant -----------------------------------------------------------------------


def test_the_default_plant_is_a_small_osd_site() -> None:
    model = default_plant()
    assert len(model.assets) == 15
    assert all(ASSET_RE.match(path) and path.count("/") == 4 for path in model.assets)
    assert "acme/basel/packaging/line1/blister" in model.assets
    assert "acme/basel/packaging/line2/case_packer" in model.assets
    assert "acme/basel/osd/train1/granulator" in model.assets
    press = model.assets["acme/basel/osd/train1/press"]
    assert press.kind == "rotary_tablet_press"
    assert press.design_speed_per_min == pytest.approx(5000)
    assert {s.name for s in press.signals} >= {"compression_force", "tablet_weight"}


def test_assets_inherit_their_kind_and_may_override_it() -> None:
    model = default_plant()
    assert model.numbering("acme/basel/osd/train1/press") == "packtags"  # overridden
    assert model.numbering("acme/basel/osd/train1/coater") == "opcua"  # plant default
    assert model.rollover("acme/basel/packaging/line1/blister") == 65_535
    blister = model.assets["acme/basel/packaging/line1/blister"]
    assert blister.input_ratio == 10
    assert blister.mtbf_s == 10_800


def test_recipes_are_isa88_with_versions_parameters_and_limits() -> None:
    model = default_plant()
    gran = next(r for r in model.recipes if r.id == "MR-IBU400-GRAN")
    assert gran.version == 3
    assert [up.unit for up in gran.unit_procedures] == [
        "dispensing",
        "granulator",
        "dryer",
        "mill",
        "blender",
    ]
    dry = gran.unit_procedures[2].operations[0].phases[1]
    param = dry.parameters["inlet_air_temperature"]
    assert param.low <= param.setpoint <= param.high


def test_the_calendar_knows_shifts_breaks_and_no_shift_time() -> None:
    cal = default_plant().calendar
    # Monday 2024-06-03, Europe/Zurich is UTC+2 in summer
    assert cal.status(datetime(2024, 6, 3, 3, 59, tzinfo=UTC)).shift is None
    early = cal.status(datetime(2024, 6, 3, 4, 0, tzinfo=UTC))
    assert (early.shift, early.in_break) == ("early", False)
    assert cal.status(datetime(2024, 6, 3, 7, 5, tzinfo=UTC)).in_break  # 09:05 local
    assert cal.status(datetime(2024, 6, 3, 12, 0, tzinfo=UTC)).shift == "late"
    assert cal.status(datetime(2024, 6, 8, 10, 0, tzinfo=UTC)).shift is None  # Saturday
    assert cal.next_change(datetime(2024, 6, 3, 4, 0, tzinfo=UTC)) == datetime(
        2024, 6, 3, 7, 0, tzinfo=UTC
    )
    # Friday 22:00 local -> next change is Monday 06:00 local
    assert cal.next_change(datetime(2024, 6, 7, 20, 0, tzinfo=UTC)) == datetime(
        2024, 6, 10, 4, 0, tzinfo=UTC
    )


def test_a_night_shift_crosses_midnight() -> None:
    data = raw()
    data["calendar"]["shifts"].append(
        {
            "name": "night",
            "days": ["mon"],
            "start": "22:00",
            "end": "06:00",
            "breaks": [{"start": "02:00", "end": "02:30"}],
        }
    )
    cal = parse(data).calendar
    assert cal.status(datetime(2024, 6, 3, 23, 0, tzinfo=UTC)).shift == "night"  # Tue 01:00
    assert cal.status(datetime(2024, 6, 4, 0, 10, tzinfo=UTC)).in_break  # Tue 02:10 local


def test_scaling_the_line_template_gives_about_500_assets() -> None:
    model = default_plant().with_lines(123)
    assert len(model.assets) == 7 + 123 * 4 == 499
    assert "acme/basel/packaging/line123/case_packer" in model.assets
    assert len(model.lines_expanded) == 123


def test_load_plant_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "plant.yaml"
    path.write_text(DEFAULT_PLANT.read_text())
    assert len(load_plant(path).assets) == 15


# --- errors say file, field and what is wrong --------------------------------------------------


def test_overlapping_shifts_are_refused() -> None:
    data = raw()
    data["calendar"]["shifts"][1]["start"] = "13:00"
    message = error_of(data)
    assert "bad-plant.yaml" in message
    assert "calendar" in message
    assert "overlap" in message
    assert "'early'" in message
    assert "'late'" in message


def test_an_unknown_state_numbering_is_refused() -> None:
    data = raw()
    data["state_numbering"] = "siemens"
    message = error_of(data)
    assert "state_numbering" in message
    assert "'opcua'" in message
    assert "'packtags'" in message


def test_an_unknown_state_numbering_on_an_asset_is_refused() -> None:
    data = raw()
    data["areas"][0]["process_cells"][0]["units"][0]["state_numbering"] = "plc"
    message = error_of(data)
    assert "areas.0.process_cells.0.units.0.state_numbering" in message


@pytest.mark.parametrize("name", ["blister machine", "line/1", "", "bläster"])
def test_bad_asset_names_are_refused(name: str) -> None:
    data = raw()
    data["areas"][1]["line_template"]["cells"][0]["name"] = name
    message = error_of(data)
    assert "areas.1.line_template.cells.0.name" in message


def test_a_bad_line_name_format_is_refused() -> None:
    data = raw()
    data["areas"][1]["line_template"]["name_format"] = "line {n}"
    assert "not a valid ISA-95 path segment" in error_of(data)


def test_duplicate_asset_paths_are_refused() -> None:
    data = raw()
    units = data["areas"][0]["process_cells"][0]["units"]
    units.append(dict(units[0]))
    assert "appears more than once" in error_of(data)


def test_an_unknown_kind_is_refused() -> None:
    data = raw()
    data["areas"][0]["process_cells"][0]["units"][0]["kind"] = "time_machine"
    assert "unknown kind 'time_machine'" in error_of(data)


def test_reason_codes_are_hierarchical_and_known() -> None:
    data = raw()
    data["reasons"]["900.10"] = "Orphan"
    assert "has no parent '900'" in error_of(data)
    data = raw()
    data["kinds"]["cartoner"]["failures"][0]["reason"] = "123.45"
    assert "reason code '123.45' is not in reasons" in error_of(data)


def test_times_must_be_quoted() -> None:
    data = raw()
    data["calendar"]["shifts"][0]["start"] = 360  # what YAML makes of an unquoted 6:00
    assert "quoted strings" in error_of(data)


def test_a_break_outside_its_shift_is_refused() -> None:
    data = raw()
    data["calendar"]["shifts"][0]["breaks"][0] = {"start": "15:00", "end": "15:15"}
    assert "is not inside shift 'early'" in error_of(data)


def test_an_unknown_time_zone_is_refused() -> None:
    data = raw()
    data["calendar"]["timezone"] = "Mars/Olympus"
    assert "unknown time zone 'Mars/Olympus'" in error_of(data)


def test_recipe_references_are_checked() -> None:
    data = raw()
    data["recipes"][0]["unit_procedures"][0]["unit"] = "autoclave"
    assert "unit 'autoclave' is not in osd/train1" in error_of(data)
    data = raw()
    data["recipes"][0]["unit_procedures"][0]["consumes"][0]["material"] = "unobtainium"
    assert "unknown material 'unobtainium'" in error_of(data)


def test_a_phase_has_a_duration_or_a_quantity() -> None:
    data = raw()
    data["recipes"][0]["unit_procedures"][0]["operations"][0]["phases"][0]["quantity"] = 5
    assert "exactly one of duration_s and quantity" in error_of(data)


def test_set_points_lie_within_their_limits() -> None:
    data = raw()
    phase = data["recipes"][0]["unit_procedures"][0]["operations"][0]["phases"][0]
    phase["parameters"]["api_mass"]["setpoint"] = 100.0
    assert "outside its limits" in error_of(data)


def test_unknown_fields_are_refused() -> None:
    data = raw()
    data["kinds"]["cartoner"]["mtbf_h"] = 4
    assert "mtbf_h" in error_of(data)


def test_too_many_assets_are_refused() -> None:
    data = raw()
    data["areas"][1]["lines"] = MAX_ASSETS
    assert "limit" in error_of(data)


def test_yaml_syntax_errors_and_missing_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(PlantModelError, match=r"broken\.yaml: not valid YAML"):
        parse_plant("enterprise: [acme", "broken.yaml")
    with pytest.raises(PlantModelError, match="cannot read the plant model"):
        load_plant(tmp_path / "missing.yaml")
    with pytest.raises(PlantModelError, match="is a YAML mapping"):
        parse_plant("- a\n- b\n", "list.yaml")


def test_the_model_is_frozen() -> None:
    model = default_plant()
    with pytest.raises(ValueError, match="frozen"):
        model.seed = 1  # type: ignore[misc]
