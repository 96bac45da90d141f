"""A key per consumer, rotation with a stated overlap, and the edge's per-address limits.

The configuration rules and the live key set are pure (components/access.py); the keys'
generators, Secrets and read commands are declared by components/secrets.py, run here
under the mock engine; the keys file is read by vLLM v0.31.0's own parser (.venv-vllm),
the way `vllm serve --config` reads it at start.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from components import access
from components.access import Access, AccessError, KeyRef, live_keys
from components.secrets import (
    API_KEYS,
    SECRETS_MOUNT,
    Consumer,
    consumer_key_commands,
    provider_objects,
    secret_provider_class_spec,
)
from tests.conftest import copy_config_root, read_stack, write_stack
from tools.mock_engine import run_program
from tools.plan import ROOT, PlanConfigError, build_plan, kubernetes_manifests

# The rotation the docs walk through: search-team's key 1 is replaced by key 2 and kept
# through 31 January 2027; support-bot has one key.
ROTATING = {
    "consumers": [
        {"name": "search-team", "rotation": 2, "previousValidUntil": "2027-01-31"},
        {"name": "support-bot"},
    ]
}
LAST_DAY = datetime.date(2027, 1, 31)
DAY_AFTER = datetime.date(2027, 2, 1)


def problem(raw: dict[str, Any]) -> tuple[tuple, Any, str]:
    """The first error as components/config.py reads it: where, the value, what is allowed."""
    with pytest.raises(ValidationError) as caught:
        Access.model_validate(raw)
    first = caught.value.errors(include_url=False)[0]
    cause = first.get("ctx", {}).get("error")
    if isinstance(cause, AccessError):
        return (*first["loc"], cause.path), cause.value, cause.allowed
    return first["loc"], first.get("input"), first["type"]


# -- the configuration ------------------------------------------------------------------------


def test_a_stack_without_consumers_keeps_its_one_shared_key() -> None:
    assert live_keys(Access(), LAST_DAY) == (KeyRef(None, 1),)
    assert KeyRef(None, 1).slug == "vllm-api-key"  # the Key Vault secret it always had


def test_consumers_as_the_stack_file_writes_them() -> None:
    parsed = Access.model_validate(ROTATING)
    search, bot = parsed.consumers
    assert (search.name, search.rotation, search.previous_valid_until) == (
        "search-team",
        2,
        LAST_DAY,
    )
    assert (bot.name, bot.rotation, bot.previous_valid_until) == ("support-bot", 1, None)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            {"consumers": [{"name": "Search_Team"}]},
            (("consumers", 0, "name", None), "Search_Team", "DNS-1123 label"),
        ),
        (
            {"consumers": [{"name": "a" * 64}]},
            (("consumers", 0, "name", None), "a" * 64, "DNS-1123 label"),
        ),
        (
            {"consumers": [{"name": "bot"}, {"name": "bot"}]},
            (("consumers[1].name",), "bot", "a name not used earlier in the list"),
        ),
        (
            {"consumers": [{"name": "bot", "previousValidUntil": "2027-01-31"}]},
            (
                ("consumers", 0, "previousValidUntil"),
                "2027-01-31",
                "nothing while rotation is 1: there is no previous key",
            ),
        ),
        (
            {"consumers": [{"name": "bot", "rotation": 2, "previousValidUntil": "31/01/2027"}]},
            (("consumers", 0, "previousValidUntil", None), "31/01/2027", "YYYY-MM-DD"),
        ),
        (
            {"consumers": [{"name": "bot", "rotation": 2, "previousValidUntil": "2027-02-30"}]},
            (("consumers", 0, "previousValidUntil", None), "2027-02-30", "YYYY-MM-DD"),
        ),
        (
            {"sharedKeyValidUntil": "2027-01-31"},
            (
                ("sharedKeyValidUntil",),
                "2027-01-31",
                "nothing without consumers: the shared key is then the only key",
            ),
        ),
        ({"perClientAddress": {}}, (("perClientAddress", None), {}, "rps, connections")),
    ],
)
def test_bad_access_settings_are_refused_with_their_path(raw, expected) -> None:
    loc, value, allowed = problem(raw)
    assert (loc, value) == expected[:2]
    assert expected[2] in allowed


@pytest.mark.parametrize(
    ("raw", "loc", "kind"),
    [
        ({"consumers": [{"name": "bot", "rotation": 0}]}, ("consumers", 0, "rotation"), "greater_than_equal"),
        ({"consumers": [{"name": "bot", "rateLimit": {"rps": 5}}]}, ("consumers", 0, "rateLimit"), "extra_forbidden"),
        ({"perClientAddress": {"rps": 0}}, ("perClientAddress", "rps"), "greater_than_equal"),
        ({"perClientAddress": {"rps": "5"}}, ("perClientAddress", "rps"), "int_type"),
        ({"queueDepthPerReplica": -1}, ("queueDepthPerReplica",), "greater_than_equal"),
    ],
)  # fmt: skip
def test_numbers_and_unknown_keys_are_refused(raw, loc, kind) -> None:
    assert problem(raw)[0] == loc and problem(raw)[2] == kind


# -- rotation: what each `pulumi up` serves -----------------------------------------------------


def test_rotation_serves_both_keys_through_the_stated_day_then_only_the_new_one() -> None:
    parsed = Access.model_validate(ROTATING)
    assert live_keys(parsed, LAST_DAY) == (
        KeyRef("search-team", 2),
        KeyRef("search-team", 1, LAST_DAY),
        KeyRef("support-bot", 1),
    )
    assert live_keys(parsed, DAY_AFTER) == (KeyRef("search-team", 2), KeyRef("support-bot", 1))
    # The servers roll when the set changes, and only then.
    assert access.key_set_id(live_keys(parsed, LAST_DAY)) == (
        "api-key-search-team-2,api-key-search-team-1,api-key-support-bot-1"
    )
    assert access.key_set_id(live_keys(parsed, DAY_AFTER)) == (
        "api-key-search-team-2,api-key-support-bot-1"
    )
    # The key to hand out is always the newest.
    assert access.current_keys(live_keys(parsed, LAST_DAY)) == {
        "search-team": KeyRef("search-team", 2),
        "support-bot": KeyRef("support-bot", 1),
    }


def test_the_shared_key_can_stay_while_its_callers_move_to_their_own() -> None:
    moving = Access.model_validate({**ROTATING, "sharedKeyValidUntil": "2027-01-31"})
    assert live_keys(moving, LAST_DAY)[0] == KeyRef(None, 1, LAST_DAY)
    assert KeyRef(None, 1) not in live_keys(moving, DAY_AFTER)
    assert all(k.consumer for k in live_keys(Access.model_validate(ROTATING), LAST_DAY))


def test_the_queue_bound_is_the_batch_plus_the_depth_or_none() -> None:
    assert access.max_queued_requests(4, 8) == 12
    assert access.max_queued_requests(4, 0) == 4  # refuse as soon as the batch is full
    assert access.max_queued_requests(4, None) is None  # vLLM's unbounded default


def test_key_vault_expiry_is_the_end_of_the_last_day_utc() -> None:
    # 2027-02-01T00:00:00Z
    assert access.expires_epoch(LAST_DAY) == 1801440000


# -- the keys file, read by vLLM's own parser -----------------------------------------------------


def test_the_keys_file_is_vllms_config_format() -> None:
    text = access.keys_file(["k1", "k2"])
    assert text == 'api-key:\n- "k1"\n- "k2"\n'
    assert yaml.safe_load(text) == {"api-key": ["k1", "k2"]}


VLLM_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"
PARSE = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, sys.argv[1])
    import check_args
    check_args._offline(sys.argv[2])
    check_args.install_target_gpu()
    args, errors = check_args.parse(check_args.serve_parser(), json.loads(sys.argv[3]))
    print(json.dumps({"errors": errors, "api_key": getattr(args, "api_key", None),
                      "max_num_queued_reqs": getattr(args, "max_num_queued_reqs", None)}))
    """
)


def vllm_parse(tmp_path: Path, argv: list[str]) -> dict[str, Any]:
    """`vllm serve`'s own parser (vLLM 0.31.0 in .venv-vllm) over argv: what it makes of it."""
    if not VLLM_PYTHON.exists():
        pytest.fail(f"{VLLM_PYTHON.relative_to(ROOT)} is missing: run `make vllm-env`")
    checker = str(ROOT / "tools" / "vllm_check")
    done = subprocess.run(
        [str(VLLM_PYTHON), "-c", PARSE, checker, str(tmp_path), json.dumps(argv)],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- what the secrets component declares ----------------------------------------------------------

PROGRAM = textwrap.dedent(
    """
    import datetime, json, pulumi
    from components import access
    from components.secrets import (
        API_KEY, API_KEYS, HF_TOKEN, ClusterSecrets, Consumer, SecretsArgs,
        consumer_key_commands,
    )

    raw = json.loads({raw!r})
    keys = access.live_keys(access.Access.model_validate(raw), datetime.date.fromisoformat({day!r}))
    server = Consumer("model-server", "slm-inference", "slm-model-server", (API_KEY, API_KEYS, HF_TOKEN))
    store = ClusterSecrets(
        "slm-secrets",
        SecretsArgs(stack="local", environment="local", consumers=(server,),
                    hugging_face_token=None, protect=True, api_keys=keys),
    )
    wiring = store.wiring("model-server")
    pulumi.export("apiKeyCommands", consumer_key_commands(keys, "slm-inference", None))
    pulumi.export("keysFile", wiring.api_keys_file)
    pulumi.export("volumes", list(wiring.volumes))
    pulumi.export("mounts", list(wiring.volume_mounts))
    """
)  # fmt: skip


def declared(tmp_path: Path, raw: dict, day: datetime.date) -> tuple[dict, dict]:
    program = tmp_path / f"program-{day}.py"
    program.write_text(PROGRAM.format(raw=json.dumps(raw), day=day.isoformat()))
    recording = run_program(program, "slm-deploy", "local", {}, [])
    resources = {(r.type, r.name): r for r in recording.resources}
    return resources, recording.outputs


def generators(resources: dict) -> dict[str, bool]:
    return {
        name: r.protect
        for (type_, name), r in resources.items()
        if type_ == "random:index/randomPassword:RandomPassword"
    }


def secrets(resources: dict) -> dict[str, list[str]]:
    return {
        r.inputs["metadata"]["name"]: sorted(r.inputs["stringData"])
        for (type_, _), r in resources.items()
        if type_ == "kubernetes:core/v1:Secret"
    }


def test_two_pulumi_ups_of_a_rotation_keep_the_old_key_then_drop_it(tmp_path) -> None:
    before, _ = declared(tmp_path, {"consumers": [{"name": "search-team"}]}, LAST_DAY)
    during, outputs = declared(tmp_path, ROTATING, LAST_DAY)
    after, _ = declared(tmp_path, ROTATING, DAY_AFTER)
    # One generator per key, named by rotation: rotation 1's generator is the same resource
    # (same name, same inputs) before and during the overlap, so Pulumi keeps its value.
    assert generators(before) == {"slm-secrets-api-key-search-team-1": False}
    assert generators(during) == {
        "slm-secrets-api-key-search-team-2": False,
        "slm-secrets-api-key-search-team-1": False,
        "slm-secrets-api-key-support-bot-1": False,
    }
    key_one = ("random:index/randomPassword:RandomPassword", "slm-secrets-api-key-search-team-1")
    assert before[key_one].inputs == during[key_one].inputs == {"length": 48, "special": False}
    assert before[key_one].urn == during[key_one].urn
    # After the stated day its generator is gone: the value cannot come back.
    assert generators(after) == {
        "slm-secrets-api-key-search-team-2": False,
        "slm-secrets-api-key-support-bot-1": False,
    }
    # No shared key in a stack with consumers; the servers' file and one Secret per consumer.
    assert secrets(during) == {
        "slm-api-keys": ["keys.yaml"],
        "slm-api-key-search-team": ["api-key"],
        "slm-api-key-support-bot": ["api-key"],
    }
    assert outputs["apiKeyCommands"] == {
        "search-team": "kubectl get secret slm-api-key-search-team -n slm-inference"
        " -o jsonpath='{.data.api-key}' | base64 -d",
        "support-bot": "kubectl get secret slm-api-key-support-bot -n slm-inference"
        " -o jsonpath='{.data.api-key}' | base64 -d",
    }
    assert outputs["keysFile"] == "/var/run/slm-api-keys/keys.yaml"
    assert outputs["volumes"] == [
        {
            "name": "api-keys",
            "secret": {"secretName": "slm-api-keys", "items": [{"key": "keys.yaml", "path": "keys.yaml"}]},
        }
    ]  # fmt: skip
    assert outputs["mounts"] == [
        {"name": "api-keys", "mountPath": "/var/run/slm-api-keys", "readOnly": True}
    ]


def test_a_stack_without_consumers_keeps_its_protected_generator_and_secret(tmp_path) -> None:
    resources, outputs = declared(tmp_path, {}, LAST_DAY)
    # The same generator name as before consumers existed: its value is kept.
    assert generators(resources) == {"slm-secrets-api-key": True}
    assert secrets(resources) == {"slm-api-key": ["api-key"], "slm-api-keys": ["keys.yaml"]}
    assert outputs["apiKeyCommands"] == {}


def test_no_key_value_is_in_what_the_component_declares(tmp_path) -> None:
    resources, _ = declared(tmp_path, ROTATING, LAST_DAY)
    for (type_, _), resource in resources.items():
        if type_ == "kubernetes:core/v1:Secret":
            assert set(resource.inputs["stringData"].values()) == {"[secret]"}


def test_key_vault_mounts_the_keys_file_under_its_own_name() -> None:
    server = Consumer("model-server", "slm-inference", "slm-model-server", (API_KEYS,))
    assert provider_objects(server.items) == (
        "array:\n  - |\n    objectName: vllm-api-keys\n    objectType: secret\n"
        "    objectAlias: vllm-api-keys.yaml\n"
    )
    # Read from the mount, never synced into a Secret a starting pod might read stale.
    spec = secret_provider_class_spec(server.items, "kv", "client", "tenant")
    assert spec["secretObjects"] == []
    assert f"{SECRETS_MOUNT}/{API_KEYS.file}" == "/mnt/secrets-store/vllm-api-keys.yaml"


def test_vault_read_commands_name_each_consumers_current_key() -> None:
    keys = live_keys(Access.model_validate(ROTATING), LAST_DAY)
    assert consumer_key_commands(keys, "slm-inference", "kv-slm-prod-abc123") == {
        "search-team": "az keyvault secret show --vault-name kv-slm-prod-abc123"
        " --name api-key-search-team-2 --query value -o tsv",
        "support-bot": "az keyvault secret show --vault-name kv-slm-prod-abc123"
        " --name api-key-support-bot-1 --query value -o tsv",
    }


# -- the edge's per-address limits ----------------------------------------------------------------


def test_rate_limit_annotations_on_aks_application_routing() -> None:
    limit = access.RateLimit.model_validate({"rps": 5, "connections": 8})
    assert access.rate_limit_annotations(limit, "webapprouting.kubernetes.azure.com") == {
        "nginx.ingress.kubernetes.io/limit-burst-multiplier": "5",
        "nginx.ingress.kubernetes.io/limit-rps": "5",
        "nginx.ingress.kubernetes.io/limit-connections": "8",
        "nginx.ingress.kubernetes.io/configuration-snippet": (
            "limit_req_status 429;\nlimit_conn_status 429;\n"
            'more_set_headers -s "429 503" "Retry-After: 1";\n'
        ),
    }
    # The add-on refuses an annotation value with a blocked word.
    snippet = access.rejection_snippet()
    assert not [word for word in access.BLOCKED_SNIPPET_WORDS if word in snippet]


def test_other_ingress_classes_get_the_limits_without_a_snippet() -> None:
    # ingress-nginx's own chart turns snippets off by default: a snippet would get the
    # Ingress refused, so elsewhere rejections keep ingress-nginx's 503.
    limit = access.RateLimit.model_validate({"rps": 2})
    assert access.rate_limit_annotations(limit, "nginx") == {
        "nginx.ingress.kubernetes.io/limit-burst-multiplier": "5",
        "nginx.ingress.kubernetes.io/limit-rps": "2",
    }
    assert access.rate_limit_annotations(None, "nginx") == {}


# -- a stack with consumers, planned ----------------------------------------------------------

# previousValidUntil far ahead, so that this plan does not change with the day it runs on.
DEV_ACCESS = {
    "consumers": [
        {"name": "search-team", "rotation": 2, "previousValidUntil": "2099-01-31"},
        {"name": "support-bot"},
    ],
    "perClientAddress": {"rps": 5, "connections": 8},
    "queueDepthPerReplica": 8,
}


@pytest.fixture(scope="module")
def dev_with_consumers(tmp_path_factory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("consumers")
    copy_config_root(root)
    document = read_stack(root, "dev")
    document["config"]["slm-deploy:access"] = DEV_ACCESS
    document["config"]["slm-deploy:ingress"] = {"enabled": True, "host": "slm.example.com"}
    write_stack(root, "dev", document)
    return build_plan("dev", config_root=root)


def _manifest(plan: dict, kind: str, name: str) -> dict[str, Any]:
    found = [
        m
        for m in kubernetes_manifests(plan["resources"]).values()
        if m["kind"] == kind and m["metadata"]["name"] == name
    ]
    assert len(found) == 1, (kind, name)
    return found[0]


def test_the_servers_read_the_keys_file_and_roll_with_the_key_set(dev_with_consumers) -> None:
    plan = dev_with_consumers
    assert plan["violations"] == []
    template = _manifest(plan, "Deployment", "phi4-mini")["spec"]["template"]
    assert template["metadata"]["annotations"] == {
        "slm-deploy/api-keys": "api-key-search-team-2,api-key-search-team-1,api-key-support-bot-1"
    }
    container = template["spec"]["containers"][0]
    assert container["args"][-2:] == ["--config", "/mnt/secrets-store/vllm-api-keys.yaml"]
    # phi4-mini's batch of 4 (--max-num-seqs=4) plus 8 waiting, then 503.
    assert "--max-num-seqs=4" in container["args"]
    assert "--max-num-queued-reqs=12" in container["args"]
    assert "VLLM_API_KEY" not in {e["name"] for e in container["env"]}
    provider = _manifest(plan, "SecretProviderClass", "model-server")["spec"]
    # The shared key is revoked (consumers, no sharedKeyValidUntil): only the file is read.
    assert provider["parameters"]["objects"] == (
        "array:\n  - |\n    objectName: vllm-api-keys\n    objectType: secret\n"
        "    objectAlias: vllm-api-keys.yaml\n"
    )
    assert provider["secretObjects"] == []


def test_the_vault_holds_each_live_key_and_outputs_say_how_to_read_them(dev_with_consumers):
    plan = dev_with_consumers
    vault_secrets = sorted(
        r["inputs"]["secretName"]
        for r in plan["resources"]
        if r["type"] == "azure-native:keyvault:Secret"
    )
    assert vault_secrets == [
        "api-key-search-team-1",
        "api-key-search-team-2",
        "api-key-support-bot-1",
        # The same live keys as the edge key check's NGINX map (components/edge_auth.py).
        "edge-auth-keys",
        "grafana-admin-password",
        "grafana-admin-user",
        "vllm-api-keys",
    ]
    generators = sorted(
        r["name"]
        for r in plan["resources"]
        if r["type"] == "random:index/randomPassword:RandomPassword"
    )
    assert generators == [
        "slm-secrets-api-key-search-team-1",
        "slm-secrets-api-key-search-team-2",
        "slm-secrets-api-key-support-bot-1",
        "slm-secrets-grafana-admin",
    ]
    outputs = plan["outputs"]
    assert outputs["apiKeyCommand"] is None and outputs["keyVaultApiKeyCommand"] is None
    assert outputs["apiKeyCommands"] == {
        "search-team": "az keyvault secret show --vault-name kv-slm-dev-mock00"
        " --name api-key-search-team-2 --query value -o tsv",
        "support-bot": "az keyvault secret show --vault-name kv-slm-dev-mock00"
        " --name api-key-support-bot-1 --query value -o tsv",
    }


def test_the_ingress_carries_the_per_address_limits(dev_with_consumers) -> None:
    annotations = _manifest(dev_with_consumers, "Ingress", "phi4-mini")["metadata"]["annotations"]
    limits = {k: v for k, v in annotations.items() if "limit" in k or "snippet" in k}
    assert limits == {
        "nginx.ingress.kubernetes.io/limit-rps": "5",
        "nginx.ingress.kubernetes.io/limit-connections": "8",
        "nginx.ingress.kubernetes.io/limit-burst-multiplier": "5",
        "nginx.ingress.kubernetes.io/configuration-snippet": (
            "limit_req_status 429;\nlimit_conn_status 429;\n"
            'more_set_headers -s "429 503" "Retry-After: 1";\n'
        ),
    }


@pytest.mark.parametrize(
    ("access_settings", "line"),
    [
        (
            {"consumers": [{"name": "Search_Team"}]},
            'slm-deploy:access.consumers[0].name: "Search_Team" is not allowed; expected a '
            "Kubernetes name (DNS-1123 label): at most 63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit",
        ),
        (
            {"consumers": [{"name": "bot", "previousValidUntil": "2027-01-31"}]},
            'slm-deploy:access.consumers[0].previousValidUntil: "2027-01-31" is not allowed; '
            "expected nothing while rotation is 1: there is no previous key",
        ),
    ],
)
def test_a_bad_access_setting_stops_the_plan_with_one_line(tmp_path, access_settings, line):
    copy_config_root(tmp_path)
    document = read_stack(tmp_path, "dev")
    document["config"]["slm-deploy:access"] = access_settings
    write_stack(tmp_path, "dev", document)
    with pytest.raises(PlanConfigError) as caught:
        build_plan("dev", config_root=tmp_path)
    assert str(caught.value) == line


def test_vllm_reads_the_rendered_command_line_with_its_keys_file(dev_with_consumers, tmp_path):
    """The dev server's rendered command, with the CSI mount's file replaced by a local one
    in the same format: vLLM's parser takes every key from the file (none is on the command
    line) and the queue bound as rendered."""
    container = _manifest(dev_with_consumers, "Deployment", "phi4-mini")["spec"]["template"][
        "spec"
    ]["containers"][0]
    argv = container["command"] + container["args"]
    keys = tmp_path / "vllm-api-keys.yaml"
    keys.write_text(access.keys_file(["key-of-search-team-2", "key-of-search-team-1"]))
    argv[argv.index("--config") + 1] = str(keys)
    assert vllm_parse(tmp_path, argv) == {
        "errors": [],
        "api_key": ["key-of-search-team-2", "key-of-search-team-1"],
        "max_num_queued_reqs": 12,
    }
    assert not any("key-of" in word for word in container["args"])


def test_prod_with_consumers_passes_the_policy_only_while_the_keys_file_is_a_secret(
    tmp_path: Path,
) -> None:
    """vllm-endpoint-authenticated takes `--config <file>` on the CSI volume in place of
    VLLM_API_KEY; the same server with that volume gone has no key at all and is refused."""
    from tools.plan import policy_violations

    copy_config_root(tmp_path)
    document = read_stack(tmp_path, "prod")
    document["config"]["slm-deploy:access"] = DEV_ACCESS
    write_stack(tmp_path, "prod", document)
    plan = build_plan("prod", config_root=tmp_path)
    assert plan["violations"] == []
    servers = [
        r
        for r in plan["resources"]
        if r["type"] == "kubernetes:apps/v1:Deployment"
        and "--config" in r["inputs"]["spec"]["template"]["spec"]["containers"][0]["args"]
    ]
    assert servers
    for server in servers:
        pod = server["inputs"]["spec"]["template"]["spec"]
        pod["volumes"] = [v for v in pod["volumes"] if "csi" not in v]
    violations = policy_violations(plan["resources"])
    assert len(violations) == len(servers)
    assert all(
        v.startswith("vllm-endpoint-authenticated: ") and "env VLLM_API_KEY is missing" in v
        for v in violations
    )
