"""`jobstream bench`, registered as an entry point in pyproject.toml; the benchmark (and matplotlib, from the
`bench` dependency group) loads only when it runs."""

from __future__ import annotations

import argparse

from jobstream.subcommands import Subcommand


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="small sizes, well under a minute (what CI runs)")
    parser.add_argument("--out", help="results folder (default bench/results/<timestamp>/)")
    parser.add_argument("--update-readme", action="store_true", help="put this full run's table into README.md")
    parser.add_argument(
        "--before", metavar="RESULTS_JSON", help="an older run's results.json: its figures in a 'before' column"
    )
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="against the cluster profile (jobstream up --cluster), through its edge: figures 1, 2 and 6 "
        "(with --update-readme, into the README's cluster table, --before being the single-node run)",
    )
    parser.add_argument("--figures", metavar="KEYS", help="only these figures, e.g. 1,2,6")


def _run(args: argparse.Namespace) -> int:
    try:
        from bench.command import main
    except ModuleNotFoundError as exc:
        raise SystemExit(f"jobstream bench needs the bench dependency group ({exc}): uv sync --group bench") from exc
    figures = [key.strip() for key in args.figures.split(",")] if args.figures else None
    return main(args.quick, args.out, args.update_readme, args.before, args.cluster, figures)


bench = Subcommand("measure the stack against direct Triton and Temporal streaming", _configure, _run)
