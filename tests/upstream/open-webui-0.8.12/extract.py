"""Reduce Open WebUI's backend to the facts tests/test_open_webui.py checks the plan against.

Each file becomes a small JSON document: `environment` (the variables the module reads with
os.environ.get, os.getenv or os.environ[...], env.py and config.py) and `facts`, each the
answer to one question about the code, found by a pattern over the source. A fact that
turns false on a refresh means the upstream changed what components/ollama.py relies on.
"""

from __future__ import annotations

import json
import re

NAME = r"['\"]([A-Z][A-Z0-9_]*)['\"]"
READS = (
    re.compile(rf"os\.environ\.get\(\s*{NAME}"),
    re.compile(rf"os\.getenv\(\s*{NAME}"),
    re.compile(rf"os\.environ\[\s*{NAME}\s*\](?!\s*=[^=])"),
)
FACTS: dict[str, dict[str, re.Pattern[str]]] = {
    "env.json": {
        # Sign-in on and an empty key: the import raises, the server never starts.
        "secretKeyRequiredWithAuth": re.compile(
            r"^if WEBUI_AUTH and WEBUI_SECRET_KEY == '':\s*\n\s+raise ", re.MULTILINE
        ),
        # Offline: the Hugging Face hub is not asked, the version check is off.
        "offlineModeSetsHubOffline": re.compile(
            r"^if OFFLINE_MODE:\s*\n\s+os\.environ\['HF_HUB_OFFLINE'\] = '1'", re.MULTILINE
        ),
        "sqliteDatabaseInDataDir": re.compile(
            r"^DATABASE_URL = os\.environ\.get\('DATABASE_URL', f'sqlite:///\{DATA_DIR\}/webui\.db'\)",
            re.MULTILINE,
        ),
    },
    "config.json": {
        # With ENABLE_PERSISTENT_CONFIG off, each setting takes its environment value.
        "persistentConfigSwitch": re.compile(
            r"if self\.config_value is not None and ENABLE_PERSISTENT_CONFIG:"
        ),
        "ollamaBaseUrlsSplitOnSemicolon": re.compile(r"OLLAMA_BASE_URLS\.split\(';'\)"),
    },
    "db.json": {
        # The (peewee) database is opened when open_webui.internal.db is imported.
        "opensDatabaseAtImport": re.compile(
            r"^if ENABLE_DB_MIGRATIONS:\s*\n\s+handle_peewee_migration\(DATABASE_URL\)",
            re.MULTILINE,
        ),
    },
    "main.json": {
        "createsAdminFromEnvironment": re.compile(
            r"if WEBUI_ADMIN_EMAIL and WEBUI_ADMIN_PASSWORD:\s*\n\s*if create_admin_user\("
        ),
    },
    "auths.json": {
        # Sign-up off: refused, even for the first user unless ENABLE_INITIAL_ADMIN_SIGNUP.
        "signupRefusedWhenDisabled": re.compile(
            r"if not request\.app\.state\.config\.ENABLE_SIGNUP or not "
            r"request\.app\.state\.config\.ENABLE_LOGIN_FORM:\s*\n\s*"
            r"if has_users or not ENABLE_INITIAL_ADMIN_SIGNUP:\s*\n\s*"
            r"raise HTTPException\(status\.HTTP_403_FORBIDDEN"
        ),
    },
    "misc.json": {
        "localhostEmailAccepted": re.compile(
            r"if email\.endswith\('@localhost'\):\s*\n\s*return True"
        ),
    },
}
ENVIRONMENT_FILES = ("env.json", "config.json")


def environment(text: str) -> list[str]:
    return sorted({name for pattern in READS for name in pattern.findall(text)})


def data_dir_made_only_by_serve(text: str) -> bool:
    """Every mkdir in env.py sits in an `if FROM_INIT_PY:` block, which only the
    `open-webui serve` command enters (the image's start script runs uvicorn)."""
    block = ""
    mkdirs = 0
    for line in text.splitlines():
        if line and not line[0].isspace():
            block = line
        if ".mkdir(" in line:
            mkdirs += 1
            if block.strip() != "if FROM_INIT_PY:":
                return False
    return mkdirs > 0


def extract(local_name: str, text: str) -> str:
    if local_name not in FACTS:
        raise ValueError(f"no extractor for {local_name}")
    document: dict = {
        "facts": {name: bool(p.search(text)) for name, p in FACTS[local_name].items()}
    }
    if local_name == "env.json":
        document["facts"]["dataDirMadeOnlyByServe"] = data_dir_made_only_by_serve(text)
    if local_name in ENVIRONMENT_FILES:
        document["environment"] = environment(text)
    return json.dumps(document, indent=2, sort_keys=True) + "\n"
