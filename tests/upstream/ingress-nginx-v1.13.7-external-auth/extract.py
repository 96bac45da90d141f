"""Reduce ingress-nginx's external-auth code to what the edge's key check relies on.

annotations.json (from internal/ingress/annotations/authreq/main.go): each auth-* annotation
name with its risk level, and the methods auth-method accepts (its methodsRegex).

auth-location.json (from rootfs/etc/nginx/template/nginx.tmpl): the lines of the
`location = {{ $authPath }}` block, the internal location every auth_request goes to,
trimmed, in order, template actions included.

auth-location-name.json (from internal/ingress/controller/template/template.go): how
buildAuthLocation names that location (its format string and the padding it removes).
"""

from __future__ import annotations

import json
import re

CONSTANT = re.compile(r'^\s*(\w+Annotation|authReq\w+)\s*=\s*"([\w-]+)"', re.M)
FIELD = re.compile(r"^\t\t(\w+): \{(.*?)^\t\t\},?$", re.M | re.S)
RISK = re.compile(r"Risk:\s*parser\.AnnotationRisk(\w+)")
METHODS = re.compile(r'methodsRegex\s*=\s*regexp\.MustCompile\("\^\(([A-Z|]+)\)\$"\)')
BLOCK_START = "location = {{ $authPath }} {"
NAME_FUNCTION = re.compile(r"func buildAuthLocation\(.*?\n}\n", re.S)


def _annotations(text: str) -> dict:
    names = dict(CONSTANT.findall(text))
    risks = {}
    for constant, body in FIELD.findall(text):
        found = RISK.search(body)
        if constant in names and found:
            risks[names[constant]] = found.group(1)
    methods = METHODS.search(text).group(1).split("|")
    return {"risk": risks, "auth-method values": methods}


def _auth_location(text: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == BLOCK_START)
    block = []
    depth = 0
    for line in lines[start:]:
        stripped = line.strip()
        depth += stripped.count("{") - stripped.count("}")
        depth -= stripped.count("{{") - stripped.count("}}")
        if stripped:
            block.append(stripped)
        if depth == 0:
            break
    return block


def _auth_location_name(text: str) -> dict:
    function = NAME_FUNCTION.search(text).group(0)
    return {
        "format": re.search(r'fmt\.Sprintf\("(/_external-auth-[^"]+)"', function).group(1),
        "encoding": re.search(r"base64\.(\w+)\.EncodeToString", function).group(1),
        "padding removed": 'strings.ReplaceAll(str, "=", "")' in function,
        "path type when unset": re.search(r'pathType := "(\w+)"', function).group(1),
    }


def extract(local_name: str, text: str) -> str:
    if local_name == "annotations.json":
        document = _annotations(text)
    elif local_name == "auth-location.json":
        document = _auth_location(text)
    else:
        document = _auth_location_name(text)
    return json.dumps(document, indent=1, sort_keys=True) + "\n"
