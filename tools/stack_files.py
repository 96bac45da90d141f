"""Read Pulumi.yaml and a stack file the way the Pulumi CLI hands config to a program.

What the CLI does (pulumi/pulumi v3.259.0, the newest tag readable here; the files below
are unchanged up to master of 2026-08-21, and our SDK pin is 3.272.0):

- sdk/go/common/workspace/loaders.go reads the file (a UTF-8 byte-order mark stripped)
  with sdk/go/common/encoding/marshal.go, which is gopkg.in/yaml.v3 v3.0.1 (sdk/go.mod);
  it decodes the document into `any`, namespaces the config keys (`key` -> `project:key`),
  encodes it again and decodes it into config.Map.
- sdk/go/common/resource/config/object.go turns each value into the string the program
  gets: a string as it is; a bool or number as JSON text (`true`, `1.3`); a list or object
  as JSON (Go's encoding/json: keys sorted, numbers as Go prints them); a `{secure: ...}`
  mapping is a secret, and a key holding one is listed as secret.

So a plain scalar means what yaml.v3 resolves it to, not what YAML 1.1 (PyYAML) or the
YAML 1.2 core schema says: `22:30`, `+10:00`, `yes` and `off` stay strings; `1.30` is the
float 1.3 and reaches the program as "1.3" (inside an object, as the JSON number 1.3);
`010` is octal 8, as in Go; `.inf` and `.nan` cannot be written as JSON, and the CLI
stops. yaml.v3 refuses a key given twice in one mapping (same text), an alias to an anchor
that contains it, and bytes that are not UTF-8. This module parses with ruamel.yaml (a
YAML 1.2 parser, as libyaml's port in yaml.v3 is) and resolves every scalar with yaml.v3's
rules (_resolve_plain), so the plan and `pulumi up` give the program the same strings.

Secure values are not decrypted here: each becomes "[secret]" and its key is marked
secret, as the CLI marks keys holding secure values.
"""

from __future__ import annotations

import base64
import datetime
import json
import math
import re
import warnings
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode
from ruamel.yaml.resolver import VersionedResolver
from ruamel.yaml.tag import Tag

from components.redaction import redact

SECRET_PLACEHOLDER = "[secret]"


class StackFileError(Exception):
    """A stack or project file that cannot be read: one line, exit status 2, in which
    nothing shaped like a credential is echoed (a key or value quoted from the file)."""

    def __init__(self, line: str):
        super().__init__(redact(line))


@dataclass(frozen=True)
class StackConfigValues:
    project: str
    stack: str
    values: dict[str, str]
    secret_keys: list[str]


def stack_file_path(root: Path, stack: str) -> Path:
    project = _load_yaml(root / "Pulumi.yaml")
    return root / project.get("stackConfigDir", ".") / f"Pulumi.{stack}.yaml"


def available_stacks(root: Path) -> list[str]:
    folder = stack_file_path(root, "x").parent
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in folder.glob("Pulumi.*.yaml"))


def load_stack_config_values(root: Path, stack: str) -> StackConfigValues:
    project = _load_yaml(root / "Pulumi.yaml")
    name = project["name"]
    path = stack_file_path(root, stack)
    if not path.is_file():
        choices = ", ".join(available_stacks(root)) or "none"
        raise StackFileError(
            f"stack {stack!r}: no file {path.relative_to(root)}; stacks: {choices}"
        )
    document = _load_yaml(path) or {}
    if not isinstance(document, dict) or not isinstance(document.get("config") or {}, dict):
        raise StackFileError(
            f"{path.relative_to(root)}: expected a mapping with a 'config' mapping"
        )
    values: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in (document.get("config") or {}).items():
        full_key = key if ":" in key else f"{name}:{key}"
        text, secret = _encode(value, f"{path.name}: {key}")
        values[full_key] = text
        if secret:
            secret_keys.append(full_key)
    _apply_project_config(name, stack, project.get("config") or {}, values)
    return StackConfigValues(name, stack, values, sorted(secret_keys))


def _apply_project_config(name: str, stack: str, declared: dict, values: dict[str, str]) -> None:
    missing = []
    for key, spec in declared.items():
        full_key = f"{name}:{key}"
        if not isinstance(spec, dict):  # short-hand: `key: default`
            values.setdefault(full_key, _encode(spec, f"Pulumi.yaml: {key}")[0])
            continue
        if full_key in values:
            _check_type(stack, key, spec.get("type"), values[full_key])
        elif "default" in spec:
            values[full_key] = _encode(spec["default"], f"Pulumi.yaml: {key}")[0]
        elif "value" in spec:
            values[full_key] = _encode(spec["value"], f"Pulumi.yaml: {key}")[0]
        elif "type" in spec:
            missing.append(key)
    if missing:
        raise StackFileError(
            f"Stack '{stack}' is missing configuration value '{missing[0]}'"
            " (Pulumi.yaml declares it)"
        )


def _check_type(stack: str, key: str, kind: str | None, text: str) -> None:
    if kind in (None, "string"):
        return
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = text
    ok = {
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
        "array": isinstance(value, list),
    }.get(kind, True)
    if not ok:
        raise StackFileError(
            f"Stack '{stack}' with configuration key '{key}' must be of type '{kind}'"
        )


# -- the string the CLI hands the program (config/object.go, MarshalString) ---------------


def _encode(value: Any, where: str) -> tuple[str, bool]:
    """The string the CLI hands the program, and whether it holds a secure value."""
    if _is_secure(value):
        return SECRET_PLACEHOLDER, True
    if isinstance(value, str):
        return value, False
    found: list[bool] = []

    def scrub(node: Any) -> Any:
        if _is_secure(node):
            found.append(True)
            return SECRET_PLACEHOLDER
        if isinstance(node, dict):
            return {k: scrub(v) for k, v in node.items()}
        if isinstance(node, list):
            return [scrub(v) for v in node]
        if isinstance(node, float) and not math.isfinite(node):
            # encoding/json refuses them ("unsupported value"), so the CLI cannot load
            # the stack.
            raise StackFileError(
                f"{where}: {_go_float(node)} is not allowed; expected a finite number "
                "(the Pulumi CLI cannot write .inf or .nan as JSON)"
            )
        return node

    return _go_json(scrub(value)), bool(found)


def _is_secure(node: Any) -> bool:
    # config/object.go isSecureValue: a mapping of one key "secure" with a string value.
    return isinstance(node, dict) and len(node) == 1 and isinstance(node.get("secure"), str)


def _go_json(value: Any) -> str:
    """encoding/json's text: keys sorted, no spaces, <, > and & escaped, Go's numbers."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
            text = text.replace(char, escape)
        return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    if isinstance(value, list):
        return "[" + ",".join(_go_json(v) for v in value) + "]"
    return "{" + ",".join(f"{_go_json(k)}:{_go_json(value[k])}" for k in sorted(value)) + "}"


def _go_float(number: float) -> str:
    """strconv.AppendFloat(f, 'f' or 'e', -1) as encoding/json picks it: the shortest
    digits that read back the same, in exponent form below 1e-6 and from 1e21 on."""
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    if number == 0:
        return "-0" if math.copysign(1, number) < 0 else "0"
    size = abs(number)
    if 1e-6 <= size < 1e21:
        text = format(Decimal(repr(number)), "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    # Python's repr is also shortest-digits, with a two-digit exponent; Go then writes
    # e-07 as e-7 (encoding/json's floatEncoder).
    return re.sub(r"e-0(\d)$", r"e-\1", repr(number))


# -- YAML as gopkg.in/yaml.v3 v3.0.1 decodes it into `any` --------------------------------

_IMPLICIT = "!implicit"  # a node whose tag the file does not state


class _NoResolver(VersionedResolver):
    """Leave every untagged node to _resolve_plain (yaml.v3's rules, not ruamel's)."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        return Tag(suffix=_IMPLICIT)


# yaml.v3 resolve.go: the plain scalars looked up by their exact text.
_KNOWN_PLAIN = {
    **dict.fromkeys(("true", "True", "TRUE"), True),
    **dict.fromkeys(("false", "False", "FALSE"), False),
    **dict.fromkeys(("", "~", "null", "Null", "NULL"), None),
    **dict.fromkeys((".nan", ".NaN", ".NAN"), math.nan),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), math.inf),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), -math.inf),
}
_YAML_STYLE_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
# Go's strconv.ParseInt(s, 0, 64) syntax: a sign, then 0x, 0b, 0o, a leading 0 (octal) or
# decimal digits.
_GO_INT = re.compile(
    r"^(?P<sign>[+-]?)(?:0[xX](?P<hex>[0-9a-fA-F]+)|0[bB](?P<bin>[01]+)|0[oO](?P<oct>[0-7]+)"
    r"|(?P<old_oct>0[0-7]*)|(?P<dec>[1-9][0-9]*))$"
)
_INT64 = (-(2**63), 2**63 - 1)
_UINT64_MAX = 2**64 - 1
# yaml.v3 allowedTimestampFormats, as Go's time.Parse reads them (1- or 2-digit fields).
_TIMESTAMP = re.compile(
    r"^(?P<y>[0-9]{4})-(?P<m>[0-9]{1,2})-(?P<d>[0-9]{1,2})"
    r"(?:(?P<sep>[Tt ])(?P<H>[0-9]{1,2}):(?P<M>[0-9]{1,2}):(?P<S>[0-9]{1,2})"
    r"(?:\.(?P<frac>[0-9]{1,9}))?(?P<zone>Z|[+-][0-9]{2}:[0-9]{2})?)?$"
)


def _go_int(text: str) -> int | None:
    """strconv.ParseInt(text, 0, 64), or ParseUint when it is too big; None if neither."""
    match = _GO_INT.match(text)
    if not match:
        return None
    bases = {"hex": 16, "bin": 2, "oct": 8, "old_oct": 8, "dec": 10}
    kind = next(k for k in bases if match[k] is not None)
    digits = match[kind]
    number = int(digits, bases[kind]) * (-1 if match["sign"] == "-" else 1)
    if _INT64[0] <= number <= _INT64[1]:
        return number
    if not match["sign"] and number <= _UINT64_MAX:  # ParseUint takes no sign
        return number
    return None


def _go_time_string(match: re.Match[str]) -> str | None:
    """time.Time.String() of a yaml.v3 timestamp, which the CLI hands on as that text
    (config/object.go: `case time.Time: v.String()`). Offsets read as on a machine whose
    local zone is UTC (CI runners); None when time.Parse would refuse the date."""
    try:
        moment = datetime.datetime(
            int(match["y"]),
            int(match["m"]),
            int(match["d"]),
            int(match["H"] or 0),
            int(match["M"] or 0),
            int(match["S"] or 0),
        )
    except ValueError:
        return None
    if match["sep"] == " " and match["zone"]:
        return None  # the space-separated format has no zone
    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    fraction = (match["frac"] or "").rstrip("0")
    if fraction:
        text += "." + fraction
    zone = match["zone"]
    if zone in (None, "Z", "+00:00", "-00:00"):
        return text + " +0000 UTC"
    offset = zone.replace(":", "")
    return f"{text} {offset} {offset}"


def _resolve_plain(text: str) -> Any:
    """yaml.v3 resolve("", text) for a plain (unquoted, untagged) scalar, decoded into any."""
    if not text:
        return None
    hint = text[0]
    if hint not in "+-0123456789yYnNtTfFoO~.":
        return text
    if text in _KNOWN_PLAIN:
        return _KNOWN_PLAIN[text]
    if hint == ".":
        return _go_parse_float(text, text)
    if hint in "yYnNtTfFoO~":
        return text
    timestamp = _TIMESTAMP.match(text)
    if timestamp and (moment := _go_time_string(timestamp)) is not None:
        return moment
    plain = text.replace("_", "")
    number = _go_int(plain)
    if number is not None:
        return number
    if _YAML_STYLE_FLOAT.match(plain):
        return _go_parse_float(plain, text)
    return text


def _go_parse_float(text: str, original: str) -> Any:
    try:
        return float(text) if re.fullmatch(r"[-+]?[0-9.]+([eE][-+]?[0-9]+)?", text) else original
    except ValueError:
        return original


_EXPLICIT = {
    "tag:yaml.org,2002:str": str,
    "tag:yaml.org,2002:int": int,
    "tag:yaml.org,2002:float": float,
    "tag:yaml.org,2002:bool": bool,
    "tag:yaml.org,2002:null": type(None),
}


class _Decoder:
    """Turn ruamel's node graph into Python values as yaml.v3 decodes into `any`."""

    # yaml.v3 decode.go allowedAliasRatio: the guard against alias bombs ("billion laughs").
    ALIAS_RATIO_RANGE = (400_000, 4_000_000)

    def __init__(self, name: str):
        self.name = name
        self.seen: set[int] = set()
        self.active: set[int] = set()
        self.alias_depth = 0
        self.decodes = 0
        self.alias_decodes = 0

    def fail(self, node: Any, problem: str) -> StackFileError:
        mark = node.start_mark
        return StackFileError(
            f"{self.name}: line {mark.line + 1}, column {mark.column + 1}: {problem}"
        )

    def decode(self, node: Any) -> Any:
        key = id(node)
        if key in self.active:
            anchor = getattr(node, "anchor", None)
            raise self.fail(
                node, f"the value anchored &{anchor} contains an alias to itself (*{anchor})"
            )
        via_alias = key in self.seen  # ruamel hands an alias back as its anchor's node
        self.seen.add(key)
        self.alias_depth += via_alias
        self._count(node)
        self.active.add(key)
        try:
            if isinstance(node, ScalarNode):
                return self.scalar(node)
            if isinstance(node, SequenceNode):
                return [self.decode(item) for item in node.value]
            return self.mapping(node)
        finally:
            self.active.discard(key)
            self.alias_depth -= via_alias

    def _count(self, node: Any) -> None:
        self.decodes += 1
        if self.alias_depth:
            self.alias_decodes += 1
        low, high = self.ALIAS_RATIO_RANGE
        if self.decodes <= low:
            ratio = 0.99
        elif self.decodes >= high:
            ratio = 0.10
        else:
            ratio = 0.99 - 0.89 * (self.decodes - low) / (high - low)
        if (
            self.alias_decodes > 100
            and self.decodes > 1000
            and self.alias_decodes / self.decodes > ratio
        ):
            raise self.fail(node, "the document expands too many aliases")

    def scalar(self, node: ScalarNode) -> Any:
        # yaml.v3 node.go indicatedString: a quoted or block scalar is text unless a tag
        # says otherwise; a stated tag decides how the text resolves.
        tag = str(node.tag)
        if tag == "tag:yaml.org,2002:str":
            return node.value
        if tag == _IMPLICIT:
            return node.value if node.style in ('"', "'", "|", ">") else _resolve_plain(node.value)
        if tag == "tag:yaml.org,2002:binary":
            try:
                return base64.b64decode(node.value).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                raise self.fail(node, "!!binary value contains invalid base64 data") from None
        if tag == "tag:yaml.org,2002:timestamp":
            timestamp = _TIMESTAMP.match(node.value)
            moment = _go_time_string(timestamp) if timestamp else None
            if moment is None:
                raise self.fail(node, f"cannot decode {node.value!r} as a timestamp")
            return moment
        wanted = _EXPLICIT.get(tag)
        if wanted is None:
            return node.value  # a tag yaml.v3 does not resolve: the text as it is
        value = _resolve_plain(node.value)
        if wanted is float and type(value) is int:
            return float(value)
        if type(value) is not wanted:
            raise self.fail(node, f"cannot decode {node.value!r} as {tag.rsplit(':', 1)[-1]}")
        return value

    def mapping(self, node: MappingNode) -> dict[str, Any]:
        self._refuse_duplicates(node)
        result: dict[str, Any] = {}
        merges = []
        for key_node, value_node in node.value:
            if self._is_merge(key_node):
                merges.append(value_node)
                continue
            result[self._key(key_node)] = self.decode(value_node)
        for merge in merges:  # keys given here win over merged ones, earlier merges first
            for source in merge.value if isinstance(merge, SequenceNode) else [merge]:
                if not isinstance(source, MappingNode):
                    raise self.fail(merge, "a merge (<<) takes a mapping or a list of mappings")
                for key, value in self.decode(source).items():
                    result.setdefault(key, value)
        return result

    def _refuse_duplicates(self, node: MappingNode) -> None:
        # yaml.v3 compares the keys' text (decode.go mapping: "already defined").
        first: dict[tuple[type, str], Any] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode):
                continue
            earlier = first.setdefault((type(key_node), key_node.value), key_node)
            if earlier is not key_node:
                raise self.fail(
                    key_node,
                    f"the key {key_node.value!r} is given twice (first on line "
                    f"{earlier.start_mark.line + 1}); the Pulumi CLI refuses duplicate keys",
                )

    @staticmethod
    def _is_merge(node: Any) -> bool:
        return (
            isinstance(node, ScalarNode)
            and node.value == "<<"
            and node.style is None
            and str(node.tag) in (_IMPLICIT, "!", "tag:yaml.org,2002:merge")
        )

    def _key(self, node: Any) -> str:
        if not isinstance(node, ScalarNode):
            raise self.fail(node, "a key must be a single value, not a list or mapping")
        key = self.decode(node)
        # config/object.go unmarshalObject: other keys become fmt.Sprintf("%v", key).
        if isinstance(key, bool):
            return "true" if key else "false"
        if key is None:
            return "<nil>"
        if isinstance(key, float):
            return _go_float_v(key)
        return str(key)


def _go_float_v(number: float) -> str:
    """fmt's %v of a float64: %g with the shortest digits, exponent form when the
    exponent is below -4 or at least 21 (strconv 'g' with precision -1 uses 21)."""
    if not math.isfinite(number) or number == 0:
        return _go_float(number)
    exponent = Decimal(repr(number)).adjusted()
    if -4 <= exponent < 21:
        return _go_float(number)
    return re.sub(r"e([-+])(\d)$", r"e\g<1>0\2", repr(number))


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as err:
        raise StackFileError(f"{path}: {err.strerror}") from None
    data = data.removeprefix(b"\xef\xbb\xbf")  # loaders.go readFileStripUTF8BOM
    # yaml.v3's reader also honours a UTF-16 byte-order mark.
    encoding = "utf-16" if data.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise StackFileError(
            f"{path.name}: line {line}: byte 0x{data[err.start]:02x} is not {encoding.upper()}; "
            "the Pulumi CLI reads stack files as UTF-8 (save the file as UTF-8)"
        ) from None


def _load_yaml(path: Path) -> Any:
    return decode_yaml(_read_text(path), path.name)


def decode_yaml(text: str, name: str) -> Any:
    """The first YAML document of `text` as yaml.v3 decodes it into `any`; `name` (the
    file's) starts each error line."""
    reader = YAML(typ="safe", pure=True)
    reader.Resolver = _NoResolver
    try:
        with warnings.catch_warnings():
            # yaml.v3 lets a later anchor of the same name replace an earlier one.
            warnings.simplefilter("ignore")
            documents = reader.compose_all(text)
            # yaml.Unmarshal decodes the first document and ignores the rest.
            node = next(documents, None)
            return None if node is None else _Decoder(name).decode(node)
    except MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""
        problem = err.problem or err.context or "malformed YAML"
        raise StackFileError(f"{name}:{where} malformed YAML: {problem}") from None
    except YAMLError as err:
        raise StackFileError(f"{name}: malformed YAML: {str(err).splitlines()[0]}") from None
    except RecursionError:
        raise StackFileError(f"{name}: malformed YAML: nested too deeply") from None
