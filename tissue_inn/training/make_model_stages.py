"""The last stages of :mod:`tissue_inn.training.make_model`: the card, the evaluation, the misfit gate.

:func:`write_bundle` saves the trained network with a full card (tissue and camera definitions,
clinical parameter labels and display units, training history, dataset provenance).
:func:`evaluate_bundle` evaluates it on the held-out simulations at each requested SNR (accuracy,
calibration ``e_cal``, SBC, coverage, posterior predictive residual), writes the reports into the
bundle (``evaluation/snrNN/``: Markdown, PNG, JSON) and their summary into the card, and, when the
GATE helper's :mod:`tissue_inn.inference.misfit` is present, trains the forward surrogate and
calibrates the "not explained by this model" gate on the same held-out set.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tissue_inn.config import Camera, TissueModel
from tissue_inn.errors import Cancelled
from tissue_inn.progress import Progress, ShouldStop

__all__ = ["write_bundle", "evaluate_bundle"]


def write_bundle(result, tissue: TissueModel, camera: Camera, request, folder: Path) -> dict[str, Any]:
    """Save the trained estimator of ``result`` (a TrainResult) with its card into ``folder``."""
    from tissue_inn.io.bundle import save_bundle

    name = Path(request.output).name
    card: dict[str, Any] = {
        "name": name,
        "description": request.description or (
            f"{result.settings.family} for the {tissue.name} tissue and the {camera.name} camera "
            f"({camera.n_bands} bands), made with tissue-inn make-model from {result.dataset['n_samples']:,} "
            "simulated spectra"),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    card.update(result.card_sections())
    card["parameters"] = tissue.parameter_card()
    save_bundle(result.estimator, card, folder, force=True)
    return card


def evaluate_bundle(bundle: Path, test_path: Path, train_path: Path, request, should_stop: ShouldStop,
                    stage_s: dict[str, float]) -> Generator[Progress, None, None]:
    """Evaluate the bundle on the held-out set (and calibrate the misfit gate); results go into the bundle."""
    from tissue_inn.data.dataset import SpectraDataset
    from tissue_inn.hashing import file_sha256
    from tissue_inn.inference.evaluate import evaluate_iter
    from tissue_inn.inference.report import report_summary, write_report
    from tissue_inn.io.bundle import load_bundle, update_card
    from tissue_inn.optics.forward import ForwardModel

    est, card = load_bundle(bundle)
    device = torch.device(request.resolved_device())
    est = est.to(device)
    data = SpectraDataset(test_path, limit=min(request.test_size, 2000))
    tissue = TissueModel.from_dict(data.info.tissue)
    camera = Camera.from_dict(data.info.camera)
    names = list(data.info.parameter_names)
    prior_var = np.array([p.prior.variance() for p in tissue.parameters])
    forward = ForwardModel(tissue, camera).bands if request.ppc_cases > 0 else None
    summary: dict[str, Any] = {}
    per_parameter: dict[str, Any] = {}
    for i, snr in enumerate(request.eval_snrs):
        y_noisy = camera.noise.apply(data.y, torch.Generator().manual_seed(request.seed + 10 + i), snr=snr)
        gen = torch.Generator().manual_seed(request.seed + 1000 + i)

        def sampler(y, gen=gen, snr=snr):
            return est.sample(y.to(device), request.eval_draws, generator=gen, snr=snr).cpu()

        cond = f"snr{snr:g}"
        meta = {"title": card["name"], "condition": cond, "snr": snr, "noise": f"multiplicative, SNR {snr:g}",
                "test_set": "held-out simulations (make-model)", "test_sha256": file_sha256(test_path),
                "draws": request.eval_draws}
        report = None
        gen_eval = evaluate_iter({card["name"]: sampler}, data.x, y_noisy, names, prior_var, forward,
                                 ppc_cases=min(request.ppc_cases, len(data)), ppc_draws=8, seed=request.seed,
                                 meta=meta, should_stop=should_stop)
        while True:
            try:
                p = next(gen_eval)
            except StopIteration as stop:
                report = stop.value
                break
            yield Progress("evaluate", p.done, p.total, f"SNR {snr:g}: {p.message}", p.extra)
        write_report(report, bundle / "evaluation" / cond, force=True)
        summary[cond] = report_summary(report, card["name"])
        summary[cond]["report"] = f"evaluation/{cond}/report.md"
        metrics = report["methods"][card["name"]]["metrics"]
        per_parameter[cond] = {n: {k: _round(metrics[n].get(k)) for k in ("mae_median", "cal_median_abs",
                                                                         "cal_at_68", "sbc_p")} for n in names}
    update_card(bundle, {"evaluation": {"summary": summary, "per_parameter": per_parameter,
                                        "test_set_size": len(data),
                                        "test_seed": request.seed + 1, "draws": request.eval_draws,
                                        "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z")}})
    if request.gate and importlib.util.find_spec("tissue_inn.inference.misfit") is not None:
        t0 = time.monotonic()
        try:
            from tissue_inn.inference.gate_build import build_gate
        except ImportError as exc:  # the gate's modules are not there (yet): no gate, said in the card
            update_card(bundle, {"misfit_gate_note": f"not calibrated: {exc}"})
            return
        gen_gate = build_gate(bundle, train_path, test_path, epochs=request.gate_epochs, seed=request.seed,
                              should_stop=should_stop)
        try:
            while True:
                try:
                    p = next(gen_gate)
                except StopIteration:
                    break
                yield Progress("gate", p.done, p.total, f"{p.stage}: {p.message}", p.extra)
        except Cancelled:
            raise
        except Exception as exc:  # noqa: BLE001 - the gate is optional; the card says why it is missing
            note = f"not calibrated: the gate calibration failed ({type(exc).__name__}: {exc})"
            update_card(bundle, {"misfit_gate_note": note})
            yield Progress("gate", 1, 1, note, {"log_line": note})
        stage_s["gate"] = round(time.monotonic() - t0, 1)


def _round(v: Any) -> Any:
    return round(float(v), 5) if isinstance(v, int | float) and np.isfinite(v) else None
