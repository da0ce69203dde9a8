"""Evaluation of posterior estimators against baselines on a held-out simulated test set.

:func:`evaluate` runs every method ("sampler": noisy spectra ``[n, B]`` → samples ``[n, S, D]``) on
the same noisy test spectra, chunk by chunk (memory stays bounded for 2000 × 4096 × 13 draws),
and reduces the samples to accuracy, calibration (the paper's ``e_cal``), SBC, coverage, contraction
and optionally a posterior predictive check. :func:`write_report` writes a Markdown table, PNG
figures (matplotlib Agg) and the data of every figure as JSON, all atomically.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tissue_inn.atomic import atomic_path, check_writable
from tissue_inn.inference import diagnostics as dg
from tissue_inn.progress import Progress, ShouldStop, run_to_completion

__all__ = ["Sampler", "evaluate", "evaluate_iter", "write_report", "format_table", "report_summary", "METRICS"]

Sampler = Callable[[torch.Tensor], "torch.Tensor | np.ndarray"]

#: Table columns: key → (header, format kind).
METRICS: dict[str, tuple[str, str]] = {
    "mae_median": ("MAE (median)", "num"),
    "mae_map": ("MAE (MAP)", "num"),
    "medae_median": ("median AE", "num"),
    "r2_median": ("R²", "r2"),
    "width68": ("median 68 % width", "num"),
    "cal_median_abs": ("median \\|e_cal\\|", "pct"),
    "cal_at_68": ("e_cal @ 68 %", "spct"),
    "contraction": ("contraction", "r2"),
    "sbc_p": ("SBC χ² p", "p"),
}


def _np(a: torch.Tensor | np.ndarray) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def _method_iter(
    name: str,
    sampler: Sampler,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    cols: list[int],
    seed: int,
    max_chunk_values: int,
    chunk_size: int | None,
    ppc_cases: int,
    ppc_draws: int,
    should_stop: ShouldStop,
) -> Generator[Progress, None, tuple[dict, np.ndarray | None, float]]:
    n, d = test_x.shape
    chunks: list[dict[str, np.ndarray]] = []
    ppc_x: list[np.ndarray] = []
    rank_gen = torch.Generator().manual_seed(seed + 17)
    pick_gen = torch.Generator().manual_seed(seed + 29)
    t0 = time.monotonic()
    start = 0
    step = chunk_size or 8
    while start < n:
        if should_stop is not None and should_stop():
            from tissue_inn.errors import Cancelled

            raise Cancelled("evaluation stopped")
        stop = min(n, start + step)
        with torch.no_grad():
            samples = torch.as_tensor(sampler(test_y[start:stop])).detach().cpu().double()
        if samples.ndim != 3 or samples.shape[0] != stop - start or samples.shape[2] != d:
            raise ValueError(
                f"method {name!r}: sampler returned shape {tuple(samples.shape)}, expected [{stop - start}, S, {d}]"
            )
        chunks.append(dg.case_statistics(samples[:, :, cols], test_x[start:stop][:, cols], rank_gen))
        if start < ppc_cases:
            m = min(stop, ppc_cases) - start
            s = samples.shape[1]
            k = min(ppc_draws, s)
            idx = torch.stack([torch.randperm(s, generator=pick_gen)[:k] for _ in range(m)])
            ppc_x.append(samples[:m].gather(1, idx[:, :, None].expand(m, k, d)).numpy())
        if chunk_size is None:
            step = max(1, max_chunk_values // max(samples.shape[1] * d, 1))
        start = stop
        yield Progress("evaluate", stop, n, f"{name}: {stop}/{n}")
    seconds = time.monotonic() - t0
    return dg.concat_statistics(chunks), (np.concatenate(ppc_x) if ppc_x else None), seconds


def _method_metrics(
    stats: dict[str, np.ndarray], truth: np.ndarray, names: Sequence[str], prior_var: np.ndarray, sbc_bins: int
) -> dict[str, Any]:
    n_draws = int(stats["n_draws"].min())
    point_only = n_draws == 1
    nq = dg.CALIBRATION_LEVELS.size
    levels = np.concatenate([dg.CALIBRATION_LEVELS, dg.EXTRA_LEVELS])
    e_cal = dg.calibration_curve(stats["inside"], levels)  # [Q+2, D]
    mae_med = dg.mae(stats["median"], truth)
    mae_map = dg.mae(stats["map"], truth)
    medae = dg.median_abs_error(stats["median"], truth)
    r2 = dg.r2_score(stats["median"], truth)
    width = np.median(stats["width68"], axis=0)
    contraction = dg.posterior_contraction(stats["var"], prior_var)
    sbc = dg.sbc_histogram_from_ranks(stats["rank"], n_draws, sbc_bins) if not point_only else None
    metrics: dict[str, dict[str, float | None]] = {}
    for j, p in enumerate(names):
        m: dict[str, float | None] = {
            "mae_median": float(mae_med[j]),
            "mae_map": float(mae_map[j]),
            "medae_median": float(medae[j]),
            "r2_median": float(r2[j]),
        }
        if point_only:
            m.update(width68=None, cal_median_abs=None, cal_at_68=None, cal_at_95=None, contraction=None, sbc_p=None)
        else:
            m.update(
                width68=float(width[j]),
                cal_median_abs=float(np.median(np.abs(e_cal[:nq, j]))),
                cal_at_68=float(e_cal[nq, j]),
                cal_at_95=float(e_cal[nq + 1, j]),
                contraction=float(contraction[j]),
                sbc_p=float(sbc["p_value"][j]),
            )
        metrics[p] = m
    out: dict[str, Any] = {"n_draws": n_draws, "point_only": point_only, "metrics": metrics}
    if not point_only:
        out["calibration"] = {
            "q": dg.CALIBRATION_LEVELS.tolist(),
            "e_cal": {p: e_cal[:nq, j].tolist() for j, p in enumerate(names)},
        }
        out["coverage"] = {
            "nominal": dg.CALIBRATION_LEVELS.tolist(),
            "empirical": {p: (e_cal[:nq, j] + dg.CALIBRATION_LEVELS).tolist() for j, p in enumerate(names)},
        }
        out["sbc"] = {
            "n_bins": sbc["n_bins"],
            "expected": sbc["expected"].tolist(),
            "counts": {p: sbc["counts"][:, j].tolist() for j, p in enumerate(names)},
            "p_value": {p: float(sbc["p_value"][j]) for j, p in enumerate(names)},
        }
    return out


def evaluate_iter(
    methods: Mapping[str, Sampler],
    test_x: torch.Tensor | np.ndarray,
    test_y_noisy: torch.Tensor | np.ndarray,
    parameter_names: Sequence[str],
    prior_variance: Sequence[float] | np.ndarray,
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
    *,
    sbc_bins: int = 20,
    ppc_cases: int = 100,
    ppc_draws: int = 8,
    seed: int = 0,
    chunk_size: int | None = None,
    max_chunk_values: int = 2_000_000,
    meta: dict[str, Any] | None = None,
    report_parameters: Sequence[str] | None = None,
    should_stop: ShouldStop = None,
) -> Generator[Progress, None, dict[str, Any]]:
    """Generator form of :func:`evaluate` (yields Progress per chunk, returns the report)."""
    x = torch.as_tensor(test_x).double().cpu()
    y = torch.as_tensor(test_y_noisy).double().cpu()
    names = list(parameter_names)
    if x.ndim != 2 or x.shape[1] != len(names):
        raise ValueError(f"test_x must be [N, {len(names)}], got {tuple(x.shape)}")
    if y.ndim != 2 or y.shape[0] != x.shape[0]:
        raise ValueError(f"test_y_noisy must be [N, B] with N = {x.shape[0]}, got {tuple(y.shape)}")
    if report_parameters is not None:
        unknown = [p for p in report_parameters if p not in names]
        if unknown or not report_parameters:
            raise ValueError(f"report_parameters {unknown} not among {names}")
    cols = [names.index(p) for p in report_parameters] if report_parameters is not None else list(range(len(names)))
    names = [names[c] for c in cols]
    prior_var = np.asarray(prior_variance, dtype=np.float64)[cols]
    truth = x[:, cols].numpy()
    report: dict[str, Any] = {
        "parameter_names": names,
        "n_test": int(x.shape[0]),
        "seed": seed,
        "sbc_bins": sbc_bins,
        "prior_variance": prior_var.tolist(),
        "meta": dict(meta or {}),
        "methods": {},
    }
    for name, sampler in methods.items():
        stats, ppc_x, seconds = yield from _method_iter(
            name,
            sampler,
            x,
            y,
            cols,
            seed,
            max_chunk_values,
            chunk_size,
            ppc_cases if forward is not None else 0,
            ppc_draws,
            should_stop,
        )
        res = _method_metrics(stats, truth, names, prior_var, sbc_bins)
        res["seconds"] = round(seconds, 2)
        if forward is not None and ppc_x is not None:
            yield Progress("evaluate", x.shape[0], x.shape[0], f"{name}: posterior predictive check")
            m = ppc_x.shape[0]
            samples_t = torch.from_numpy(ppc_x)
            ppc = dg.posterior_predictive_residual(
                samples_t,
                y[:m],
                forward,
                n_resim=samples_t.shape[1],
                generator=torch.Generator().manual_seed(seed + 31),
            )
            res["ppc"] = {
                "n_cases": m,
                "n_resim": ppc["n_resim"],
                "median": ppc["median"],
                "p90": ppc["p90"],
                "per_band": ppc["per_band"].tolist(),
            }
        report["methods"][name] = res
    return report


def evaluate(
    methods: Mapping[str, Sampler],
    test_x: torch.Tensor | np.ndarray,
    test_y_noisy: torch.Tensor | np.ndarray,
    parameter_names: Sequence[str],
    prior_variance: Sequence[float] | np.ndarray,
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Evaluate each method on the same noisy test spectra.

    Args:
        methods: name → sampler (``y [n, B]`` → samples ``[n, S, D]``, physical units); a point
            estimator returns ``S = 1`` (its calibration figures are then omitted).
        test_x: ``[N, D]`` true parameters.
        test_y_noisy: ``[N, B]`` noisy spectra (the same for every method).
        parameter_names: ``D`` names.
        prior_variance: ``[D]`` prior variances (for the contraction).
        forward: optional ``x [M, D] → y [M, B]`` for the posterior predictive check (``ppc_cases`` ×
            ``ppc_draws`` forward evaluations per method).
        **kwargs: ``sbc_bins`` (20), ``ppc_cases`` (100), ``ppc_draws`` (8), ``seed`` (0), ``chunk_size``
            (cases per sampler call; default: as many as keep ``max_chunk_values`` = 2 M sample values),
            ``meta`` (stored in the report), ``report_parameters`` (subset of names to report; samplers still
            return all D), ``should_stop``.

    Returns:
        The report dict: ``parameter_names``, ``n_test``, ``meta`` and per method ``metrics`` (per
        parameter: keys of :data:`METRICS` plus ``cal_at_95``), ``calibration``, ``coverage``,
        ``sbc``, ``ppc``, ``n_draws``, ``seconds``.
    """
    return run_to_completion(
        evaluate_iter(methods, test_x, test_y_noisy, parameter_names, prior_variance, forward, **kwargs)
    )


# ============================================================================================ report
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
