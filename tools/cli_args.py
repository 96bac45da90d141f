"""Command-line pieces the endpoint tools share (tools/smoke.py, tools/loadtest.py): one line
and exit status 2 for bad arguments, numbers with their bounds, the endpoint URL and the API
key from the environment. Standard library only: the tools run in different environments."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

EXIT_USAGE = 2
Settings = TypeVar("Settings")


class UsageError(Exception):
    """Bad arguments or a missing API key: exit status 2."""


class OneLineParser(argparse.ArgumentParser):
    """argparse prints the usage block and exits; the house style is one line and status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see --help)")


def endpoint_parser(prog: str, description: str, default_key_env: str) -> OneLineParser:
    """A parser with the endpoint arguments every endpoint tool takes: --base-url and
    --api-key-env, and --api-key accepted only to be refused (see refuse_key_argument)."""
    # No abbreviations: `--api-key SECRET` would otherwise be taken for `--api-key-env SECRET`.
    parser = OneLineParser(prog=prog, description=description, allow_abbrev=False)
    parser.add_argument("--base-url", required=True, help="the endpoint, ending in /v1")
    parser.add_argument(
        "--api-key-env",
        default=default_key_env,
        metavar="NAME",
        help=f"environment variable that holds the API key ({default_key_env})",
    )
    # Accepted only to refuse it clearly, without echoing the key back into the log.
    parser.add_argument("--api-key", dest="api_key_on_command_line", help=argparse.SUPPRESS)
    return parser


def refuse_key_argument(args: argparse.Namespace) -> None:
    if args.api_key_on_command_line is not None:
        raise UsageError(
            f"--api-key is not accepted: put the key in the environment variable {args.api_key_env}"
        )


def positive(kind: type[int] | type[float]) -> Callable[[str], Any]:
    return number(kind, lambda value: value > 0, "greater than 0")


def non_negative(kind: type[int] | type[float]) -> Callable[[str], Any]:
    return number(kind, lambda value: value >= 0, "0 or more")


def number(kind: type[int] | type[float], ok: Callable[[Any], bool], allowed: str) -> Any:
    """An argparse type: `kind` within `allowed`, else argparse's one-line error."""

    def convert(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        # NaN and infinity are floats too: neither is a count, a rate or a duration.
        if not (ok(value) and abs(value) != float("inf")):
            raise argparse.ArgumentTypeError(f"must be {allowed}, not {text}")
        return value

    convert.__name__ = kind.__name__  # argparse names the type in its messages
    return convert


def check_base_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"--base-url must be an http(s) URL such as https://host/v1, not {url!r}")
    return url.rstrip("/")


def read_api_key(variable: str) -> str:
    """The key from the environment: never from argv, where process lists and CI logs show
    it."""
    key = os.environ.get(variable, "")
    if not key.strip():
        state = "is empty" if variable in os.environ else "is not set"
        raise UsageError(f"the API key's environment variable {variable} {state}")
    return key


def settings_and_key(
    prog: str, parse: Callable[[list[str] | None], Settings], argv: list[str] | None
) -> tuple[Settings, str] | int:
    """The tool's settings and the API key their `api_key_env` names, or the exit status
    after --help (0) or after one line on stderr for a bad argument (EXIT_USAGE)."""
    try:
        settings = parse(argv)
        return settings, read_api_key(settings.api_key_env)
    except SystemExit as exit_:  # --help
        return EXIT_USAGE if exit_.code else 0
    except UsageError as err:
        print(f"{prog}: {err}", file=sys.stderr)
        return EXIT_USAGE
