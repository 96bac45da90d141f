"""The one place that wires the components together from the validated stack config.

Order: cluster -> Kubernetes provider -> GPU pools -> namespaces -> (secrets, services,
autoscaling, monitoring as they are added). Components receive plain typed args and the
provider once, at their boundary; children inherit it.
"""

from __future__ import annotations

from typing import Any

import pulumi

from components import sizing
from components.cluster import Cluster, ClusterArgs
from components.config import GpuPool, ModelConfig, StackConfig
from components.gpu_pool import GpuNodePool, GpuPoolArgs, GpuSoftware, GpuSoftwareArgs
from components.network import (
    GPU_SYSTEM_NAMESPACE,
    Namespaces,
    NamespacesArgs,
    namespace_specs,
)


class Platform(pulumi.ComponentResource):
    """Everything one stack declares."""

    outputs: dict[str, Any]

    def __init__(self, name: str, config: StackConfig, opts: pulumi.ResourceOptions | None = None):
        super().__init__("slm:platform:Platform", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        cluster = Cluster(
            f"{name}-cluster",
            ClusterArgs(config.stack, config.cluster, config.monitoring.mode),
            opts=child,
        )
        pools = [
            GpuNodePool(
                f"{name}-pool-{pool.name}",
                GpuPoolArgs(
                    pool,
                    cluster.resource_group_name,
                    cluster.cluster_name,
                    config.cluster.gpu_driver,
                ),
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

        if pools:
            GpuSoftware(
                f"{name}-gpu-software",
                GpuSoftwareArgs(config.cluster.gpu_driver, GPU_SYSTEM_NAMESPACE),
                opts=pulumi.ResourceOptions.merge(
                    on_cluster,
                    pulumi.ResourceOptions(
                        depends_on=[namespaces.namespaces[GPU_SYSTEM_NAMESPACE], *pools]
                    ),
                ),
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
            "gpuPools": {pool.name: pool_summary(pool) for pool in config.gpu_pools},
            "models": {
                model.name: model_summary(model, config.engine_plans[model.name])
                for model in config.models
            },
        }
        self.register_outputs(self.outputs)


def pool_summary(pool: GpuPool) -> dict[str, Any]:
    """A GPU pool as the stack outputs and the plan summary show it."""
    return {
        "vmSize": pool.vm_size,
        "gpu": f"{pool.sku.gpus}x {pool.sku.gpu_model}",
        "minCount": pool.min_count,
        "maxCount": pool.max_count,
        "spot": pool.spot,
        "osDisk": f"{pool.os_disk.size_gib} GiB {pool.os_disk.kind.lower()}",
        # As the pool is billed, and priced the other way for comparison.
        "monthlyCostUsd": cost_summary(pool.monthly_cost()),
        "monthlyCostUsdIfSpot" if not pool.spot else "monthlyCostUsdIfOnDemand": cost_summary(
            pool.monthly_cost(spot=not pool.spot)
        ),
    }


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
    else:
        summary["cpuMemoryGiB"] = round(sizing.cpu_memory_gib(spec, plan.shape), 2)
    if plan.engine_args:
        summary["engineArgs"] = list(plan.engine_args)
    return summary
