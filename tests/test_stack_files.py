"""Stack files read as the Pulumi CLI reads them (tools/stack_files.py).

The CLI decodes a stack file with gopkg.in/yaml.v3 v3.0.1 and hands each value to the
program as text (config/object.go): these tests check our reader against yaml.v3's own
decode tests (tests/upstream/go-yaml-v3.0.1) and the files the CLI refuses."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from components.config import parse_stack_config
from tools.plan import ROOT, PlanConfigError, build_plan
from tools.stack_files import (
    StackFileError,
    _go_float,
    decode_yaml,
    load_stack_config_values,
)

FIXTURES = ROOT / "tests" / "fixtures" / "stack-files"
YAML_V3_CASES = json.loads(
    (ROOT / "tests" / "upstream" / "go-yaml-v3.0.1" / "decode_cases.json").read_text()
)
P = "slm-deploy:"


def project_with(tmp_path: Path, fixture: str, text: str | bytes | None = None) -> Path:
    """A project whose only stack, `fixture`, is tests/fixtures/stack-files/Pulumi.<fixture>
    .yaml (or the given text)."""
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    (tmp_path / "stacks").mkdir()
    target = tmp_path / "stacks" / f"Pulumi.{fixture}.yaml"
    if text is None:
        shutil.copy(FIXTURES / f"Pulumi.{fixture}.yaml", target)
    elif isinstance(text, bytes):
        target.write_bytes(text)
    else:
        target.write_text(text)
    return tmp_path


@pytest.mark.parametrize("case", YAML_V3_CASES, ids=[c["yaml"] for c in YAML_V3_CASES])
def test_scalars_resolve_as_yaml_v3_decodes_them(case: dict) -> None:
    (key, value), *_ = decode_yaml(case["yaml"], "case").items()
    expected = case["value"]
    if case["type"] == "float" and isinstance(expected, str):  # +Inf, -Inf
        assert value == math.copysign(math.inf, -1 if expected == "-Inf" else 1)
        return
    assert value == expected
    kinds = {"int": int, "float": float, "bool": bool, "null": type(None), "str": str}
    assert type(value) is kinds[case["type"]]


def test_the_upstream_table_covers_each_kind_of_scalar() -> None:
    kinds = [case["type"] for case in YAML_V3_CASES]
    assert {kind: kinds.count(kind) for kind in sorted(set(kinds))} == {
        "bool": 7,
        "float": 12,
        "int": 15,
        "null": 6,
        "str": 5,
    }


def test_values_reach_the_program_as_the_cli_hands_them(tmp_path: Path) -> None:
    """YAML 1.1 (PyYAML) would make 22:30 1350, +10:00 600, yes/off booleans. yaml.v3 keeps
    them as text, reads 1.30 as the float 1.3 (which the CLI writes as 1.3) and 010 as octal;
    objects reach the program as Go's encoding/json writes them."""
    root = project_with(
        tmp_path,
        "scalars",
        "config:\n"
        "  slm-deploy:environment: dev\n"
        "  time: 22:30\n"
        "  offset: +10:00\n"
        "  decimal: 1.30\n"
        "  quoted: '1.30'\n"
        "  answer: yes\n"
        "  switch: off\n"
        "  octal: 010\n"
        "  whole: 1.0\n"
        "  truth: True\n"
        "  date: 2026-01-02\n"
        "  nothing: ~\n"
        "  object: {t: 1.30, u: 22:30, w: 1e-7, x: [1, '2'], y: <a&b>, z: 1e21}\n"
        "  zones: [1, 2, 3]\n",
    )
    values = load_stack_config_values(root, "scalars").values
    assert {k.removeprefix(P): v for k, v in values.items() if k.startswith(P)} == {
        "environment": "dev",
        "time": "22:30",
        "offset": "+10:00",
        "decimal": "1.3",
        "quoted": "1.30",
        "answer": "yes",
        "switch": "off",
        "octal": "8",
        "whole": "1",
        "truth": "true",
        "date": "2026-01-02 00:00:00 +0000 UTC",
        "nothing": "null",
        "object": '{"t":1.3,"u":"22:30","w":1e-7,"x":[1,"2"],"y":"\\u003ca\\u0026b\\u003e",'
        '"z":1e+21}',
        "zones": "[1,2,3]",
    }


@pytest.mark.parametrize(
    ("number", "text"),
    [(1.0, "1"), (1.3, "1.3"), (1e-7, "1e-7"), (1e-6, "0.000001"), (1e20, "100000000000000000000"),
     (1e21, "1e+21"), (-0.0, "-0"), (123456789.125, "123456789.125")],
)  # fmt: skip
def test_floats_are_written_as_go_writes_json(number: float, text: str) -> None:
    assert _go_float(number) == text


def test_unquoted_times_and_offsets_plan_as_text(tmp_path: Path) -> None:
    root = project_with(tmp_path, "unquoted")
    values = load_stack_config_values(root, "unquoted").values
    raw = {"stack": "unquoted"} | {
        key.removeprefix(P): value if key == f"{P}environment" else json.loads(value)
        for key, value in values.items()
    }
    config = parse_stack_config(raw)
    window = config.cluster.maintenance_window
    assert (window.start_time, window.utc_offset) == ("22:30", "+10:00")
    awake = config.models[0].replicas.awake
    assert (awake.days, awake.start, awake.end) == ("1-5", "08:00", "22:30")


FILES_THE_CLI_REFUSES = [
    (
        "duplicate-key",
        "Pulumi.duplicate-key.yaml: line 6, column 3: the key 'slm-deploy:environment' is "
        "given twice (first on line 2); the Pulumi CLI refuses duplicate keys",
    ),
    (
        "recursive-alias",
        "Pulumi.recursive-alias.yaml: line 3, column 23: the value anchored &serving "
        "contains an alias to itself (*serving)",
    ),
    (
        "latin1",
        "Pulumi.latin1.yaml: line 1: byte 0xe9 is not UTF-8; the Pulumi CLI reads stack "
        "files as UTF-8 (save the file as UTF-8)",
    ),
    (
        "broken",
        "Pulumi.broken.yaml: line 4, column 1: malformed YAML: expected ',' or '}', but got "
        "'<stream end>'",
    ),
    (
        "alias-bomb",
        "Pulumi.alias-bomb.yaml: line 4, column 16: the document expands too many aliases",
    ),
    (
        "infinity",
        "Pulumi.infinity.yaml: slm-deploy:monitoring: +Inf is not allowed; expected a finite "
        "number (the Pulumi CLI cannot write .inf or .nan as JSON)",
    ),
]


@pytest.mark.parametrize(("fixture", "line"), FILES_THE_CLI_REFUSES)
def test_files_the_cli_refuses_stop_the_plan_with_one_line(
    tmp_path: Path, fixture: str, line: str
) -> None:
    root = project_with(tmp_path, fixture)
    with pytest.raises(PlanConfigError) as raised:
        build_plan(fixture, config_root=root)
    assert str(raised.value) == line


def test_anchors_aliases_and_merge_keys_are_read(tmp_path: Path) -> None:
    """yaml.v3 supports them: keys written beside a merge win over merged ones."""
    text = (
        "config:\n"
        "  slm-deploy:environment: dev\n"
        "  base: &pool {vmSize: Standard_NC4as_T4_v3, maxCount: 2}\n"
        "  pools:\n"
        "    - <<: *pool\n"
        "      name: a\n"
        "      maxCount: 3\n"
        "    - *pool\n"
    )
    values = load_stack_config_values(project_with(tmp_path, "anchors", text), "anchors")
    assert json.loads(values.values[f"{P}pools"]) == [
        {"maxCount": 3, "name": "a", "vmSize": "Standard_NC4as_T4_v3"},
        {"maxCount": 2, "vmSize": "Standard_NC4as_T4_v3"},
    ]


def test_a_byte_order_mark_is_dropped_and_only_the_first_document_read(tmp_path: Path) -> None:
    text = b"\xef\xbb\xbfconfig:\n  slm-deploy:environment: dev\n---\nconfig: [\n"
    values = load_stack_config_values(project_with(tmp_path, "bom", text), "bom")
    assert values.values[f"{P}environment"] == "dev"


def test_a_key_quoted_once_and_plain_once_is_a_duplicate(tmp_path: Path) -> None:
    """yaml.v3 compares keys by their text, whatever their quoting."""
    with pytest.raises(StackFileError) as raised:
        decode_yaml("a: 1\n'a': 2\n", "Pulumi.x.yaml")
    assert str(raised.value) == (
        "Pulumi.x.yaml: line 2, column 1: the key 'a' is given twice (first on line 1); "
        "the Pulumi CLI refuses duplicate keys"
    )


def test_a_token_in_a_duplicate_key_is_not_echoed() -> None:
    token = "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz01234567"
    with pytest.raises(StackFileError) as raised:
        decode_yaml(f"{token}: 1\n{token}: 2\n", "Pulumi.x.yaml")
    assert token not in str(raised.value)
    assert str(raised.value).startswith("Pulumi.x.yaml: line 2, column 1: the key '[redacted]'")
