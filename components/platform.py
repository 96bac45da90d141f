"""The one place that wires the components together from the validated stack config.

Order: cluster -> Kubernetes provider -> GPU pools -> namespaces -> (secrets, services,
autoscaling, monitoring as they are added). Components receive plain typed args and the
provider once, at their boundary; children inherit it.
"""

from __future__ import annotations

from typing import Any

import pulumi

from components.cluster import Cluster, ClusterArgs
from components.config import StackConfig
from components.gpu_pool import GpuNodePool, GpuPoolArgs
from components.network import Namespaces, NamespacesArgs, namespace_specs


class Platform(pulumi.ComponentResource):
    """Everything one stack declares."""

    outputs: dict[str, Any]

    def __init__(self, name: str, config: StackConfig, opts: pulumi.ResourceOptions | None = None):
        super().__init__("slm:platform:Platform", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        cluster = Cluster(f"{name}-cluster", ClusterArgs(config.stack, config.cluster), opts=child)
        pools = [
            GpuNodePool(
                f"{name}-pool-{pool.name}",
                GpuPoolArgs(pool, cluster.resource_group_name, cluster.cluster_name),
                opts=pulumi.ResourceOptions(parent=cluster),
            )
            for pool in config.gpu_pools
        ]
        on_cluster = pulumi.ResourceOptions(parent=self, providers={"kubernetes": cluster.provider})
        namespaces = Namespaces(
            f"{name}-ns",
            NamespacesArgs(
                environment=config.environment,
                kubernetes_version=config.cluster.kubernetes_version,
                specs=namespace_specs(
                    gpu=bool(pools), monitoring_in_cluster=config.monitoring.mode == "in-cluster"
                ),
            ),
            opts=on_cluster,
        )

        self.outputs = {
            "environment": config.environment,
            "clusterMode": config.cluster.mode,
            "kubernetesVersion": config.cluster.kubernetes_version,
            "clusterName": cluster.cluster_name,
            "resourceGroup": cluster.resource_group_name,
            "namespaces": sorted(namespaces.namespaces),
            "gpuPools": {
                pool.name: {
                    "vmSize": pool.vm_size,
                    "minCount": pool.min_count,
                    "maxCount": pool.max_count,
                    "spot": pool.spot,
                }
                for pool in config.gpu_pools
            },
            "models": {
                model.name: {"engine": model.engine, "source": model.source, "pool": model.pool}
                for model in config.models
            },
        }
        self.register_outputs(self.outputs)
