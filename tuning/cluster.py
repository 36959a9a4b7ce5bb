"""Connecting to Ray: a local runtime on this machine, or an existing cluster.

Nothing here schedules, retries or stores anything: that is Ray's job. This module only
chooses how ``ray.init`` is called, once, for tuning and for the reruns alike.
"""

from __future__ import annotations

import os

import ray

LOCAL_HOST = "127.0.0.1"


def connect(address: str | None = None, num_cpus: int | None = None,
            num_gpus: int | None = None) -> bool:
    """Start or join Ray unless this process is already connected.

    ``address``: ``HOST:PORT`` or ``auto`` joins an existing cluster (whose nodes already
    declared their CPUs and GPUs, so no counts are passed); None starts a local runtime
    bound to loopback with ``num_cpus`` (default: all cores). Returns True when this call
    connected, so the caller knows it should disconnect.
    """
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address:
        ray.init(address=address, log_to_driver=True)
    else:
        ray.init(num_cpus=num_cpus or os.cpu_count(), num_gpus=num_gpus, include_dashboard=False,
                 _node_ip_address=LOCAL_HOST, log_to_driver=True)
    return True


def available(resource: str) -> float:
    """Total amount of ``resource`` ("CPU", "GPU") in the connected cluster."""
    return float(ray.cluster_resources().get(resource, 0.0))
