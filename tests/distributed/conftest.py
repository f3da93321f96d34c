"""A Ray cluster of three nodes on this machine (all on 127.0.0.1), shared by the distributed tests."""

import pytest

from roboreward.distributed.cluster import import_ray, use_loopback

ray = import_ray()
use_loopback(ray)  # every node address 127.0.0.1: test traffic stays on loopback


@pytest.fixture(scope="package")  # torn down before the rest of the suite runs
def ray_cluster():
    """A head node without CPUs for actors and two worker nodes, joined by this process as the driver."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    for _ in range(2):
        cluster.add_node(num_cpus=4)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, logging_level="WARNING", namespace="roboreward-tests")
    yield cluster
    ray.shutdown()
    cluster.shutdown()
