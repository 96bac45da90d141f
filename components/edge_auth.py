"""The edge's key check: a small NGINX that the Ingress consults before every request.

ingress-nginx's `auth-url` annotation makes the controller send a subrequest (NGINX
`auth_request`) with the client's headers, without its body, to this service before it
proxies anything to a model; a 2xx lets the request through, a 401 is answered 401 to the
client (internal/ingress/annotations/authreq and the `location = /_external-auth-...` block
of rootfs/etc/nginx/template/nginx.tmpl, controller-v1.13.7). So a request without a live
key never reaches a model pod; vLLM still checks the key itself behind it.

The service is NGINX itself (no code of ours): a `map` from the whole Authorization header
to 1 for each live key (access.edge_keys_map, the same generated keys the servers accept),
read from a file the secrets store mounts (Key Vault through the CSI driver on AKS, a
Secret elsewhere); the configuration below holds paths only, never a key. NGINX reads the
map once, at start: a change of the key set rolls the pods (API_KEY_SET_ANNOTATION), as it
rolls the vLLM servers.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import workload
from components.network import EDGE_NAMESPACE
from components.secrets import PodWiring
from components.vllm import API_KEY_SET_ANNOTATION

NAME = "edge-auth"
NAMESPACE = EDGE_NAMESPACE
SERVICE_ACCOUNT = "slm-edge-auth"
# nginx-unprivileged's port (its images listen on 8080, not 80, as a non-root user).
PORT = 8080
AUTH_PATH = "/auth"
HEALTH_PATH = "/healthz"
CONFIG_DIR = "/etc/edge-auth"
# nginx-unprivileged is built with its pid file and temp paths under /tmp; our configuration
# names them there too, on an emptyDir, so the root filesystem stays read-only.
TEMP_DIR = "/tmp"
CONFIG_HASH_ANNOTATION = "slm-deploy/config-sha256"
# Two replicas, spread over nodes where the scheduler can (ScheduleAnyway: a one-node system
# pool still runs both): with none ready, every request to a model gets 500 (fails closed).
REPLICAS = 2


def auth_url() -> str:
    """The URL the ingress controller calls. Fully qualified: NGINX's resolver, which the
    controller's proxy_pass to a variable uses, does not apply resolv.conf's search list."""
    return f"http://{NAME}.{NAMESPACE}.svc.cluster.local:{PORT}{AUTH_PATH}"


def nginx_conf(keys_file: str) -> str:
    """The whole configuration: 204 for a live key on /auth, 401 for anything else there,
    204 on the health path, 404 elsewhere. Logs to stderr; nothing is written but /tmp."""
    temp = "".join(
        f"  {kind}_temp_path {TEMP_DIR}/{kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        "daemon off;\n"
        "worker_processes 1;\n"
        f"pid {TEMP_DIR}/nginx.pid;\n"
        "error_log stderr warn;\n"
        "events {}\n"
        "http {\n"
        "  access_log off;\n"
        "  server_tokens off;\n"
        f"{temp}"
        "  map $http_authorization $edge_key_live {\n"
        "    default 0;\n"
        f"    include {keys_file};\n"
        "  }\n"
        "  server {\n"
        f"    listen {PORT};\n"
        f"    location = {AUTH_PATH} {{\n"
        "      if ($edge_key_live) {\n"
        "        return 204;\n"
        "      }\n"
        "      return 401;\n"
        "    }\n"
        f"    location = {HEALTH_PATH} {{\n"
        "      return 204;\n"
        "    }\n"
        "    location / {\n"
        "      return 404;\n"
        "    }\n"
        "  }\n"
        "}\n"
    )


@dataclass(frozen=True)
class EdgeAuthArgs:
    image: str
    wiring: PodWiring
    # access.key_set_id of the live keys: a new set rolls the pods.
    key_set: str


def pod_labels() -> dict[str, str]:
    return workload.labels(NAME, NAME, "edge-auth")


def container(args: EdgeAuthArgs) -> dict[str, Any]:
    probe = workload.http_probe(HEALTH_PATH, "http", period=10, failures=3, timeout=2)
    return {
        "name": "nginx",
        "image": args.image,
        # The image's entrypoint scripts rewrite files under /etc/nginx; the root is
        # read-only and our configuration needs none of them: NGINX is started directly.
        "command": ["nginx", "-e", "stderr", "-c", f"{CONFIG_DIR}/nginx.conf"],
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "readinessProbe": probe,
        "livenessProbe": probe,
        # Measured with Debian's NGINX 1.22, this configuration and a map of 100 keys: 12
        # MiB resident (master 7, worker 5); the limit leaves room for connection buffers.
        # One check is a lookup in that map: a single-threaded loopback client drove 2,000
        # of them in 1.2 s, bound by the client, so a twentieth of a core is a floor, not
        # a measured need; the limit lets a burst use half a core.
        "resources": {
            "requests": {"cpu": "50m", "memory": "32Mi"},
            "limits": {"cpu": "500m", "memory": "64Mi"},
        },
        "securityContext": workload.container_security_context(),
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": TEMP_DIR},
            *args.wiring.volume_mounts,
        ],
    }


def pod_spec(args: EdgeAuthArgs) -> dict[str, Any]:
    selector = pod_labels()
    return {
        "serviceAccountName": args.wiring.service_account,
        # It calls no Kubernetes API; the CSI driver gets its token from kubelet.
        "automountServiceAccountToken": False,
        "securityContext": workload.pod_security_context(),
        "tolerations": workload.SYSTEM_POOL_TOLERATIONS,
        "topologySpreadConstraints": workload.spread_over_nodes_and_zones(selector),
        "containers": [container(args)],
        "volumes": [
            {"name": "config", "configMap": {"name": NAME}},
            workload.empty_dir("tmp", "16Mi"),
            *args.wiring.volumes,
        ],
    }


class EdgeAuth(pulumi.ComponentResource):
    """The key check the Ingress consults: ConfigMap, Deployment, Service, disruption budget."""

    def __init__(self, name: str, args: EdgeAuthArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("slm:edge:EdgeAuth", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        if not args.wiring.edge_keys_file:
            raise ValueError("the edge key check needs its keys file (secrets wiring)")
        conf = nginx_conf(args.wiring.edge_keys_file)
        selector = pod_labels()
        metadata = {"name": NAME, "namespace": NAMESPACE, "labels": selector}
        k8s.core.v1.ConfigMap(
            f"{name}-config", metadata=metadata, data={"nginx.conf": conf}, opts=child
        )
        annotations = {
            API_KEY_SET_ANNOTATION: args.key_set,
            CONFIG_HASH_ANNOTATION: hashlib.sha256(conf.encode()).hexdigest(),
        }
        k8s.apps.v1.Deployment(
            name,
            metadata=metadata,
            spec={
                "replicas": REPLICAS,
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {"labels": selector, "annotations": annotations},
                    "spec": pod_spec(args),
                },
            },
            opts=child,
        )
        workload.http_service(f"{name}-service", metadata, selector, PORT, self)
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata=metadata,
            spec=workload.pod_disruption_budget_spec(selector),
            opts=child,
        )
        self.url = auth_url()
        self.register_outputs({"url": self.url})
