"""Join the Ray cluster a config names, or start one on this machine.

``ray.address: null`` (the default) starts Ray in this process's machine, bound to 127.0.0.1 with the
dashboard off, so nothing is reachable from the network; ``auto`` joins the cluster ``ray start`` runs
on this machine; ``HOST:PORT`` joins a cluster's head node. A process connects once: a Ray that is
already initialised (a notebook, a test's cluster) is used as it is.
"""

from __future__ import annotations

import math
import os
from typing import Any

from roboreward.errors import ConfigError, SetupError
from roboreward.experiment import RayConfig

# Environment variables the env and reward code reads, handed to every Ray worker of the job (workers on
# other machines do not inherit this process's environment).
_FORWARDED_ENV = ("MUJOCO_GL", "PYOPENGL_PLATFORM", "HF_HUB_CACHE", "HF_HOME", "ROBOREWARD_MODEL_CACHE")


def import_ray() -> Any:
    try:
        import ray
    except ImportError as e:  # pragma: no cover - ray is a dependency of the package
        raise SetupError("Ray is not installed: pip install 'ray==2.60.0' (env.backend: ray, reward.server: ray)") from e
    return ray


def connect(config: RayConfig, cpus_needed: float = 0.0) -> Any:
    """Ray, initialised for this job; returns the ``ray`` module.

    :param cpus_needed: logical CPUs the job's actors reserve. A local instance is started with at least
        that many (and the machine's core count), so ``n_envs`` actors all start on a small machine; on a
        cluster Ray places them where CPUs are free and waits when there are none.
    """
    ray = import_ray()
    if ray.is_initialized():
        return ray
    env_vars = {key: os.environ[key] for key in _FORWARDED_ENV if key in os.environ}
    common: dict[str, Any] = dict(
        include_dashboard=False,
        logging_level="WARNING",
        namespace=config.namespace,
        runtime_env={"env_vars": env_vars} if env_vars else None,
    )
    if config.address is None:
        use_loopback(ray)
        cpus = max(os.cpu_count() or 1, math.ceil(cpus_needed))
        ray.init(_node_ip_address="127.0.0.1", num_cpus=cpus, **common)
        return ray
    try:
        ray.init(address=config.address, **common)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise ConfigError(
            f"could not join the Ray cluster at ray.address={config.address!r}: {e}; start it with `ray start --head` "
            "on the head node (and `ray start --address HEAD:PORT` on the others), or drop --ray-address to run Ray "
            "on this machine only"
        ) from e
    return ray


def use_loopback(ray: Any) -> None:
    """Make the Ray instance this process starts use 127.0.0.1 for every node address.

    ``ray.init(_node_ip_address=...)`` alone still registers the node under the machine's network address;
    Ray uses loopback throughout when its multi-machine mode is off, which it reads from the environment
    when imported (so the processes it starts inherit the setting) — and this process, which may have
    imported Ray already, is told directly. No login on a private loopback instance either.
    """
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False


def cluster_gpus() -> float:
    """GPUs the connected cluster has in all (0 on a CPU-only cluster)."""
    return float(import_ray().cluster_resources().get("GPU", 0.0))
