"""Writing an evaluation report (from :func:`tissue_inn.inference.evaluate.evaluate`).

:func:`write_report` writes a Markdown table, PNG figures (matplotlib Agg) and the data of every
figure as JSON, all atomically; :func:`format_table` and :func:`report_summary` give the table and a
compact summary for the model card.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tissue_inn.atomic import atomic_path, check_writable
from tissue_inn.inference.evaluate import METRICS

__all__ = ["write_report", "format_table", "report_summary"]


def _fmt(v: float | None, kind: str) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    if kind == "pct":
        return f"{100 * v:.1f} %"
    if kind == "spct":
        return f"{100 * v:+.1f} %"
    if kind == "r2":
        return f"{v:.3f}"
    if kind == "p":
        return f"{v:.2g}"
    return f"{v:.4g}"


def format_table(report: dict[str, Any], parameters: Sequence[str] | None = None) -> str:
    """The Markdown table: one row per parameter and method."""
    cols = list(METRICS)
    head = "| parameter | method | " + " | ".join(METRICS[c][0] for c in cols) + " |"
    sep = "| --- | --- | " + " | ".join("---:" for _ in cols) + " |"
    lines = [head, sep]
    for p in parameters or report["parameter_names"]:
        for name, res in report["methods"].items():
            m = res["metrics"][p]
            lines.append(f"| {p} | {name} | " + " | ".join(_fmt(m.get(c), METRICS[c][1]) for c in cols) + " |")
    return "\n".join(lines)


def report_summary(report: dict[str, Any], method: str) -> dict[str, Any]:
    """A compact JSON-able summary of one method (for the model card's ``evaluation`` section)."""
    res = report["methods"][method]
    names = report["parameter_names"]
    out: dict[str, Any] = {"n_test": report["n_test"], "n_draws": res["n_draws"]}
    first = names[0]
    m = res["metrics"][first]
    out[f"{first}_mae"] = round(m["mae_median"], 5)
    out[f"{first}_mae_map"] = round(m["mae_map"], 5)
    if not res["point_only"]:
        out[f"{first}_median_abs_ecal"] = round(m["cal_median_abs"], 4)
        out[f"{first}_ecal68"] = round(m["cal_at_68"], 4)
        out[f"{first}_width68"] = round(m["width68"], 5)
        worst = max(names, key=lambda p: res["metrics"][p]["cal_median_abs"])
        out["worst_median_abs_ecal"] = round(res["metrics"][worst]["cal_median_abs"], 4)
        out["worst_parameter"] = worst
    return out


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "method"


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _grid(n: int) -> tuple[int, int]:
    cols = min(4, max(n, 1))
    return math.ceil(n / cols), cols


def _new_figure(n_panels: int, title: str):
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    rows, cols = _grid(n_panels)
    height = 2.4 * rows + 0.5
    fig = Figure(figsize=(3.0 * cols, height), dpi=90)
    # fixed margins: constrained layout costs seconds per figure on a busy CPU
    fig.subplots_adjust(
        left=0.07, right=0.98, bottom=0.45 / height + 0.02, top=1 - 0.55 / height, wspace=0.32, hspace=0.6
    )
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(4))
        ax.yaxis.set_major_locator(MaxNLocator(4))
        ax.tick_params(labelsize=7)
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=10)
    return fig, axes


def _save_png(fig, path: Path, force: bool) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    with atomic_path(path, force=force) as tmp:
        fig.savefig(tmp, format="png")


def _figures(report: dict[str, Any]) -> dict[str, tuple[Any, dict[str, Any]]]:
    """filename → (matplotlib Figure, the figure's data)."""
    names = report["parameter_names"]
    methods = {k: v for k, v in report["methods"].items() if not v["point_only"]}
    figs: dict[str, tuple[Any, dict[str, Any]]] = {}
    if not methods:
        return figs
    cond = report.get("meta", {}).get("condition", "")
    suffix = f" ({cond})" if cond else ""
    q = np.asarray(next(iter(methods.values()))["calibration"]["q"])

    fig, axes = _new_figure(len(names), "calibration error e_cal(q) = fraction inside central q-interval − q" + suffix)
    data: dict[str, Any] = {"kind": "calibration", "x": "q", "y": "e_cal", "q": q.tolist(), "series": {}}
    for ax, p in zip(axes, names):
        for mname, res in methods.items():
            e = np.asarray(res["calibration"]["e_cal"][p])
            ax.plot(q, 100 * e, label=mname)
        ax.axhline(0, color="k", lw=0.6)
        ax.set_title(p, fontsize=9)
        ax.set_xlabel("q", fontsize=8)
        ax.set_ylabel("e_cal [%]", fontsize=8)
    axes[0].legend(fontsize=7)
    for mname, res in methods.items():
        data["series"][mname] = res["calibration"]["e_cal"]
    figs["calibration.png"] = (fig, data)

    fig, axes = _new_figure(len(names), "coverage of central intervals" + suffix)
    data = {"kind": "coverage", "x": "nominal", "y": "empirical", "nominal": q.tolist(), "series": {}}
    for ax, p in zip(axes, names):
        ax.plot([0, 1], [0, 1], color="k", lw=0.6, ls="--")
        for mname, res in methods.items():
            ax.plot(q, res["coverage"]["empirical"][p], label=mname)
        ax.set_title(p, fontsize=9)
        ax.set_xlabel("nominal", fontsize=8)
        ax.set_ylabel("empirical", fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
    axes[0].legend(fontsize=7)
    for mname, res in methods.items():
        data["series"][mname] = res["coverage"]["empirical"]
    figs["coverage.png"] = (fig, data)

    from scipy.stats import binom

    for mname, res in methods.items():
        sbc = res["sbc"]
        n_bins = sbc["n_bins"]
        expected = np.asarray(sbc["expected"])
        n = report["n_test"]
        lo = binom.ppf(0.005, n, expected / n)
        hi = binom.ppf(0.995, n, expected / n)
        fig, axes = _new_figure(len(names), f"SBC rank histograms: {mname} ({n_bins} bins, 99 % band){suffix}")
        for ax, p in zip(axes, names):
            counts = np.asarray(sbc["counts"][p])
            ax.fill_between(np.arange(n_bins), lo, hi, step="mid", color="0.85")
            ax.bar(np.arange(n_bins), counts, width=1.0, color="tab:blue", alpha=0.8)
            ax.set_title(f"{p} (p = {sbc['p_value'][p]:.2g})", fontsize=9)
            ax.set_xlabel("rank bin", fontsize=8)
        figs[f"sbc_{_safe_name(mname)}.png"] = (
            fig,
            {
                "kind": "sbc",
                "method": mname,
                "n_bins": n_bins,
                "expected": expected.tolist(),
                "band_99": [lo.tolist(), hi.tolist()],
                "counts": sbc["counts"],
                "p_value": sbc["p_value"],
            },
        )

    ppc_methods = {k: v for k, v in report["methods"].items() if v.get("ppc")}
    bands = report.get("meta", {}).get("band_centers_nm")
    if ppc_methods:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(6, 3.5), dpi=90)
        fig.subplots_adjust(left=0.12, right=0.97, bottom=0.14, top=0.9)
        ax = fig.subplots()
        data = {"kind": "ppc", "x": "band", "y": "median relative |y_sim - y_obs|", "bands_nm": bands, "series": {}}
        for mname, res in ppc_methods.items():
            pb = np.asarray(res["ppc"]["per_band"])
            xs = np.asarray(bands) if bands and len(bands) == pb.size else np.arange(pb.size)
            ax.plot(xs, 100 * pb, marker="o", label=f"{mname} (median {100 * res['ppc']['median']:.1f} %)")
            data["series"][mname] = res["ppc"]
        snr = report.get("meta", {}).get("snr")
        if snr:
            ax.axhline(100 * 0.6745 / snr, color="k", ls="--", lw=0.7, label=f"noise floor (SNR {snr:g})")
        ax.set_xlabel("band centre [nm]" if bands else "band")
        ax.set_ylabel("median relative residual [%]")
        ax.set_title("posterior predictive check" + suffix)
        ax.legend(fontsize=7)
        figs["ppc.png"] = (fig, data)
    return figs


def _markdown(report: dict[str, Any], figure_files: list[str]) -> str:
    meta = report.get("meta", {})
    lines = [f"# Evaluation{': ' + meta['title'] if meta.get('title') else ''}", ""]
    info = [f"test cases: {report['n_test']}", f"seed: {report['seed']}"]
    for key in ("condition", "test_set", "noise"):
        if key in meta:
            info.append(f"{key.replace('_', ' ')}: {meta[key]}")
    lines.append("; ".join(info))
    lines.append("")
    lines.append("| method | draws | seconds | posterior predictive residual (median / p90) |")
    lines.append("| --- | ---: | ---: | --- |")
    for name, res in report["methods"].items():
        ppc = res.get("ppc")
        ppc_txt = f"{100 * ppc['median']:.2f} % / {100 * ppc['p90']:.2f} %" if ppc else "—"
        lines.append(f"| {name} | {res['n_draws']} | {res.get('seconds', '')} | {ppc_txt} |")
    lines += ["", format_table(report), ""]
    lines.append(
        "MAE (median/MAP): mean absolute error of the posterior median / mode; e_cal(q) = fraction of "
        "test cases whose truth lies inside the central q-interval − q (Ardizzone et al. 2019): "
        "negative = over-confident. median |e_cal| over q = 1/101 … 100/101. Contraction = 1 − "
        "posterior variance / prior variance (0: the prior, nothing learnt). SBC: χ² test of uniform "
        "ranks of the truth among the draws. Point estimators (1 draw) have no calibration figures."
    )
    lines.append("")
    for f in figure_files:
        lines.append(f"![{f}]({f})")
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], out_dir: str | os.PathLike, force: bool = False) -> list[Path]:
    """Write ``report.md``, ``report.json``, ``figures.json`` and the PNG figures into ``out_dir``.

    Every target is checked before anything is written: an existing file raises
    :class:`~tissue_inn.errors.OutputExistsError` unless ``force``. Each file is written atomically.

    Returns:
        The written paths.
    """
    out = Path(out_dir)
    figs = _figures(report)
    targets = ["report.md", "report.json", "figures.json", *figs]
    for t in targets:
        check_writable(out / t, force=force)
    written: list[Path] = []
    for fname, (fig, _) in figs.items():
        _save_png(fig, out / fname, force)
        written.append(out / fname)
    with atomic_path(out / "figures.json", force=force) as tmp:
        tmp.write_text(json.dumps(_jsonable({k: v[1] for k, v in figs.items()}), indent=1, allow_nan=False))
    written.append(out / "figures.json")
    with atomic_path(out / "report.json", force=force) as tmp:
        tmp.write_text(json.dumps(_jsonable(report), indent=1, allow_nan=False))
    written.append(out / "report.json")
    with atomic_path(out / "report.md", force=force) as tmp:
        tmp.write_text(_markdown(report, list(figs)))
    written.append(out / "report.md")
    return written
