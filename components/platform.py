"""The one place that wires the components together from the validated stack config.

Order: cluster (VNet, AKS, Kubernetes provider) -> GPU pools (AKS only: on an existing
cluster they are nodes that exist) -> namespaces -> secrets (the vault, identities,
SecretProviderClasses) -> monitoring (Grafana reads its admin Secret) -> GPU software (its
DCGM ServiceMonitor needs monitoring's CRDs) -> network policies -> model services (each
vLLM model after its cache warmer's Job, with serving.cacheWarmer) -> autoscaling ->
ingress.
Components receive plain typed args and the provider once, at their boundary; children
inherit it.
"""

from __future__ import annotations

import datetime
from dataclasses import replace
from typing import Any

import pulumi

from components import access, container_logs, right_sizing, sizing
from components.autoscaling import Autoscaling, AutoscalingArgs
from components.cache_warmer import SERVICE_ACCOUNT as CACHE_WARMER_ACCOUNT
from components.cache_warmer import BlobReaderArgs, BlobReaderIdentity
from components.cluster import Cluster, ClusterArgs
from components.config import CpuPool, GpuPool, ModelConfig, StackConfig
from components.cpu_pool import CpuNodePool, CpuPoolArgs
from components.edge_auth import SERVICE_ACCOUNT as EDGE_AUTH_ACCOUNT
from components.edge_auth import EdgeAuth, EdgeAuthArgs
from components.gpu_pool import (
    OPERATOR_SERVICE_MONITOR,
    GpuNodePool,
    GpuPoolArgs,
    GpuSoftware,
    GpuSoftwareArgs,
)
from components.loki import ALLOY_PODS, Logs, LogsArgs
from components.monitoring import (
    GRAFANA_SERVICE_ACCOUNT,
    MANAGED_SERVICE_MONITOR,
    AzureManagedMonitoring,
    AzureMonitoringArgs,
    InClusterMonitoring,
    MonitoringArgs,
    grafana_password_command,
)
from components.network import (
    AKS_APP_ROUTING_CLASS,
    AKS_APP_ROUTING_NAMESPACE,
    EDGE_NAMESPACE,
    INFERENCE_NAMESPACE,
    INGRESS_NGINX_NAMESPACE,
    MONITORING_NAMESPACE,
    NODE_SYSTEM_NAMESPACE,
    PROMETHEUS_PODS,
    ExposedModel,
    ModelIngress,
    ModelIngressArgs,
    Namespaces,
    NamespacesArgs,
    NetworkPolicies,
    NetworkPoliciesArgs,
    Peer,
    namespace_specs,
)
from components.ollama import (
    ADMIN_PASSWORD_KEY,
    OPEN_WEBUI_ADMIN_EMAIL,
    OPEN_WEBUI_NAME,
    OPEN_WEBUI_SECRET,
    OllamaArgs,
    OllamaService,
    OpenWebUi,
    OpenWebUiArgs,
    default_chat_model,
)
from components.ollama import PORT as OLLAMA_PORT
from components.onnx_runtime import PORT as ONNX_PORT
from components.onnx_runtime import OnnxRuntimeArgs, OnnxRuntimeService
from components.secrets import (
    API_KEY,
    API_KEYS,
    EDGE_KEYS,
    GRAFANA_PASSWORD,
    GRAFANA_USER,
    HF_TOKEN,
    AzureVaultArgs,
    ClusterSecrets,
    Consumer,
    KeyVaultSecrets,
    PodWiring,
    SecretsArgs,
    api_key_command,
    consumer_key_commands,
    secret_read_command,
    vault_read_command,
)
from components.vllm import PORT as VLLM_PORT
from components.vllm import VllmArgs, VllmService
from components.workload import ModelCache


class Platform(pulumi.ComponentResource):
    """Everything one stack declares."""

    outputs: dict[str, Any]

    def __init__(self, name: str, config: StackConfig, opts: pulumi.ResourceOptions | None = None):
        super().__init__("slm:platform:Platform", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        cluster = Cluster(
            f"{name}-cluster",
            ClusterArgs(
                config.stack,
                config.cluster,
                config.monitoring.mode,
                app_routing=config.is_aks and config.ingress.enabled,
                logs=config.monitoring.logs,
            ),
            opts=child,
        )
        # On an existing cluster the pools' nodes exist already: nothing to create.
        pools = {
            pool.name: GpuNodePool(
                f"{name}-pool-{pool.name}",
                GpuPoolArgs(
                    pool,
                    cluster.resource_group_name,
                    cluster.cluster_name,
                    cluster.network.nodes_subnet_id,
                    config.cluster.gpu_driver,
                ),
                opts=pulumi.ResourceOptions(parent=cluster),
            )
            for pool in (config.gpu_pools if config.is_aks else [])
        } | {
            pool.name: CpuNodePool(
                f"{name}-cpu-pool-{pool.name}",
                CpuPoolArgs(
                    pool,
                    cluster.resource_group_name,
                    cluster.cluster_name,
                    cluster.network.nodes_subnet_id,
                ),
                opts=pulumi.ResourceOptions(parent=cluster),
            )
            for pool in (config.cpu_pools if config.is_aks else [])
        }
        on_cluster = pulumi.ResourceOptions(parent=self, providers={"kubernetes": cluster.provider})
        namespaces = Namespaces(
            f"{name}-ns",
            NamespacesArgs(
                environment=config.environment,
                kubernetes_version=config.cluster.kubernetes_version,
                specs=namespace_specs(
                    gpu=installs_gpu_software(config),
                    monitoring_in_cluster=config.monitoring.mode == "in-cluster",
                    edge_auth=checks_keys_at_edge(config),
                ),
            ),
            opts=on_cluster,
        )
        secrets = _secrets(
            name, config, cluster, _after(on_cluster, *namespaces.namespaces.values())
        )
        monitoring = _monitoring(name, config, cluster, namespaces, secrets, on_cluster)
        if isinstance(monitoring, InClusterMonitoring):
            Logs(
                f"{name}-logs",
                LogsArgs(
                    namespace=MONITORING_NAMESPACE,
                    collector_namespace=NODE_SYSTEM_NAMESPACE,
                    source_namespaces=tuple(namespaces.namespaces),
                    retention_days=config.monitoring.logs.retention_days,
                ),
                opts=_after(on_cluster, *namespaces.namespaces.values()),
            )
        if installs_gpu_software(config):
            GpuSoftware(
                f"{name}-gpu-software",
                GpuSoftwareArgs(
                    # An existing cluster's nodes have their driver: device plugin and DCGM
                    # exporter, as on AKS with gpuDriver "aks".
                    config.cluster.gpu_driver if config.is_aks else "aks",
                    NODE_SYSTEM_NAMESPACE,
                    service_monitor_api(config),
                    mig=any(pool.gpu_instance_profile for pool in config.gpu_pools),
                ),
                opts=_after(
                    on_cluster,
                    namespaces.namespaces[NODE_SYSTEM_NAMESPACE],
                    *(pools[pool.name] for pool in config.gpu_pools if pool.name in pools),
                    *([monitoring.release] if isinstance(monitoring, InClusterMonitoring) else []),
                ),
            )
        in_inference = _after(on_cluster, namespaces.namespaces[INFERENCE_NAMESPACE])
        NetworkPolicies(
            f"{name}-netpol",
            network_policies_args(config, namespaces),
            opts=_after(on_cluster, *namespaces.namespaces.values()),
        )
        warmer_wiring = _cache_warmer_wiring(name, config, cluster, secrets, in_inference)
        services = _model_services(
            name, config, secrets, warmer_wiring, _after(in_inference, secrets), pools
        )
        endpoints = {model: service.url for model, service in services.items()}
        scaled = autoscaled_models(config)
        if scaled and monitoring:
            Autoscaling(
                f"{name}-autoscaling",
                AutoscalingArgs(
                    scaled,
                    INFERENCE_NAMESPACE,
                    monitoring.prometheus_url,
                    config.cluster.kubernetes_version,
                    monitoring.keda_client_id
                    if isinstance(monitoring, AzureManagedMonitoring)
                    else None,
                    queue_thresholds={m.name: queue_threshold(config, m) for m in scaled},
                ),
                opts=_after(in_inference, *services.values()),
            )
        if config.ingress.enabled:
            edge_auth = _edge_auth(name, config, secrets, namespaces, on_cluster)
            ingress = ModelIngress(
                f"{name}-ingress",
                _ingress_args(config, services, edge_auth.url if edge_auth else None),
                opts=_after(in_inference, *services.values(), *([edge_auth] if edge_auth else [])),
            )
            endpoints |= ingress.urls

        # The one shared key, while it is live (always, in a stack without consumers).
        shared_key = bool(keyed_models(config)) and any(
            key.consumer is None for key in secrets.api_keys
        )
        self.outputs = {
            "environment": config.environment,
            "clusterMode": config.cluster.mode,
            "kubernetesVersion": config.cluster.kubernetes_version,
            "clusterName": cluster.cluster_name,
            "resourceGroup": cluster.resource_group_name,
            "oidcIssuerUrl": cluster.oidc_issuer_url,
            "registryLoginServer": cluster.registry_login_server,
            "kubeconfig": cluster.kubeconfig,
            "namespaces": sorted(namespaces.namespaces),
            "gpuPools": {
                pool.name: pool_summary(pool, existing=not config.is_aks)
                for pool in config.gpu_pools
            },
            "cpuPools": {
                pool.name: cpu_pool_summary(pool, existing=not config.is_aks)
                for pool in config.cpu_pools
            },
            "models": {
                model.name: model_summary(model, config.engine_plans[model.name])
                for model in config.models
            },
            "endpoints": endpoints,
            "servedModelNames": served_model_names(config),
            "apiKeyCommand": api_key_command(INFERENCE_NAMESPACE) if shared_key else None,
            "keyVaultName": secrets.vault_name,
            "keyVaultApiKeyCommand": secrets.vault_name.apply(
                lambda vault: vault_read_command(vault, API_KEY)
            )
            if secrets.vault_name is not None and shared_key
            else None,
            # Per consumer, how to read its current key: commands, never the keys.
            "apiKeyCommands": _consumer_key_commands(secrets) if keyed_models(config) else {},
            "autoscaledModels": [model.name for model in scaled],
            "logs": logs_summary(config),
            "prometheusUrl": monitoring.prometheus_url if monitoring else None,
            "grafanaUrl": monitoring.grafana_url if monitoring else None,
        }
        if isinstance(monitoring, InClusterMonitoring):
            self.outputs["grafanaPasswordCommand"] = grafana_password_command(MONITORING_NAMESPACE)
        if config.serving.ollama.open_webui.enabled and ollama_models(config):
            self.outputs |= open_webui_outputs()
        self.register_outputs(self.outputs)


def _after(opts: pulumi.ResourceOptions, *resources: pulumi.Resource) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=list(resources)))


MODEL_SERVER = Consumer(
    name="model-server",
    namespace=INFERENCE_NAMESPACE,
    service_account="slm-model-server",
    items=(API_KEY, HF_TOKEN),
)
# The cache warmer downloading a gated model from the Hub reads the Hugging Face token.
CACHE_WARMER = Consumer(
    name="cache-warmer",
    namespace=INFERENCE_NAMESPACE,
    service_account=CACHE_WARMER_ACCOUNT,
    items=(HF_TOKEN,),
)
GRAFANA = Consumer(
    name="grafana",
    namespace=MONITORING_NAMESPACE,
    service_account=GRAFANA_SERVICE_ACCOUNT,
    items=(GRAFANA_USER, GRAFANA_PASSWORD),
    create_service_account=False,  # the Grafana chart creates it, annotated by us
)


# The edge's key check reads every live key as its NGINX map (components/edge_auth.py).
EDGE_AUTH = Consumer(
    name="edge-auth",
    namespace=EDGE_NAMESPACE,
    service_account=EDGE_AUTH_ACCOUNT,
    items=(EDGE_KEYS,),
)


def checks_keys_at_edge(config: StackConfig) -> bool:
    """The edge checks keys wherever it publishes a keyed model (vLLM, ONNX Runtime): every
    stack with the ingress on and such a model. No switch turns it off: the template's
    Ingress objects work only with ingress-nginx (their rewrite and regex annotations are its
    own), which always understands auth-url, and a stack that publishes a model has keys to
    check."""
    return config.ingress.enabled and bool(keyed_models(config))


def _edge_auth(
    name: str,
    config: StackConfig,
    secrets: KeyVaultSecrets | ClusterSecrets,
    namespaces: Namespaces,
    on_cluster: pulumi.ResourceOptions,
) -> EdgeAuth | None:
    if not checks_keys_at_edge(config):
        return None
    return EdgeAuth(
        f"{name}-edge-auth",
        EdgeAuthArgs(
            image=config.ingress.edge_auth_image,
            wiring=secrets.wiring(EDGE_AUTH.name),
            key_set=access.key_set_id(secrets.api_keys),
        ),
        opts=_after(on_cluster, namespaces.namespaces[EDGE_NAMESPACE], secrets),
    )


def live_api_keys(config: StackConfig) -> tuple[access.KeyRef, ...]:
    """The keys the servers accept as of today (UTC): a consumer's previous key is dropped
    by the first `pulumi up` on a day after its previousValidUntil (components/access.py).
    Only a stack that states such a date plans differently from one day to the next."""
    return access.live_keys(config.access, datetime.datetime.now(datetime.UTC).date())


def _consumer_key_commands(secrets: KeyVaultSecrets | ClusterSecrets) -> pulumi.Input[dict]:
    if secrets.vault_name is None:
        return consumer_key_commands(secrets.api_keys, INFERENCE_NAMESPACE, None)
    return secrets.vault_name.apply(
        lambda vault: consumer_key_commands(secrets.api_keys, INFERENCE_NAMESPACE, vault)
    )


# The engines whose servers check the stack's API keys themselves and read their models from
# a Hugging Face repository (through the cache warmer where it runs).
KEYED_ENGINES = ("vllm", "onnxruntime")


def keyed_models(config: StackConfig) -> tuple[ModelConfig, ...]:
    """Models whose servers check the API key (vLLM, ONNX Runtime); Ollama has none."""
    return tuple(model for model in config.models if model.engine in KEYED_ENGINES)


def secret_consumers(config: StackConfig) -> tuple[Consumer, ...]:
    """The workloads that read secrets: the keyed servers (API key; vLLM's the HF token
    without a warmer), the cache warmer downloading from the Hub (HF token), Grafana."""
    warmer = config.serving.cache_warmer
    consumers = []
    if keyed_models(config):
        # With API consumers, the servers read every live key from one file (API_KEYS).
        keys = (API_KEY, API_KEYS) if config.access.consumers else (API_KEY,)
        # With a warmer, the servers run offline: the token is the warmer's alone.
        server = replace(MODEL_SERVER, items=keys if warmer.enabled else (*keys, HF_TOKEN))
        consumers.append(server)
    if keyed_models(config) and warmer.enabled and warmer.source == "huggingface":
        consumers.append(CACHE_WARMER)
    if config.monitoring.mode == "in-cluster":
        consumers.append(GRAFANA)
    if checks_keys_at_edge(config):
        consumers.append(EDGE_AUTH)
    return tuple(consumers)


def _cache_warmer_wiring(
    name: str,
    config: StackConfig,
    cluster: Cluster,
    secrets: KeyVaultSecrets | ClusterSecrets,
    opts: pulumi.ResourceOptions,
) -> PodWiring | None:
    """The warmer's service account: a secrets consumer (the Hub, for the token), or an
    identity that reads the Azure Blob mirror (AKS)."""
    warmer = config.serving.cache_warmer
    if not (warmer.enabled and keyed_models(config)):
        return None
    if warmer.source == "huggingface":
        return secrets.wiring(CACHE_WARMER.name)
    reader = BlobReaderIdentity(
        f"{name}-cache-warmer",
        BlobReaderArgs(
            placement=cluster.placement,
            namespace=INFERENCE_NAMESPACE,
            storage_account_id=warmer.blob_storage_account_id,
        ),
        opts=opts,
    )
    return reader.wiring


def _secrets(
    name: str, config: StackConfig, cluster: Cluster, opts: pulumi.ResourceOptions
) -> KeyVaultSecrets | ClusterSecrets:
    """Key Vault with workload identity on AKS; plain Kubernetes Secrets elsewhere."""
    aks = config.cluster
    args = SecretsArgs(
        stack=config.stack,
        environment=config.environment,
        consumers=secret_consumers(config),
        hugging_face_token=config.secrets.hugging_face_token,
        protect=config.protect_stateful,
        api_keys=live_api_keys(config),
        azure=AzureVaultArgs(
            placement=cluster.placement,
            vnet_id=cluster.network.vnet_id,
            nodes_subnet_id=cluster.network.nodes_subnet_id,
            endpoints_subnet_id=cluster.network.endpoints_subnet_id,
            allowed_ip_ranges=tuple(aks.authorized_ip_ranges),
        )
        if config.is_aks
        else None,
    )
    store = KeyVaultSecrets if config.is_aks else ClusterSecrets
    return store(f"{name}-secrets", args, opts=opts)


def _monitoring(
    name: str,
    config: StackConfig,
    cluster: Cluster,
    namespaces: Namespaces,
    secrets: KeyVaultSecrets | ClusterSecrets,
    on_cluster: pulumi.ResourceOptions,
) -> InClusterMonitoring | AzureManagedMonitoring | None:
    settings = config.monitoring
    if settings.mode == "in-cluster":
        return InClusterMonitoring(
            f"{name}-monitoring",
            MonitoringArgs(
                namespace=MONITORING_NAMESPACE,
                inference_namespace=INFERENCE_NAMESPACE,
                retention_days=settings.retention_days,
                storage_gib=settings.storage_gib,
                thresholds=settings.alerts,
                queue_limits=queue_limits(config),
                runbook_url=settings.runbook_url,
                grafana_secrets=secrets.wiring(GRAFANA.name),
                node_agents_namespace=NODE_SYSTEM_NAMESPACE,
                edge_namespace=edge_controller_namespace(config),
                model_servers=model_servers(config),
            ),
            opts=_after(
                on_cluster,
                namespaces.namespaces[MONITORING_NAMESPACE],
                namespaces.namespaces[NODE_SYSTEM_NAMESPACE],
                secrets,
            ),
        )
    if settings.mode == "azure-managed":
        aks = config.cluster
        return AzureManagedMonitoring(
            f"{name}-monitoring",
            AzureMonitoringArgs(
                placement=cluster.placement,
                cluster_name=cluster.cluster_name,
                cluster_id=cluster.cluster_id,
                inference_namespace=INFERENCE_NAMESPACE,
                thresholds=settings.alerts,
                queue_limits=queue_limits(config),
                runbook_url=settings.runbook_url,
                private_cluster=aks.private,
                edge_namespace=edge_controller_namespace(config),
                model_servers=model_servers(config),
                protect=config.protect_stateful,
            ),
            opts=_after(on_cluster, namespaces.namespaces[INFERENCE_NAMESPACE]),
        )
    return None


def model_servers(config: StackConfig) -> tuple[str, ...]:
    """The servers Prometheus scrapes, by app label: vLLM's monitor as always, and ONNX
    Runtime's where the stack has such a model."""
    onnx = any(model.engine == "onnxruntime" for model in config.models)
    return ("vllm", "onnxruntime") if onnx else ("vllm",)


def installs_gpu_software(config: StackConfig) -> bool:
    """NVIDIA's device plugin and DCGM exporter (or GPU Operator): with the GPU pools the
    template creates on AKS; on an existing cluster only with gpuSoftware "install"."""
    if not config.gpu_pools:
        return False
    return config.is_aks or config.cluster.gpu_software == "install"


def service_monitor_api(config: StackConfig) -> str | None:
    """The ServiceMonitor API of the Prometheus that scrapes this cluster."""
    return {
        "in-cluster": OPERATOR_SERVICE_MONITOR,
        "azure-managed": MANAGED_SERVICE_MONITOR,
    }.get(config.monitoring.mode)


def queue_threshold(config: StackConfig, model: ModelConfig) -> int:
    """KEDA's target of waiting requests per replica. vLLM: the capacity model's (or the
    stack's queuePerReplica). ONNX Runtime, whose throughput is not modelled: the stack's
    queuePerReplica, else its generators per replica, one more round of requests waiting."""
    plan = config.engine_plans[model.name]
    if plan.capacity is not None:
        return plan.capacity.queue_threshold
    return model.queue_per_replica or plan.shape.max_num_seqs


def queue_limits(config: StackConfig) -> dict[str, int]:
    """Per keyed model, the waiting requests at which every replica is at KEDA's threshold
    and replicas.max is reached: past it the autoscaler has nothing left to add."""
    return {
        model.name: queue_threshold(config, model) * model.replicas.max
        for model in keyed_models(config)
    }


def autoscaled_models(config: StackConfig) -> tuple[ModelConfig, ...]:
    """Keyed models (vLLM, ONNX Runtime: both export vLLM's queue metric) whose replica range
    varies (config guarantees monitoring for them)."""
    return tuple(m for m in keyed_models(config) if m.replicas.max > m.replicas.min)


def _model_services(
    name: str,
    config: StackConfig,
    secrets: KeyVaultSecrets | ClusterSecrets,
    warmer_wiring: PodWiring | None,
    common: pulumi.ResourceOptions,
    pools: dict[str, GpuNodePool | CpuNodePool],
) -> dict[str, VllmService | OllamaService | OnnxRuntimeService]:
    services: dict[str, VllmService | OllamaService | OnnxRuntimeService] = {}
    for model in config.models:
        plan = config.engine_plans[model.name]
        cache = model_cache(config, model)
        # Each server waits for its own pool only: adding a pool leaves the others' diffs alone.
        opts = _after(common, pools[model.pool]) if model.pool in pools else common
        if model.engine == "onnxruntime":
            services[model.name] = _onnx_service(
                name, config, model, secrets, warmer_wiring, cache, opts
            )
            continue
        pool = config.pool(model.pool) if model.pool else None
        if model.engine == "vllm":
            args = VllmArgs(
                model,
                plan,
                pool,
                INFERENCE_NAMESPACE,
                config.serving.vllm_image,
                config.serving.max_request_seconds,
                cache,
                secrets.wiring(MODEL_SERVER.name),
                warmer=config.serving.cache_warmer if warmer_wiring else None,
                warmer_wiring=warmer_wiring,
                api_key_set=access.key_set_id(secrets.api_keys)
                if config.access.consumers
                else None,
                queue_depth=config.access.queue_depth_per_replica,
                log_requests=config.monitoring.logs.request_logging,
            )
            services[model.name] = VllmService(f"{name}-{model.name}", args, opts=opts)
        else:
            args = OllamaArgs(
                model,
                plan,
                pool,
                INFERENCE_NAMESPACE,
                config.serving.ollama_image,
                config.serving.ollama,
                cache,
            )
            services[model.name] = OllamaService(f"{name}-{model.name}", args, opts=opts)
    ollama = ollama_models(config)
    if config.serving.ollama.open_webui.enabled and ollama:
        _open_webui(name, config, [services[model.name] for model in ollama], common)
    return services


def _onnx_service(
    name: str,
    config: StackConfig,
    model: ModelConfig,
    secrets: KeyVaultSecrets | ClusterSecrets,
    warmer_wiring: PodWiring,
    cache: ModelCache,
    opts: pulumi.ResourceOptions,
) -> OnnxRuntimeService:
    args = OnnxRuntimeArgs(
        model,
        config.engine_plans[model.name],
        config.cpu_pool(model.pool),
        INFERENCE_NAMESPACE,
        config.serving.onnx_image,
        config.serving.max_request_seconds,
        cache,
        secrets.wiring(MODEL_SERVER.name),
        warmer=config.serving.cache_warmer,
        warmer_wiring=warmer_wiring,
        api_key_set=access.key_set_id(secrets.api_keys) if config.access.consumers else None,
        queue_depth=config.access.queue_depth_per_replica,
    )
    return OnnxRuntimeService(f"{name}-{model.name}", args, opts=opts)


def open_webui_outputs() -> dict[str, str]:
    """How an operator reaches Open WebUI (no ingress: a port-forward) and signs in as the
    admin account it creates at its first start."""
    return {
        "openWebUiPortForwardCommand": (
            f"kubectl port-forward -n {INFERENCE_NAMESPACE} svc/{OPEN_WEBUI_NAME} 8080:80"
        ),
        "openWebUiAdminEmail": OPEN_WEBUI_ADMIN_EMAIL,
        "openWebUiAdminPasswordCommand": secret_read_command(
            OPEN_WEBUI_SECRET, INFERENCE_NAMESPACE, ADMIN_PASSWORD_KEY
        ),
    }


def ollama_models(config: StackConfig) -> tuple[ModelConfig, ...]:
    return tuple(model for model in config.models if model.engine == "ollama")


def _open_webui(
    name: str, config: StackConfig, servers: list[OllamaService], opts: pulumi.ResourceOptions
) -> OpenWebUi:
    """One Open WebUI for every Ollama server of the stack (Kubernetes keeps one object per
    name: a second would clash with the first)."""
    first = ollama_models(config)[0]
    # Before, each Ollama model had its own (named after the model); the stack's first keeps
    # its claim, Deployment and Service under the new name.
    renamed = pulumi.ResourceOptions(aliases=[pulumi.Alias(name=f"{name}-{first.name}-webui")])
    return OpenWebUi(
        f"{name}-open-webui",
        OpenWebUiArgs(
            namespace=INFERENCE_NAMESPACE,
            image=config.serving.ollama.open_webui.image,
            ollama_urls=tuple(server.url for server in servers),
            default_model=default_chat_model(first),
            protect=config.protect_stateful,
        ),
        opts=pulumi.ResourceOptions.merge(opts, renamed),
    )


# Azure Files premium: ReadWriteMany, so every replica of a model reads one cache.
AKS_SHARED_CACHE_CLASS = "azurefile-csi-premium"


def model_cache(config: StackConfig, model: ModelConfig) -> ModelCache:
    spec = model.spec
    serving = config.serving
    shared = serving.model_cache == "shared"
    several_readers = model.engine in KEYED_ENGINES
    storage_class = serving.cache_storage_class or (
        AKS_SHARED_CACHE_CLASS if config.is_aks and several_readers else None
    )
    minimum = sizing.AZURE_FILES_PREMIUM_MIN_GIB if storage_class == AKS_SHARED_CACHE_CLASS else 0
    return ModelCache(
        shared=shared,
        size_gib=sizing.model_cache_gib(spec, minimum if shared else 0),
        storage_class=storage_class if shared else None,
        # Ollama runs one replica; vLLM and ONNX Runtime replicas on several nodes share the
        # weights.
        access_mode="ReadWriteMany" if several_readers else "ReadWriteOnce",
        protect=config.protect_stateful,
    )


def _ingress_args(
    config: StackConfig, services: dict, auth_url: str | None = None
) -> ModelIngressArgs:
    ingress = config.ingress
    ports = {"vllm": VLLM_PORT, "onnxruntime": ONNX_PORT}
    exposed = tuple(
        # The edge checks the keyed servers' keys; Ollama has none to check.
        ExposedModel(model.name, ports[model.engine], keyed=auth_url is not None)
        if model.engine in KEYED_ENGINES
        else ExposedModel(model.name, OLLAMA_PORT)
        for model in config.models
        # Ollama has no authentication: it is reachable from outside only in local (a
        # developer's own cluster); dev is a real AKS cluster with a public address.
        if model.engine in KEYED_ENGINES or config.environment == "local"
    )
    return ModelIngressArgs(
        namespace=INFERENCE_NAMESPACE,
        host=ingress.host,
        class_name=ingress.class_name or (AKS_APP_ROUTING_CLASS if config.is_aks else "nginx"),
        models=exposed,
        max_request_seconds=config.serving.max_request_seconds,
        tls_secret_name=ingress.tls_secret_name,
        tls_key_vault_certificate_uri=ingress.tls_key_vault_certificate_uri,
        rate_limit=config.access.per_client_address,
        auth_url=auth_url,
    )


def edge_controller_namespace(config: StackConfig) -> str | None:
    """Where the NGINX that counts the edge's refusals runs, when we know how to scrape it:
    AKS application routing, the Ingress class of AKS stacks unless the stack names another."""
    ingress = config.ingress
    uses_app_routing = config.is_aks and ingress.class_name in (None, AKS_APP_ROUTING_CLASS)
    return AKS_APP_ROUTING_NAMESPACE if ingress.enabled and uses_app_routing else None


AZURE_METRICS_NAMESPACE = "kube-system"  # the ama-metrics add-on's scrapers
KEDA_NAMESPACE = "kube-system"  # the AKS KEDA add-on's operator queries Prometheus


def metrics_scraper(config: StackConfig) -> Peer | None:
    """Who scrapes /metrics: our Prometheus' pods, or Azure's managed scrapers."""
    return {
        "in-cluster": Peer(MONITORING_NAMESPACE, PROMETHEUS_PODS),
        "azure-managed": Peer(AZURE_METRICS_NAMESPACE),
    }.get(config.monitoring.mode)


def ingress_controller(config: StackConfig) -> Peer:
    """Where the ingress controller's pods run."""
    return Peer(
        config.ingress.controller_namespace
        or (AKS_APP_ROUTING_NAMESPACE if config.is_aks else INGRESS_NGINX_NAMESPACE)
    )


def model_clients(config: StackConfig) -> tuple[Peer, ...]:
    """Who may call the model servers: the ingress controller and the metrics scraper."""
    scraper = metrics_scraper(config)
    return (ingress_controller(config), *([scraper] if scraper else []))


def network_policies_args(config: StackConfig, namespaces: Namespaces) -> NetworkPoliciesArgs:
    in_cluster = config.monitoring.mode == "in-cluster"
    return NetworkPoliciesArgs(
        inference_namespace=INFERENCE_NAMESPACE,
        clients=model_clients(config),
        monitoring_namespace=MONITORING_NAMESPACE if in_cluster else None,
        node_system_namespace=NODE_SYSTEM_NAMESPACE
        if NODE_SYSTEM_NAMESPACE in namespaces.namespaces
        else None,
        scraper=metrics_scraper(config),
        prometheus_clients=(Peer(KEDA_NAMESPACE),)
        if in_cluster and autoscaled_models(config)
        else (),
        edge_namespace=EDGE_NAMESPACE if checks_keys_at_edge(config) else None,
        edge_clients=(ingress_controller(config),),
        log_shippers=(Peer(NODE_SYSTEM_NAMESPACE, ALLOY_PODS),) if in_cluster else (),
    )


def served_model_names(config: StackConfig) -> dict[str, list[str]]:
    """The names clients send as "model", per endpoint (Ollama variants and vLLM's LoRA
    adapters included)."""
    return {
        model.name: [model.name, *(a.name for a in model.adapters)]
        if model.engine in KEYED_ENGINES
        else [model.source, *(v.name for v in model.variants)]
        for model in config.models
    }


# Why an existing cluster's pool shows no cost: the template neither creates nor bills it.
EXISTING_POOL_COST_NOTE = "existing nodes: not created by this template, no cost estimate"


def pool_summary(pool: GpuPool, existing: bool = False) -> dict[str, Any]:
    """A GPU pool as the stack outputs and the plan summary show it. Nodes of an existing
    cluster show their GPU and count, and no Azure cost: the template does not create them."""
    summary = _node_pool_summary(pool, {"gpu": gpu_description(pool)}, existing)
    if not existing:
        summary["osDisk"] = f"{pool.os_disk.size_gib} GiB {pool.os_disk.kind.lower()}"
    return summary


def _node_pool_summary(
    pool: GpuPool | CpuPool, machine: dict[str, str], existing: bool
) -> dict[str, Any]:
    """What GPU and CPU pools show alike; `machine` describes their nodes."""
    if existing:
        return {
            "vmSize": pool.vm_size,
            **machine,
            "existingNodes": True,
            "maxCount": pool.max_count,
            "spot": pool.spot,
            "monthlyCostUsd": None,
            "costNote": EXISTING_POOL_COST_NOTE,
        }
    return {
        "vmSize": pool.vm_size,
        **machine,
        "minCount": pool.min_count,
        "maxCount": pool.max_count,
        "spot": pool.spot,
        # As the pool is billed, and priced the other way for comparison.
        "monthlyCostUsd": cost_summary(pool.monthly_cost()),
        "monthlyCostUsdIfSpot" if not pool.spot else "monthlyCostUsdIfOnDemand": cost_summary(
            pool.monthly_cost(spot=not pool.spot)
        ),
    }


def logs_summary(config: StackConfig) -> dict[str, Any]:
    """Where container logs go, for how long, at what price, and whether prompts are in them."""
    logs = config.monitoring.logs
    summary = container_logs.logs_summary(
        config.stack, config.is_aks, config.monitoring.mode, logs.retention_days
    )
    return summary | {"requestLogging": logs.request_logging}


def cpu_pool_summary(pool: CpuPool, existing: bool = False) -> dict[str, Any]:
    """A CPU pool as the stack outputs and the plan summary show it (as pool_summary)."""
    machine = f"{pool.sku.vcpus} vCPU, {pool.sku.ram_gib} GiB"
    return _node_pool_summary(pool, {"machine": machine}, existing)


def gpu_description(pool: GpuPool) -> str:
    """A node's GPUs as the pool sells them: "1x A100 80GB", or with MIG its slices too."""
    whole = f"{pool.vm_sku.gpus}x {pool.vm_sku.gpu_model}"
    if not pool.gpu_instance_profile:
        return whole
    slices = pool.sku.gpus
    return f"{whole} in {slices} MIG slices ({pool.sku.gpu_model.rsplit(' ', 1)[-1]})"


def cost_summary(cost: sizing.PoolCost) -> dict[str, Any]:
    return {
        "min": cost.monthly_min_usd,
        "max": cost.monthly_max_usd,
        "hourlyUsd": cost.price.usd if cost.price else None,
        "priceRegion": cost.price.region if cost.price else None,
        "priceTaken": cost.price.taken if cost.price else None,
    }


def model_summary(model: ModelConfig, plan: sizing.EnginePlan) -> dict[str, Any]:
    """A model's fit as the stack outputs and the plan summary show it."""
    spec = plan.model
    summary: dict[str, Any] = {
        "engine": model.engine,
        "source": model.source,
        "pool": model.pool,
        "tier": spec.tier,
        "parameters": spec.parameters,
        "maxModelLen": plan.shape.max_model_len,
        "maxNumSeqs": plan.shape.max_num_seqs,
        "startupBudgetSeconds": plan.startup_budget_seconds,
    }
    if plan.fit:
        summary |= {
            "requiredGiB": round(plan.fit.required_gib, 2),
            "usableGiB": round(plan.fit.usable_gib, 2),
            "headroomGiB": round(plan.fit.headroom_gib, 2),
            "maxNumSeqsAtContext": plan.max_num_seqs_at_context,
            "maxModelLenAtNumSeqs": plan.max_model_len_at_num_seqs,
        }
        if model.adapters:
            # The adapter slots' share of requiredGiB (sizing.lora_bytes), and what they serve.
            summary["loraGiB"] = round(plan.fit.lora_gib, 3)
            summary["adapters"] = [
                {"name": a.name, "source": a.source, "revision": a.revision, "rank": a.rank}
                for a in model.adapters
            ]
    elif plan.cpu:
        summary |= {
            "cpuRequiredGiB": round(plan.cpu.required_gib, 2),
            "cpuAllocatableGiB": round(plan.cpu.allocatable_gib, 2),
            "cpuHeadroomGiB": round(plan.cpu.headroom_gib, 2),
            "vcpus": plan.cpu.requested_vcpus,
            "maxNumSeqsAtContext": plan.max_num_seqs_at_context,
            "maxModelLenAtNumSeqs": plan.max_model_len_at_num_seqs,
        }
    else:
        summary["cpuMemoryGiB"] = round(sizing.cpu_memory_gib(spec, plan.shape), 2)
    if plan.engine_args:
        summary["engineArgs"] = list(plan.engine_args)
        if plan.notes:
            summary["notes"] = list(plan.notes)
    summary["capacity"] = (
        capacity_summary(plan.capacity, autoscaled=model.replicas.max > model.replicas.min)
        if plan.capacity
        else CAPACITY_NOT_MODELLED
    )
    return summary


# Ollama (llama.cpp) has no calibration record and a different engine loop: no figure is
# better than a borrowed one.
CAPACITY_NOT_MODELLED = (
    "not modelled: the capacity model is calibrated for vLLM only "
    "(components/capacity_measurements/)"
)


def capacity_summary(figures: right_sizing.ModelCapacity, autoscaled: bool) -> dict[str, Any]:
    """A model's capacity and cost, as the stack outputs and the plan summary show them."""
    per_replica = figures.per_replica
    return {
        "workload": {
            "inputTokens": figures.workload.input_tokens,
            "outputTokens": figures.workload.output_tokens,
        },
        "targets": {
            "ttftP95Seconds": figures.targets.ttft_p95_s,
            "itlP95Seconds": figures.targets.itl_p95_s,
            "peakRequestsPerSecond": figures.peak_requests_per_second,
        },
        "perReplica": {
            "requestsPerSecond": round(per_replica.request_rate, 2),
            "outputTokensPerSecond": round(per_replica.output_tokens_per_s),
            "ttftP95Seconds": round(per_replica.ttft_p95_s, 3),
            "itlP95Seconds": round(per_replica.itl_p95_s, 4),
        },
        "replicasNeeded": figures.replicas_needed,
        "requestsPerSecondAtMaxReplicas": round(figures.carried_at_max, 2),
        "usdPerMillionOutputTokens": {
            "onDemand": _round(figures.usd_per_mtok_on_demand, 3),
            "spot": _round(figures.usd_per_mtok_spot, 3),
        },
        # KEDA's waiting-requests target per replica, where the replica range varies.
        "autoscaled": autoscaled,
        "queuePerReplica": figures.queue_threshold,
        "cheapestMeetingTargets": figures.cheapest.describe() if figures.cheapest else None,
    }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
