"""Fill a Hugging Face cache with one exact model revision, or wait until one is there.

    warm_cache.py fill --repo ORG/NAME --revision SHA --dest /models/huggingface
                       [--include PATTERN ...] [--source huggingface|azure-blob] [--blob-url URL]
                       [--marker-dir DIR] [--lock-timeout SECONDS] [--lora-rank R]
    warm_cache.py wait --marker PATH --timeout SECONDS

`fill` puts the revision where vLLM (HF_HOME=<dest>, HF_HUB_OFFLINE=1, --revision=SHA)
reads it, <dest>/hub/models--ORG--NAME/snapshots/SHA/, from the Hugging Face Hub (HF_TOKEN
from the environment for gated models) or from an Azure Blob mirror holding the revision's
files under <blob-url>/ORG/NAME/SHA/ (signed in with DefaultAzureCredential: workload
identity in a pod). Then it writes a marker, <marker-dir>/ORG--NAME@SHA (marker-dir:
<dest>/../.slm-warm). A marker already there: nothing to do.

--include (repeatable) fills only the revision's files that match one of its patterns,
instead of the weights, configs and tokenizer files vLLM loads (HUB_PATTERNS); from a mirror,
only the matching blobs. Patterns follow huggingface_hub's allow_patterns: fnmatch, where `*`
crosses `/` ("onnx/cpu-int4/*" is that folder with everything under it). An ONNX checkpoint
is one folder of a repository that holds several variants: the template passes that folder.
The marker's name then ends in +<hash of the patterns>, so a different folder of the same
revision is a different fill, and at least one file must match. A lock beside the marker keeps
two warmers from downloading the same revision at once; the second waits, then finds the
marker. `wait` returns once a marker exists: the model servers' init container.

--lora-rank R: the revision is a LoRA adapter the stack declares with rank R. Its
adapter_config.json must then say r == R, bias "none" and no use_dora (what vLLM's PEFT
check refuses at start-up, where the server would exit), or no marker is written.

Exit status: 0 done (or already there), 2 bad arguments (one line on stderr), 1 failure.
Progress goes to stderr. The download libraries are imported only by the backend that needs
them, so the logic runs (and is tested) without them.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
SOURCES = ("huggingface", "azure-blob")
REPO = re.compile(r"^[A-Za-z0-9][-\w.]*/[-\w.]+$")
REVISION = re.compile(r"^[0-9a-f]{40}$")
# A container and an optional prefix; no query string, so no SAS token on the command line.
BLOB_URL = re.compile(
    r"^(?P<container>https://[a-z0-9]{3,24}\.blob\.core\.windows\.net/"
    r"[a-z0-9][-a-z0-9]{1,61}[a-z0-9])(/(?P<prefix>[^?#\s]*))?$"
)
# Characters of the patterns' hash in a marker's name (components/cache_warmer.py: the same).
INCLUDE_HASH_LENGTH = 12
# How often a waiting warmer (or server) looks again, and says it is still waiting.
POLL_SECONDS = 5.0
REPORT_EVERY_SECONDS = 60.0

Log = Callable[[str], None]


def log(message: str) -> None:
    print(f"warm_cache: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class FillRequest:
    repo: str
    revision: str
    dest: Path  # HF_HOME: the hub cache is dest/hub
    source: str = "huggingface"
    blob_url: str | None = None
    marker_dir: Path | None = None  # default: dest/../.slm-warm
    lock_timeout: float | None = None  # None: as long as the other warmer takes
    include: tuple[str, ...] = ()  # () : HUB_PATTERNS from the Hub, every blob of a mirror
    lora_rank: int | None = None  # a LoRA adapter's declared rank: check adapter_config.json

    @property
    def hub_cache(self) -> Path:
        return self.dest / "hub"

    @property
    def snapshot(self) -> Path:
        """Where the revision's files end up, as huggingface_hub lays its cache out."""
        folder = "models--" + self.repo.replace("/", "--")
        return self.hub_cache / folder / "snapshots" / self.revision

    @property
    def marker(self) -> Path:
        marker_dir = self.marker_dir or self.dest.parent / ".slm-warm"
        return marker_path(marker_dir, self.repo, self.revision, self.include)


def marker_path(marker_dir: Path, repo: str, revision: str, include: Iterable[str] = ()) -> Path:
    """<marker-dir>/ORG--NAME@SHA[+<hash of the --include patterns>]
    (components/cache_warmer.py names the same file)."""
    name = f"{repo.replace('/', '--')}@{revision}"
    patterns = sorted(set(include))
    if patterns:
        digest = hashlib.sha256("\n".join(patterns).encode()).hexdigest()
        name += f"+{digest[:INCLUDE_HASH_LENGTH]}"
    return marker_dir / name


def included(path: str, patterns: Iterable[str]) -> bool:
    """Whether a file of the repository matches a pattern, as huggingface_hub's
    filter_repo_objects decides for allow_patterns (so a mirror gives what the Hub gives):
    fnmatchcase, backslashes read as slashes, a pattern ending in / stands for what is under it."""
    path = path.replace("\\", "/")
    for pattern in patterns:
        pattern = pattern.replace("\\", "/")
        if fnmatchcase(path, pattern + "*" if pattern.endswith("/") else pattern):
            return True
    return False


# -- fill ---------------------------------------------------------------------------------------

Backend = Callable[[FillRequest, Log], None]


def fill(
    request: FillRequest,
    backends: Mapping[str, Backend] | None = None,
    say: Log = log,
    poll: float = POLL_SECONDS,
) -> int:
    """Download the revision once, then mark it done; 0, or 1 with the reason logged."""
    backends = backends or {"huggingface": download_from_hub, "azure-blob": download_from_blob}
    if request.marker.exists():
        say(f"{request.repo}@{request.revision} is already in the cache")
        # The marker names the revision, not the rank a stack declares for an adapter: a
        # changed rank is checked against the cached adapter again (one small file).
        return checked_adapter(request, say)
    request.marker.parent.mkdir(parents=True, exist_ok=True)
    lock = request.marker.with_name(request.marker.name + ".lock")
    try:
        with hold_lock(lock, request.lock_timeout, say, poll):
            if request.marker.exists():  # another warmer finished while we waited
                say(f"{request.repo}@{request.revision} was filled by another warmer")
                return EXIT_OK
            say(f"filling {request.snapshot} from {request.source}")
            backends[request.source](request, say)
            check_snapshot(request)
            if request.lora_rank is not None:
                check_adapter(request.snapshot, request.lora_rank)
            write_marker(request)
    except Exception as err:  # any failure: one line, exit status 1, and the Job retries
        say(f"failed: {type(err).__name__}: {err}")
        return EXIT_FAILED
    say(f"done: {request.marker}")
    return EXIT_OK


@contextlib.contextmanager
def hold_lock(path: Path, timeout: float | None, say: Log, poll: float) -> Iterator[None]:
    """An exclusive lock on `path` (flock: the kernel releases it if its holder dies)."""
    started = time.monotonic()
    next_report = started
    with open(path, "a+b") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                now = time.monotonic()
                if timeout is not None and now - started >= timeout:
                    held = f"another warmer held {path} for {now - started:.0f} s"
                    raise TimeoutError(held) from None
                if now >= next_report:
                    say(f"another warmer is filling this revision; waiting for {path}")
                    next_report = now + REPORT_EVERY_SECONDS
                time.sleep(poll)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def check_snapshot(request: FillRequest) -> None:
    """The download left files where the servers look. With --include, one at least must
    match: the Hub only warns when no file does, and the snapshot folder may already hold
    another folder of the same revision."""
    if not request.snapshot.is_dir():
        raise RuntimeError(f"the download left no snapshot at {request.snapshot}")
    if request.include and not any(
        included(path.relative_to(request.snapshot).as_posix(), request.include)
        for path in request.snapshot.rglob("*")
        if path.is_file()
    ):
        patterns = " ".join(request.include)
        raise RuntimeError(f"no file of {request.repo}@{request.revision} matches {patterns}")


def checked_adapter(request: FillRequest, say: Log) -> int:
    """EXIT_OK where the request is no adapter or its cached adapter passes check_adapter."""
    if request.lora_rank is None:
        return EXIT_OK
    try:
        check_adapter(request.snapshot, request.lora_rank)
    except RuntimeError as err:
        say(f"failed: {type(err).__name__}: {err}")
        return EXIT_FAILED
    return EXIT_OK


def check_adapter(snapshot: Path, rank: int) -> None:
    """A PEFT LoRA adapter that vLLM 0.31.0 loads at the declared rank: its PEFTHelper
    refuses a bias other than "none" and DoRA, and an r above --max-lora-rank, which the
    template derives from the declared rank (so r must be that rank)."""
    path = snapshot / "adapter_config.json"
    if not path.is_file():
        raise RuntimeError(f"no adapter_config.json in {snapshot}: not a PEFT adapter")
    # vLLM reads adapter_model.safetensors, .bin or .pt; the warmer fetches safetensors only
    # (HUB_PATTERNS), so an adapter without them would be marked with no weights to load.
    if not (snapshot / "adapter_model.safetensors").is_file():
        raise RuntimeError(
            f"no adapter_model.safetensors in {snapshot}: publish the adapter's weights as "
            "safetensors"
        )
    config = json.loads(path.read_text())
    if config.get("r") != rank:
        raise RuntimeError(f"adapter_config.json has r {config.get('r')!r}, the stack says {rank}")
    if config.get("bias", "none") != "none":
        raise RuntimeError(f"adapter_config.json has bias {config['bias']!r}: vLLM takes none")
    if config.get("use_dora"):
        raise RuntimeError("adapter_config.json has use_dora true: vLLM serves no DoRA")


def write_marker(request: FillRequest) -> None:
    """Written last and atomically: a marker means every file is in place."""
    record = {
        "repo": request.repo,
        "revision": request.revision,
        "source": request.source,
        "include": list(request.include),
        "completed": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    partial = request.marker.with_name(request.marker.name + ".part")
    partial.write_text(json.dumps(record) + "\n")
    os.replace(partial, request.marker)


# -- backends -----------------------------------------------------------------------------------


# What vLLM loads from a checkpoint: safetensors weights and their index, configs, the
# tokenizer (JSON, sentencepiece, tiktoken, vocab/merges text) and chat templates. Repos
# often also ship the same weights as *.bin, *.pth (original/) or GGUF: skipping those
# keeps the download, and the cache sized for one checkpoint, to one copy.
HUB_PATTERNS = ("*.safetensors", "*.json", "*.model", "*.tiktoken", "*.txt", "*.jinja", "*.py")


def download_from_hub(request: FillRequest, say: Log) -> None:
    """The Hub's own download into its cache layout (resumes partial files)."""
    # Imported here: only this backend needs it, and tests run without it.
    from huggingface_hub import snapshot_download

    say(f"downloading {request.repo}@{request.revision} from the Hugging Face Hub")
    snapshot_download(
        repo_id=request.repo,
        revision=request.revision,
        cache_dir=request.hub_cache,
        allow_patterns=list(request.include or HUB_PATTERNS),
        token=os.environ.get("HF_TOKEN") or None,
    )


def download_from_blob(request: FillRequest, say: Log) -> None:
    """Copy <blob-url>/ORG/NAME/SHA/<path> to <snapshot>/<path>, skipping files already
    complete (a retry resumes)."""
    container_url, base = blob_location(request)
    container = _container_client(container_url)
    blobs = [
        blob
        for blob in container.list_blobs(name_starts_with=base, include=["metadata"])
        if not _is_folder(blob)
    ]
    plan = blob_plan([blob.name for blob in blobs], base)
    if not plan:
        raise FileNotFoundError(f"no blobs under {container_url}/{base}: is the revision mirrored?")
    if request.include:
        plan = [(name, relative) for name, relative in plan if included(relative, request.include)]
    sizes = {blob.name: blob.size for blob in blobs}
    for index, (name, relative) in enumerate(plan, start=1):
        target = request.snapshot / relative
        if target.is_file() and target.stat().st_size == sizes[name]:
            continue
        say(f"[{index}/{len(plan)}] {relative} ({sizes[name] / 1e9:.2f} GB)")
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        with open(partial, "wb") as out:
            container.download_blob(name).readinto(out)
        os.replace(partial, target)


def _container_client(container_url: str) -> Any:
    # Imported here: only this backend needs them, and tests run without them.
    from azure.identity import DefaultAzureCredential
    from azure.storage.blob import ContainerClient

    return ContainerClient.from_container_url(container_url, credential=DefaultAzureCredential())


def _is_folder(blob: Any) -> bool:
    # Storage accounts with a hierarchical namespace list directories as empty blobs.
    return (getattr(blob, "metadata", None) or {}).get("hdi_isfolder") == "true"


def blob_location(request: FillRequest) -> tuple[str, str]:
    """The container URL, and the blob-name prefix of this revision: [prefix/]ORG/NAME/SHA/."""
    match = BLOB_URL.match(request.blob_url or "")
    if not match:
        raise ValueError(f"not an Azure Blob container URL: {request.blob_url}")
    prefix = (match["prefix"] or "").strip("/")
    base = "/".join(part for part in (prefix, request.repo, request.revision) if part) + "/"
    return match["container"], base


def blob_plan(names: list[str], base: str) -> list[tuple[str, str]]:
    """(blob name, path inside the snapshot) for every file of the revision, in name order;
    a name that would leave the snapshot (.., an absolute path) is refused."""
    plan = []
    for name in sorted(names):
        relative = name[len(base) :] if name.startswith(base) else ""
        if not relative or relative.endswith("/"):
            continue
        parts = relative.split("/")
        if any(part in ("", ".", "..") for part in parts):
            raise ValueError(f"blob {name!r} would be written outside the snapshot")
        plan.append((name, relative))
    return plan


# -- wait ---------------------------------------------------------------------------------------


def wait(
    marker: Path,
    timeout: float,
    say: Log = log,
    poll: float = POLL_SECONDS,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """0 as soon as `marker` exists; 1 once `timeout` seconds pass without it."""
    started = clock()
    next_report = started
    while not marker.exists():
        now = clock()
        if now - started >= timeout:
            say(f"timed out after {now - started:.0f} s: no {marker} (has the warmer Job run?)")
            return EXIT_FAILED
        if now >= next_report:
            say(f"waiting for {marker} ({now - started:.0f} s of {timeout:.0f} s)")
            next_report = now + REPORT_EVERY_SECONDS
        sleep(poll)
    say(f"found {marker}")
    return EXIT_OK


# -- command line -------------------------------------------------------------------------------


class UsageError(Exception):
    """A bad command line: one line on stderr, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would print the usage, then exit
        raise UsageError(message)


def parser() -> argparse.ArgumentParser:
    top = _Parser(prog="warm_cache.py", description=__doc__.split("\n\n")[0])
    commands = top.add_subparsers(dest="command", required=True)
    fill_cmd = commands.add_parser("fill", help="download a revision into the cache")
    fill_cmd.add_argument("--repo", required=True, help="Hugging Face repository: ORG/NAME")
    fill_cmd.add_argument("--revision", required=True, help="the 40-character commit")
    fill_cmd.add_argument("--dest", required=True, type=Path, help="HF_HOME of the servers")
    fill_cmd.add_argument(
        "--include",
        action="append",
        default=[],
        metavar="PATTERN",
        help="fill only the files that match (repeatable; default: what vLLM loads)",
    )
    fill_cmd.add_argument("--source", choices=SOURCES, default="huggingface")
    fill_cmd.add_argument("--blob-url", help="https://<account>.blob.core.windows.net/<c>[/p]")
    fill_cmd.add_argument("--marker-dir", type=Path, help="default: <dest>/../.slm-warm")
    fill_cmd.add_argument("--lock-timeout", type=float, help="seconds; default: no limit")
    fill_cmd.add_argument("--lora-rank", type=int, help="a LoRA adapter's declared rank")
    wait_cmd = commands.add_parser("wait", help="wait until a revision is in the cache")
    wait_cmd.add_argument("--marker", required=True, type=Path)
    wait_cmd.add_argument("--timeout", required=True, type=float, help="seconds")
    return top


def fill_request(args: argparse.Namespace) -> FillRequest:
    if not REPO.match(args.repo):
        raise UsageError(f"--repo {args.repo!r}: expected a Hugging Face repository ORG/NAME")
    if not REVISION.match(args.revision):
        raise UsageError(f"--revision {args.revision!r}: expected a 40-character commit hash")
    for pattern in args.include:
        if not pattern or pattern.startswith("/") or ".." in pattern.split("/"):
            raise UsageError(
                f"--include {pattern!r}: expected a pattern of paths inside the repository"
            )
    if args.lora_rank is not None and args.lora_rank < 1:
        raise UsageError(f"--lora-rank {args.lora_rank}: expected a rank of 1 or more")
    if args.source == "azure-blob" and not args.blob_url:
        raise UsageError("--blob-url is required with --source azure-blob")
    if args.blob_url and not BLOB_URL.match(args.blob_url):
        shown = args.blob_url.split("?")[0] + ("?..." if "?" in args.blob_url else "")
        raise UsageError(
            f"--blob-url {shown!r}: expected "  # a SAS token's signature is never echoed
            "https://<account>.blob.core.windows.net/<container>[/<prefix>] without a SAS token"
        )
    return FillRequest(
        repo=args.repo,
        revision=args.revision,
        dest=args.dest,
        source=args.source,
        blob_url=args.blob_url,
        marker_dir=args.marker_dir,
        lock_timeout=args.lock_timeout,
        include=tuple(args.include),
        lora_rank=args.lora_rank,
    )


def main(argv: list[str] | None = None, backends: Mapping[str, Backend] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
        if args.command == "fill":
            return fill(fill_request(args), backends)
        if args.timeout <= 0:
            raise UsageError(f"--timeout {args.timeout:g}: expected a number of seconds above 0")
        return wait(args.marker, args.timeout)
    except UsageError as err:
        print(f"warm_cache.py: {err}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
