"""Plausibility checks of a skin model that a dermatology researcher expects (figures + Markdown).

1. **Pigmentation sweep.** Spectra simulated with the epidermal melanin volume fraction stepped from
   1 % (palm, very light skin) to 43 % (darkly pigmented skin; Jacques 2013's ranges), everything else
   fixed at typical values (sO2 70 %, dermal blood 2 %, epidermis 80 µm, μs′(500 nm) 46 cm⁻¹, b 1.4,
   dermis 2 mm), ``--n-rep`` noisy copies at SNR 20: the posterior-median melanin must rise with the
   simulated melanin (Spearman ρ, and every step's mean estimate above the previous one).
2. **Physiological skin.** Spectra drawn inside the prior but with sO2 40–90 %, dermal blood 0.2–7 %
   and melanin 1–43 %: the share of posterior-median sO2 inside 40–90 %, and its error.

Writes ``<out>/pigmentation.png``, ``<out>/physiological_so2.png``, ``<out>/plausibility.json`` and
``<out>/README.md``. Usage::

    python benchmarks/skin_plausibility.py --model models/skin_spectrocam8 -o docs/skin_model
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from tissue_inn.config import Camera, TissueModel
from tissue_inn.io.bundle import load_bundle
from tissue_inn.optics.forward import ForwardModel

MELANIN = (0.01, 0.03, 0.07, 0.12, 0.16, 0.22, 0.30, 0.43)
TYPICAL = {"sao2": 0.70, "mel_1": 0.05, "d_1": 80.0, "vhb_2": 0.02, "a_mie_2": 46.0, "b_mie_2": 1.4, "d_2": 2000.0}


def _posterior_median(est, y: torch.Tensor, snr: float, draws: int, seed: int) -> np.ndarray:
    s = est.sample(y, draws, generator=torch.Generator().manual_seed(seed), snr=snr)
    return s.median(dim=1).values.numpy()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="models/skin_spectrocam8")
    p.add_argument("-o", "--output", type=Path, default=Path("docs/skin_model"))
    p.add_argument("--snr", type=float, default=20.0)
    p.add_argument("--n-rep", type=int, default=50)
    p.add_argument("--n-phys", type=int, default=400)
    p.add_argument("--draws", type=int, default=512)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import spearmanr

    torch.set_num_threads(1)
    est, card = load_bundle(args.model)
    tissue = TissueModel.from_dict(card["tissue"])
    camera = Camera.from_dict(card["camera"])
    names = list(tissue.parameter_names)
    fm = ForwardModel(tissue, camera)
    gen = torch.Generator().manual_seed(args.seed)

    # 1. pigmentation sweep
    base = torch.tensor([[TYPICAL[n] for n in names]], dtype=torch.float64)
    x = base.repeat(len(MELANIN), 1)
    x[:, names.index("mel_1")] = torch.tensor(MELANIN, dtype=torch.float64)
    y0 = fm.bands(x)
    y = camera.noise.apply(y0.repeat_interleave(args.n_rep, 0), gen, snr=args.snr)
    med = _posterior_median(est, y, args.snr, args.draws, args.seed + 1).reshape(len(MELANIN), args.n_rep, -1)
    mel_est = med[:, :, names.index("mel_1")]
    so2_est = med[:, :, names.index("sao2")]
    rho = float(spearmanr(np.repeat(MELANIN, args.n_rep), mel_est.ravel())[0])
    means = mel_est.mean(axis=1)
    monotone = bool(np.all(np.diff(means) > 0))
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.6))
    ax[0].boxplot(list(100 * mel_est), positions=100 * np.asarray(MELANIN), widths=1.5, manage_ticks=False)
    ax[0].plot([0, 45], [0, 45], "k--", lw=0.8, label="truth")
    ax[0].set_xlabel("simulated epidermal melanin volume fraction, %")
    ax[0].set_ylabel("posterior median, %")
    ax[0].set_title(f"melanin rises with pigmentation (ρ = {rho:.2f})")
    ax[1].boxplot(list(100 * so2_est), positions=100 * np.asarray(MELANIN), widths=1.5, manage_ticks=False)
    ax[1].axhline(70, color="k", ls="--", lw=0.8)
    ax[1].set_xlabel("simulated epidermal melanin volume fraction, %")
    ax[1].set_ylabel("posterior median StO2, %")
    ax[1].set_title("StO2 (truth 70 %) across pigmentation")
    fig.suptitle(f"{card['name']}: {args.n_rep} noisy copies per level, SNR {args.snr:g}", fontsize=9)
    fig.tight_layout()
    args.output.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output / "pigmentation.png", dpi=110)

    # 2. physiological skin inside the prior
    xp = tissue.sample_prior(args.n_phys, gen)
    u = torch.rand(args.n_phys, 3, generator=gen, dtype=torch.float64)
    xp[:, names.index("sao2")] = 0.4 + 0.5 * u[:, 0]
    xp[:, names.index("vhb_2")] = 0.002 + 0.068 * u[:, 1]
    xp[:, names.index("mel_1")] = 0.01 + 0.42 * u[:, 2]
    yp = camera.noise.apply(fm.bands(xp), gen, snr=args.snr)
    mp = _posterior_median(est, yp, args.snr, args.draws, args.seed + 2)
    so2_true, so2_hat = xp[:, names.index("sao2")].numpy(), mp[:, names.index("sao2")]
    inside = float(np.mean((so2_hat >= 0.4) & (so2_hat <= 0.9)))
    mae = float(np.mean(np.abs(so2_hat - so2_true)))
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.scatter(100 * so2_true, 100 * so2_hat, s=6, alpha=0.6)
    ax.plot([40, 90], [40, 90], "k--", lw=0.8)
    ax.axhspan(40, 90, color="g", alpha=0.08)
    ax.set_xlabel("simulated StO2, %")
    ax.set_ylabel("posterior median StO2, %")
    ax.set_title(f"physiological skin: {100 * inside:.0f} % of estimates in 40–90 %", fontsize=9)
    fig.tight_layout()
    fig.savefig(args.output / "physiological_so2.png", dpi=110)

    result = {
        "model": card["name"], "snr": args.snr, "draws": args.draws, "seed": args.seed,
        "pigmentation": {"melanin_levels": MELANIN, "n_rep": args.n_rep, "typical": TYPICAL,
                         "mean_estimate": means.tolist(), "spearman_rho": rho, "monotone_means": monotone,
                         "so2_mean_estimate": so2_est.mean(axis=1).tolist()},
        "physiological": {"n": args.n_phys, "so2_estimates_in_40_90": inside, "so2_mae": mae},
    }
    (args.output / "plausibility.json").write_text(json.dumps(result, indent=1))
    lines = [
        f"# Plausibility of `{card['name']}` (simulated skin, SNR {args.snr:g})", "",
        f"Reproduce: `python benchmarks/skin_plausibility.py --model {args.model} -o {args.output}`", "",
        "![pigmentation sweep](pigmentation.png)", "",
        f"- Melanin estimates rise with simulated pigmentation: Spearman ρ = {rho:.3f}; mean estimate per "
        f"level {', '.join(f'{100 * m:.1f}' for m in means)} % for truths {', '.join(f'{100 * m:g}' for m in MELANIN)} % "
        f"({'strictly increasing' if monotone else 'NOT strictly increasing'}).",
        f"- StO2 (truth 70 %) estimated as {', '.join(f'{100 * m:.0f}' for m in so2_est.mean(axis=1))} % "
        "across the same levels.", "",
        "![physiological StO2](physiological_so2.png)", "",
        f"- On {args.n_phys} in-prior spectra with physiological StO2 40–90 %, dermal blood 0.2–7 % and melanin "
        f"1–43 %, {100 * inside:.1f} % of posterior-median StO2 lie in 40–90 % (MAE {100 * mae:.1f} points).",
    ]
    (args.output / "README.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
