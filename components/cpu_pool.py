"""CPU node pools: one AKS AgentPool per configured CPU pool, for the engines that need no GPU
(ONNX Runtime GenAI). On an existing cluster the pools describe nodes that exist, and nothing
here creates them.

Like the GPU pools, each is a separate AgentPool resource (never inline in the cluster), and a
VM size change replaces the pool and its nodes. The nodes carry a taint that only the models
placed on the pool tolerate: the fit check (components/sizing.py) sizes replicas against a
node's allocatable memory and CPUs, which the cluster's own pods must not take, and a node
that nothing else uses is one the autoscaler can remove when its model scales in.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.config import CpuPool
from components.gpu_pool import POOL_LABEL, SPOT_TOLERATION, autoscaled_user_pool

CPU_POOL_TAINT_KEY = "slm-deploy/cpu-inference"
CPU_POOL_TAINT = f"{CPU_POOL_TAINT_KEY}=true:NoSchedule"


def cpu_pool_tolerations(spot: bool) -> list[dict[str, str]]:
    """What a model's pods need to land on a CPU pool's nodes."""
    cpu = {"key": CPU_POOL_TAINT_KEY, "operator": "Equal", "value": "true", "effect": "NoSchedule"}
    return [cpu, SPOT_TOLERATION] if spot else [cpu]


@dataclass(frozen=True)
class CpuPoolArgs:
    pool: CpuPool
    resource_group_name: pulumi.Input[str]
    cluster_name: pulumi.Input[str]
    # The cluster's node subnet: every pool joins the same VNet.
    subnet_id: pulumi.Input[str]


class CpuNodePool(pulumi.ComponentResource):
    """One autoscaled, tainted CPU agent pool."""

    def __init__(self, name: str, args: CpuPoolArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("slm:cpu_pool:CpuNodePool", name, None, opts)
        pool = args.pool
        self.agent_pool = autoscaled_user_pool(
            name,
            pool,
            args,
            self,
            node_labels={POOL_LABEL: pool.name},
            node_taint=CPU_POOL_TAINT,
            # None: AKS's default disk for the size (ephemeral where the VM's cache holds it).
            os_disk_size_gb=pool.os_disk_size_gb,
        )
        self.register_outputs(
            {"vmSize": pool.vm_size, "minCount": pool.min_count, "maxCount": pool.max_count}
        )
