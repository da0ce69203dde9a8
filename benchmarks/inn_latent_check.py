"""Does an ``inn_noise`` model's forward map give a standard-normal latent at every SNR? (issue 15)

Runs held-out spectra forwards through the network, ``[x, noise × SNR, log-SNR] → [ŷ, ŝ, ẑ]``, at fixed
SNRs, and prints the fit of ŷ to the noisy features (standardised units, beside the noise's own size) and
the covariance of ẑ. Backward sampling draws z ~ N(0, I), so a latent whose covariance has eigenvalues
well above 1 at some SNR is the reason intervals come out too narrow there (docs/inn_study/README.md).

Usage:
    python benchmarks/inn_latent_check.py models/colon_inn_calibrated [--test data/colon_test.h5]
        [--n 2000] [--snr 50 20 10] [--seed 5]
"""

from __future__ import annotations

import argparse

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
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    est, card = load_bundle(args.model)
    net = est.net.eval()
    if not getattr(net, "uses_noise_realisation", False) or not getattr(net, "snr_columns", 0):
        ap.error(f"{args.model}: not an inn_noise model with the noise and log-SNR on its input side")
    noise = NoiseModel(**card["noise_model"])
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


if __name__ == "__main__":
    raise SystemExit(main())
