"""Reduce the provider's types.go to what a SecretProviderClass may say: the parameter
names (the *Parameter constants), the fields of each entry of `objects` (the KeyVaultObject
yaml tags) and the object types (the VaultObjectType* constants)."""

from __future__ import annotations

import json
import re


def extract(local_name: str, text: str) -> str:
    parameters = re.findall(r'^\s*\w+Parameter\s*=\s*"([^"]+)"', text, re.M)
    body = re.search(r"type KeyVaultObject struct \{(.*?)\n\}", text, re.S)
    if not parameters or not body:
        raise ValueError("no parameters or no KeyVaultObject")
    fields = re.findall(r'yaml:"([^",]+)', body.group(1))
    types = re.findall(r'^\s*VaultObjectType\w*\s*=\s*"([^"]+)"', text, re.M)
    facts = {
        "parameters": sorted(parameters),
        "objectFields": sorted(fields),
        "objectTypes": sorted(types),
    }
    return json.dumps(facts, indent=1) + "\n"
