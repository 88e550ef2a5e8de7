"""The local stack's `jobstream` subcommands (`up`, `reliability`), registered as entry points in
pyproject.toml. Their heavy imports wait until the subcommand runs."""

from __future__ import annotations

import argparse
import asyncio

from jobstream.subcommands import Subcommand


def _configure_up(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fresh", action="store_true", help="delete the state directory first")
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="the cluster profile instead: Temporal's server (2 nodes) on PostgreSQL, 3 Kafka nodes, 4 MinIO "
        "servers, 2 replicas of each jobstream process behind an nginx edge (TLS); under STATE_DIR/cluster/, on "
        "ports of its own (README: Running as a cluster)",
    )


def _run_up(args: argparse.Namespace) -> int:
    from devstack.up import run, run_cluster

    return asyncio.run(run_cluster(args.fresh) if args.cluster else run(args.fresh))


def _configure_reliability(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--full", action="store_true", help="full size (200 jobs x 200 tokens, 2,000+ inputs)")
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="the cluster profile's fault matrix instead, through its edge (starts `jobstream up --cluster` "
        "unless one is up), into the README's cluster table",
    )
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (a partial run leaves README)")


def _run_reliability(args: argparse.Namespace) -> int:
    from devstack.reliability import run  # pytest and the suites load only here

    return run(args.full, args.pytest_args, cluster=args.cluster)


up = Subcommand("start the whole local stack in the foreground (Ctrl-C stops it)", _configure_up, _run_up)
reliability = Subcommand(
    "run the fault, load and bad-input suites and write the README's reliability table",
    _configure_reliability,
    _run_reliability,
)
