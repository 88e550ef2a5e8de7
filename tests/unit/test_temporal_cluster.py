"""devstack/temporal_cluster.py: each node of the cluster profile's Temporal gets a port block of its own, all
four services on the same PostgreSQL, and an absolute path to its dynamic config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from devstack import kafka, temporal_cluster


def ports(config: dict[str, Any]) -> set[int]:
    return {
        port for service in config["services"].values() for port in service["rpc"].values() if isinstance(port, int)
    }


def test_two_nodes_share_the_database_and_no_port() -> None:
    first: dict[str, Any] = temporal_cluster.node_config("127.0.0.1", 17300, 15432, "127.0.0.1:17300")
    second: dict[str, Any] = temporal_cluster.node_config("127.0.0.1", 17310, 15432, "127.0.0.1:17300")
    assert len(ports(first)) == len(temporal_cluster.PORT_OFFSETS)
    assert not ports(first) & ports(second)
    assert max(ports(first)) < 17300 + temporal_cluster.PORTS_PER_NODE
    for config in (first, second):
        stores = config["persistence"]["datastores"]
        assert {store["sql"]["connectAddr"] for store in stores.values()} == {"127.0.0.1:15432"}
        assert {store["sql"]["pluginName"] for store in stores.values()} == {"postgres12"}
    assert temporal_cluster.frontend_port(17310) == second["services"]["frontend"]["rpc"]["grpcPort"]


def test_a_nodes_files_name_its_dynamic_config_by_absolute_path(tmp_path: Path) -> None:
    config = temporal_cluster.node_config("127.0.0.1", 17300, 15432, "127.0.0.1:17300")
    temporal_cluster.write_node(tmp_path, config, {"matching.enableFairness": True})
    written = yaml.safe_load((tmp_path / "config" / "development.yaml").read_text())
    assert written["dynamicConfigClient"]["filepath"] == str(tmp_path / "dynamicconfig.yaml")
    assert yaml.safe_load((tmp_path / "dynamicconfig.yaml").read_text()) == {
        "matching.enableFairness": [{"value": True}]
    }


def test_a_kafka_cluster_node_names_every_voter_and_keeps_a_majority_in_sync(tmp_path: Path) -> None:
    (tmp_path / "kraft-logs").mkdir()
    (tmp_path / "kraft-logs" / "meta.properties").write_text("")  # formatted already: no JVM needed here
    voters = "1@127.0.0.1:19192,2@127.0.0.1:19193,3@127.0.0.1:19194"
    written = kafka.prepare(Path("/libs"), tmp_path, "127.0.0.1", 19093, 19193, node_id=2, voters=voters, replication=3)
    properties = dict(line.split("=", 1) for line in written.read_text().splitlines() if "=" in line)
    assert properties["node.id"] == "2"
    assert properties["controller.quorum.voters"] == voters
    assert properties["default.replication.factor"] == "3"
    assert properties["min.insync.replicas"] == "2"
    assert properties["unclean.leader.election.enable"] == "false"
