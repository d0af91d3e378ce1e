"""One PNG of all recorded results: each target, and the distributions behind them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

PASS, MISS = "#2e7d32", "#c62828"


def _targets(ax: Axes, benchmarks: dict[str, Any]) -> None:
    # Every check on one scale: 1.0 is the target, below it passes. Checks of
    # the "at least" kind are inverted so that the same rule holds.
    labels, scores, colours = [], [], []
    for name, entry in benchmarks.items():
        for check in entry.get("checks", []):
            value, limit = check["value"], check["limit"]
            if check["kind"] == "max":
                score = value / limit if limit else 0.0
            else:
                score = limit / value if value else float("inf")
            labels.append(f"{name}: {check['name']}")
            scores.append(min(score, 5.0))
            colours.append(PASS if check["passed"] else MISS)
    positions = range(len(labels))
    ax.barh(list(positions), scores, color=colours)
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_yticks(list(positions), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("measured / target (≤ 1 meets the target; capped at 5)")
    ax.set_title("Targets")


def _throughput(ax: Axes, entry: dict[str, Any]) -> None:
    sets = [k for k in ("pdf", "photo") if k in entry["figures"]]
    names = [entry["figures"][k]["workflow"] for k in sets]
    direct = [entry["figures"][k]["direct_seconds"] for k in sets]
    daemon = [entry["figures"][k]["daemon_seconds"] for k in sets]
    x = range(len(sets))
    ax.bar([i - 0.2 for i in x], direct, 0.4, label="direct (run_job in a pool)")
    ax.bar([i + 0.2 for i in x], daemon, 0.4, label="daemon (drop to last status)")
    ax.set_xticks(list(x), names)
    ax.set_ylabel("seconds")
    ax.set_title("Throughput, engine-bound")
    ax.legend(fontsize=7)


def _overhead(ax: Axes, benchmarks: dict[str, Any]) -> None:
    labels, values = [], []
    figures = benchmarks["overhead"]["figures"]
    labels += ["floor", "daemon"]
    values += [figures["floor_ms_per_job"], figures["daemon_ms_per_job"]]
    if "shell" in benchmarks:
        shell = benchmarks["shell"]["figures"]
        count = benchmarks["shell"]["parameters"]["count"]
        labels.append("shell recipe")
        values.append(shell["shell_seconds"] / count * 1000)
    ax.bar(labels, values, color=["#777777", "#1565c0", "#ef6c00"][: len(values)])
    ax.set_yscale("log")
    ax.set_ylabel("ms per job (log)")
    ax.set_title("One-page PDFs: time per job")


def _latency(ax: Axes, entry: dict[str, Any]) -> None:
    for observer, values in entry["samples"].items():
        ordered = sorted(values)
        share = [(i + 1) / len(ordered) for i in range(len(ordered))]
        ax.step(ordered, share, where="post", label=observer)
    ax.axvline(200, color="grey", linestyle=":", linewidth=1)
    poll = entry["parameters"]["poll_interval"] * 1000 + 100
    ax.axvline(poll, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("ms from arrival to conversion start, beyond settle")
    ax.set_ylabel("share of files")
    ax.set_title("Latency (targets: native p99 200 ms, polling max)")
    ax.legend(fontsize=7)


def _backlog(ax: Axes, entry: dict[str, Any]) -> None:
    samples = entry["samples"]
    ax.plot(samples["time"], samples["rss_mb"], color="#1565c0", label="daemon RSS (MB)")
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("MB")
    twin = ax.twinx()
    twin.plot(samples["time"], samples["busy"], color="#2e7d32", alpha=0.6, label="workers busy")
    twin.set_ylim(0, 1.05)
    twin.set_ylabel("share of workers busy")
    count = entry["parameters"]["count"]
    ax.set_title(f"Backlog of {count} files")


def _memory(ax: Axes, entry: dict[str, Any]) -> None:
    samples = entry["samples"]
    ax.plot(samples["jobs"], samples["rss_mb"], label="daemon")
    ax.plot(samples["jobs"], samples["worker_rss_mb"], label="largest worker")
    ax.axvline(entry["parameters"]["warmup"], color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("jobs finished")
    ax.set_ylabel("RSS (MB)")
    ax.set_ylim(bottom=0)
    ax.set_title("Memory across jobs")
    ax.legend(fontsize=7)


def plot(saved: dict[str, Any], path: Path) -> None:
    """Draw every panel whose benchmark has results; write ``path``."""
    benchmarks: dict[str, Any] = saved.get("benchmarks", {})
    panels = [("targets", lambda ax: _targets(ax, benchmarks))]
    if "throughput" in benchmarks:
        panels.append(("throughput", lambda ax: _throughput(ax, benchmarks["throughput"])))
    if "overhead" in benchmarks:
        panels.append(("overhead", lambda ax: _overhead(ax, benchmarks)))
    if "latency" in benchmarks:
        panels.append(("latency", lambda ax: _latency(ax, benchmarks["latency"])))
    if "backlog" in benchmarks:
        panels.append(("backlog", lambda ax: _backlog(ax, benchmarks["backlog"])))
    if "memory" in benchmarks:
        panels.append(("memory", lambda ax: _memory(ax, benchmarks["memory"])))
    columns = 2
    rows = (len(panels) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(13, 4.2 * rows), squeeze=False)
    for (_, draw), ax in zip(panels, axes.flat, strict=False):
        draw(ax)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    figure.suptitle("hotfolder benchmarks (one run, 2-core machine)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
