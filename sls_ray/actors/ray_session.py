"""Starting or joining Ray the way this project needs it.

``address=None`` starts a fresh local instance (never a stray cluster that RAY_ADDRESS or a
leftover ``ray start`` names), bound to loopback; an address joins that cluster. Threads in
workers are held to one BLAS thread, and the memory monitor's kills are left on as a host
safety net (our functions' memory limits are accounted, not left to it).
"""
from __future__ import annotations

import os

RAY_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # bind to 127.0.0.1 when starting locally
    "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
    "PYTHONHASHSEED": "0",
}


def ensure_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    import ray

    if ray.is_initialized():
        return
    for k, v in RAY_ENV.items():
        os.environ.setdefault(k, v)
    runtime_env = {"env_vars": {k: v for k, v in RAY_ENV.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}}
    if address:
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
    else:
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count() or 2, include_dashboard=False,
                 object_store_memory=512 * 1024 * 1024, log_to_driver=False, runtime_env=runtime_env)
