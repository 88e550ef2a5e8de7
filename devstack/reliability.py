"""`jobstream reliability [--full]`: run the fault, load and bad-input suites against the real stack and
write what they found into the README's reliability table.

Each test of the suite appends one JSON line (a `Record`) to the file named by `JOBSTREAM_RELIABILITY_OUT`:
the fault it injected, how many inputs it tried, jobs it ran, events it checked, and what was lost,
duplicated or misrouted. This module runs pytest with that variable set, then renders the lines.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from devstack.readme import replace_section
from jobstream.settings import PROJECT_ROOT

OUT_ENV = "JOBSTREAM_RELIABILITY_OUT"
SUITE_ENV = "JOBSTREAM_SUITE"
START = "<!-- reliability:start -->"
END = "<!-- reliability:end -->"
# The suite: the fault, load and bad-input tests, and the GPU-worker kill that lives with the streaming tests.
SUITE = ["tests/stack/faults", "tests/stack/test_streaming_faults.py"]
# On the cluster profile: each node's death, through the edge (`--cluster`), in a table of its own.
CLUSTER_SUITE = ["tests/cluster/test_cluster_faults.py"]
CLUSTER_START = "<!-- reliability-cluster:start -->"
CLUSTER_END = "<!-- reliability-cluster:end -->"


@dataclass
class Record:
    """What one test of the suite did and found; `lost`, `duplicated` and `misrouted` should stay 0."""

    fault: str
    inputs: int = 0
    jobs: int = 0
    events: int = 0
    lost: int = 0
    duplicated: int = 0
    misrouted: int = 0
    notes: list[str] = field(default_factory=list)
    test: str = ""
    outcome: str = ""
    seconds: float = 0.0

    def note(self, text: str) -> None:
        self.notes.append(text)


def append(record: Record) -> None:
    """Add the record to the run's results file; outside `jobstream reliability` there is none."""
    out = os.environ.get(OUT_ENV)
    if not out:
        return
    with open(out, "a") as results:
        results.write(json.dumps(asdict(record)) + "\n")


def load(path: Path) -> list[Record]:
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    return [Record(**json.loads(line)) for line in lines if line.strip()]


def render(records: list[Record], full: bool, seconds: float, cluster: bool = False) -> str:
    rows = [
        "| fault | inputs tried | jobs run | events checked | lost | duplicated | misrouted | result |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in sorted(records, key=_order):
        notes = "; ".join(r.notes).replace("|", "\\|")
        result = r.outcome + (f" ({notes})" if notes else "")
        fault = r.fault.replace("|", "\\|")
        rows.append(
            f"| {fault} | {r.inputs} | {r.jobs} | {r.events} | {r.lost} | {r.duplicated} | {r.misrouted} | {result} |"
        )
    total = Record(fault="**total**")
    for r in records:
        total.inputs += r.inputs
        total.jobs += r.jobs
        total.events += r.events
        total.lost += r.lost
        total.duplicated += r.duplicated
        total.misrouted += r.misrouted
    passed = sum(r.outcome == "passed" for r in records)
    rows.append(
        f"| **total** | {total.inputs} | {total.jobs} | {total.events} | {total.lost} | {total.duplicated} "
        f"| {total.misrouted} | {passed} of {len(records)} passed |"
    )
    size, command = ("full", "jobstream reliability --full") if full else ("reduced", "jobstream reliability")
    if cluster:
        command = command.replace("reliability", "reliability --cluster")
    heading = f"Last run: {time.strftime('%Y-%m-%d')}, {size} size, {seconds / 60:.1f} min (`{command}`)."
    return heading + "\n\n" + "\n".join(rows)


def _order(record: Record) -> tuple[int, int]:
    """Numbered faults in the issue's order (C1, C2, ... on the cluster), then load, then bad input (stable
    within each)."""
    number = record.fault.split(".", 1)[0].removeprefix("C")
    if number.isdigit():
        return 0, int(number)
    return (1 if record.fault.startswith("load") else 2), 0


def update(table: str, readme: Path = PROJECT_ROOT / "README.md", cluster: bool = False) -> bool:
    """Rewrite the table between the markers; True if the file changed."""
    start, end = (CLUSTER_START, CLUSTER_END) if cluster else (START, END)
    return replace_section(start, end, table, readme)


def run(
    full: bool, pytest_args: list[str] | None = None, readme: Path = PROJECT_ROOT / "README.md", cluster: bool = False
) -> int:
    """Run the suite (the cluster's with `cluster`) and print its table; a full run of the whole suite also
    writes it into the README. Returns pytest's exit code."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="jobstream-reliability-") as tmp:
        out = Path(tmp) / "results.jsonl"
        env = {**os.environ, OUT_ENV: str(out), SUITE_ENV: "full" if full else "reduced"}
        suite = CLUSTER_SUITE if cluster else SUITE
        argv = [sys.executable, "-m", "pytest", *suite, "-p", "no:cacheprovider", *(pytest_args or [])]
        if full:
            argv.append("--full")
        code = subprocess.run(argv, cwd=PROJECT_ROOT, env=env, check=False).returncode
        records = load(out)
    if not records:
        print("jobstream reliability: no test recorded anything; README left as it was", file=sys.stderr)
        return code or 1
    table = render(records, full, time.monotonic() - started, cluster)
    print(table)
    if pytest_args or not full:
        # The README shows the whole suite at full size: a reduced or partial (-k, one file) run only prints.
        print("jobstream reliability: README left as it was (it shows the last full run: --full)")
    elif update(table, readme, cluster):
        print(f"{readme.name} updated")
    return code
