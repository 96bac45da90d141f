"""Keep credentials out of error lines: they end up in CI logs and pull-request checks.

A value is hidden when its key says it is a credential, whatever it looks like, and any
text that has a credential's shape is hidden wherever it sits, so that a token pasted
under the wrong key (`ingress.host: hf_...`) is not echoed either.
"""

from __future__ import annotations

import re

REDACTED = "[redacted]"

# Key names that hold credentials: a word of the camelCase key, or its last word.
_SECRET_WORDS = {
    "token", "tokens", "password", "passwd", "secret", "secrets", "credential",
    "credentials", "passphrase", "apikey", "connectionstring",
}  # fmt: skip
_SECRET_LAST_WORDS = {"key", "keys", "pat", "sas", "signature"}
# ...unless the key names or points at a credential rather than holding it
# (ingress.tlsSecretName is the name of a Kubernetes Secret).
_REFERENCE_LAST_WORDS = {"name", "names", "uri", "url", "id", "class", "namespace", "path", "file"}
# ...or counts tokens of text rather than holding an access token (workload.inputTokens).
_TOKEN_COUNT_FIRST_WORDS = {"input", "output", "prompt", "max", "num", "batched"}

# Shapes of credentials, each with where its format is documented.
_SHAPES = [
    # Hugging Face user access tokens: "hf_" and 34 letters (huggingface_hub's docs).
    r"hf_[A-Za-z0-9]{20,}",
    # GitHub: classic tokens ghp_/gho_/ghu_/ghs_/ghr_ + 36 characters, fine-grained
    # github_pat_ + 82 ("About authentication to GitHub", token formats).
    r"gh[pousr]_[A-Za-z0-9]{30,}",
    r"github_pat_[A-Za-z0-9_]{20,}",
    # OpenAI-style API keys, Slack tokens, AWS access key ids.
    r"sk-[A-Za-z0-9_-]{20,}",
    r"xox[abposr]-[A-Za-z0-9-]{10,}",
    r"(?:AKIA|ASIA)[0-9A-Z]{16}",
    # JSON Web Tokens (Entra ID access tokens among them): base64url header.payload.sig.
    r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*",
    # key=value credentials of connection strings (Azure Storage AccountKey=, SAS sig=).
    r"(?i:(?:accountkey|sharedaccesskey|password|pwd|sig|token)=)[^;&\s\"']+",
    # Long hex with letters and digits (API keys, old GitHub tokens), not an image digest.
    r"(?<!sha256:)(?<![0-9A-Za-z])(?=[0-9a-fA-F]*[0-9])(?=[0-9a-fA-F]*[a-fA-F])"
    r"[0-9a-fA-F]{32,}(?![0-9A-Za-z])",
    # Long base64 with letters of both cases and digits (Azure Storage account keys are
    # 88 characters ending in "==").
    r"(?<![A-Za-z0-9+/])(?=[A-Za-z0-9+/]*[0-9])(?=[A-Za-z0-9+/]*[a-z])(?=[A-Za-z0-9+/]*[A-Z])"
    r"[A-Za-z0-9+/]{40,}={0,2}",
]
_SHAPE = re.compile("|".join(f"(?:{shape})" for shape in _SHAPES))


def redact(text: str) -> str:
    """The text with every credential-shaped part replaced by [redacted]."""
    return _SHAPE.sub(REDACTED, text)


def is_secret_key(path: str) -> bool:
    """Whether the last key of a dotted path (`ingress.apiToken`) names a credential."""
    key = re.sub(r"\[\d+\]", "", path).rsplit(".", 1)[-1]
    words = [w.lower() for w in re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+", key)]
    if not words:
        return False
    joined = "".join(words)
    if words[-1] in _REFERENCE_LAST_WORDS:
        return False
    if words[-1] in ("token", "tokens") and words[0] in _TOKEN_COUNT_FIRST_WORDS:
        return False
    return (
        any(w in _SECRET_WORDS for w in words)
        or words[-1] in _SECRET_LAST_WORDS
        or any(s in joined for s in ("apikey", "connectionstring", "accesskey"))
    )
