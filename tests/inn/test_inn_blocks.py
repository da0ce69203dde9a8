"""Contract tests for every invertible block and the whole sequence.

Each block must (1) invert exactly, (2) report log|det J| equal to slogdet of the autograd Jacobian,
(3) report reverse log-dets that cancel the forward ones, (4) pass gradients to every parameter.
"""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from tissue_inn.errors import ConfigError
from tissue_inn.inn import (
    ActNorm,
    FixedPermutation,
    GLOWCoupling,
    InvertibleSequence,
    RealNVPCoupling,
    mlp_constructor,
    soft_clamp,
)

DIM = 5
COND_DIM = 3


pytestmark = pytest.mark.usefixtures("one_thread")


def _randomise(module: nn.Module, seed: int, scale: float = 0.3) -> nn.Module:
    """Give every parameter random non-zero values (zero-initialised last layers make blocks identities)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(scale * torch.randn(param.shape, generator=generator, dtype=param.dtype))
    return module


def _make(kind: str, cond_dim: int, dim: int = DIM, clamp: float = 2.0) -> nn.Module:
    construct = mlp_constructor(hidden=16, n_hidden_layers=2, seed=3)
    if kind == "realnvp":
        return RealNVPCoupling(dim, construct, clamp=clamp, cond_dim=cond_dim)
    if kind == "glow":
        return GLOWCoupling(dim, construct, clamp=clamp, cond_dim=cond_dim)
    if kind == "actnorm":
        return ActNorm(dim)
    if kind == "permutation":
        return FixedPermutation(dim, seed=11)
    if kind == "sequence_realnvp":
        return InvertibleSequence(dim, n_blocks=3, hidden=16, n_hidden_layers=2, clamp=clamp, cond_dim=cond_dim)
    if kind == "sequence_glow_actnorm":
        return InvertibleSequence(
            dim,
            n_blocks=2,
            block_type="glow",
            hidden=16,
            n_hidden_layers=2,
            clamp=clamp,
            cond_dim=cond_dim,
            actnorm=True,
        )
    raise AssertionError(kind)


CASES = [
    ("realnvp", 0),
    ("realnvp", COND_DIM),
    ("glow", 0),
    ("glow", COND_DIM),
    ("actnorm", 0),
    ("permutation", 0),
    ("sequence_realnvp", 0),
    ("sequence_realnvp", COND_DIM),
    ("sequence_glow_actnorm", 0),
    ("sequence_glow_actnorm", COND_DIM),
]
IDS = [f"{kind}-cond{cond}" for kind, cond in CASES]


def _inputs(batch: int, dim: int, cond_dim: int, dtype: torch.dtype, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    x = 1.5 * torch.randn(batch, dim, generator=generator, dtype=dtype)
    c = torch.randn(batch, cond_dim, generator=generator, dtype=dtype) if cond_dim else None
    return x, c


@pytest.mark.parametrize(("kind", "cond_dim"), CASES, ids=IDS)
def test_inverse_float64(kind: str, cond_dim: int) -> None:
    block = _randomise(_make(kind, cond_dim), seed=1).double()
    x, c = _inputs(64, DIM, cond_dim, torch.float64)
    out, _ = block(x, c=c)
    assert not torch.allclose(out, x), "randomised block should not be the identity"
    back, _ = block(out, c=c, rev=True)
    assert torch.max(torch.abs(back - x)) <= 1e-10


@pytest.mark.parametrize(("kind", "cond_dim"), CASES, ids=IDS)
def test_inverse_float32(kind: str, cond_dim: int) -> None:
    block = _randomise(_make(kind, cond_dim), seed=2)
    x, c = _inputs(64, DIM, cond_dim, torch.float32)
    out, _ = block(x, c=c)
    back, _ = block(out, c=c, rev=True)
    relative = torch.linalg.norm(back - x) / torch.linalg.norm(x)
    assert relative <= 1e-4


@pytest.mark.parametrize(("kind", "cond_dim"), CASES, ids=IDS)
def test_log_jac_matches_autograd_jacobian(kind: str, cond_dim: int) -> None:
    block = _randomise(_make(kind, cond_dim), seed=3).double().eval()
    x, c = _inputs(4, DIM, cond_dim, torch.float64, seed=5)
    _, log_jac = block(x, c=c)
    _, log_jac_rev_input = block(x, c=c, rev=True)
    for i in range(x.shape[0]):
        ci = c[i : i + 1] if c is not None else None
        jac = torch.autograd.functional.jacobian(lambda v, ci=ci: block(v, c=ci)[0], x[i : i + 1])
        sign, logabsdet = torch.linalg.slogdet(jac.reshape(DIM, DIM))
        assert sign != 0
        assert torch.isclose(log_jac[i], logabsdet, atol=1e-9, rtol=1e-9)
        jac_rev = torch.autograd.functional.jacobian(lambda v, ci=ci: block(v, c=ci, rev=True)[0], x[i : i + 1])
        _, logabsdet_rev = torch.linalg.slogdet(jac_rev.reshape(DIM, DIM))
        assert torch.isclose(log_jac_rev_input[i], logabsdet_rev, atol=1e-9, rtol=1e-9)


@pytest.mark.parametrize(("kind", "cond_dim"), CASES, ids=IDS)
def test_forward_and_reverse_log_jac_cancel(kind: str, cond_dim: int) -> None:
    block = _randomise(_make(kind, cond_dim), seed=4).double()
    x, c = _inputs(32, DIM, cond_dim, torch.float64, seed=6)
    out, log_jac = block(x, c=c)
    _, log_jac_rev = block(out, c=c, rev=True)
    assert torch.allclose(log_jac + log_jac_rev, torch.zeros_like(log_jac), atol=1e-10)


@pytest.mark.parametrize(("kind", "cond_dim"), CASES, ids=IDS)
@pytest.mark.parametrize("rev", [False, True])
def test_every_parameter_gets_a_gradient(kind: str, cond_dim: int, rev: bool) -> None:
    block = _randomise(_make(kind, cond_dim), seed=7)
    x, c = _inputs(16, DIM, cond_dim, torch.float32, seed=8)
    out, log_jac = block(x, c=c, rev=rev)
    loss = (out**2).sum() - log_jac.sum()
    params = list(block.parameters())
    if not params:
        assert kind == "permutation"
        return
    loss.backward()
    for name, param in block.named_parameters():
        assert param.grad is not None, name
        assert torch.all(torch.isfinite(param.grad)), name
        assert param.grad.abs().sum() > 0, name


@pytest.mark.parametrize("kind", ["realnvp", "glow"])
def test_coupling_starts_as_identity(kind: str) -> None:
    block = _make(kind, cond_dim=0)
    x, _ = _inputs(8, DIM, 0, torch.float32)
    out, log_jac = block(x)
    assert torch.equal(out, x)
    assert torch.equal(log_jac, torch.zeros(8))


def test_conditioning_changes_the_output() -> None:
    block = _randomise(_make("realnvp", COND_DIM), seed=9)
    x, c = _inputs(8, DIM, COND_DIM, torch.float32)
    out_a, _ = block(x, c=c)
    out_b, _ = block(x, c=c + 1.0)
    assert not torch.allclose(out_a, out_b)


def test_missing_condition_is_a_clear_error() -> None:
    block = _make("glow", COND_DIM)
    x, _ = _inputs(8, DIM, 0, torch.float32)
    with pytest.raises(ValueError, match="cond_dim"):
        block(x)


def test_soft_clamp_bounds_and_slope() -> None:
    s = torch.linspace(-1e4, 1e4, 1001, dtype=torch.float64)
    clamped = soft_clamp(s, 2.0)
    assert clamped.abs().max() < 2.0
    assert clamped.max() > 1.99
    small = torch.tensor([1e-4], dtype=torch.float64)
    for clamp in (0.5, 3.0):  # slope 2/π at zero, independent of the clamp
        assert torch.isclose(soft_clamp(small, clamp), small * 2.0 / torch.pi, rtol=1e-6)
    assert torch.equal(soft_clamp(s, 0.0), s)


def test_log_scale_is_bounded_by_clamp() -> None:
    block = _randomise(_make("realnvp", 0, clamp=0.5), seed=10, scale=5.0)
    x, _ = _inputs(64, DIM, 0, torch.float64)
    _, log_jac = block.double()(x)
    # Two couplings cover all DIM features once each: |log det| < clamp · DIM.
    assert log_jac.abs().max() < 0.5 * DIM


def test_permutation_is_seeded_buffer_not_parameter() -> None:
    a, b, other = FixedPermutation(12, seed=5), FixedPermutation(12, seed=5), FixedPermutation(12, seed=6)
    assert torch.equal(a.perm, b.perm)
    assert not torch.equal(a.perm, other.perm)
    assert list(a.parameters()) == []
    state = a.state_dict()
    assert set(state) == {"perm", "inverse_perm"}
    assert torch.equal(a.perm[a.inverse_perm], torch.arange(12))


def test_permutation_does_not_touch_global_rng() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    FixedPermutation(30, seed=1)
    InvertibleSequence(6, n_blocks=2, hidden=8)
    assert torch.equal(torch.rand(3), expected)


def test_actnorm_data_init_and_state() -> None:
    layer = ActNorm(3, data_init=True)
    x = torch.tensor([[1.0, 10.0, -4.0], [3.0, 14.0, -2.0], [5.0, 18.0, 0.0]])
    out, _ = layer(x)
    assert torch.allclose(out.mean(dim=0), torch.zeros(3), atol=1e-5)
    assert torch.allclose(out.std(dim=0, unbiased=False), torch.ones(3), atol=1e-4)
    state = layer.state_dict()
    assert {"log_scale", "bias", "initialized"} <= set(state)
    fresh = ActNorm(3, data_init=True)
    fresh.load_state_dict(state)
    out_fresh, _ = fresh(x + 100.0)  # must not re-initialise on this very different batch
    assert torch.allclose(out_fresh, layer(x + 100.0)[0])


def test_sequence_config_round_trip_through_json() -> None:
    net = _randomise(InvertibleSequence(6, n_blocks=3, block_type="glow", hidden=8, cond_dim=2, seed=4), seed=12)
    rebuilt = InvertibleSequence.from_config(json.loads(json.dumps(net.config())))
    rebuilt.load_state_dict(net.state_dict(), strict=True)
    x, c = _inputs(10, 6, 2, torch.float32)
    assert torch.equal(net(x, c=c)[0], rebuilt(x, c=c)[0])


def test_sequence_rejects_bad_config() -> None:
    with pytest.raises(ConfigError, match="block_type"):
        InvertibleSequence(4, block_type="spline")
    with pytest.raises(ConfigError, match="unknown keys"):
        InvertibleSequence.from_config({"dim": 4, "width": 3})


def test_same_seed_same_network_different_seed_different() -> None:
    x, _ = _inputs(8, 6, 0, torch.float32)
    nets = [InvertibleSequence(6, n_blocks=2, hidden=8, seed=s) for s in (1, 1, 2)]
    for net in nets:  # break the zero init of the last layers identically
        for block in net.blocks:
            if isinstance(block, RealNVPCoupling):
                with torch.no_grad():
                    block.s1[-1].weight.fill_(0.1)
    outs = [net(x)[0] for net in nets]
    assert torch.equal(outs[0], outs[1])
    assert not torch.allclose(outs[0], outs[2])


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    dim=st.integers(min_value=2, max_value=9),
    batch=st.integers(min_value=1, max_value=17),
    clamp=st.floats(min_value=0.1, max_value=3.0),  # larger clamps amplify round-off by up to e^(4·clamp)
    cond_dim=st.integers(min_value=0, max_value=3),
    block_type=st.sampled_from(["realnvp", "glow"]),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_property_sequence_inverts(
    dim: int, batch: int, clamp: float, cond_dim: int, block_type: str, seed: int
) -> None:
    net = InvertibleSequence(
        dim, n_blocks=2, block_type=block_type, hidden=8, n_hidden_layers=1, clamp=clamp, cond_dim=cond_dim, seed=seed
    )
    net = _randomise(net, seed=seed, scale=0.3).double()
    x, c = _inputs(batch, dim, cond_dim, torch.float64, seed=seed)
    with torch.no_grad():
        out, log_jac = net(x, c=c)
        back, log_jac_rev = net(out, c=c, rev=True)
    assert out.shape == x.shape and log_jac.shape == (batch,)
    # Round-off grows with the scales applied (up to exp(clamp) per coupling), hence the loose bound.
    assert torch.max(torch.abs(back - x)) <= 1e-8 * max(1.0, float(x.abs().max()))
    scale = max(1.0, float(log_jac.abs().max()))
    assert torch.allclose(log_jac + log_jac_rev, torch.zeros(batch, dtype=torch.float64), atol=1e-10 * scale)
    # Two couplings per block, each feature scaled once per block: |log det| < n_blocks · clamp · dim.
    assert log_jac.abs().max() < 2 * clamp * dim


@pytest.mark.parametrize("block_type", ["realnvp", "glow"])
@pytest.mark.parametrize("cond_dim", [0, COND_DIM])
@pytest.mark.parametrize("rev", [False, True])
@pytest.mark.parametrize("repeats", [1, 5])
@pytest.mark.parametrize("actnorm", [False, True])
def test_evaluation_path_matches_the_training_path(block_type: str, cond_dim: int, rev: bool, repeats: int,
                                                   actnorm: bool) -> None:
    """``transform`` (chunked, in-place, contiguous scale halves, one condition row per ``repeats`` rows)
    gives the map of the autograd path."""
    from tissue_inn.inn.network import EVAL_CHUNK_ROWS

    net = _randomise(InvertibleSequence(7, n_blocks=3, block_type=block_type, hidden=16, n_hidden_layers=2,
                                        cond_dim=cond_dim, actnorm=actnorm), seed=5).eval()
    gen = torch.Generator().manual_seed(2)
    rows = 5 * (2 * EVAL_CHUNK_ROWS // 5 + 7)  # several chunks and a short last one, whole groups of 5
    x = torch.randn(rows, 7, generator=gen)
    c = torch.randn(rows // repeats, cond_dim, generator=gen) if cond_dim else None
    c_rows = None if c is None else c.repeat_interleave(repeats, dim=0)
    expected = net._run(x, c_rows, rev)[0].detach()  # the training path, block by block
    with torch.inference_mode():
        got = net.transform(x, c, rev=rev, repeats=repeats if cond_dim else 1)
        again = net.transform(x, c_rows, rev=rev)
    assert got.shape == expected.shape
    scale = float(expected.abs().max())  # float32 rounding, amplified by the inverse's exp(−s), on this scale
    assert float((got - expected).abs().max()) <= 1e-5 * scale, (float((got - expected).abs().max()), scale)
    assert float((again - expected).abs().max()) <= 1e-5 * scale


def test_repeats_must_match_the_rows() -> None:
    net = InvertibleSequence(4, n_blocks=1, hidden=8, cond_dim=2).eval()
    with torch.inference_mode(), pytest.raises(ValueError, match="repeats=3"):
        net.transform(torch.zeros(10, 4), torch.zeros(3, 2), rev=True, repeats=3)


def test_padded_output_layer_follows_weight_changes() -> None:
    """The evaluation path's zero-padded copy of the output layer is rebuilt when the weights change."""
    from tissue_inn.inn.coupling import MLP

    mlp = _randomise(MLP(5, 7, hidden=16, n_hidden_layers=2), seed=1).eval()
    x = torch.randn(40, 5, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        first = mlp.evaluate(x)
        assert torch.allclose(first, nn.Sequential.forward(mlp, x), atol=1e-6)
        mlp[-1].weight.add_(1.0)  # as an optimiser step or load_state_dict would
        second = mlp.evaluate(x)
        assert torch.allclose(second, nn.Sequential.forward(mlp, x), atol=1e-6)
        assert not torch.allclose(first, second)
