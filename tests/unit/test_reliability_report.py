"""devstack/reliability.py without a stack: records in, a README table out."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack import reliability


def test_records_round_trip_and_render_with_a_total(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "results.jsonl"
    monkeypatch.setenv(reliability.OUT_ENV, str(out))
    first = reliability.Record(fault="1. something | killed", inputs=1, jobs=3, events=384, outcome="passed")
    first.note("2 reconnects")
    reliability.append(first)
    reliability.append(reliability.Record(fault="load", jobs=20, events=1160, lost=1, outcome="failed"))
    records = reliability.load(out)
    assert [r.fault for r in records] == ["1. something | killed", "load"]
    table = reliability.render(records, full=True, seconds=90)
    assert "| 1. something \\| killed | 1 | 3 | 384 | 0 | 0 | 0 | passed (2 reconnects) |" in table
    assert "| **total** | 1 | 23 | 1544 | 1 | 0 | 0 | 1 of 2 passed |" in table
    assert "full size, 1.5 min (`jobstream reliability --full`)" in table


def test_nothing_is_written_outside_a_reliability_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(reliability.OUT_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    reliability.append(reliability.Record(fault="x"))
    assert list(tmp_path.iterdir()) == []


def test_the_table_replaces_what_is_between_the_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# t\n\n{reliability.START}\nold\n{reliability.END}\n\n## after\n")
    assert reliability.update("| new |", readme)
    assert readme.read_text() == f"# t\n\n{reliability.START}\n| new |\n{reliability.END}\n\n## after\n"
    assert not reliability.update("| new |", readme)
    readme.write_text("# no markers\n")
    with pytest.raises(ValueError, match="reliability"):
        reliability.update("| new |", readme)
