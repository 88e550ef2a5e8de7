"""`jobstream bench --quick` end to end against the stack: every figure has numbers, every plot is written.

This is how CI proves the benchmark still works; its figures are not asserted (the machine is shared and
noisy), except one property the design promises: a job's Temporal history does not grow with its tokens.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from bench import command, report
from jobstream.settings import Settings

FIGURES = {"1", "2", "3", "4", "5", "6", "7", "8", "9"}
PLOTS = ["1-submit.png", "2-ttft.png", "3-per-token.png", "4-fanout.png", "5-streams.png", "6-throughput.png"]
PLOTS += ["7-writes.png", "8-instrumentation.png", "9-scale-out.png"]


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


async def test_quick_bench_writes_every_figure(stack: Settings, tmp_path: Path) -> None:
    results = await command.run(quick=True, out=tmp_path, say=print)  # shown if the test fails
    table = report.write(results, tmp_path)

    data = json.loads((tmp_path / "results.json").read_text())
    assert data["mode"] == "quick"
    assert set(data["figures"]) == FIGURES
    for key, figure in data["figures"].items():
        assert figure["rows"], f"figure {key} has no rows"
        for line in figure["rows"]:
            assert is_number(line["ours"]), (key, line)
            if line["baseline_name"] and line["baseline"] not in (None, 0.0):
                assert is_number(line["baseline"]), (key, line)
                assert is_number(line["ratio"]), (key, line)
        # Each figure has at least one comparison with a baseline measured in this run.
        assert any(is_number(line["ratio"]) for line in figure["rows"]), f"figure {key} has no ratio"

    # Tokens never enter Temporal: twice the tokens, exactly the same events from the workflow's own code.
    # (Workflow-task bookkeeping is left out: timing merges or splits tasks, and local activities that run
    # long add task heartbeats, which moved the total by 7 events in one run with the same token count.)
    short, long = data["figures"]["5"]["series"]["ours_workflow_events"]
    assert short == long, (short, long)

    ttft = data["figures"]["2"]["measured"]
    assert 0 < ttft["direct_ttft_ms"]["p50"] < ttft["ttft_ms"]["p50"]

    for name in PLOTS:
        png = (tmp_path / name).read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n"), name
    assert "| # | metric | ours | baseline | ratio |" in table
    assert table in (tmp_path / "results.md").read_text()
