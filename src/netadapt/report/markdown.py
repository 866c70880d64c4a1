"""``netadapt report RUN_DIR``: a Markdown report with PNG plots of one run.

Reads what the stages wrote (see :mod:`netadapt.pipeline.layout`): the search's trajectory and
family, the summary of the trained networks, the time per step; writes ``report/report.md`` and
its plots atomically.  Missing stages are reported as missing, not invented.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

from netadapt.arch.space import Architecture
from netadapt.errors import NetAdaptError
from netadapt.io import atomic_write, load_json
from netadapt.model.checkpoint import supernet_from_build
from netadapt.model.describe import describe
from netadapt.pipeline.layout import RunLayout
from netadapt.search.timing import format_timing_table, load_timing

__all__ = ["write_report"]

log = logging.getLogger(__name__)

_TABLE_COLUMNS = ("index", "type", "T", "kernel", "stride", "bn", "act", "exp", "dw", "pw", "se")


def _save_figure(fig: Any, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    atomic_write(path, lambda f: f.write(buffer.getvalue()))


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise NetAdaptError("the report needs matplotlib: pip install 'netadapt[report]'") from None
    return plt


def _markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value.is_integer() and abs(value) >= 1000:
        value = int(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if isinstance(value, int) and abs(value) >= 1_000_000:
        return f"{value / 1e6:.2f}M"
    return str(value)


def _plot_trajectory(plt: Any, trajectory: list[dict], metric: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [p["resource"] for p in trajectory]
    ys = [100 * p["accuracy"] for p in trajectory]
    ax.plot(xs, ys, "o-", markersize=3)
    ax.set_xlabel(metric)
    ax.set_ylabel("held-out accuracy with shared weights (%)")
    ax.set_title("search trajectory (best sample per iteration)")
    ax.invert_xaxis()
    ax.grid(alpha=0.3)
    _save_figure(fig, path)
    plt.close(fig)


def _plot_family(plt: Any, family: list[dict], summary: dict, metric: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([m["resource"] for m in family], [100 * m["accuracy"] for m in family], "o-", label="family (shared weights)")
    for key, marker, label in (
        ("initial", "s", "initial network (trained)"),
        ("discovered", "*", "discovered network (trained)"),
        ("baseline", "^", "uniform baseline (trained)"),
    ):
        entry = summary.get(key) or {}
        if entry.get("resource") is not None and entry.get("accuracy") is not None:
            ax.plot([entry["resource"]], [100 * entry["accuracy"]], marker, markersize=10, label=label)
    ax.set_xlabel(metric)
    ax.set_ylabel("accuracy (%)")
    ax.set_title("accuracy against resource")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save_figure(fig, path)
    plt.close(fig)


def _plot_widths(plt: Any, names: list[str], initial: Architecture, final: Architecture, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(max(6, 0.18 * len(names)), 4))
    xs = range(len(names))
    ax.bar(xs, initial.filters, color="lightgray", label="initial")
    ax.bar(xs, final.filters, color="tab:blue", width=0.6, label="discovered")
    ax.set_xticks(list(xs))
    ax.set_xticklabels(names, rotation=90, fontsize=6)
    ax.set_ylabel("filters")
    ax.set_title("width per searchable layer (0 = bypassed)")
    ax.legend()
    _save_figure(fig, path)
    plt.close(fig)


def write_report(run_dir: str | Path) -> Path:
    """Write ``RUN_DIR/report/report.md`` and its plots; returns the report's path."""
    layout = RunLayout(Path(run_dir))
    search = layout.search_dir
    if not (search / "trajectory.json").exists():
        raise NetAdaptError(f"{run_dir} has no finished search (missing {search / 'trajectory.json'})")
    plt = _pyplot()
    trajectory = load_json(search / "trajectory.json")
    family = load_json(search / "family.json") if (search / "family.json").exists() else []
    summary = load_json(layout.summary) if layout.summary.exists() else {}
    build = summary.get("build") or load_json(layout.build)
    supernet = supernet_from_build(build)
    final = Architecture.from_dict(load_json(search / "final_arch.json"))
    initial = Architecture.from_dict(trajectory[0]["arch"])
    metric = summary.get("metric", "resource")
    out = layout.report_dir
    out.mkdir(parents=True, exist_ok=True)
    _plot_trajectory(plt, trajectory, metric, out / "trajectory.png")
    _plot_family(plt, family or trajectory, summary, metric, out / "family.png")
    names = [layer.name for layer in supernet.space.layers]
    _plot_widths(plt, names, initial, final, out / "widths.png")

    lines = [f"# netadapt report: {supernet.name}", ""]
    lines += [f"Run folder: `{Path(run_dir).resolve()}`. Search metric: **{metric}**"]
    if summary.get("target") is not None:
        lines[-1] += f", target {summary['target']}"
    lines += [""]
    if summary.get("data_note"):
        lines += [f"> {summary['data_note']}", ""]
    rows = []
    # MACs and parameters have their own columns; another search metric gets one more.
    own_column = metric not in ("macs", "params")
    for key, title in (("initial", "initial network"), ("discovered", "discovered network"), ("baseline", "uniform baseline")):
        entry = summary.get(key)
        if entry:
            rows.append(
                [
                    title,
                    _fmt(None if entry.get("accuracy") is None else 100 * entry["accuracy"]),
                    *([_fmt(entry.get("resource"))] if own_column else []),
                    _fmt(entry.get("macs")),
                    _fmt(entry.get("params")),
                    _fmt(entry.get("latency_ms"), 3),
                ]
            )
    if rows:
        header = ["network", "top-1 (%)", *([metric] if own_column else []), "MACs", "parameters", "latency (ms)"]
        lines += ["## Result", "", _markdown_table(header, rows)]
        lines += [""]
    else:
        lines += ["## Result", "", "No trained networks yet (the final training stage has not run).", ""]
    lines += [
        "## Search",
        "",
        f"{len(trajectory) - 1} iterations; accuracy with the shared super-network weights on the held-out split.",
        "",
        "![trajectory](trajectory.png)",
        "",
        "![family](family.png)",
        "",
        "Family (best architecture at each budget met along the way):",
        "",
        _markdown_table(
            ["iteration", metric, "held-out accuracy (%)"],
            [[m["iteration"], _fmt(m["resource"]), _fmt(100 * m["accuracy"])] for m in (family or trajectory)],
        ),
        "",
        "## Discovered architecture",
        "",
        "Columns of the paper's Table 8 (widths = filters kept; 0 = bypassed or removed).",
        "",
    ]
    info = describe(supernet, final)
    lines += [_markdown_table(list(_TABLE_COLUMNS), [[r[c] for c in _TABLE_COLUMNS] for r in info["layers"]]), ""]
    lines += ["![widths](widths.png)", ""]
    timing = load_timing(layout.timing)
    if timing:
        lines += ["## Time per step", "", "```", format_timing_table(timing), "```", ""]
    text = "\n".join(lines)
    path = out / "report.md"
    atomic_write(path, lambda f: f.write(text.encode()))
    log.info("report written to %s", path)
    return path
