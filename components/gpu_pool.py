"""GPU node pools: one AKS AgentPool resource per configured pool.

Pools are separate AgentPool resources, never inline in the cluster: AKS rejects adding inline
pools after creation, and editing them disturbs every pool. A pool's VM size cannot change in
place; a change replaces the pool (and its nodes).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import containerservice

from components.config import GpuPool

# Every GPU node carries this taint so that only pods that ask for a GPU land there. AKS has
# no ExtendedResourceToleration admission, so GPU workloads tolerate it explicitly.
GPU_TAINT = "nvidia.com/gpu=present:NoSchedule"
# Label GPU workloads select their pool by.
POOL_LABEL = "slm-deploy/pool"


@dataclass(frozen=True)
class GpuPoolArgs:
    pool: GpuPool
    resource_group_name: pulumi.Input[str]
    cluster_name: pulumi.Input[str]


class GpuNodePool(pulumi.ComponentResource):
    """One autoscaled, tainted GPU agent pool."""

    def __init__(self, name: str, args: GpuPoolArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("slm:gpu_pool:GpuNodePool", name, None, opts)
        pool = args.pool
        spot = (
            {
                "scale_set_priority": "Spot",
                # Delete (not Deallocate): evicted spot nodes free their quota at once.
                "scale_set_eviction_policy": "Delete",
                # -1: pay up to the on-demand price rather than be evicted on price.
                "spot_max_price": -1,
            }
            if pool.spot
            else {"scale_set_priority": "Regular"}
        )
        self.agent_pool = containerservice.AgentPool(
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
            os_disk_size_gb=pool.os_disk_size_gb,
            node_labels={POOL_LABEL: pool.name},
            node_taints=[GPU_TAINT],
            **spot,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs(
            {"vmSize": pool.vm_size, "minCount": pool.min_count, "maxCount": pool.max_count}
        )
