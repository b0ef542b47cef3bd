"""The node map: loading YAML, its error messages, partitioning by asset, dump/load round trip."""

from __future__ import annotations

import random
import textwrap
from pathlib import Path

import pytest

from asbuilt.errors import ConfigError
from connectors.opcua.nodemap import NodeMap, Signal

pytestmark = pytest.mark.unit

GOOD_MAP = """\
endpoint: opc.tcp://10.0.0.5:4840/
signals:
  - {node: "ns=2;s=Line1.Filler.State", asset: acme/basel/pack/line1/filler,
     kind: state, numbering: packtags}
  - {node: "ns=2;s=Line1.Filler.Mode", asset: acme/basel/pack/line1/filler, kind: mode}
  - {browse_path: "2:Line1/2:Filler/2:Good", asset: acme/basel/pack/line1/filler,
     kind: counter, name: good}
  - {node: "ns=2;s=Line1.Filler.Batch", asset: acme/basel/pack/line1/filler, kind: counter,
     name: batch_count, resettable: true, rollover: 65536}
  - {node: "ns=2;i=1042", asset: acme/basel/pack/line1/filler, kind: process_value,
     name: seal_temperature, unit: degC}
  - {node: "ns=2;s=Gran.State", asset: acme/basel/osd/gran, kind: state}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "nodemap.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def load_error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        NodeMap.load(write(tmp_path, text))
    return str(info.value)


def one_signal(signal: str) -> str:
    return f"endpoint: opc.tcp://h:4840/\nsignals:\n  - {signal}\n"


def test_a_good_map_loads(tmp_path: Path) -> None:
    nm = NodeMap.load(write(tmp_path, GOOD_MAP))
    assert nm.endpoint == "opc.tcp://10.0.0.5:4840/"
    assert nm.event_notifiers == ["i=2253"]  # the Server object by default
    assert nm.assets == ["acme/basel/osd/gran", "acme/basel/pack/line1/filler"]
    state, mode, good, batch, temp, gran = nm.signals
    assert (state.kind, state.numbering, state.ref) == ("state", "packtags", state.node)
    assert (mode.kind, mode.numbering) == ("mode", "opcua")  # the default numbering
    assert (good.kind, good.name, good.node) == ("counter", "good", None)
    assert good.ref == "browse:2:Line1/2:Filler/2:Good"
    assert (batch.resettable, batch.rollover) == (True, 65536)
    assert (good.resettable, good.rollover) == (False, None)
    assert (temp.kind, temp.name, temp.unit, temp.ref) == (
        "process_value",
        "seal_temperature",
        "degC",
        "ns=2;i=1042",
    )
    assert gran.numbering == "opcua"


def test_event_notifiers_can_be_given(tmp_path: Path) -> None:
    nm = NodeMap.load(write(tmp_path, 'endpoint: opc.tcp://h:1/\nevent_notifiers: ["ns=2;i=5"]\n'))
    assert nm.event_notifiers == ["ns=2;i=5"]
    assert nm.signals == []


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the node map"):
        NodeMap.load(tmp_path / "absent.yaml")


def test_bad_yaml_is_a_config_error(tmp_path: Path) -> None:
    message = load_error(tmp_path, "endpoint: [opc.tcp://h\nsignals: {\n")
    assert "not valid YAML" in message
    assert "nodemap.yaml" in message


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just a string\n"])
def test_a_document_that_is_not_a_mapping_is_a_config_error(tmp_path: Path, text: str) -> None:
    assert "is invalid" in load_error(tmp_path, text)


@pytest.mark.parametrize(
    ("signal", "expected"),
    [
        (
            '{node: "ns=2;i=1", asset: a/b, kind: temperature}',
            "signals.0.kind\n  Input should be 'state'",
        ),
        ('{node: "ns=2;i=1", asset: a/b, kind: counter}', "a counter needs a `name`"),
        (
            '{node: "ns=2;i=1", asset: a/b, kind: process_value}',
            "a process_value needs a `name`",
        ),
        (
            '{node: "ns=2;i=1", asset: a/b, kind: process_value, name: t}',
            "a process_value needs its engineering `unit`",
        ),
        (
            '{node: "ns=2;i=1", browse_path: "2:A/2:B", asset: a/b, kind: state}',
            "give exactly one of `node` and `browse_path`",
        ),
        ("{asset: a/b, kind: state}", "give exactly one of `node` and `browse_path`"),
        (
            '{node: "ns=2;i=1", asset: "acme basel", kind: state}',
            "signals.0.asset\n  String should match",
        ),
        (
            '{node: "ns=2;i=1", asset: "a/b/c/d/e/f", kind: state}',
            "signals.0.asset\n  String should match",
        ),
        (
            '{node: "ns=2;i=1", asset: "a//b", kind: state}',
            "signals.0.asset\n  String should match",
        ),
        ('{node: "ns=2;i=1", asset: "", kind: state}', "signals.0.asset\n  String should match"),
        ('{node: "ns=2;i=1", kind: state}', "signals.0.asset\n  Field required"),
        ('{node: "ns=2;i=1", asset: a/b, kind: state, numbering: isa88}', "signals.0.numbering"),
        (
            '{node: "ns=2;i=1", asset: a/b, kind: counter, name: c, rollover: 0}',
            "signals.0.rollover",
        ),
        (
            '{node: "ns=2;i=1", asset: a/b, kind: state, unti: degC}',
            "signals.0.unti\n  Extra inputs",
        ),
    ],
)
def test_an_invalid_signal_is_a_config_error_that_says_what(
    tmp_path: Path, signal: str, expected: str
) -> None:
    message = load_error(tmp_path, one_signal(signal))
    assert "is invalid" in message
    assert expected in message


def test_a_node_mapped_twice_is_a_config_error_naming_it(tmp_path: Path) -> None:
    text = """\
        endpoint: opc.tcp://h:4840/
        signals:
          - {node: "ns=2;i=7", asset: a/b, kind: state}
          - {node: "ns=2;i=8", asset: a/b, kind: mode}
          - {node: "ns=2;i=7", asset: a/c, kind: blocked}
        """
    message = load_error(tmp_path, text)
    assert "nodes mapped twice" in message
    assert "ns=2;i=7" in message
    assert "ns=2;i=8" not in message


def test_a_browse_path_mapped_twice_is_a_config_error(tmp_path: Path) -> None:
    text = """\
        endpoint: opc.tcp://h:4840/
        signals:
          - {browse_path: "2:A/2:State", asset: a/b, kind: state}
          - {browse_path: "2:A/2:State", asset: a/b, kind: mode}
        """
    assert "2:A/2:State" in load_error(tmp_path, text)


def test_the_endpoint_is_required(tmp_path: Path) -> None:
    assert "endpoint" in load_error(tmp_path, "signals: []\n")


# --- partitioning ------------------------------------------------------------------------------


def plant(assets: int = 20) -> NodeMap:
    signals = []
    for a in range(assets):
        asset = f"acme/site/area/line{a % 3}/cell{a}"
        signals += [
            Signal(node=f"ns=2;s=A{a}.State", asset=asset, kind="state"),
            Signal(node=f"ns=2;s=A{a}.Good", asset=asset, kind="counter", name="good"),
            Signal(browse_path=f"2:A{a}/2:Blocked", asset=asset, kind="blocked"),
        ]
    return NodeMap(endpoint="opc.tcp://h:4840/", event_notifiers=["ns=2;i=9"], signals=signals)


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8])
def test_partitions_are_disjoint_cover_everything_and_keep_assets_whole(count: int) -> None:
    nm = plant()
    shares = [nm.partition(i, count) for i in range(count)]
    refs = [s.ref for share in shares for s in share.signals]
    assert sorted(refs) == sorted(s.ref for s in nm.signals)  # each signal exactly once
    owners: dict[str, set[int]] = {}
    for i, share in enumerate(shares):
        for s in share.signals:
            owners.setdefault(s.asset, set()).add(i)
        assert share.endpoint == nm.endpoint
        assert share.event_notifiers == nm.event_notifiers
    assert all(len(o) == 1 for o in owners.values())  # no asset split between processes
    assert set(owners) == set(nm.assets)
    if count > 1:
        assert sum(1 for share in shares if share.signals) > 1  # the work is actually spread


def test_one_partition_is_the_whole_map() -> None:
    nm = plant()
    assert nm.partition(0, 1).signals == nm.signals


def test_partitioning_is_stable_whatever_the_order_of_the_map() -> None:
    nm = plant()
    shuffled = list(nm.signals)
    random.Random(4).shuffle(shuffled)
    other = nm.model_copy(update={"signals": shuffled})
    for i in range(3):
        assert set(nm.partition(i, 3).assets) == set(other.partition(i, 3).assets)
        assert nm.partition(i, 3) == nm.partition(i, 3)


@pytest.mark.parametrize(("index", "count"), [(-1, 2), (2, 2), (5, 3), (0, 0)])
def test_a_partition_out_of_range_is_a_config_error(index: int, count: int) -> None:
    with pytest.raises(ConfigError, match=f"partition {index} of {count} does not exist"):
        plant(3).partition(index, count)


# --- dump / load -------------------------------------------------------------------------------


def test_dump_and_load_round_trip(tmp_path: Path) -> None:
    nm = NodeMap.load(write(tmp_path, GOOD_MAP))
    out = tmp_path / "out.yaml"
    nm.dump(out)
    assert NodeMap.load(out) == nm


def test_a_generated_map_round_trips_with_its_non_default_settings(tmp_path: Path) -> None:
    nm = plant(4).model_copy(
        update={
            "signals": [
                *plant(4).signals,
                Signal(
                    node="ns=3;s=X",
                    asset="a",
                    kind="counter",
                    name="n",
                    resettable=True,
                    rollover=10,
                    numbering="packtags",
                ),
            ]
        }
    )
    path = tmp_path / "map.yaml"
    nm.dump(path)
    loaded = NodeMap.load(path)
    assert loaded == nm
    assert loaded.event_notifiers == ["ns=2;i=9"]
    assert loaded.signals[-1].rollover == 10


def test_a_unit_the_event_contract_cannot_carry_is_a_config_error(tmp_path: Path) -> None:
    long_unit = "degrees Celsius at the seal jaw outlet"
    signal = f'{{node: "ns=2;i=1", asset: a/b, kind: process_value, name: t, unit: {long_unit}}}'
    assert "unit" in load_error(tmp_path, one_signal(signal))
