"""The secrets the model servers read, as Kubernetes Secrets in the inference namespace.

The vLLM API key is generated (pulumi-random) and never written in a stack file; the
Hugging Face token for gated models comes from secret stack config. Both land in Kubernetes
Secrets that the workloads reference by name, so the source can change (Key Vault through
the CSI driver) without touching the workloads.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
from pydantic import SecretStr

API_KEY_SECRET = "slm-api-key"
API_KEY_KEY = "api-key"
HF_TOKEN_SECRET = "slm-hf-token"
HF_TOKEN_KEY = "token"
# 48 letters and digits: about 285 bits, far past guessing, and safe in an HTTP header.
API_KEY_LENGTH = 48


@dataclass(frozen=True)
class ServingSecretsArgs:
    namespace: str
    hugging_face_token: SecretStr | None
    # Keep the generated key across `pulumi destroy` mistakes in production.
    protect: bool = False


class ServingSecrets(pulumi.ComponentResource):
    """The API key clients present and the token vLLM downloads gated weights with."""

    def __init__(
        self, name: str, args: ServingSecretsArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("slm:secrets:ServingSecrets", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        key = random.RandomPassword(
            f"{name}-api-key",
            length=API_KEY_LENGTH,
            special=False,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        self.api_key = key.result
        self.api_key_secret = _secret(
            name, API_KEY_SECRET, args.namespace, API_KEY_KEY, key.result, child
        )
        self.hf_token_secret = (
            _secret(
                name,
                HF_TOKEN_SECRET,
                args.namespace,
                HF_TOKEN_KEY,
                pulumi.Output.secret(args.hugging_face_token.get_secret_value()),
                child,
            )
            if args.hugging_face_token
            else None
        )
        self.register_outputs({"apiKeySecret": API_KEY_SECRET})


def _secret(
    name: str,
    secret_name: str,
    namespace: str,
    key: str,
    value: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
) -> k8s.core.v1.Secret:
    return k8s.core.v1.Secret(
        f"{name}-{secret_name}",
        metadata={"name": secret_name, "namespace": namespace},
        type="Opaque",
        string_data={key: value},
        opts=opts,
    )


def api_key_command(namespace: str) -> str:
    """How an operator reads the API key (printed as a stack output)."""
    return secret_read_command(API_KEY_SECRET, namespace, API_KEY_KEY)


def secret_read_command(secret: str, namespace: str, key: str) -> str:
    """The kubectl line that prints one key of a Secret."""
    return f"kubectl get secret {secret} -n {namespace} -o jsonpath='{{.data.{key}}}' | base64 -d"
