"""Who may call the models, with which key, and how fast: the `access` part of a stack.

Pure: the configuration model and its rules, no Pulumi. components/secrets.py generates and
stores the keys named here, components/vllm.py gives the live ones to the server, and
components/network.py turns the rate limit into the edge's annotations.

A stack without `access.consumers` keeps the one shared key it always had (Secret
`slm-api-key`). With consumers, each has its own key; rotating one is two `pulumi up`s:

    consumers:
      - name: search-team
        rotation: 2                      # was 1: a new key is generated, the old one kept
        previousValidUntil: "2027-01-31" # ... and served through that day (UTC)

The first `pulumi up` after raising `rotation` serves both keys; the first one on a day
after `previousValidUntil` (or after that line is removed) serves only the new one. Running
`pulumi up` again changes nothing: each key is its own generator, named by consumer and
rotation, so a key is never regenerated while its rotation is listed.
"""

from __future__ import annotations

import datetime
import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from components import value_rules


class AccessError(ValueError):
    """A precise sub-path, value and what is allowed (read by components/config.py like its
    own field errors, so that a bad value is one line)."""

    def __init__(self, path: str | None, value: Any, allowed: str):
        self.path, self.value, self.allowed = path, value, allowed
        super().__init__(f"{path}: {value!r}, allowed: {allowed}")


class _Strict(BaseModel):
    # The same rules as components/config.py's objects: camelCase, unknown keys refused.
    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=False, strict=True
    )


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _date(value: Any) -> Any:
    """A calendar date written as YYYY-MM-DD (a string in the stack file)."""
    if isinstance(value, str) and _ISO_DATE.match(value):
        try:
            return datetime.date.fromisoformat(value)
        except ValueError:
            pass
    if isinstance(value, str):
        raise AccessError(None, value, "a date written YYYY-MM-DD, such as 2027-01-31")
    return value


# Where a consumer's name ends up: the Key Vault secret api-key-<name>-<rotation>, the
# Kubernetes Secret slm-api-key-<name> (existing clusters), Pulumi resource names and a stack
# output key. A DNS-1123 label (at most 63 characters) fits all of them: Key Vault secret
# names allow 1-127 letters, digits and '-'; Secret names are DNS-1123 subdomains.
def consumer_name(name: str) -> str | None:
    return value_rules.dns1123_label(name)


class ApiConsumer(_Strict):
    """A team or an application that calls the models with its own key."""

    name: str
    # Raise by one to issue a new key; the key of the rotation before stays valid until
    # previous_valid_until. Never reuse a number: Key Vault keeps a deleted secret's name
    # through its retention (docs/security.md).
    rotation: int = Field(1, ge=1)
    previous_valid_until: datetime.date | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        allowed = consumer_name(value)
        if allowed:
            raise AccessError(None, value, allowed)
        return value

    @field_validator("previous_valid_until", mode="before")
    @classmethod
    def _valid_until(cls, value: Any) -> Any:
        return _date(value)

    @model_validator(mode="after")
    def _previous_exists(self):
        if self.previous_valid_until and self.rotation == 1:
            raise AccessError(
                "previousValidUntil",
                self.previous_valid_until.isoformat(),
                "nothing while rotation is 1: there is no previous key",
            )
        return self


# ingress-nginx's burst when limit-burst-multiplier is not set: defBurst = 5
# (internal/ingress/annotations/ratelimit/main.go, controller-v1.13.7).
INGRESS_NGINX_BURST_MULTIPLIER = 5


class RateLimit(_Strict):
    """What one client address may do at the edge (ingress-nginx counts per address)."""

    # Requests per second, with a burst of rps x burst_multiplier taken at once.
    rps: int | None = Field(None, ge=1)
    # Requests in progress at once (NGINX limit_conn counts requests being processed).
    connections: int | None = Field(None, ge=1)
    burst_multiplier: int = Field(INGRESS_NGINX_BURST_MULTIPLIER, ge=1)

    @model_validator(mode="after")
    def _something_limited(self):
        if self.rps is None and self.connections is None:
            raise AccessError(None, {}, "rps, connections or both")
        return self


class Access(_Strict):
    consumers: list[ApiConsumer] = []
    # With consumers, the shared key of a stack that had none is revoked at once; set a date
    # to keep it served through that day while its callers move to their own keys.
    shared_key_valid_until: datetime.date | None = None
    per_client_address: RateLimit | None = None
    # Requests a vLLM replica holds waiting beyond its batch (maxNumSeqs) before it refuses
    # the next with 503 (vLLM's --max-num-queued-reqs). Unset: vLLM queues without bound,
    # its default. No default here: the depth that still meets the TTFT alert depends on
    # the model's measured throughput, which the template does not have.
    queue_depth_per_replica: int | None = Field(None, ge=0)

    @field_validator("shared_key_valid_until", mode="before")
    @classmethod
    def _valid_until(cls, value: Any) -> Any:
        return _date(value)

    @model_validator(mode="after")
    def _rules(self):
        names = [consumer.name for consumer in self.consumers]
        for index, name in enumerate(names):
            if names.index(name) != index:
                raise AccessError(
                    f"consumers[{index}].name", name, "a name not used earlier in the list"
                )
        if self.shared_key_valid_until and not self.consumers:
            raise AccessError(
                "sharedKeyValidUntil",
                self.shared_key_valid_until.isoformat(),
                "nothing without consumers: the shared key is then the only key",
            )
        return self


# -- the keys a server accepts -----------------------------------------------------------------


@dataclass(frozen=True)
class KeyRef:
    """One generated key: the shared key (consumer None) or a consumer's key of a rotation."""

    consumer: str | None
    rotation: int
    # Served through this day (UTC); None: until the configuration says otherwise.
    valid_until: datetime.date | None = None

    @property
    def slug(self) -> str:
        """Its name in Key Vault and in Pulumi (the shared key keeps its historic name)."""
        if self.consumer is None:
            return "vllm-api-key"
        return f"api-key-{self.consumer}-{self.rotation}"


SHARED_KEY = KeyRef(None, 1)


def live_keys(access: Access, today: datetime.date) -> tuple[KeyRef, ...]:
    """The keys the servers accept today, in a stable order: the shared key (while it is
    live), then per consumer its current key and, until its date has passed, its previous."""
    if not access.consumers:
        return (SHARED_KEY,)
    keys = []
    until = access.shared_key_valid_until
    if until and today <= until:
        keys.append(KeyRef(None, 1, until))
    for consumer in access.consumers:
        keys.append(KeyRef(consumer.name, consumer.rotation))
        until = consumer.previous_valid_until
        if until and today <= until:
            keys.append(KeyRef(consumer.name, consumer.rotation - 1, until))
    return tuple(keys)


def current_keys(keys: tuple[KeyRef, ...]) -> dict[str, KeyRef]:
    """Each consumer's newest key: the one to hand out (a stack output says how to read it)."""
    return {
        key.consumer: key for key in keys if key.consumer is not None and key.valid_until is None
    }


def key_set_id(keys: tuple[KeyRef, ...]) -> str:
    """Which keys are live, without their values: put on the pod template, a change of the
    set rolls the servers (vLLM reads its keys once, at start)."""
    return ",".join(f"{key.slug}" for key in keys)


def keys_file(values: list[str]) -> str:
    """vLLM's --config file with the keys: `api-key: [k1, k2]` becomes `--api-key k1 k2`
    (vllm/utils/argparse_utils.py load_config_file, v0.31.0), so the keys never appear on a
    command line. Each key is a JSON string, which YAML reads as the same string."""
    return "api-key:\n" + "".join(f"- {json.dumps(value)}\n" for value in values)


def _regex_literal(value: str) -> str:
    """A key as a PCRE literal inside an NGINX quoted string: letters and digits as they
    are (generated keys have nothing else, components/secrets.py), any other printable
    character as a \\xHH escape, which NGINX's parser passes on untouched."""
    if not all(" " <= char <= "~" for char in value):
        raise ValueError("an API key must be printable ASCII: it travels in an HTTP header")
    return "".join(char if char.isalnum() else f"\\x{ord(char):02x}" for char in value)


def edge_keys_map(values: list[str]) -> str:
    """The edge key check's NGINX map entries (components/edge_auth.py): the whole
    Authorization header of each live key maps to 1. Written as anchored regexes because
    NGINX matches a map's plain strings ignoring case (ngx_http_map_find lowercases the
    value), which would take a key with its letters' case changed; a regex entry without
    `~*` is case-sensitive, like vLLM's own comparison."""
    return "".join(f'"~^Bearer {_regex_literal(value)}$" 1;\n' for value in values)


def expires_epoch(until: datetime.date) -> int:
    """The end of the last valid day (UTC) in seconds since the epoch (Key Vault's `exp`)."""
    end = datetime.datetime.combine(
        until + datetime.timedelta(days=1), datetime.time(), datetime.UTC
    )
    return int(end.timestamp())


def max_queued_requests(max_num_seqs: int, depth: int | None) -> int | None:
    """vLLM's --max-num-queued-reqs for one replica: its batch plus the waiting depth. vLLM
    counts requests waiting or running per API server (one per replica here) and advises
    max_num_seqs plus the queue depth, so that it never binds before the batch is full
    (vllm/config/scheduler.py, v0.31.0)."""
    return None if depth is None else max_num_seqs + depth


# -- the edge's limits (ingress-nginx annotations, checked at controller-v1.13.7) ---------------

ANNOTATION = "nginx.ingress.kubernetes.io/"
# A rejected request gets 429 instead of ingress-nginx's 503 (limit-req-status-code and
# limit-conn-status-code default to 503 in its config.go, and AKS's add-on does not let us
# change its ConfigMap). Set per location with a configuration snippet, which the AKS
# add-on allows (allow-snippet-annotations "true", risk level Critical, and none of its
# blocked words below); NGINX's limit_req_status/limit_conn_status are valid in a location.
# more_set_headers (the headers-more module built into ingress-nginx's NGINX) adds
# Retry-After to those answers and to the server's own 503 (vLLM's full queue), only to them.
SNIPPET_CLASSES = ("webapprouting.kubernetes.azure.com",)
# The add-on's annotation-value-word-blocklist (aks-app-routing-operator, pkg/manifests/nginx.go).
BLOCKED_SNIPPET_WORDS = (
    "load_module",
    "lua_package",
    "_by_lua",
    "location",
    "root",
    "proxy_pass",
    "serviceaccount",
    "{",
    "}",
    "'",
)
REJECTED_STATUS = 429


# Retry-After in whole seconds (its unit): the limits are whole requests per second, so a
# client refused by the rate may send again within one second.
RETRY_AFTER_SECONDS = 1


def rejection_snippet() -> str:
    return (
        f"limit_req_status {REJECTED_STATUS};\n"
        f"limit_conn_status {REJECTED_STATUS};\n"
        f'more_set_headers -s "{REJECTED_STATUS} 503" "Retry-After: {RETRY_AFTER_SECONDS}";\n'
    )


def rate_limit_annotations(limit: RateLimit | None, class_name: str) -> dict[str, str]:
    """The Ingress annotations for a per-address limit; with AKS's add-on, 429 + Retry-After."""
    if limit is None:
        return {}
    annotations = {f"{ANNOTATION}limit-burst-multiplier": str(limit.burst_multiplier)}
    if limit.rps is not None:
        annotations[f"{ANNOTATION}limit-rps"] = str(limit.rps)
    if limit.connections is not None:
        annotations[f"{ANNOTATION}limit-connections"] = str(limit.connections)
    if class_name in SNIPPET_CLASSES:
        annotations[f"{ANNOTATION}configuration-snippet"] = rejection_snippet()
    return annotations
