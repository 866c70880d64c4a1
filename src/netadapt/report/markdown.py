"""``netadapt report RUN_DIR``: a Markdown report with PNG plots of one run.

Reads what the stages wrote (see :mod:`netadapt.layout`): the search's trajectory and
family, the summary of the trained networks, the time per step; writes ``report/report.md`` and
its plots atomically.  Missing stages are reported as missing, not invented.

Classification runs show top-1 accuracy; depth runs RMSE, REL and δ1–δ3 (paper Table 7), and the
search's own score (the metric that compared the samples).  Numbers measured on the synthetic
depth scenes say so in every column that shows them.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

from netadapt.arch.space import Architecture
from netadapt.errors import NetAdaptError
from netadapt.io import atomic_write, load_json
from netadapt.layout import RunLayout
from netadapt.model.checkpoint import supernet_from_build
from netadapt.model.describe import cell, describe
from netadapt.search.records import record_score, record_score_name
from netadapt.search.timing import format_timing_table, load_timing
from netadapt.trace.elastic import GraphSuperNet
from netadapt.trace.report import COLUMNS as TRACED_COLUMNS
from netadapt.trace.report import describe_traced

__all__ = ["write_report"]

log = logging.getLogger(__name__)

_TABLE_COLUMNS = ("index", "type", "T", "kernel", "stride", "bn", "act", "exp", "dw", "pw", "se")

# score name -> (column title, factor from the stored value to the shown one, digits, higher is better)
_SCORES = {
    "top1": ("top-1 (%)", 100.0, 2, True),
    "rmse": ("RMSE (m)", 1.0, 3, False),
    "rel": ("REL", 1.0, 3, False),
    "mae": ("MAE (m)", 1.0, 3, False),
    "delta1": ("δ1 (%)", 100.0, 2, True),
    "delta2": ("δ2 (%)", 100.0, 2, True),
    "delta3": ("δ3 (%)", 100.0, 2, True),
}
# the trained networks' columns per task (Table 7: RMSE and δ1 first)
_RESULT_COLUMNS = {"classification": ("top1",), "depth": ("rmse", "rel", "delta1", "delta2", "delta3")}


def _score_info(name: str) -> tuple[str, float, int, bool]:
    return _SCORES.get(name, (name, 1.0, 4, True))


def _score_title(name: str, tag: str = "") -> str:
    """The column title of score ``name``; ``tag`` (e.g. "synthetic") goes inside it."""
    title = _score_info(name)[0]
    if not tag:
        return title
    return f"{title[:-1]}, {tag})" if title.endswith(")") else f"{title} ({tag})"


def _shown(name: str, value: float | None) -> float | None:
    return None if value is None else _score_info(name)[1] * value


def _fmt_score(name: str, value: float | None) -> str:
    return _fmt(_shown(name, value), _score_info(name)[2])


def _entry_value(entry: dict, name: str) -> float | None:
    """A summary entry's value of score ``name`` (classification entries keep it as ``accuracy``)."""
    return entry.get("accuracy") if name == "top1" else entry.get(name)


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


def _plot_trajectory(plt: Any, trajectory: list[dict], metric: str, score_name: str, tag: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [p["resource"] for p in trajectory]
    ys = [_shown(score_name, record_score(p)) for p in trajectory]
    ax.plot(xs, ys, "o-", markersize=3)
    ax.set_xlabel(metric)
    ax.set_ylabel(f"held-out {_score_title(score_name, tag)}, shared weights")
    ax.set_title("search trajectory (best sample per iteration)")
    ax.invert_xaxis()
    ax.grid(alpha=0.3)
    _save_figure(fig, path)
    plt.close(fig)


def _plot_family(plt: Any, family: list[dict], summary: dict, metric: str, score_name: str, tag: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    ys = [_shown(score_name, record_score(m)) for m in family]
    ax.plot([m["resource"] for m in family], ys, "o-", label="family (held-out, shared weights)")
    for key, marker, label in (
        ("initial", "s", "initial network (trained)"),
        ("discovered", "*", "discovered network (trained)"),
        ("baseline", "^", "uniform baseline (trained)"),
    ):
        entry = summary.get(key) or {}
        value = _entry_value(entry, score_name)
        if entry.get("resource") is not None and value is not None:
            ax.plot([entry["resource"]], [_shown(score_name, value)], marker, markersize=10, label=f"{label}, validation")
    ax.set_xlabel(metric)
    ax.set_ylabel(_score_title(score_name, tag))
    ax.set_title(f"{_score_title(score_name)} against resource")
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


def _data_section(images: dict[str, Any]) -> list[str]:
    """The "Data" section: images of every split and where they come from (empty when the run
    predates these counts)."""
    if not images:
        return []
    train_total, heldout = images.get("train_total"), images.get("heldout", 0)
    train_note = f"from {images.get('train_source')}"
    if train_total is not None and images.get("train", 0) + heldout < train_total:
        train_note += f": a seeded subset (data.subset) of the {train_total - heldout:,} not held out"
    rows = [
        ["training", f"{images.get('train', 0):,}", f"{train_note}; the super-network and every trained network"],
        ["held-out", f"{heldout:,}", "training images reserved for the search to compare samples on (never trained on)"],
    ]
    if images.get("val_source"):
        val_note = f"{images['val_source']}"
        if images.get("val_total") and images["val"] < images["val_total"]:
            val_note += f": a seeded {images['val']:,} of its {images['val_total']:,} (data.val_subset)"
        rows.append(["validation", f"{images.get('val', 0):,}", f"{val_note}; the scores in the Result table"])
    else:
        rows.append(["validation", "0", "no validation folder: the trained networks have no validation numbers"])
    return ["## Data", "", _markdown_table(["split", "images", "what"], rows), ""]


def _records(path: Path) -> list[dict]:
    """A search's list of records (trajectory, family): a non-empty list of mappings with an architecture."""
    records = load_json(path, list)
    if not records or not all(isinstance(r, dict) and isinstance(r.get("arch"), dict) for r in records):
        raise NetAdaptError(f"{path} is not a list of search records; the file is damaged")
    return records


def write_report(run_dir: str | Path) -> Path:
    """Write ``RUN_DIR/report/report.md`` and its plots; returns the report's path."""
    layout = RunLayout(Path(run_dir))
    search = layout.search_dir
    if not (search / "trajectory.json").exists():
        raise NetAdaptError(f"{run_dir} has no finished search (missing {search / 'trajectory.json'})")
    plt = _pyplot()
    trajectory = _records(search / "trajectory.json")
    family = _records(search / "family.json") if (search / "family.json").exists() else []
    summary = load_json(layout.summary, dict) if layout.summary.exists() else {}
    build = summary.get("build") or load_json(layout.build, dict)
    supernet = supernet_from_build(build)
    final = Architecture.from_dict(load_json(search / "final_arch.json"))
    initial = Architecture.from_dict(trajectory[0]["arch"])
    metric = summary.get("metric", "resource")
    # summary.json's "score" is the search.score setting; searches of the earliest versions: top-1
    score_name = record_score_name(trajectory[0]) or summary.get("score") or "top1"
    task = summary.get("task") or ("classification" if score_name == "top1" else "depth")
    tag = "synthetic" if summary.get("dataset") == "synthetic_depth" else ""
    out = layout.report_dir
    out.mkdir(parents=True, exist_ok=True)
    _plot_trajectory(plt, trajectory, metric, score_name, tag, out / "trajectory.png")
    _plot_family(plt, family or trajectory, summary, metric, score_name, tag, out / "family.png")
    names = [layer.name for layer in supernet.space.layers]
    _plot_widths(plt, names, initial, final, out / "widths.png")

    lines = [f"# netadapt report: {supernet.name}", ""]
    lines += [f"Run folder: `{Path(run_dir).resolve()}`. Search metric: **{metric}**"]
    if summary.get("target") is not None:
        lines[-1] += f", target {summary['target']}"
    lines += [""]
    if summary.get("data_note"):
        lines += [f"> {summary['data_note']}", ""]
    images = summary.get("images") or {}
    lines += _result_section(summary, metric, score_name, task, tag)
    lines += _data_section(images)
    lines += _search_section(trajectory, family, metric, score_name, tag)
    lines += _architecture_section(supernet, final)
    lines += ["![widths](widths.png)", ""]
    timing = load_timing(layout.timing)
    if timing:
        lines += ["## Time per step", "", "```", format_timing_table(timing), "```", ""]
    text = "\n".join(lines)
    path = out / "report.md"
    atomic_write(path, lambda f: f.write(text.encode()))
    log.info("report written to %s", path)
    return path


def _result_section(summary: dict, metric: str, score_name: str, task: str, tag: str) -> list[str]:
    """The Result table: the trained networks' scores, resources and latency."""
    rows = []
    # MACs and parameters have their own columns; another search metric gets one more.
    own_column = metric not in ("macs", "params")
    columns = _RESULT_COLUMNS.get(task, (score_name,))
    for key, title in (("initial", "initial network"), ("discovered", "discovered network"), ("baseline", "uniform baseline")):
        entry = summary.get(key)
        if entry:
            rows.append(
                [
                    title,
                    *[_fmt_score(c, _entry_value(entry, c)) for c in columns],
                    *([_fmt(entry.get("resource"))] if own_column else []),
                    _fmt(entry.get("macs")),
                    _fmt(entry.get("params")),
                    _fmt(entry.get("latency_ms"), 3),
                ]
            )
    if not rows:
        return ["## Result", "", "No trained networks yet (the final training stage has not run).", ""]
    images = summary.get("images") or {}
    header = ["network", *[_score_title(c, tag) for c in columns], *([metric] if own_column else [])]
    header += ["MACs", "parameters", "latency (ms)"]
    lines = ["## Result", "", _markdown_table(header, rows), ""]
    where = "validation set" + (" (synthetic scenes)" if tag else "")
    if images.get("val"):
        where = f"{images['val']:,} validation images" + (" (synthetic scenes)" if tag else "")
    return [*lines, f"Each network trained, then measured on the {where} (see Data).", ""]


def _search_section(trajectory: list[dict], family: list[dict], metric: str, score_name: str, tag: str) -> list[str]:
    """The Search section: iterations, plots and the family table."""
    return [
        "## Search",
        "",
        f"{len(trajectory) - 1} iterations; samples compared by held-out {_score_title(score_name, tag)} with the shared "
        f"super-network weights ({'higher' if _score_info(score_name)[3] else 'lower'} is better).",
        "",
        "![trajectory](trajectory.png)",
        "",
        "![family](family.png)",
        "",
        "Family (best architecture at each budget met along the way):",
        "",
        _markdown_table(
            ["iteration", metric, f"held-out {_score_title(score_name, tag)}"],
            [[m["iteration"], _fmt(m["resource"]), _fmt_score(score_name, record_score(m))] for m in (family or trajectory)],
        ),
        "",
    ]


def _architecture_section(supernet: Any, final: Architecture) -> list[str]:
    """The discovered architecture, layer by layer."""
    lines = ["## Discovered architecture", ""]
    if isinstance(supernet, GraphSuperNet):  # a traced network: one row per convolution
        info = describe_traced(supernet, final)
        lines += ["One row per convolution and linear layer of the traced network (filters kept; 0 = removed).", ""]
        lines += [_markdown_table(list(TRACED_COLUMNS), [[r[c] for c in TRACED_COLUMNS] for r in info["layers"]]), ""]
    else:
        info = describe(supernet, final)
        lines += ["Columns of the paper's Table 8 (widths = filters kept; 0 = bypassed or removed).", ""]
        lines += [_markdown_table(list(_TABLE_COLUMNS), [[cell(r, c) for c in _TABLE_COLUMNS] for r in info["layers"]]), ""]
        lines += [f"\\* {note}." for note in info["notes"]] + ([""] if info["notes"] else [])
    return lines
