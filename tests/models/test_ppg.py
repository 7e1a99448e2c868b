"""Tests for DUET's parameter generator, SWA, position weights and variants (PROTOCOL 3).

References are independent where possible: numpy re-implementations of PROTOCOL's SWA
formula, hand-computed position weights for L = 5, hand-written MLPs, and parameter
counts derived from the architecture description.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from duet_pipeline.models.backbones import BACKBONES
from duet_pipeline.models.layers import HeadWeights, apply_head, apply_head_to_runs
from duet_pipeline.models.position import FORMULAS, PositionWeights
from duet_pipeline.models.heads.generator import ParameterGenerator, StackedGenerator, swa_mixing_weights
from duet_pipeline.models.recommender import ModelConfig, Recommender, load_model, model_bundle
from duet_pipeline.methods import get_method
from duet_pipeline.methods.duet import DuetOptions, duet_config, warm_start_from_base
from duet_pipeline.methods.messaging import payload_bytes

from conftest import PARAMETERS, backbone_options, generated_heads, row_user_vectors

DIM = 8
SEQ_LEN = 5
NUM_ITEMS = 30
HIDDEN = 16
GEN = {"generator_hidden": HIDDEN, "num_generators": 3, "temperature": 1.0, "deviation_init_scale": 0.5}
LENGTHS = [5, 2, 3, 1]


pytestmark = pytest.mark.usefixtures("light_torch")


def options_for(backbone):
    """conf/base's options; SASRec with two heads, so the head split is exercised."""
    return backbone_options(backbone, **({"num_heads": 2} if backbone == "sasrec" else {}))


def histories(lengths=LENGTHS, seq_len=SEQ_LEN, num_items=NUM_ITEMS, seed=0):
    """Left-padded item-id histories, most recent last; distinct items per row."""
    rng = np.random.default_rng(seed)
    out = np.zeros((len(lengths), seq_len), dtype=np.int64)
    for row, length in enumerate(lengths):
        out[row, seq_len - length:] = rng.choice(np.arange(1, num_items + 1), size=length, replace=False)
    return torch.from_numpy(out)


def targets(n, seed=1):
    return torch.from_numpy(np.random.default_rng(seed).integers(1, NUM_ITEMS + 1, size=n))


def duet_model(backbone="gru4rec", generator=GEN, **kwargs):
    options = options_for(backbone)
    return Recommender(ModelConfig(NUM_ITEMS, SEQ_LEN, backbone, dim=DIM, backbone_options=options,
                                   generator=dict(generator), **kwargs))


def numpy_swa(stacked: np.ndarray, tau: float) -> np.ndarray:
    """PROTOCOL: S = W'W'^T, p'_i = row sums of S, p = softmax(p' / (tau * sum_j |p'_j|))."""
    flat = stacked.reshape(stacked.shape[0], -1).astype(np.float64)
    p_raw = (flat @ flat.T).sum(axis=1)
    logits = p_raw / (tau * np.abs(p_raw).sum())
    e = np.exp(logits - logits.max())
    return e / e.sum()


# --------------------------------------------------------------------------- #
# Generated heads


def test_generated_head_shapes_and_payload():
    model = duet_model().eval()
    hist = histories()
    head = generated_heads(model, hist)
    B = len(hist)
    assert head.per_row
    assert tuple(head.w1.shape) == (B, DIM, DIM)
    assert tuple(head.b1.shape) == (B, DIM)
    assert tuple(head.w2.shape) == (B, DIM, DIM)
    assert tuple(head.b2.shape) == (B, DIM)
    assert all(t.dtype == torch.float32 for t in head.tensors())
    assert all(torch.isfinite(t).all() for t in head.tensors())
    assert payload_bytes(model.message(hist)) == 2 * (DIM * DIM + DIM) * 4
    # A single-request head has the same payload.
    assert payload_bytes(model.message(hist[:1])) == 2 * (DIM * DIM + DIM) * 4


def test_different_histories_give_different_heads_same_history_same_head():
    model = duet_model().eval()
    hist = histories([5, 5, 3])
    hist[1] = hist[0]  # rows 0 and 1 share a history
    head = generated_heads(model, hist)
    for t in head.tensors():
        assert torch.allclose(t[0], t[1], atol=1e-6)
        assert not torch.allclose(t[0], t[2], atol=1e-4)


def test_generator_parameters_are_all_registered():
    """Count head parameters from the architecture: nothing may live outside the module."""
    d, h, G = DIM, HIDDEN, GEN["num_generators"]
    model = duet_model()
    head_params = {n: p for n, p in model.named_parameters() if n.startswith("head.")}
    expected = (
        (3 * d * d + 3 * d * d + 3 * d + 3 * d)  # encoder GRU: w_ih, w_hh, b_ih, b_hh
        + 2 * (d * d + d)  # encoder MLP
        + 2 * (d * d + d)  # static head
        + 2 * (d * d + d)  # layer linears
        + 2 * G * (h * d + h + (d * d + d) * h + (d * d + d))  # two stacked generators
    )
    assert sum(p.numel() for p in head_params.values()) == expected
    for layer in range(2):
        for name in ("w1", "b1", "w2", "b2"):
            key = f"head.generators.{layer}.{name}"
            assert key in head_params and head_params[key].shape[0] == G
            assert key in model.state_dict()


def test_every_generator_weight_gets_gradient_and_is_updated():
    model = duet_model().train()
    hist = histories([5, 4, 3, 2, 5, 5])
    target = targets(len(hist))
    label = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0, 0.0])
    loss = nn.functional.binary_cross_entropy_with_logits(model(hist, target), label)
    loss.backward()

    names = [n for n, _ in model.named_parameters() if n.startswith("head.")]
    groups = ["head.generators.0.", "head.generators.1.", "head.encoder_gru.", "head.encoder_mlp.",
              "head.layer_linears.", "head.static_head."]
    for group in groups:
        assert any(n.startswith(group) for n in names), group
    for suffix in ("w1", "b1", "w2", "b2"):
        for layer in range(2):
            assert f"head.generators.{layer}.{suffix}" in names
    for suffix in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
        assert f"head.encoder_gru.{suffix}" in names

    params = dict(model.named_parameters())
    for name in names:
        g = params[name].grad
        assert g is not None, name
        assert torch.isfinite(g).all(), name
        assert g.abs().sum() > 0, f"{name} got a zero gradient"
        if name.startswith("head.generators."):
            # Each of the stacked generators is trained, not just the first.
            for k in range(GEN["num_generators"]):
                assert g[k].abs().sum() > 0, f"{name}[{k}] got a zero gradient"

    before = {n: params[n].detach().clone() for n in names}
    torch.optim.Adam(model.parameters(), lr=1e-2).step()
    for name in names:
        assert not torch.equal(before[name], params[name].detach()), f"{name} unchanged by Adam"


# --------------------------------------------------------------------------- #
# SWA


@pytest.mark.parametrize("tau", [0.1, 0.5, 1.0, 3.0])
@pytest.mark.parametrize("shape", [(4, 6, 3), (2, 5), (7, 2, 2)])
def test_swa_mixing_weights_match_numpy(shape, tau):
    rng = np.random.default_rng([len(shape), *shape, int(tau * 10)])
    stacked = rng.normal(size=shape).astype(np.float32) + rng.normal()  # not centred
    p = swa_mixing_weights(torch.from_numpy(stacked), tau).numpy()
    assert p.shape == (shape[0],)
    assert np.all(p > 0)
    assert abs(p.sum() - 1) < 1e-6
    np.testing.assert_allclose(p, numpy_swa(stacked, tau), rtol=1e-5, atol=1e-7)


def test_swa_temperature_sharpens():
    stacked = torch.randn(4, 10) + torch.arange(4.0).view(4, 1)
    cold, hot = swa_mixing_weights(stacked, 0.05), swa_mixing_weights(stacked, 20.0)
    assert cold.max() > hot.max()
    assert (hot - 0.25).abs().max() < 0.02


def test_stacked_generator_mixes_per_matrix_and_forward_matches_numpy():
    torch.manual_seed(3)
    gen = StackedGenerator(5, 7, 4, num_generators=3, temperature=0.7, deviation_init_scale=0.4)
    with torch.no_grad():
        gen.b1.normal_()
        gen.b2.normal_()
    w1, b1, w2, b2 = (t.detach().numpy().astype(np.float64) for t in (gen.w1, gen.b1, gen.w2, gen.b2))
    p1, p2 = numpy_swa(w1, 0.7), numpy_swa(w2, 0.7)
    W1, B1 = np.einsum("g,gij->ij", p1, w1), p1 @ b1
    W2, B2 = np.einsum("g,gij->ij", p2, w2), p2 @ b2
    eff = [t.detach().numpy() for t in gen.effective_mlp()]
    for got, want in zip(eff, (W1, B1, W2, B2)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    z = torch.randn(6, 5)
    want = np.maximum(z.numpy() @ W1.T + B1, 0) @ W2.T + B2
    np.testing.assert_allclose(gen(z).detach().numpy(), want, rtol=1e-4, atol=1e-5)


def test_single_generator_is_plain_mlp():
    gen = StackedGenerator(5, 7, 4, num_generators=1, temperature=1.0, deviation_init_scale=0.3)
    with torch.no_grad():
        gen.b1.normal_()
        gen.b2.normal_()
    p1, p2 = gen.mixing_weights()
    assert p1.item() == 1.0 and p2.item() == 1.0
    w1, b1, w2, b2 = gen.effective_mlp()
    assert torch.equal(w1, gen.w1[0]) and torch.equal(b1, gen.b1[0])
    assert torch.equal(w2, gen.w2[0]) and torch.equal(b2, gen.b2[0])
    z = torch.randn(3, 5)
    W1, B1, W2, B2 = (t[0].detach().numpy() for t in (gen.w1, gen.b1, gen.w2, gen.b2))
    want = np.maximum(z.numpy() @ W1.T + B1, 0) @ W2.T + B2
    np.testing.assert_allclose(gen(z).detach().numpy(), want, rtol=1e-5, atol=1e-6)


def test_stacked_generator_rejects_zero_generators():
    with pytest.raises(ValueError, match="num_generators"):
        StackedGenerator(4, 4, 4, num_generators=0, temperature=1.0, deviation_init_scale=0.1)


def test_generated_head_is_static_head_plus_generator_output():
    """W_n, b_n = static + g_n(L_n(E(history))): rebuilt from the parts by hand."""
    ppg = ParameterGenerator(DIM, SEQ_LEN, generator_hidden=HIDDEN, num_generators=2, temperature=1.0,
                             deviation_init_scale=0.5)
    emb = torch.randn(3, SEQ_LEN, DIM)
    mask = torch.ones(3, SEQ_LEN, dtype=torch.bool)
    mask[1, :3] = False
    head = ppg.weights(emb, mask)
    z = ppg.encode(emb, mask)
    static = [ppg.static_head.layer1.weight, ppg.static_head.layer1.bias,
              ppg.static_head.layer2.weight, ppg.static_head.layer2.bias]
    d = DIM
    for layer in range(2):
        dev = ppg.generators[layer](ppg.layer_linears[layer](z))
        w = static[2 * layer] + dev[:, : d * d].reshape(-1, d, d)
        b = static[2 * layer + 1] + dev[:, d * d:]
        assert torch.allclose(head.tensors()[2 * layer], w, atol=1e-6)
        assert torch.allclose(head.tensors()[2 * layer + 1], b, atol=1e-6)


def test_zero_deviation_init_scale_gives_static_head():
    ppg = ParameterGenerator(DIM, SEQ_LEN, generator_hidden=HIDDEN, num_generators=1, temperature=1.0,
                             deviation_init_scale=0.0)
    head = ppg.weights(torch.randn(2, SEQ_LEN, DIM), torch.ones(2, SEQ_LEN, dtype=torch.bool))
    static = ppg.static_head.weights()
    assert torch.allclose(head.w1, static.w1.expand_as(head.w1))
    assert torch.allclose(head.w2, static.w2.expand_as(head.w2))


# --------------------------------------------------------------------------- #
# Position weights

L = 5
HAND = {
    "none": [1.0, 1.0, 1.0, 1.0, 1.0],
    "linear": [0.2, 0.4, 0.6, 0.8, 1.0],
    "smooth": [1 / 5, 1 / 4, 1 / 3, 1 / 2, 1.0],
    "exp": [math.exp(-4), math.exp(-3), math.exp(-2), math.exp(-1), 1.0],
    "gaussian": [math.exp(-16 / 4.5), math.exp(-9 / 4.5), math.exp(-4 / 4.5), math.exp(-1 / 4.5), 1.0],
}


def test_formula_registry():
    assert set(FORMULAS) == set(HAND)


@pytest.mark.parametrize("kind", sorted(HAND))
def test_position_weights_hand_values_and_padding(kind):
    pw = PositionWeights(kind, L)
    assert pw.alpha.item() == pytest.approx(1.0) and pw.beta.item() == pytest.approx(1.0)
    assert pw.mu.item() == L - 1 and pw.sigma.item() == pytest.approx(1.5)
    np.testing.assert_allclose(pw.per_position().detach().numpy(), HAND[kind], rtol=1e-6)
    # Left-padded rows with 5, 2 and 1 real items: padding gets exactly 0.
    mask = torch.tensor([[1, 1, 1, 1, 1], [0, 0, 0, 1, 1], [0, 0, 0, 0, 1]], dtype=torch.bool)
    w = pw(mask).detach().numpy()
    want = np.array(HAND[kind])[None, :] * mask.numpy()
    np.testing.assert_allclose(w, want, rtol=1e-6)
    assert np.all(w[~mask.numpy()] == 0)
    # scale() multiplies each embedding by its weight.
    emb = torch.randn(3, L, 4)
    np.testing.assert_allclose(pw.scale(emb, mask).detach().numpy(), emb.numpy() * want[..., None],
                               rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kind", ["linear", "smooth", "exp", "gaussian"])
def test_position_weights_with_other_parameters(kind):
    pw = PositionWeights(kind, L)
    a, b, mu, s = 1.7, 0.6, 1.2, 0.8
    pw.set_(alpha=a, beta=b, mu=mu, sigma=s)
    pos = np.arange(L, dtype=np.float64)
    want = {
        "linear": a * (pos + 1) / L,
        "smooth": 1 / (1 + a * (L - 1 - pos)),
        "exp": a * np.exp((pos + 1 - L) / b),
        "gaussian": np.exp(-((pos - mu) ** 2) / (2 * s**2)),
    }[kind]
    np.testing.assert_allclose(pw.per_position().detach().numpy(), want, rtol=1e-5)


@pytest.mark.parametrize("kind,used", [
    ("linear", {"alpha"}), ("smooth", {"alpha"}), ("exp", {"alpha", "beta"}), ("gaussian", {"mu", "sigma"}),
])
def test_position_weight_parameters_are_learnable(kind, used):
    pw = PositionWeights(kind, L)
    assert {n for n, p in pw.named_parameters() if p.requires_grad} >= {f"raw.{n}" for n in used}
    mask = torch.tensor([[0, 1, 1, 1, 1], [0, 0, 0, 1, 1]], dtype=torch.bool)
    (pw(mask) * torch.arange(1.0, 6.0)).sum().backward()
    for name in used:
        g = pw.raw[name].grad
        assert g is not None and g.abs() > 0, name


def test_position_weight_gradients_flow_through_recommender():
    model = duet_model(position_weights="exp")
    hist = histories()
    model(hist, targets(len(hist))).sum().backward()
    assert model.position_weights.raw["alpha"].grad.abs() > 0
    assert model.position_weights.raw["beta"].grad.abs() > 0


@pytest.mark.parametrize("kind,name,bound", [("smooth", "alpha", -1 / (L - 1)), ("exp", "beta", 0.0),
                                             ("gaussian", "sigma", 0.0)])
def test_position_weight_parameters_stay_in_their_valid_range(kind, name, bound):
    """However far an optimiser pushes the learnt value, the formula's value stays above its
    bound and the weights finite (unconstrained: smooth alpha < -1/(L-1) divided by zero,
    exp beta <= 0 exploded, gaussian sigma = 0 gave NaN)."""
    pw = PositionWeights(kind, L)
    optimiser = torch.optim.SGD(pw.parameters(), lr=1e4)
    mask = torch.ones(2, L, dtype=torch.bool)
    for direction in (1.0, -1.0):
        for _ in range(20):
            optimiser.zero_grad()
            (direction * pw.value(name) + 0 * pw(mask).sum()).backward()  # drive it down, then up
            optimiser.step()
            assert getattr(pw, name).item() > bound
            assert torch.isfinite(pw(mask)).all()
    with pytest.raises(ValueError, match=f"{name} = {bound}"):
        pw.set_(**{name: bound})


def test_unknown_position_weights_lists_choices():
    with pytest.raises(ValueError) as err:
        PositionWeights("cubic", L)
    for kind in FORMULAS:
        assert kind in str(err.value)
    with pytest.raises(ValueError, match="cubic"):
        duet_model(position_weights="cubic")


@pytest.mark.parametrize("kind", ["smooth", "exp", "gaussian"])
def test_a_model_saved_before_the_bounded_parametrisation_still_loads(kind):
    """Old bundles stored the formula values (``alpha``, ...), not the learnt raw tensors."""
    old = {"alpha": torch.tensor(0.7), "beta": torch.tensor(2.0), "mu": torch.tensor(3.0), "sigma": torch.tensor(0.9)}
    pw = PositionWeights(kind, L)
    pw.load_state_dict(old)
    for name, value in old.items():
        assert getattr(pw, name).item() == pytest.approx(value.item(), rel=1e-6)


def test_position_weights_enter_the_ppg():
    """head_weights(history) = PPG on hand-scaled embeddings (linear: (pos+1)/L)."""
    model = duet_model(position_weights="linear").eval()
    hist = histories()
    emb, mask = model.items(hist), hist > 0
    w = torch.tensor(HAND["linear"]) * mask
    manual = model.head.weights(emb * w.unsqueeze(-1), mask)
    head = generated_heads(model, hist)
    for got, want in zip(head.tensors(), manual.tensors()):
        assert torch.allclose(got, want, atol=1e-6)
    unscaled = model.head.weights(emb, mask)
    assert not torch.allclose(head.w1, unscaled.w1, atol=1e-5)


@pytest.mark.parametrize("backbone", list(BACKBONES))
def test_position_weights_on_backbone_flag(backbone):
    torch.manual_seed(0)
    off = duet_model(backbone, position_weights="linear").eval()
    torch.manual_seed(0)
    on = duet_model(backbone, position_weights="linear", position_weights_on_backbone=True).eval()
    assert off.config.position_weights_on_backbone is False  # default
    on.load_state_dict(off.state_dict())
    hist = histories()
    tgt = targets(len(hist))
    emb, mask = off.items(hist), hist > 0
    with torch.no_grad():
        plain = off.backbone(emb, mask, off.items(tgt))
        scaled = off.backbone(emb * (torch.tensor(HAND["linear"]) * mask).unsqueeze(-1), mask, off.items(tgt))
        u_off = row_user_vectors(off, emb, mask, tgt)
        u_on = row_user_vectors(on, emb, mask, tgt)
    assert torch.allclose(u_off, plain, atol=1e-6)
    assert torch.allclose(u_on, scaled, atol=1e-5)
    assert not torch.allclose(u_on, u_off, atol=1e-4)


# --------------------------------------------------------------------------- #
# Variants, warm start, bundles


def duet_options(**overrides) -> DuetOptions:
    return DuetOptions(**{**PARAMETERS["personalization"]["duet"], **overrides})


@pytest.mark.parametrize("name,generators,position", [
    ("duet", 1, "none"), ("duet+swa", 4, "none"), ("duet-pa-linear", 1, "linear"), ("duet-pa-gaussian", 1, "gaussian"),
])
def test_each_variant_builds_the_model_its_name_says(name, generators, position):
    base = ModelConfig(NUM_ITEMS, SEQ_LEN, "din", dim=DIM, backbone_options=options_for("din"))
    config = duet_config(base, duet_options(swa_generators=4), get_method(name).variant)
    assert config.generator["num_generators"] == generators and config.position_weights == position


def test_duet_config_carries_the_duet_parameters():
    base = ModelConfig(NUM_ITEMS, SEQ_LEN, "sasrec", dim=DIM, backbone_options=options_for("sasrec"))
    options = duet_options(generator_hidden=HIDDEN, swa_generators=3, temperature=1.0, deviation_init_scale=0.5,
                           position_weights_on_backbone=True)
    cfg = duet_config(base, options, get_method("duet-pa-smooth").variant)
    assert cfg.generator == {**GEN, "num_generators": 1}
    assert cfg.position_weights == "smooth" and cfg.position_weights_on_backbone is True
    assert (cfg.num_items, cfg.max_seq_len, cfg.backbone, cfg.dim) == (NUM_ITEMS, SEQ_LEN, "sasrec", DIM)
    assert cfg.backbone_options == options_for("sasrec") and cfg.backbone_options is not base.backbone_options
    swa = Recommender(duet_config(base, options, get_method("duet+swa").variant))
    assert isinstance(swa.head, ParameterGenerator) and swa.head.generators[0].w1.shape == (3, HIDDEN, DIM)
    assert not isinstance(Recommender(base).head, ParameterGenerator)


@pytest.mark.parametrize("backbone", list(BACKBONES))
def test_warm_start_copies_base(backbone):
    options = options_for(backbone)
    base = Recommender(ModelConfig(NUM_ITEMS, SEQ_LEN, backbone, dim=DIM, backbone_options=options))
    options = duet_options(generator_hidden=HIDDEN, swa_generators=3, deviation_init_scale=0.5)
    duet = Recommender(duet_config(base.config, options, get_method("duet-pa-linear").variant))
    base_state = base.state_dict()
    generator_before = {k: v.clone() for k, v in duet.state_dict().items()
                        if k.startswith("head.") and not k.startswith("head.static_head.")}
    assert not torch.equal(duet.items.weight, base.items.weight)  # meaningful test
    copied = warm_start_from_base(duet, base_state)
    state = duet.state_dict()

    expected = [k for k in base_state if k.startswith(("items.", "backbone.", "target_tower."))]
    assert len([k for k in expected if k.startswith("backbone.")]) > 0
    for key in expected:
        assert torch.equal(state[key], base_state[key]), key
        assert key in copied
    for layer in ("layer1", "layer2"):
        for part in ("weight", "bias"):
            assert torch.equal(state[f"head.static_head.{layer}.{part}"], base_state[f"head.{layer}.{part}"])
            assert f"head.static_head.{layer}.{part}" in copied
    for key, value in generator_before.items():
        assert torch.equal(state[key], value), f"{key} should keep its own initialisation"
        assert key not in copied
    # The DUET model's static head is the base head: generated heads deviate from it.
    hist = histories()
    with torch.no_grad():
        duet.eval(), base.eval()
        static = duet.head.static_head.weights()
        u = row_user_vectors(base, base.items(hist), hist > 0, targets(len(hist)))
        assert torch.allclose(apply_head(u, static), apply_head(u, base.head.weights()))


@pytest.mark.parametrize("backbone,generator,position", [
    ("sasrec", None, "none"), ("sasrec", GEN, "gaussian"), ("gru4rec", GEN, "exp"), ("din", None, "none"),
])
def test_bundle_round_trip(backbone, generator, position):
    options = options_for(backbone)
    model = Recommender(ModelConfig(NUM_ITEMS, SEQ_LEN, backbone, dim=DIM, backbone_options=options,
                                    generator=None if generator is None else dict(generator),
                                    position_weights=position, position_weights_on_backbone=position != "none"))
    model.position_weights.set_(sigma=0.9)  # non-initial position weights must survive the trip too
    bundle = model_bundle(model, "duet", {"variant": "x"})
    assert bundle["method"] == "duet" and bundle["variant"] == "x"
    loaded = load_model(bundle)
    assert not loaded.training
    assert loaded.config == model.config
    hist = histories([5, 1, 3, 2, 4])
    tgt = targets(len(hist))
    model.eval()
    with torch.no_grad():
        want = model(hist, tgt)
        got = loaded(hist, tgt)
    assert torch.equal(got, want)
    # The bundle holds copies: later training of the model does not change it.
    with torch.no_grad():
        model.items.weight.add_(1.0)
    assert not torch.equal(bundle["state_dict"]["items.weight"], model.items.weight)


def test_apply_head_to_runs_equals_per_row_heads():
    run_lengths = torch.tensor([1, 5, 3, 1, 2])
    row_of = torch.repeat_interleave(torch.arange(len(run_lengths)), run_lengths)
    heads = HeadWeights(
        torch.randn(5, DIM, DIM), torch.randn(5, DIM), torch.randn(5, DIM, DIM), torch.randn(5, DIM)
    )
    user = torch.randn(len(row_of), DIM)
    per_row = apply_head(user, HeadWeights(*(t[row_of] for t in heads.tensors())))
    torch.testing.assert_close(apply_head_to_runs(user, heads, row_of), per_row)
