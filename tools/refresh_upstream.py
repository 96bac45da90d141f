"""Refresh the vendored upstream extracts under tests/upstream/ (needs network access).

Each folder tests/upstream/<name>/ holds the truth of one upstream program at the version
the project pins, and a source.json that says where it came from:

    {
      "repository": "kedacore/keda",            # GitHub owner/name
      "ref": "v2.16.1",                          # the tag or commit we pin
      "files": {"scaledobjects.yaml": "config/crd/bases/keda.sh_scaledobjects.yaml"},
      "why": "a KEDA version AKS's add-on runs (components/aks_versions.json)"
    }

A folder may also hold extract.py with `extract(local_name: str, text: str) -> str`, which
reduces a fetched upstream file to the small extract that is stored (a route table, a list
of environment variable names) instead of the whole file.

    python -m tools.refresh_upstream                 # every folder
    python -m tools.refresh_upstream keda-2.16.1     # some folders
    python -m tools.refresh_upstream --check         # fetch and compare, write nothing

Exit status: 0 when done (or, with --check, when nothing changed), 1 when an extract is out
of date or a fetch failed, 2 for a bad argument.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import urllib.request
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM = ROOT / "tests" / "upstream"
RAW_URL = "https://raw.githubusercontent.com/{repository}/{ref}/{path}"
TIMEOUT_SECONDS = 60


def sources(root: Path = UPSTREAM) -> dict[str, dict[str, Any]]:
    """Every vendored extract folder with its source.json, by folder name."""
    return {
        path.parent.name: json.loads(path.read_text())
        for path in sorted(root.glob("*/source.json"))
    }


def fetch_text(repository: str, ref: str, path: str) -> str:
    url = RAW_URL.format(repository=repository, ref=ref, path=path)
    with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
        return response.read().decode("utf-8")


def _extractor(folder: Path) -> ModuleType | None:
    script = folder / "extract.py"
    if not script.exists():
        return None
    spec = importlib.util.spec_from_file_location(f"upstream_extract_{folder.name}", script)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def refreshed_files(folder: Path, source: dict[str, Any], fetch=fetch_text) -> dict[str, str]:
    """The stored content of each file of one folder, fetched anew from its source."""
    extractor = _extractor(folder)
    files = {}
    for local_name, upstream_path in source["files"].items():
        text = fetch(source["repository"], source["ref"], upstream_path)
        files[local_name] = extractor.extract(local_name, text) if extractor else text
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="refresh_upstream", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="folders under tests/upstream (default: all)")
    parser.add_argument("--check", action="store_true", help="compare only, write nothing")
    args = parser.parse_args(argv)
    known = sources()
    unknown = [name for name in args.names if name not in known]
    if unknown:
        print(
            f"refresh_upstream: {unknown[0]!r} is not a folder under tests/upstream; "
            f"expected one of {', '.join(sorted(known))}",
            file=sys.stderr,
        )
        return 2
    names = args.names or sorted(known)
    stale = 0
    for index, name in enumerate(names, start=1):
        source = known[name]
        print(f"[{index}/{len(names)}] {name}: {source['repository']}@{source['ref']}", flush=True)
        folder = UPSTREAM / name
        try:
            files = refreshed_files(folder, source)
        except OSError as err:
            print(f"refresh_upstream: {name}: fetch failed: {err}", file=sys.stderr)
            return 1
        for local_name, text in files.items():
            target = folder / local_name
            if target.exists() and target.read_text() == text:
                continue
            stale += 1
            print(f"  {'differs' if args.check else 'updated'}: {local_name}")
            if not args.check:
                target.write_text(text)
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
