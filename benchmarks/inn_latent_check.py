"""Does an ``inn_noise`` model's forward map give a standard-normal latent at every SNR? (issue 15)

Runs held-out spectra forwards through the network, ``[x, noise × SNR, log-SNR] → [ŷ, ŝ, ẑ]``, at fixed
SNRs, and prints the fit of ŷ to the noisy features (standardised units, beside the noise's own size) and
the covariance of ẑ. Backward sampling draws z ~ N(0, I), so a latent whose covariance has eigenvalues
well above 1 at some SNR is the reason intervals come out too narrow there (docs/inn_study/README.md).

With ``--shape`` it also checks the *shape* of each parameter's posterior (any model family): the median
excess kurtosis of the draws, per test spectrum, in the logit coordinates of the prior range. A uniform
prior is a logistic distribution there (excess kurtosis 1.2), so a parameter the spectrum does not inform
should come out near 1.2; a network that renders it as a Gaussian of the same variance (0) has 68 %
intervals ≈ 3.7 % too wide in physical units (median |e_cal| ≈ 3.1 %; printed below). This is how the
logit coding was found to cost the bidirectional INN its calibration of g, d and vhb_3
(docs/inn_study/README.md, round 4).

Usage:
    python benchmarks/inn_latent_check.py models/colon_inn_calibrated [--test data/colon_test.h5]
        [--n 2000] [--snr 50 20 10] [--seed 5] [--shape [--shape-n 200 --shape-draws 2048 --shape-snr 20]]
"""

from __future__ import annotations

import argparse
import math

import torch

__all__: list[str] = []


def main(argv: list[str] | None = None) -> int:
    from tissue_inn.config import NoiseModel
    from tissue_inn.data.dataset import SpectraDataset
    from tissue_inn.io.bundle import load_bundle

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--test", default="data/colon_test.h5")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--snr", type=float, nargs="+", default=[50.0, 20.0, 10.0])
    ap.add_argument("--seed", type=int, default=5, help="seed of the noise draws")
    ap.add_argument("--shape", action="store_true", help="also the kurtosis of each parameter's posterior draws")
    ap.add_argument("--shape-n", type=int, default=200, help="test spectra for --shape")
    ap.add_argument("--shape-draws", type=int, default=2048, help="posterior draws per spectrum for --shape")
    ap.add_argument("--shape-snr", type=float, default=20.0)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    est, card = load_bundle(args.model)
    net = est.net.eval()
    noise = NoiseModel(**card["noise_model"])
    if args.shape:
        _shape_check(est, noise, SpectraDataset(args.test, limit=args.shape_n), args)
    if not getattr(net, "uses_noise_realisation", False) or not getattr(net, "snr_columns", 0):
        if args.shape:
            return 0
        ap.error(f"{args.model}: not an inn_noise model with the noise and log-SNR on its input side")
    test = SpectraDataset(args.test, limit=args.n)
    print(f"{args.model}: {test.x.shape[0]} spectra of {args.test}, noise seed {args.seed}")
    for snr in args.snr:
        y_noisy = noise.apply(test.y, torch.Generator().manual_seed(args.seed), snr=float(snr))
        feat_noise = (est.features(y_noisy.double()) - est.features(test.y.double())).float()
        y_net = est.y_to_net(y_noisy, snr)
        y_clean_net = est.y_to_net(test.y, snr)
        s = y_net[:, net.n_features:]
        scaled = feat_noise * (float(snr) if net.unit_noise else net.noise_scale)
        x_side = torch.cat([est.x_to_net(test.x), scaled, s], dim=1)
        x_side = torch.cat([x_side, x_side.new_zeros(x_side.shape[0], net.total_dim - x_side.shape[1])], dim=1)
        with torch.inference_mode():
            out = net.network.transform(x_side, c=s if net.cond_dim else None)
        y_hat, z_hat, _ = net._split_out(out)
        fit = (y_hat - y_net)[:, : net.n_features].pow(2).mean().sqrt()
        size = (y_net - y_clean_net)[:, : net.n_features].pow(2).mean().sqrt()
        eig = torch.linalg.eigvalsh(torch.cov(z_hat.T.double()))
        print(f"SNR {snr:4g}: ŷ − y rms {fit:.3f} (the noise itself: {size:.3f}); ẑ covariance eigenvalues "
              f"{eig.min():.2f}–{eig.max():.2f} (N(0, I): 1), largest |mean| {z_hat.mean(0).abs().max():.2f}")
    return 0


def gaussian_rendering_of_logistic() -> tuple[float, float]:
    """(median |e_cal| over q = 1/101 … 100/101, e_cal at 68 %) for a uniform truth when the draws of its
    logit are a Gaussian with the logistic's variance π²/3 instead of the logistic itself."""
    from statistics import NormalDist

    sd = math.pi / math.sqrt(3.0)

    def coverage(q: float) -> float:  # of a uniform truth by the central q-interval, mapped back by the sigmoid
        return 2.0 / (1.0 + math.exp(-sd * NormalDist().inv_cdf(0.5 + q / 2))) - 1.0

    errors = sorted(abs(coverage(k / 101) - k / 101) for k in range(1, 101))
    return 0.5 * (errors[49] + errors[50]), coverage(0.68) - 0.68


def _shape_check(est, noise, test, args) -> None:
    from tissue_inn.data.preprocess import BoundedTransform

    y = noise.apply(test.y, torch.Generator().manual_seed(args.seed), snr=args.shape_snr)
    kwargs = {"snr": args.shape_snr} if getattr(est, "snr_conditioning", False) else {}
    draws = est.sample(y.float(), args.shape_draws, generator=torch.Generator().manual_seed(args.seed + 1), **kwargs)
    # the same coordinates for every model: the logit of the prior range, whatever the network's own coding
    logit = BoundedTransform(est.x_transform.low.tolist(), est.x_transform.high.tolist(), "logit")
    u = logit(draws.reshape(-1, draws.shape[-1])).reshape(draws.shape)
    u = (u - u.mean(1, keepdim=True)) / u.std(1, keepdim=True).clamp_min(1e-12)
    kurt = (u**4).mean(1).median(0).values - 3.0
    ecal_med, ecal68 = gaussian_rendering_of_logistic()
    print(f"posterior shape, SNR {args.shape_snr:g}, {draws.shape[0]} spectra x {draws.shape[1]} draws: median excess "
          f"kurtosis in logit coordinates (a uniform prior: 1.2; a Gaussian rendering of it: 0, which makes "
          f"intervals too wide by median |e_cal| {100 * ecal_med:.1f} %, {100 * ecal68:+.1f} % at 68 %)")
    print("  " + "  ".join(f"{n} {float(k):.2f}" for n, k in zip(est.parameter_names, kurt)))


if __name__ == "__main__":
    raise SystemExit(main())
