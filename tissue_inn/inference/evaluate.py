"""Evaluation of posterior estimators against baselines on a held-out simulated test set.

:func:`evaluate` runs every method ("sampler": noisy spectra ``[n, B]`` → samples ``[n, S, D]``) on
the same noisy test spectra, chunk by chunk (memory stays bounded for 2000 × 4096 × 13 draws),
and reduces the samples to accuracy, calibration (the paper's ``e_cal``), SBC, coverage, contraction
and optionally a posterior predictive check. Writing the report (Markdown table, figures) is
:mod:`tissue_inn.inference.report`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from tissue_inn.inference import diagnostics as dg
from tissue_inn.progress import Progress, ShouldStop, run_to_completion

__all__ = ["Sampler", "evaluate", "evaluate_iter", "METRICS"]

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
