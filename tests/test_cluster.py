"""The AKS kubeconfig: exec-based sign-in, built from the server and CA alone."""

from __future__ import annotations

import base64

import yaml

from components.cluster import AKS_AAD_SERVER_APP_ID, kubelogin_kubeconfig

USER_KUBECONFIG = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [
        {
            "name": "aks-slm-dev",
            "cluster": {
                "server": "https://slm-dev-abc.hcp.swedencentral.azmk8s.io:443",
                "certificate-authority-data": "Q0EtREFUQQ==",
            },
        }
    ],
    "users": [{"name": "clusterUser", "user": {"token": "short-lived-token"}}],
}


def _encoded(config: dict) -> str:
    return base64.b64encode(yaml.safe_dump(config).encode()).decode()


def test_kubeconfig_signs_in_with_kubelogin_and_keeps_no_credential() -> None:
    text = kubelogin_kubeconfig("aks-slm-dev", _encoded(USER_KUBECONFIG))
    config = yaml.safe_load(text)
    assert config["clusters"] == [
        {
            "name": "aks-slm-dev",
            "cluster": {
                "server": "https://slm-dev-abc.hcp.swedencentral.azmk8s.io:443",
                "certificate-authority-data": "Q0EtREFUQQ==",
            },
        }
    ]
    exec_ = config["users"][0]["user"]["exec"]
    assert exec_["command"] == "kubelogin"
    assert exec_["args"] == [
        "get-token",
        "--login",
        "azurecli",
        "--server-id",
        AKS_AAD_SERVER_APP_ID,
    ]
    assert "short-lived-token" not in text
    assert config["current-context"] == "aks-slm-dev"


def test_kubeconfig_ignores_everything_but_server_and_ca() -> None:
    rotated = yaml.safe_load(yaml.safe_dump(USER_KUBECONFIG))
    rotated["users"][0]["user"]["token"] = "another-token"
    rotated["contexts"] = [{"name": "x", "context": {"cluster": "aks-slm-dev", "user": "u"}}]
    assert kubelogin_kubeconfig("aks-slm-dev", _encoded(rotated)) == kubelogin_kubeconfig(
        "aks-slm-dev", _encoded(USER_KUBECONFIG)
    )
