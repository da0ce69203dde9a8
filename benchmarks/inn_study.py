"""Why is the paper's bidirectional INN over-confident on colon, and what fixes it? (issue 15)

Every *row* of the study is one short training run of :class:`~tissue_inn.inn.BidirectionalINN` on a
reduced colon/SpectroCam problem followed by an evaluation on one fixed held-out set, at SNR 20 and
10: the paper's calibration error (median |e_cal| over q and e_cal at 68 %, SCIENCE.md §6) for sO2 and
the worst parameter, the sO2 MAE of the posterior median, the median 68 % width of sO2 and the final
loss terms. Rows differ only in the options they name (see :data:`ROWS`), so their figures compare.

Usage (one row per process, results accumulate in ``OUT/results.json``; the table and the plots are
regenerated from all rows there)::

    OMP_NUM_THREADS=1 nice -n 15 .venv/bin/python benchmarks/inn_study.py ROW [ROW ...] \\
        --train data/colon_100k.h5 --n-train 25000 --test data/colon_test.h5 --n-test 500 \\
        --steps 1500 -o docs/inn_study
    .venv/bin/python benchmarks/inn_study.py --report-only -o docs/inn_study
    .venv/bin/python benchmarks/inn_study.py --merge OTHER_OUT [...] -o docs/inn_study  # rows run in parallel
    .venv/bin/python benchmarks/inn_study.py --eval-bundle models/NAME [...] -o docs/inn_study  # full-size runs

Training data: the first ``--n-train`` spectra of ``--train`` (seed 100 for colon_100k); test data: the
first ``--n-test`` spectra of ``--test`` (seed 1), never seen in training. Noise: the camera's
multiplicative Gaussian noise, SNR log-uniform in [10, 50] for training (fresh per batch), fixed
SNR (20, 10) and a fixed seed for the test set.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

if __package__ in (None, "") and str(Path(__file__).resolve().parents[1]) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a source checkout

from tissue_inn.config import Camera, TissueModel  # noqa: E402
from tissue_inn.data.dataset import SpectraDataset  # noqa: E402
from tissue_inn.data.preprocess import ParameterSpectrumCoding  # noqa: E402
from tissue_inn.inference.diagnostics import calibration_summary, interval_width  # noqa: E402
from tissue_inn.inn.bidirectional import BidirectionalINN  # noqa: E402
from tissue_inn.inn.noise_latent import NoiseLatentINN  # noqa: E402

__all__ = ["ROWS", "BASE", "run_row", "write_report"]

SNR_MIN, SNR_MAX = 10.0, 50.0
TEST_SNRS = (20.0, 10.0)
WIDE_KERNELS = ((1.0, 2.0), (4.0, 2.0), (16.0, 2.0))
"""Backward kernels at the scale of squared distances between standardised 13-21-D points (≈ 2·D)."""

BASE: dict[str, Any] = {
    # the paper's medical run (SCIENCE.md §5), as shipped in models/colon_inn
    "dim_z": 6,
    "pair_sigma": 0.48,
    "y_noise": 0.05,
    "pad_noise": 0.01,
    "noise_latent": False,
    "noise_input": True,
    "snr_conditioning": False,
    "loss_weights": {},
    "backward_kernels": None,
    "batch_size": 500,
    "steps": None,  # from --steps
    "lr": 1e-3,
    "n_blocks": 4,
    "hidden": 128,
    "n_hidden_layers": 3,
    "clamp": 4.0,
}

ROWS: dict[str, dict[str, Any]] = {
    # reproduce
    "paper": {},
    "paper_nopair": {"pair_sigma": None},
    # (e) pair-weight width at the scale of distances between standardised spectra
    "pair_sigma2": {"pair_sigma": 2.0},
    # (a) latent dimension: [y, z] padded to the width of [x, noise]
    "z13": {"pair_sigma": None, "dim_z": 13},
    # (c) noise on the x padding (N(0, 1) instead of 0.01) and more noise on y
    "z13_padnoise": {"pair_sigma": None, "dim_z": 13, "pad_noise": 1.0},
    "ynoise02": {"pair_sigma": None, "y_noise": 0.2},
    # the measurement noise as a latent input: x-side = [x, noise realisation]
    "noise_latent": {"pair_sigma": None, "dim_z": 13, "noise_latent": True, "y_noise": 0.0},
    "z13_snr": {"pair_sigma": None, "dim_z": 13, "noise_latent": True, "noise_input": False, "y_noise": 0.0,
                "snr_conditioning": True},
    "noise_latent_snr": {"pair_sigma": None, "dim_z": 13, "noise_latent": True, "y_noise": 0.0,
                         "snr_conditioning": True},
    # (b) L_x weight and kernel widths on the fixed model
    "nl_snr_lx50": {"pair_sigma": None, "dim_z": 13, "noise_latent": True, "y_noise": 0.0,
                    "snr_conditioning": True, "loss_weights": {"x": 50.0}},
    "nl_snr_nolx": {"pair_sigma": None, "dim_z": 13, "noise_latent": True, "y_noise": 0.0,
                    "snr_conditioning": True, "loss_weights": {"x": 0.0}},
    "nl_snr_wide": {"pair_sigma": None, "dim_z": 13, "noise_latent": True, "y_noise": 0.0,
                    "snr_conditioning": True, "backward_kernels": WIDE_KERNELS},
    # (d) batch size
    "nl_snr_b1000": {"pair_sigma": None, "dim_z": 13, "noise_latent": True, "y_noise": 0.0,
                     "snr_conditioning": True, "batch_size": 1000},
    # (f) training length
    "nl_snr_long": {"pair_sigma": None, "dim_z": 13, "noise_latent": True, "y_noise": 0.0,
                    "snr_conditioning": True, "steps_factor": 3},
    "paper_long": {"steps_factor": 3},
}


# ----------------------------------------------------------------------------------------------- model
class Coding(ParameterSpectrumCoding, nn.Module):
    """The estimator's preprocessing (bounded transform, features, standardisation) plus log-SNR."""

    def __init__(self, tissue: TissueModel, n_bands: int) -> None:
        nn.Module.__init__(self)
        self.parameter_names = tuple(tissue.parameter_names)
        b = tissue.prior_bounds()
        self._init_coding(list(b[:, 0]), list(b[:, 1]), n_bands, "geometric_mean")
        lo, hi = math.log(SNR_MIN), math.log(SNR_MAX)
        self.s_mean, self.s_std = 0.5 * (lo + hi), (hi - lo) / math.sqrt(12.0)

    def c(self, y: torch.Tensor, snr: torch.Tensor | None) -> torch.Tensor:
        f = self.y_to_net(y)
        if snr is None:
            return f
        return torch.cat([f, ((torch.log(snr.double()) - self.s_mean) / self.s_std).float()[:, None]], 1)


def _apply_noise(y: torch.Tensor, gen: torch.Generator, snr: float | None = None):
    n = y.shape[0]
    if snr is None:
        u = torch.rand(n, 1, generator=gen, dtype=y.dtype)
        s = torch.exp(math.log(SNR_MIN) + u * (math.log(SNR_MAX) - math.log(SNR_MIN)))
    else:
        s = torch.full((n, 1), float(snr), dtype=y.dtype)
    eps = torch.randn(y.shape, generator=gen, dtype=y.dtype)
    return (y * (1.0 + eps / s)).clamp(1e-5, 1.0), s[:, 0]


# ----------------------------------------------------------------------------------------------- run
def run_row(name: str, args: argparse.Namespace) -> dict[str, Any]:
    cfg = {**BASE, **ROWS[name]}
    steps = int(args.steps * cfg.pop("steps_factor", 1))
    torch.manual_seed(args.seed)
    train = SpectraDataset(args.train, limit=args.n_train + args.offset)
    test = SpectraDataset(args.test, limit=args.n_test)
    tissue = TissueModel.from_dict(train.info.tissue)
    camera = Camera.from_dict(train.info.camera)
    x_tr, y_tr = train.x[args.offset:], train.y[args.offset:]
    coding = Coding(tissue, camera.n_bands)
    coding.fit_scalers(x_tr, y_tr)
    snr_cond = bool(cfg["snr_conditioning"])
    dim_y = camera.n_bands + (1 if snr_cond else 0)
    dim_x = len(tissue.parameter_names)
    options = dict(
        dim_x=dim_x, dim_y=dim_y, dim_z=cfg["dim_z"], loss_weights=cfg["loss_weights"] or None,
        backward_kernels=cfg["backward_kernels"] or ((0.2, 0.1), (0.2, 0.5), (0.2, 2.0)),
        y_uncertainty_sigma=cfg["pair_sigma"], n_blocks=cfg["n_blocks"], hidden=cfg["hidden"],
        n_hidden_layers=cfg["n_hidden_layers"], clamp=cfg["clamp"], seed=args.seed,
    )
    if cfg["noise_latent"]:
        model: BidirectionalINN = NoiseLatentINN(snr_columns=1 if snr_cond else 0, noise_input=cfg["noise_input"],
                                                 **options)
    elif snr_cond:
        raise ValueError(f"row {name}: SNR conditioning needs noise_latent")
    else:
        model = BidirectionalINN(**options)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg["lr"], betas=(0.9, 0.95), eps=1e-6, weight_decay=1e-5)
    gen = torch.Generator().manual_seed(args.seed + 2)
    bs = cfg["batch_size"]
    xs_all = coding.x_to_net(x_tr)
    history: list[dict[str, float]] = []
    sums: dict[str, float] = {}
    t0 = time.monotonic()
    log_every = max(steps // 20, 1)
    for step in range(steps):
        frac = step / max(steps - 1, 1)
        for group in opt.param_groups:
            group["lr"] = cfg["lr"] * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * frac)))
        idx = torch.randint(0, x_tr.shape[0], (bs,), generator=gen)
        y_clean = y_tr[idx]
        y_noisy, snr = _apply_noise(y_clean, gen)
        c = coding.c(y_noisy, snr if snr_cond else None)
        noise = (coding.features(y_noisy.double()) - coding.features(y_clean.double())).float()
        lg = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,), generator=gen)))
        model.train()
        extra = {"noise": noise} if cfg["noise_latent"] and cfg["noise_input"] else {}
        terms = model.loss(xs_all[idx], c, y_noise=cfg["y_noise"], pad_noise=cfg["pad_noise"], generator=lg, **extra)
        if not torch.isfinite(terms["total"]):
            raise RuntimeError(f"row {name}: diverged at step {step}")
        opt.zero_grad(set_to_none=True)
        terms["total"].backward()
        torch.nn.utils.clip_grad_norm_(params, 10.0)
        opt.step()
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach())
        if (step + 1) % log_every == 0:
            history.append({"step": step + 1, **{k: v / log_every for k, v in sums.items()}})
            sums = {}
            print(f"[{name}] step {step + 1}/{steps} " + " ".join(f"{k}={v:.4g}" for k, v in history[-1].items()
                                                                  if k != "step"), flush=True)
    train_s = time.monotonic() - t0
    model.eval()
    result: dict[str, Any] = {"row": name, "config": {**cfg, "steps": steps},
                              "train_seconds": round(train_s, 1), "history": history,
                              "n_train": int(x_tr.shape[0]), "n_test": int(test.x.shape[0]),
                              "draws": args.draws, "final": history[-1] if history else {}}
    names = list(tissue.parameter_names)
    for snr_val in TEST_SNRS:
        g = torch.Generator().manual_seed(1000 + int(snr_val))
        y_noisy, snr = _apply_noise(test.y, g, snr=snr_val)
        c = coding.c(y_noisy, snr if snr_cond else None)
        with torch.no_grad():
            u = model.sample(c, args.draws, generator=torch.Generator().manual_seed(7))
        samples = coding.net_to_x(u)
        truth = test.x
        cal = calibration_summary(samples, truth)
        widths = np.median(interval_width(samples, 0.68), axis=0)
        med = samples.median(dim=1).values
        mae = (med - truth).abs().mean(0).numpy()
        worst = int(np.argmax(cal["median_abs"]))
        result[f"snr{int(snr_val)}"] = {
            "sao2_mae": float(mae[0]),
            "sao2_median_abs_ecal": float(cal["median_abs"][0]),
            "sao2_ecal68": float(cal["at_68"][0]),
            "sao2_width68": float(widths[0]),
            "worst_median_abs_ecal": float(cal["median_abs"][worst]),
            "worst_parameter": names[worst],
            "median_abs_ecal": {n: float(v) for n, v in zip(names, cal["median_abs"], strict=True)},
            "ecal68": {n: float(v) for n, v in zip(names, cal["at_68"], strict=True)},
            "width68": {n: float(v) for n, v in zip(names, widths, strict=True)},
        }
        print(f"[{name}] SNR {snr_val:g}: " + json.dumps({k: v for k, v in result[f'snr{int(snr_val)}'].items()
                                                        if not isinstance(v, dict)}), flush=True)
    return result


def evaluate_bundle(path: str, args: argparse.Namespace) -> dict[str, Any]:
    """The rows' evaluation (same test cases, noise and draw seeds) for a trained bundle."""
    from tissue_inn.io.bundle import load_bundle

    est, _ = load_bundle(path)
    test = SpectraDataset(args.test, limit=args.n_test)
    names = list(est.parameter_names)
    out: dict[str, Any] = {"bundle": str(path), "n_test": int(test.x.shape[0]), "draws": args.draws}
    for snr_val in TEST_SNRS:
        y_noisy, _ = _apply_noise(test.y, torch.Generator().manual_seed(1000 + int(snr_val)), snr=snr_val)
        samples = est.sample(y_noisy, args.draws, generator=torch.Generator().manual_seed(7), snr=snr_val)
        cal = calibration_summary(samples, test.x)
        widths = np.median(interval_width(samples, 0.68), axis=0)
        mae = (samples.median(dim=1).values - test.x).abs().mean(0).numpy()
        out[f"snr{int(snr_val)}"] = {
            "sao2_mae": float(mae[0]), "sao2_median_abs_ecal": float(cal["median_abs"][0]),
            "sao2_ecal68": float(cal["at_68"][0]), "sao2_width68": float(widths[0]),
            "median_abs_ecal": {n: float(v) for n, v in zip(names, cal["median_abs"], strict=True)},
        }
        print(f"{path} SNR {snr_val:g}: " + json.dumps(out[f"snr{int(snr_val)}"]), flush=True)
    return out


# ----------------------------------------------------------------------------------------------- report
def _pct(v: float) -> str:
    return f"{100 * v:+.1f} %" if v < 0 else f"{100 * v:.1f} %"


def write_report(out: Path) -> None:
    """Regenerate ``table.md`` and the plots from ``results.json``."""
    res = json.loads((out / "results.json").read_text())
    lines = ["| row | steps × batch | train s | SNR | sO2 MAE | sO2 median \\|e_cal\\| | sO2 e_cal@68 | "
             "sO2 width68 | worst \\|e_cal\\| | final L_x | final L_z | final L_y |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |"]
    order = [r for r in ROWS if r in res] + [r for r in res if r not in ROWS]
    for r in order:
        e = res[r]
        for snr in TEST_SNRS:
            s = e[f"snr{int(snr)}"]
            f = e["final"]
            lines.append(
                f"| {r} | {e['config']['steps']} × {e['config']['batch_size']} | {e['train_seconds']:.0f} | "
                f"{snr:g} | {s['sao2_mae']:.4f} | {_pct(s['sao2_median_abs_ecal'])} | {_pct(s['sao2_ecal68'])} | "
                f"{s['sao2_width68']:.3f} | {_pct(s['worst_median_abs_ecal'])} ({s['worst_parameter']}) | "
                f"{f.get('L_x', float('nan')):.4g} | {f.get('L_z', float('nan')):.4g} | "
                f"{f.get('L_y', float('nan')):.4g} |")
    (out / "table.md").write_text("\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for r in order:
        h = res[r]["history"]
        if not h:
            continue
        steps = [p["step"] for p in h]
        for ax, key in zip(axes, ("L_x", "L_z", "L_y"), strict=True):
            ax.plot(steps, [p[key] for p in h], label=r)
    for ax, key in zip(axes, ("L_x", "L_z", "L_y"), strict=True):
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.set_yscale("log")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "losses.png", dpi=90)
    plt.close(fig)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    x = np.arange(len(order))
    for ax, snr in zip(axes, TEST_SNRS, strict=True):
        ecal = [res[r][f"snr{int(snr)}"]["sao2_ecal68"] * 100 for r in order]
        worst = [res[r][f"snr{int(snr)}"]["worst_median_abs_ecal"] * 100 for r in order]
        ax.bar(x - 0.2, ecal, 0.4, label="sO2 e_cal at 68 % (%)")
        ax.bar(x + 0.2, worst, 0.4, label="worst parameter median |e_cal| (%)")
        ax.axhline(0, color="k", lw=0.6)
        ax.set_xticks(x, order, rotation=60, ha="right", fontsize=7)
        ax.set_title(f"SNR {snr:g}")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "calibration.png", dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("rows", nargs="*", help=f"rows to run: {', '.join(ROWS)}")
    p.add_argument("--train", default="data/colon_100k.h5")
    p.add_argument("--n-train", type=int, default=25000)
    p.add_argument("--offset", type=int, default=0, help="skip this many training spectra first")
    p.add_argument("--test", default="data/colon_test.h5")
    p.add_argument("--n-test", type=int, default=500)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--draws", type=int, default=1024)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--report-only", action="store_true")
    p.add_argument("--eval-bundle", nargs="+", default=[],
                   help="evaluate trained bundles like the rows (writes OUT/bundles.json)")
    p.add_argument("--merge", nargs="+", type=Path, default=[],
                   help="fold the results.json of other output folders (rows run in parallel) into -o")
    p.add_argument("-o", "--out", default="docs/inn_study")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for r in args.rows:
        if r not in ROWS:
            p.error(f"unknown row {r!r}; known: {', '.join(ROWS)}")
    for r in args.rows:
        result = run_row(r, args)
        result["machine"] = {"python": platform.python_version(), "torch": torch.__version__,
                             "threads": args.threads, "train": args.train, "test": args.test}
        path = out / "results.json"
        res = json.loads(path.read_text()) if path.exists() else {}
        res[r] = result
        tmp = path.with_suffix(".json.part")
        tmp.write_text(json.dumps(res, indent=1))
        tmp.replace(path)
        write_report(out)
    if args.eval_bundle:
        path = out / "bundles.json"
        res = json.loads(path.read_text()) if path.exists() else {}
        for b in args.eval_bundle:
            res[Path(b).name] = evaluate_bundle(b, args)
        tmp = path.with_suffix(".json.part")
        tmp.write_text(json.dumps(res, indent=1))
        tmp.replace(path)
    if args.merge:
        path = out / "results.json"
        res = json.loads(path.read_text()) if path.exists() else {}
        for folder in args.merge:
            res.update(json.loads((folder / "results.json").read_text()))
        tmp = path.with_suffix(".json.part")
        tmp.write_text(json.dumps(res, indent=1))
        tmp.replace(path)
    if args.report_only or args.merge:
        write_report(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
