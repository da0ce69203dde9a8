"""``tissue-inn evaluate``: posterior models and baselines on a simulated test set (report folder)."""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

from tissue_inn.cli.common import Command, drive, warn
from tissue_inn.errors import TissueInnError

__all__ = ["COMMAND"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("models", nargs="*", help="model bundle folders or shipped model names")
    p.add_argument("--test", required=True, type=Path, help="noise-free test set (HDF5 from 'simulate')")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        type=Path,
        help="report folder (one subfolder per --snr when several are given)",
    )
    p.add_argument("--draws", type=int, default=4096, help="posterior draws per spectrum (default 4096, as the paper)")
    p.add_argument(
        "--snr",
        type=float,
        action="append",
        help="test SNR, a number (repeatable: one report per SNR); default: noise drawn from the model's training "
        "SNR range. A value outside a model's trained range gets a warning",
    )
    p.add_argument("--n-test", type=int, default=2000, help="use the first N test spectra (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the test noise and all draws")
    p.add_argument("--abc-bank", type=Path, help="simulated reference bank (HDF5) for the ABC baseline")
    p.add_argument("--abc-k", type=int, default=32, help="ABC: accepted nearest neighbours (default 32)")
    p.add_argument("--abc-limit", type=int, help="ABC: use only the first N bank spectra")
    p.add_argument(
        "--abc-match-snr", action="store_true", help="ABC: bank noise at the test SNR instead of the training range"
    )
    p.add_argument(
        "--regression",
        type=Path,
        help="regression baseline folder ('tissue-inn baseline regression'); "
        "adds 'regression' and, if trained with dropout, 'mc_dropout'",
    )
    p.add_argument("--mc-draws", type=int, help="MC-dropout passes per spectrum (default: --draws)")
    p.add_argument(
        "--ppc-cases",
        type=int,
        default=100,
        help="test cases re-simulated for the posterior predictive check (0: none; default 100)",
    )
    p.add_argument("--ppc-draws", type=int, default=8, help="posterior draws re-simulated per case (default 8)")
    p.add_argument("--parameters", help="comma-separated parameters to report (default: all)")
    p.add_argument("--sbc-bins", type=int, default=20, help="SBC rank histogram bins (default 20)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (networks and ABC search)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument(
        "--update-card", action="store_true", help="write the summary into each model's card ('evaluation' section)"
    )
    p.add_argument("--force", action="store_true", help="replace existing report files")


def prior_differences(model_tissue: Any, test_tissue: Any) -> list[str]:
    """How a model card's tissue differs from a test set's (parameter priors first, then anything else)."""
    from tissue_inn.config import TissueModel

    if not isinstance(model_tissue, dict) or not isinstance(test_tissue, dict):
        return []
    if json.dumps(model_tissue, sort_keys=True) == json.dumps(test_tissue, sort_keys=True):
        return []
    try:
        model_t, test_t = TissueModel.from_dict(model_tissue), TissueModel.from_dict(test_tissue)
    except TissueInnError:
        return ["the tissue definitions differ"]
    # compare what the definitions mean (defaults filled in), not how they were written down
    if json.dumps(model_t.to_dict(), sort_keys=True) == json.dumps(test_t.to_dict(), sort_keys=True):
        return []
    model = {p.name: p.prior for p in model_t.parameters}
    test = {p.name: p.prior for p in test_t.parameters}

    def text(prior) -> str:
        d = prior.to_dict()
        return f"{d.pop('prior')}(" + ", ".join(f"{k} {v:g}" for k, v in d.items()) + ")"

    out = [f"{name}: model {text(model[name])}, test set {text(test[name])}"
           for name in model if name in test and model[name] != test[name]]
    if not out:
        out = ["the tissue's fixed values (constants, layer settings) differ"]
    return out


def _unique(name: str, taken: dict[str, Any]) -> str:
    out, i = name, 2
    while out in taken:
        out = f"{name}_{i}"
        i += 1
    return out


def _cond_name(snr: float | None) -> str:
    return "train_range" if snr is None else f"snr{snr:g}"


def run(args: argparse.Namespace) -> int:
    import sys
    from dataclasses import asdict

    import numpy as np
    import torch

    from tissue_inn.atomic import check_not_inputs, check_writable
    from tissue_inn.config import Camera, NoiseModel, TissueModel
    from tissue_inn.data.dataset import SpectraDataset
    from tissue_inn.hashing import file_sha256
    from tissue_inn.inference.abc_rejection import ABCRejection, estimator_features
    from tissue_inn.inference.evaluate import evaluate_iter
    from tissue_inn.inference.regression import load_regression
    from tissue_inn.inference.report import _jsonable, format_table, report_summary, write_report
    from tissue_inn.io.bundle import load_bundle, resolve_model, update_card

    if not args.models and not args.abc_bank and not args.regression:
        raise TissueInnError("nothing to evaluate: give model folders, --abc-bank or --regression")
    for snr in args.snr or []:
        if not (math.isfinite(snr) and snr > 0):
            raise TissueInnError(f"--snr {snr:g}: the SNR must be a positive number")
    for flag in ("draws", "n_test", "abc_k", "sbc_bins"):
        if getattr(args, flag) < 1:
            raise TissueInnError(f"--{flag.replace('_', '-')} must be >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device if args.device != "cuda" or torch.cuda.is_available() else "cpu")
    data = SpectraDataset(args.test, limit=args.n_test)
    info = data.info
    tissue = TissueModel.from_dict(info.tissue, source=f"{args.test}:tissue")
    camera = Camera.from_dict(info.camera, source=f"{args.test}:camera")
    names = list(info.parameter_names)
    prior_var = np.array([p.prior.variance() for p in tissue.parameters])
    cols = list(range(len(names)))
    if args.parameters:
        wanted = [w.strip() for w in args.parameters.split(",") if w.strip()]
        unknown = [w for w in wanted if w not in names]
        if unknown or not wanted:
            raise TissueInnError(f"--parameters: unknown {unknown}; the test set has {names}")
        cols = [names.index(w) for w in wanted]

    def check_compatible(what: str, pnames, bands) -> None:
        if list(pnames) != names:
            raise TissueInnError(f"{what}: parameters {list(pnames)} differ from the test set's {names}")
        if len(bands) != len(info.band_centers_nm) or any(
            abs(a - b) > 1e-6 for a, b in zip(bands, info.band_centers_nm)
        ):
            raise TissueInnError(
                f"{what}: bands {list(bands)} nm differ from the test set's {list(info.band_centers_nm)} nm"
            )

    models: dict[str, tuple[Any, Any, Path]] = {}
    for m in args.models:
        folder = resolve_model(m)
        est, card = load_bundle(folder)
        check_compatible(str(folder), est.parameter_names, est.band_centers_nm)
        differences = prior_differences(card.get("tissue"), info.tissue)
        if differences:
            warn(f"the test set {args.test} was simulated from another prior than {folder} was trained on "
                 f"({'; '.join(differences)}); its figures describe the model outside its training prior")
        models[_unique(card.get("name") or folder.name, models)] = (est.to(device), card, folder)
    if models:
        first_card = next(iter(models.values()))[1]
        noise = NoiseModel(**first_card.get("noise_model", asdict(camera.noise)))
    else:
        noise = camera.noise
    regression = None
    if args.regression:
        regression, reg_card = load_regression(args.regression)
        check_compatible(str(args.regression), regression.parameter_names, regression.band_centers_nm)

    conditions = args.snr or [None]
    from tissue_inn.inference.noise import check_snr_range

    for snr in conditions:
        for mname, (_est, card, _folder) in models.items():
            problem = None if snr is None else check_snr_range(float(snr), card, mname)
            if problem is not None:
                warn(problem)
    out_dirs = {snr: (args.output if len(conditions) == 1 else args.output / _cond_name(snr)) for snr in conditions}
    for d in out_dirs.values():  # fail before hours of work, not after
        check_not_inputs({}, {"the --test set": args.test, "the --abc-bank": args.abc_bank,
                              "the --regression baseline": args.regression}, replaced_folders=[d])
        for f in ("report.md", "report.json", "figures.json"):
            check_writable(d / f, force=args.force)

    forward = None
    if args.ppc_cases > 0:
        from tissue_inn.optics.forward import ForwardModel, SolverSettings

        solver = {k: v for k, v in info.solver.items() if k in SolverSettings.__dataclass_fields__}
        fm = ForwardModel(tissue, camera, SolverSettings(**solver))
        forward = fm.bands

    feature_fn = estimator_features(next(iter(models.values()))[0]) if models else None

    def make_abc(snr: float | None = None) -> ABCRejection:
        """The ABC reference bank, its noise at ``snr`` (or the model's training range when None)."""
        return ABCRejection.from_dataset(
            args.abc_bank,
            noise,
            seed=args.seed + 7,
            feature_fn=feature_fn,
            k=args.abc_k,
            limit=args.abc_limit,
            snr=snr,
            device=device,
        )

    abc_shared = make_abc() if args.abc_bank and not args.abc_match_snr else None

    test_sha = file_sha256(args.test)
    summaries: dict[str, dict[str, Any]] = {}
    for snr in conditions:
        cond = _cond_name(snr)
        y_noisy = noise.apply(data.y, torch.Generator().manual_seed(args.seed), snr=snr)
        methods: dict[str, Any] = {}
        for i, (mname, (est, _card, _f)) in enumerate(models.items()):
            gen = torch.Generator().manual_seed(args.seed + 1000 * (i + 1))

            def sampler(y, est=est, gen=gen, snr=snr):
                # SNR-conditioned models are told the test SNR (the camera's known noise level);
                # with the training range (snr None) they use their nominal SNR.
                return est.sample(y.to(device), args.draws, generator=gen, snr=snr).cpu()

            methods[mname] = sampler
        if args.abc_bank:
            abc = abc_shared or make_abc(snr)
            methods[_unique(f"abc_k{args.abc_k}", methods)] = abc.sample
        if regression is not None:
            methods[_unique("regression", methods)] = regression.point_samples  # type: ignore[assignment]
            if regression.dropout > 0:
                mc_gen = torch.Generator().manual_seed(args.seed + 99)
                mc_draws = args.mc_draws or args.draws

                def mc_sampler(y, gen=mc_gen, n=mc_draws):
                    return regression.sample(y, n, generator=gen)

                methods[_unique("mc_dropout", methods)] = mc_sampler
        meta = {
            "title": ", ".join(methods),
            "condition": cond,
            "snr": snr,
            "noise": (
                f"multiplicative, SNR {snr:g}"
                if snr is not None
                else f"multiplicative, SNR log-uniform {noise.snr_min:g}–{noise.snr_max:g}"
            ),
            "test_set": str(args.test),
            "test_sha256": test_sha,
            "band_centers_nm": list(info.band_centers_nm),
            "draws": args.draws,
            "models": {k: str(v[2]) for k, v in models.items()},
            "abc": (
                {"bank": str(args.abc_bank), "k": args.abc_k, "limit": args.abc_limit, "match_snr": args.abc_match_snr}
                if args.abc_bank
                else None
            ),
            "regression": str(args.regression) if args.regression else None,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        report = drive(
            evaluate_iter(
                methods,
                data.x,
                y_noisy,
                names,
                prior_var,
                forward,
                report_parameters=[names[c] for c in cols],
                sbc_bins=args.sbc_bins,
                ppc_cases=args.ppc_cases,
                ppc_draws=args.ppc_draws,
                seed=args.seed,
                meta=meta,
            ),
            f"evaluate {cond}",
            args.quiet,
            unit="spectra",
        )
        write_report(report, out_dirs[snr], force=args.force)
        print(f"## {cond} ({report['n_test']} test spectra) — report in {out_dirs[snr]}")
        print(format_table(report))
        print()
        sys.stdout.flush()
        for mname in models:
            summaries.setdefault(mname, {})[cond] = report_summary(report, mname)
            summaries[mname][cond]["report"] = str(out_dirs[snr])
    if args.update_card:
        for mname, (_est, card, folder) in models.items():
            ev = dict(card.get("evaluation") or {})
            summary = dict(ev.get("summary") or {})
            summary.update(summaries[mname])
            ev.update(
                {
                    "summary": summary,
                    "test_set": str(args.test),
                    "test_sha256": test_sha,
                    "seed": args.seed,
                    "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                }
            )
            ev = _jsonable(ev)
            update_card(folder, {"evaluation": ev})
    return 0


COMMAND = Command("evaluate", "evaluate posterior models against baselines on a simulated test set", add_arguments, run)
