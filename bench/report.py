"""The benchmark's outputs: results.json, a markdown table (also spliced into README.md), PNG plots."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from bench.stack_info import summary_line
from devstack.readme import replace_section
from jobstream.settings import PROJECT_ROOT

START = "<!-- bench:start -->"
END = "<!-- bench:end -->"
CLUSTER_START = "<!-- bench-cluster:start -->"
CLUSTER_END = "<!-- bench-cluster:end -->"


def _number(value: float | None, unit: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    magnitude = abs(value)
    if unit in ("events", "") or magnitude >= 100:
        text = f"{value:,.0f}"
    elif magnitude >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip() if unit not in ("", "events") else text


def _header(results: dict[str, Any]) -> str:
    machine = results["machine"]
    return (
        f"{results['mode']} run, {results['started']}, {machine['cpus']} cores (load average "
        f"{machine['load_before']:.1f} before, {machine['load_after']:.1f} after), {results['duration_s']:.0f} s."
    )


def _before_values(before: dict[str, Any]) -> dict[tuple[str, str], float | None]:
    """(figure key, metric text) -> that row's `ours`, in an older results.json."""
    values: dict[tuple[str, str], float | None] = {}
    for key, figure in before.get("figures", {}).items():
        for line in figure.get("rows", []):
            values[(str(key), line["metric"].strip())] = line.get("ours")
    return values


def render_table(results: dict[str, Any], before: dict[str, Any] | None = None) -> str:
    """The markdown table; with `before` (an older results.json) a "before" column holds the `ours` of
    the row with the same figure and metric there ("-" where that run had no such row)."""
    lines = [f"{_header(results)} Ratio = ours / baseline, both measured in this run.", ""]
    lines.append(summary_line(results.get("stack")) + ".")
    # A cluster run is compared with the single-node stack: its "before" is that run.
    on_cluster = (results.get("stack") or {}).get("profile") == "cluster"
    earlier_name, ours_name = ("single node", "cluster") if on_cluster else ("before", "ours")
    if before is not None:
        lines += ["", f"{earlier_name.capitalize()}: {_header(before)} {summary_line(before.get('stack'))}."]
    lines.append("")
    if before is None:
        lines += [f"| # | metric | {ours_name} | baseline | ratio |", "| --- | --- | --- | --- | --- |"]
    else:
        lines += [
            f"| # | metric | {earlier_name} | {ours_name} | baseline | ratio |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
    earlier = _before_values(before) if before is not None else {}
    for key, figure in results["figures"].items():
        for line in figure["rows"]:
            unit = line["unit"]
            baseline = _number(line["baseline"], unit)
            if line["baseline_name"] and line["baseline"] is not None:
                baseline += f" ({line['baseline_name']})"
            ratio = "-" if line["ratio"] is None else f"{line['ratio']:.2f}x"
            metric = f"{figure['title']}: {line['metric'].strip()}"
            ours = _number(line["ours"], unit)
            if line["ours"] is None and line.get("note"):
                ours = f"- ({line['note']})"
            cells = [key, metric, ours, baseline, ratio]
            if before is not None:
                cells.insert(2, _number(earlier.get((str(key), line["metric"].strip())), unit))
            lines.append(f"| {' | '.join(cells)} |")
    return "\n".join(lines)


def write(results: dict[str, Any], out: Path, before: dict[str, Any] | None = None) -> str:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(_finite(results), indent=2, allow_nan=False) + "\n")
    table = render_table(results, before)
    (out / "results.md").write_text(f"# jobstream bench\n\n{table}\n")
    plot_all(results, out)
    return table


def _finite(value: Any) -> Any:
    """NaN (a statistic of no samples) becomes null: strict JSON has no NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def update_readme(table: str, readme: Path = PROJECT_ROOT / "README.md", cluster: bool = False) -> bool:
    """Rewrite the table between the bench markers (the cluster's, with `cluster`); True if it changed."""
    start, end = (CLUSTER_START, CLUSTER_END) if cluster else (START, END)
    return replace_section(start, end, table, readme)


# -- plots ------------------------------------------------------------------------------------------------


def _save(fig: Any, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _cdf(ax: Axes, values: list[float], label: str) -> None:
    ranked = sorted(v for v in values if v is not None and math.isfinite(v))
    if ranked:
        ax.plot(ranked, [(i + 1) / len(ranked) for i in range(len(ranked))], label=label)


def plot_all(results: dict[str, Any], out: Path) -> None:
    figures = results["figures"]
    plotters = {"1": _plot_submit, "2": _plot_ttft, "3": _plot_per_token, "4": _plot_fanout}
    plotters |= {"5": _plot_streams, "6": _plot_throughput, "7": _plot_writes, "8": _plot_instrumentation}
    plotters |= {"9": _plot_scale_out}
    for key, plot in plotters.items():
        if key in figures:
            plot(figures[key]["series"], out)


def _plot_submit(series: dict[str, Any], out: Path) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    x = series["concurrency"]
    left.plot(x, series["ours_p50"], "o-", label="SubmitJob p50")
    left.plot(x, series["ours_p99"], "o--", label="SubmitJob p99")
    left.plot(x, series["base_p50"], "s-", label="start_workflow p50")
    left.plot(x, series["base_p99"], "s--", label="start_workflow p99")
    left.set(xscale="log", xlabel="concurrency", ylabel="ms", title="submit latency")
    left.legend()
    right.plot(x, series["ours_rate"], "o-", label="SubmitJob")
    right.plot(x, series["base_rate"], "s-", label="start_workflow")
    right.set(xscale="log", xlabel="concurrency", ylabel="per second", title="sustained submits")
    right.legend()
    _save(fig, out / "1-submit.png")


def _plot_ttft(series: dict[str, Any], out: Path) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    bottom = 0.0
    for hop, value in series["hop_p50_ms"].items():
        value = value if math.isfinite(value) else 0.0
        left.bar(["jobstream (hop medians)"], [value], bottom=bottom, label=hop)
        bottom += value
    direct = sorted(series["direct_ms"])
    left.bar(["Triton direct"], [direct[len(direct) // 2] if direct else 0.0], color="grey")
    left.set(ylabel="ms", title="time to first token")
    left.legend(fontsize="small")
    _cdf(right, series["ttft_ms"], "jobstream")
    _cdf(right, series["direct_ms"], "Triton direct")
    right.set(xscale="log", xlabel="ms", ylabel="fraction of runs", title="TTFT distribution")
    right.legend()
    _save(fig, out / "2-ttft.png")


def _plot_per_token(series: dict[str, Any], out: Path) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    _cdf(left, series["added_ms"], "worker stamp -> SSE client")
    left.set(xlabel="ms", ylabel="fraction of tokens", title="added latency per token")
    left.legend()
    _cdf(right, series["gaps_ms"], "SSE client")
    _cdf(right, series["direct_gaps_ms"], "Triton direct")
    right.set(xlabel="ms", ylabel="fraction of gaps", title="gap between consecutive tokens")
    right.legend()
    _save(fig, out / "3-per-token.png")


def _plot_fanout(series: dict[str, Any], out: Path) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    x = series["streams"]
    axes[0].plot(x, series["delivered_per_s"], "o-")
    axes[0].set(xscale="log", xlabel="concurrent SSE streams", ylabel="token events/s", title="delivered")
    axes[1].plot(x, series["p99_ms"], "o-")
    axes[1].set(xscale="log", xlabel="concurrent SSE streams", ylabel="ms", title="latency p99")
    axes[2].plot(x, series["cpu_percent"], "o-", label="CPU % of a core")
    if "cpu_us_per_event" in series:  # absent from results.json written before it was measured
        axes[2].plot(x, series["cpu_us_per_event"], "^-", label="CPU µs per delivered event")
    axes[2].plot(x, series["rss_mib"], "s-", label="RSS MiB")
    axes[2].set(xscale="log", xlabel="concurrent SSE streams", title="bridge process")
    axes[2].legend()
    _save(fig, out / "4-fanout.png")


def _plot_streams(series: dict[str, Any], out: Path) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    x = series["tokens"]
    axes[0].plot(x, series["ours_history"], "o-", label="jobstream (Kafka)")
    axes[0].plot(x, series["theirs_history"], "s-", label="workflow_streams")
    axes[0].set(xlabel="tokens per job", ylabel="history events", title="Temporal history per job")
    axes[0].legend()
    axes[1].plot(x, series["ours_p50_ms"], "o-", label="jobstream (Kafka)")
    axes[1].plot(x, series["theirs_p50_ms"], "s-", label="workflow_streams")
    axes[1].set(xlabel="tokens per job", ylabel="ms", title="per-token latency p50")
    axes[1].legend()
    axes[2].plot(x, series["ours_tokens_per_s"], "o-", label="jobstream (Kafka)")
    axes[2].plot(x, series["theirs_tokens_per_s"], "s-", label="workflow_streams")
    axes[2].set(xlabel="tokens per job", ylabel="tokens/s", title="tokens per second at the client")
    axes[2].legend()
    _save(fig, out / "5-streams.png")


def _plot_throughput(series: dict[str, Any], out: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    _cdf(ax, series["ours_latency_ms"], "jobstream job")
    _cdf(ax, series["base_latency_ms"], "Triton direct stream")
    ax.set(xscale="log", xlabel="ms (submit -> terminal event)", ylabel="fraction of jobs", title="end-to-end")
    ax.legend()
    _save(fig, out / "6-throughput.png")


def _plot_writes(series: dict[str, Any], out: Path) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    ours = [v for v in series["ours_writes"] if v is not None]
    floor = [v for v in series["floor_writes"] if v is not None]
    if ours or floor:
        left.bar([f"job {i + 1}" for i in range(len(ours))], ours, label="generate job (8 tokens)")
        left.bar([f"floor {i + 1}" for i in range(len(floor))], floor, color="grey", label="one-activity workflow")
        left.legend(fontsize="small")
    else:
        left.text(0.5, 0.5, "not measurable\n(WAL or no local database)", ha="center", va="center")
    left.set(ylabel="SQLite write transactions", title="durable writes per job (idle rate subtracted)")
    left.tick_params(axis="x", labelrotation=45)
    kinds = list(series["ours_history"])
    positions = range(len(kinds))
    right.barh([p + 0.2 for p in positions], [series["ours_history"][k] for k in kinds], 0.4, label="generate job")
    right.barh(
        [p - 0.2 for p in positions],
        [series["floor_history"][k] for k in kinds],
        0.4,
        color="grey",
        label="one-activity workflow",
    )
    right.set_yticks(list(positions), kinds)
    right.set(xlabel="events (median per job)", title="Temporal history per job")
    right.legend(fontsize="small")
    _save(fig, out / "7-writes.png")


def _plot_instrumentation(series: dict[str, Any], out: Path) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for name in ("on", "off"):
        _cdf(left, series[name]["submit_ms"], f"metrics {name}")
        _cdf(right, series[name]["added_ms"], f"metrics {name}")
    left.set(xlabel="SubmitJob latency, c=1 (ms)", ylabel="fraction", title="SubmitJob")
    right.set(xlabel="added latency per token (ms)", title="worker stamp -> SSE client")
    left.legend(fontsize="small")
    right.legend(fontsize="small")
    _save(fig, out / "8-instrumentation.png")


def _plot_scale_out(series: dict[str, Any], out: Path) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    x = series["replicas"]
    left.plot(x, series["records_read_per_replica"], "o-", label="measured")
    if x:
        whole = series["records_read_per_replica"][0] * x[0]
        left.plot(x, [whole / r for r in x], "k:", label="whole topic / R")
    left.set(xlabel="bridge replicas R", ylabel="records/s", title="records each replica's tail reads")
    left.legend()
    right.plot(x, series["cpu_percent_per_replica"], "o-")
    right.set(xlabel="bridge replicas R", ylabel="% of a core", title="CPU per replica, same total load")
    _save(fig, out / "9-scale-out.png")
