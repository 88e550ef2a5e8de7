"""The benchmark's report without a stack: the table (and its "before" column), the --before file it is read
from, and the plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("matplotlib")  # the bench dependency group
pytest.importorskip("psutil")

from bench import command, report, writes
from bench.common import row
from tests.unit.bench_samples import sample_stack

KINDS = dict.fromkeys(writes.KINDS, 3.0)
SERIES: dict[str, dict[str, Any]] = {
    "4": {
        "streams": [1000],
        "delivered_per_s": [1.0],
        "p99_ms": [2.0],
        "cpu_percent": [3.0],
        "cpu_us_per_event": [4.0],
        "rss_mib": [5.0],
    },
    "7": {"ours_writes": [14.0, 15.5], "floor_writes": [6.0, None], "ours_history": KINDS, "floor_history": KINDS},
}


def _results(started: str, rows: dict[str, list[dict[str, Any]]], stack: dict[str, Any] | None) -> dict[str, Any]:
    results: dict[str, Any] = {
        "mode": "full",
        "started": started,
        "duration_s": 400.0,
        "machine": {"cpus": 2, "load_before": 1.0, "load_after": 2.0},
        "figures": {
            key: {"title": f"Figure {key}", "rows": lines, "series": SERIES[key]} for key, lines in rows.items()
        },
    }
    if stack is not None:
        results["stack"] = stack
    return results


NOW = _results(
    "2026-02-02 10:00 UTC",
    {
        "4": [
            row("1000 streams / 50 jobs: latency p99", "ms", 120.0, 30.0, "1 stream on 1 job"),
            row("1000 streams / 50 jobs: bridge CPU per delivered event", "µs", 18.5, 40.0, "1 stream on 1 job"),
            row("5000 streams / 50 jobs: skipped", "", None, None, "", "the bridge's open-file limit is 1024"),
        ],
        "7": [row("write transactions per generate job (8 tokens), median", "", 14.0, 6.0, "floor")],
    },
    sample_stack(dynamic_config={"matching.numTaskqueueReadPartitions": "1"}),
)
BEFORE = _results(
    "2026-01-01 09:00 UTC",
    {"4": [row("1000 streams / 50 jobs: latency p99", "ms", 700.0, 25.0, "1 stream on 1 job")]},
    None,  # an older results.json, from before the stack section existed
)


def test_the_table_without_before_keeps_its_columns_and_names_the_stack() -> None:
    table = report.render_table(NOW)
    assert "| # | metric | ours | baseline | ratio |" in table
    assert (
        "Temporal dev server: dynamic config matching.numTaskqueueReadPartitions=1; "
        "SQLite journal_mode=delete (default), synchronous=full (default); 1 GPU worker (tinylm); bridge pid 13."
    ) in table
    p99 = "| 4 | Figure 4: 1000 streams / 50 jobs: latency p99 |"
    assert f"{p99} 120 ms | 30.0 ms (1 stream on 1 job) | 4.00x |" in table
    # A row this run could not measure shows why instead of a number.
    skipped = "| 4 | Figure 4: 5000 streams / 50 jobs: skipped |"
    assert f"{skipped} - (the bridge's open-file limit is 1024) | - | - |" in table


def test_the_before_column_holds_the_older_runs_value_of_the_same_row() -> None:
    table = report.render_table(NOW, BEFORE)
    assert "| # | metric | before | ours | baseline | ratio |" in table
    assert "| 4 | Figure 4: 1000 streams / 50 jobs: latency p99 | 700 ms | 120 ms |" in table
    # Rows the older run did not have: "-".
    assert "| 4 | Figure 4: 1000 streams / 50 jobs: bridge CPU per delivered event | - | 18.5 µs |" in table
    assert "| 7 | Figure 7: write transactions per generate job (8 tokens), median | - | 14 |" in table
    assert "Before: full run, 2026-01-01 09:00 UTC, 2 cores" in table
    assert "stack settings not recorded." in table


def test_write_puts_the_before_table_into_results_md(tmp_path: Path) -> None:
    table = report.write(NOW, tmp_path, BEFORE)
    assert "| before |" in (tmp_path / "results.md").read_text()
    assert table in (tmp_path / "results.md").read_text()
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["figures"]["4"]["rows"][2]["ours"] is None


def test_load_before_refuses_what_is_not_a_results_json(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text(json.dumps(BEFORE))
    assert command.load_before(str(path))["started"] == "2026-01-01 09:00 UTC"
    path.write_text("[]")
    with pytest.raises(SystemExit, match=r"not a bench results\.json"):
        command.load_before(str(path))
    with pytest.raises(SystemExit, match="--before"):
        command.load_before(str(tmp_path / "missing.json"))


def test_the_writes_and_fanout_plots(tmp_path: Path) -> None:
    series = SERIES["7"]
    report.plot_all({"figures": {"7": {"series": series}, "4": {"series": SERIES["4"]}}}, tmp_path)
    assert (tmp_path / "7-writes.png").read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "4-fanout.png").read_bytes().startswith(b"\x89PNG")
    # Not measurable (WAL): no bars, a plot all the same.
    report.plot_all({"figures": {"7": {"series": series | {"ours_writes": [None], "floor_writes": [None]}}}}, tmp_path)
    assert (tmp_path / "7-writes.png").exists()
