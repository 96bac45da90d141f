"""GPU node pools: one AKS AgentPool resource per configured pool (on an existing cluster
the pools describe nodes that exist, and nothing here creates them).

Pools are separate AgentPool resources, never inline in the cluster: AKS rejects adding inline
pools after creation, and editing them disturbs every pool. A pool's VM size cannot change in
place; a change replaces the pool (and its nodes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import pulumi
import pulumi_kubernetes as k8s
from pulumi_azure_native import containerservice

from components.config import CpuPool, GpuPool

# Every GPU node carries this taint so that only pods that ask for a GPU land there. AKS has
# no ExtendedResourceToleration admission, so GPU workloads tolerate it explicitly.
GPU_TAINT = "nvidia.com/gpu=present:NoSchedule"
# Labels: GPU workloads select their pool by POOL_LABEL; GPU system DaemonSets (device
# plugin, DCGM exporter) run wherever GPU_NODE_LABEL is set.
POOL_LABEL = "slm-deploy/pool"
GPU_NODE_LABEL = "slm-deploy/gpu"
# AKS taints spot nodes with this; only pods that accept eviction should tolerate it.
SPOT_TAINT_KEY = "kubernetes.azure.com/scalesetpriority"
SPOT_TAINT = f"{SPOT_TAINT_KEY}=spot:NoSchedule"


SPOT_TOLERATION = {
    "key": SPOT_TAINT_KEY,
    "operator": "Equal",
    "value": "spot",
    "effect": "NoSchedule",
}


def gpu_tolerations(spot: bool) -> list[dict[str, str]]:
    """What a pod needs to land on a GPU pool's nodes (AKS adds no toleration by itself)."""
    gpu = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    return [gpu, SPOT_TOLERATION] if spot else [gpu]


@dataclass(frozen=True)
class GpuPoolArgs:
    pool: GpuPool
    resource_group_name: pulumi.Input[str]
    cluster_name: pulumi.Input[str]
    # The cluster's node subnet: every pool joins the same VNet.
    subnet_id: pulumi.Input[str]
    # "aks": AKS installs the NVIDIA driver; "gpu-operator": driver None, the operator does.
    gpu_driver: str = "aks"


class PoolPlace(Protocol):
    """Where a pool goes: its cluster and the cluster's node subnet (GpuPoolArgs, CpuPoolArgs)."""

    resource_group_name: pulumi.Input[str]
    cluster_name: pulumi.Input[str]
    subnet_id: pulumi.Input[str]


def spot_settings(spot: bool) -> dict[str, Any]:
    """An agent pool's pricing: spot, or regular VMs."""
    if not spot:
        return {"scale_set_priority": "Regular"}
    return {
        "scale_set_priority": "Spot",
        # Delete (not Deallocate): evicted spot nodes free their quota at once.
        "scale_set_eviction_policy": "Delete",
        # -1: pay up to the on-demand price rather than be evicted on price.
        "spot_max_price": -1,
    }


def autoscaled_user_pool(
    name: str,
    pool: GpuPool | CpuPool,
    args: PoolPlace,
    parent: pulumi.Resource,
    node_labels: dict[str, str],
    node_taint: str,
    **settings: Any,
) -> containerservice.AgentPool:
    """An autoscaled Linux user pool of the cluster, tainted, in its node subnet: what every
    model pool shares (GPU or CPU; `settings` holds what differs, the disk and the GPU)."""
    return containerservice.AgentPool(
        name,
        agent_pool_name=pool.name,
        resource_group_name=args.resource_group_name,
        resource_name_=args.cluster_name,
        mode="User",
        os_type="Linux",
        os_sku="Ubuntu",
        vm_size=pool.vm_size,
        count=pool.min_count,
        min_count=pool.min_count,
        max_count=pool.max_count,
        enable_auto_scaling=True,
        availability_zones=pool.zones or None,
        node_labels=node_labels,
        # AKS adds the spot taint itself; declaring it keeps refresh and diff quiet.
        node_taints=[node_taint, SPOT_TAINT] if pool.spot else [node_taint],
        vnet_subnet_id=args.subnet_id,
        **settings,
        **spot_settings(pool.spot),
        opts=pulumi.ResourceOptions(parent=parent),
    )


class GpuNodePool(pulumi.ComponentResource):
    """One autoscaled, tainted GPU agent pool."""

    def __init__(self, name: str, args: GpuPoolArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("slm:gpu_pool:GpuNodePool", name, None, opts)
        pool = args.pool
        self.agent_pool = autoscaled_user_pool(
            name,
            pool,
            args,
            self,
            node_labels={POOL_LABEL: pool.name, GPU_NODE_LABEL: "nvidia"},
            node_taint=GPU_TAINT,
            os_disk_size_gb=pool.os_disk.size_gib,
            os_disk_type=pool.os_disk.kind,
            gpu_profile=containerservice.GPUProfileArgs(
                driver="Install" if args.gpu_driver == "aks" else "None"
            ),
            # AKS partitions every GPU of the node into slices of this profile while it
            # provisions the node, after installing its own driver (so only with driver
            # Install); the profile cannot change on an existing pool.
            gpu_instance_profile=pool.gpu_instance_profile,
        )
        self.register_outputs(
            {"vmSize": pool.vm_size, "minCount": pool.min_count, "maxCount": pool.max_count}
        )


# -- the NVIDIA software on GPU nodes ---------------------------------------------------------


@dataclass(frozen=True)
class ChartPin:
    """An official Helm chart at a pinned version."""

    chart: str
    version: str
    repository: str


# NVIDIA's charts; versions released by autumn 2026 (device plugin 0.20.0, August 2026;
# DCGM exporter 4.8.3, July 2026; GPU Operator v26.7, NVIDIA's supported line).
DEVICE_PLUGIN_CHART = ChartPin(
    "nvidia-device-plugin", "0.20.0", "https://nvidia.github.io/k8s-device-plugin"
)
DCGM_EXPORTER_CHART = ChartPin(
    "dcgm-exporter", "4.8.3", "https://nvidia.github.io/dcgm-exporter/helm-charts"
)
GPU_OPERATOR_CHART = ChartPin("gpu-operator", "v26.7.0", "https://helm.ngc.nvidia.com/nvidia")

# GPU system DaemonSets run on every GPU node, spot ones included.
GPU_NODE_TOLERATIONS = [
    {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
    {"key": SPOT_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"},
]
GPU_NODE_AFFINITY = {
    "nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [
                {
                    "matchExpressions": [
                        {"key": GPU_NODE_LABEL, "operator": "In", "values": ["nvidia"]}
                    ]
                }
            ]
        }
    }
}


# How the device plugin advertises MIG slices, when a pool has them. At v0.20.0 the plugin's
# default, "none", advertises a MIG-enabled GPU as one whole nvidia.com/gpu and none of its
# slices (internal/rm/device_map.go); "single" advertises each slice as one nvidia.com/gpu
# (internal/rm/rm.go, AddMIGResource("*", "gpu")) and requires every GPU of a node to have the
# same slices, which AKS's gpuInstanceProfile makes so; "mixed" names each slice's profile
# (nvidia.com/mig-3g.40gb), so a pod spec would depend on the GPU's memory size. "single"
# keeps every model server's request, nvidia.com/gpu: 1 per replica, valid on whole GPUs and
# slices alike; nodes without MIG keep advertising whole GPUs under it. It is also what AKS
# gives a MIG pool whose device plugin AKS itself runs, when no strategy is named
# (AgentBaker's cse_config.sh), and what AKS's MIG page shows for nvidia.com/gpu.
MIG_STRATEGY = "single"


def device_plugin_values(mig: bool = False) -> dict:
    """The device plugin chart's values; mig: some GPU pool is split into MIG slices."""
    # The chart's default affinity asks for Node Feature Discovery labels, which AKS nodes
    # don't carry: select our own GPU node label instead (a list replaces the default).
    values = {
        "affinity": GPU_NODE_AFFINITY,
        "tolerations": GPU_NODE_TOLERATIONS,
        "gfd": {"enabled": False},
    }
    # Only when needed: any strategy but "none" makes the chart add SYS_ADMIN to the plugin.
    return values | {"migStrategy": MIG_STRATEGY} if mig else values


# The DCGM exporter's ServiceMonitor timing. The exporter reads DCGM every 30 s (its
# --collect-interval default, 30000 ms, at 4.8.3), so a faster scrape returns the same
# sample. The timeout is the chart's own default at 4.8.3 (25s), which a slow scrape of many
# GPUs needs; both are set here so that neither comes from a chart default we don't see:
# Prometheus Operator and the managed add-on drop a monitor whose timeout exceeds its
# interval (chart 4.8.3 pairs scrapeTimeout 25s with whatever interval the values give).
DCGM_SCRAPE_INTERVAL = "30s"
DCGM_SCRAPE_TIMEOUT = "25s"


def dcgm_exporter_values(service_monitor_api: str | None) -> dict:
    # The chart's ServiceMonitor, in the CRD group of whichever Prometheus scrapes the
    # cluster (Prometheus Operator's, or the Azure metrics add-on's).
    monitor: dict = {"enabled": service_monitor_api is not None}
    if service_monitor_api:
        monitor |= {
            "apiVersion": service_monitor_api,
            "interval": DCGM_SCRAPE_INTERVAL,
            "scrapeTimeout": DCGM_SCRAPE_TIMEOUT,
        }
    return {
        "affinity": GPU_NODE_AFFINITY,
        "tolerations": GPU_NODE_TOLERATIONS,
        "serviceMonitor": monitor,
    }


def gpu_operator_values(service_monitor_api: str | None) -> dict:
    # Pools run with AKS's driver install off (gpuProfile.driver None): the operator installs
    # the driver and container toolkit, then the device plugin and DCGM exporter.
    return {
        "driver": {"enabled": True},
        "toolkit": {"enabled": True},
        # The operator's ServiceMonitor is Prometheus Operator's kind only. It runs the same
        # exporter (4.6.0-4.8.3 at v26.7.0), so it gets the same timing.
        "dcgmExporter": {
            "enabled": True,
            "serviceMonitor": {
                "enabled": service_monitor_api == OPERATOR_SERVICE_MONITOR,
                "interval": DCGM_SCRAPE_INTERVAL,
                "scrapeTimeout": DCGM_SCRAPE_TIMEOUT,
            },
        },
        "daemonsets": {"tolerations": GPU_NODE_TOLERATIONS},
        "node-feature-discovery": {"worker": {"tolerations": GPU_NODE_TOLERATIONS}},
    }


# Prometheus Operator's API (ServiceMonitor, PrometheusRule), which kube-prometheus-stack
# installs; the GPU Operator's chart can only declare a ServiceMonitor of this group.
OPERATOR_SERVICE_MONITOR = "monitoring.coreos.com/v1"


@dataclass(frozen=True)
class GpuSoftwareArgs:
    gpu_driver: str  # "aks" or "gpu-operator"
    namespace: str
    # The ServiceMonitor API the cluster's Prometheus reads, None without monitoring.
    service_monitor_api: str | None = None
    # Some GPU pool is split into MIG slices (gpuInstanceProfile).
    mig: bool = False


class GpuSoftware(pulumi.ComponentResource):
    """What makes GPUs schedulable and observable: device plugin and DCGM exporter, or the
    GPU Operator (which brings both, and the driver)."""

    def __init__(
        self, name: str, args: GpuSoftwareArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("slm:gpu_pool:GpuSoftware", name, None, opts)
        charts = (
            [(GPU_OPERATOR_CHART, gpu_operator_values(args.service_monitor_api))]
            if args.gpu_driver == "gpu-operator"
            else [
                (DEVICE_PLUGIN_CHART, device_plugin_values(args.mig)),
                (DCGM_EXPORTER_CHART, dcgm_exporter_values(args.service_monitor_api)),
            ]
        )
        self.charts = [
            k8s.helm.v4.Chart(
                f"{name}-{pin.chart}",
                chart=pin.chart,
                version=pin.version,
                repository_opts=k8s.helm.v4.RepositoryOptsArgs(repo=pin.repository),
                namespace=args.namespace,
                values=values,
                opts=pulumi.ResourceOptions(parent=self),
            )
            for pin, values in charts
        ]
        self.register_outputs({"charts": [pin.chart for pin, _ in charts]})
