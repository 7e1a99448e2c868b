"""Tests for duet_pipeline.models: backbones, head maths and the Recommender (PROTOCOL 3).

Histories are left-padded, most recent last; the mask is True on real items. Backbones
are called directly with random ``history_emb`` so that values at padded positions can
be changed freely (the Recommender's item table pins padding row 0 to zeros).
"""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from duet_pipeline.models.backbones import (
    BACKBONES,
    DIN,
    SASRec,
    GRU4Rec,
    build_backbone,
)
from duet_pipeline.models.heads.static import StaticHead
from duet_pipeline.models.layers import HeadWeights, apply_head
from duet_pipeline.models.recommender import ModelConfig, Recommender

from conftest import PARAMETERS, REPO_ROOT, backbone_options

DIM = 8
SEQ_LEN = 6
LENGTHS = [1, 3, 6, 2, 1]  # real items per row; two rows hold one real item only
NAMES = sorted(BACKBONES)
OPTIONS = {name: backbone_options(name, **({"num_heads": 2} if name == "sasrec" else {})) for name in NAMES}


pytestmark = pytest.mark.usefixtures("light_torch")


def make_batch(lengths=LENGTHS, seq_len=SEQ_LEN, dim=DIM):
    mask = torch.zeros(len(lengths), seq_len, dtype=torch.bool)
    for row, length in enumerate(lengths):
        mask[row, seq_len - length:] = True
    history = torch.randn(len(lengths), seq_len, dim)
    target = torch.randn(len(lengths), dim)
    return history, mask, target


def with_new_padding(history, mask, scale=50.0):
    """Same real items, very different (finite) values at padded positions."""
    noise = torch.randn_like(history) * scale
    return torch.where(mask.unsqueeze(-1), history, noise)


def backbone(name):
    return build_backbone(name, DIM, SEQ_LEN, OPTIONS[name]).eval()


# --------------------------------------------------------------------------- #
# Registry
# --------------------------------------------------------------------------- #


def test_registry_and_unknown_backbone_error_lists_choices():
    assert {"din", "gru4rec", "sasrec"} <= set(BACKBONES)  # the shipped ones registered themselves
    with pytest.raises(ValueError) as info:
        build_backbone("transformer", DIM, SEQ_LEN, {})
    message = str(info.value)
    assert "transformer" in message
    for name in BACKBONES:
        assert name in message


def test_every_backbone_is_one_class_and_one_commented_yaml_block():
    text = (REPO_ROOT / "conf" / "base" / "parameters_backbones.yml").read_text()
    assert set(PARAMETERS["backbones"]) == set(BACKBONES)
    for name, backbone in BACKBONES.items():
        assert set(PARAMETERS["backbones"][name]) == set(backbone.Options.model_fields), name
    option_lines = [line for line in text.splitlines() if line.startswith("    ") and ":" in line]
    assert option_lines and all("#" in line for line in option_lines)


def test_a_missing_or_misspelt_backbone_option_names_it():
    from duet_pipeline.parameters import ParameterError

    with pytest.raises(ParameterError, match=r"missing parameter backbones\.sasrec\.num_blocks"):
        build_backbone("sasrec", DIM, SEQ_LEN, {"num_heads": 1, "dropout": 0.0})
    with pytest.raises(ParameterError, match=r"unknown parameter backbones\.gru4rec\.layers"):
        build_backbone("gru4rec", DIM, SEQ_LEN, {**backbone_options("gru4rec"), "layers": 3})
    with pytest.raises(ParameterError, match=r"backbones\.din\.attention_units\.0 = 0"):
        build_backbone("din", DIM, SEQ_LEN, {"attention_units": [0]})


def test_build_backbone_passes_options():
    gru = build_backbone("gru4rec", DIM, SEQ_LEN, backbone_options("gru4rec", num_layers=3))
    assert isinstance(gru, GRU4Rec) and gru.gru.num_layers == 3
    sas = build_backbone("sasrec", DIM, SEQ_LEN, {"num_blocks": 1, "num_heads": 4, "dropout": 0.0})
    assert isinstance(sas, SASRec) and len(sas.blocks) == 1
    assert sas.blocks[0].num_heads == 4
    din = build_backbone("din", DIM, SEQ_LEN, backbone_options("din", attention_units=[5]))
    linears = [m for m in din.activation_unit if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(4 * DIM, 5), (5, 1)]


def test_din_default_activation_unit_is_4d_32_16_1():
    """PROTOCOL section 3's DIN, as conf/base configures it."""
    linears = [m for m in DIN(DIM, SEQ_LEN, **backbone_options("din")).activation_unit if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (4 * DIM, 32), (32, 16), (16, 1)
    ]


# --------------------------------------------------------------------------- #
# Every backbone
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("name", NAMES)
def test_output_shape_and_finite_with_heavy_padding(name):
    model = backbone(name)
    history, mask, target = make_batch()
    out = model(history, mask, target)
    assert out.shape == (len(LENGTHS), DIM)
    assert torch.isfinite(out).all()
    # A batch where every row holds a single real item, in train mode (dropout on).
    history, mask, target = make_batch(lengths=[1, 1, 1])
    model.train()
    out = model(history, mask, target)
    assert out.shape == (3, DIM) and torch.isfinite(out).all()
    out.sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is None or torch.isfinite(p.grad).all(), pname


@pytest.mark.parametrize("name", NAMES)
def test_padding_values_do_not_matter(name):
    model = backbone(name)
    history, mask, target = make_batch()
    with torch.no_grad():
        reference = model(history, mask, target)
        for _ in range(3):
            perturbed = model(with_new_padding(history, mask), mask, target)
            torch.testing.assert_close(perturbed, reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_each_row_is_independent_of_the_rest_of_the_batch(name):
    model = backbone(name)
    history, mask, target = make_batch()
    with torch.no_grad():
        batch = model(history, mask, target)
        for row in range(len(LENGTHS)):
            alone = model(history[row:row + 1], mask[row:row + 1], target[row:row + 1])
            torch.testing.assert_close(alone[0], batch[row], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_real_history_items_matter(name):
    """Changing the earliest real item of a row changes that row's user vector."""
    model = backbone(name)
    history, mask, target = make_batch()
    changed = history.clone()
    row = LENGTHS.index(6)
    changed[row, 0] += 3.0 * torch.randn(DIM)
    with torch.no_grad():
        a = model(history, mask, target)
        b = model(changed, mask, target)
    assert not torch.allclose(a[row], b[row], atol=1e-4)
    others = [r for r in range(len(LENGTHS)) if r != row]
    torch.testing.assert_close(a[others], b[others])


# --------------------------------------------------------------------------- #
# GRU4Rec
# --------------------------------------------------------------------------- #


def test_gru4rec_equals_gru_on_the_unpadded_sequence():
    model = backbone("gru4rec")
    assert model.gru.num_layers == 2 and model.gru.hidden_size == DIM
    history, mask, target = make_batch()
    with torch.no_grad():
        out = model(with_new_padding(history, mask), mask, target)
        for row, length in enumerate(LENGTHS):
            sequence = history[row, SEQ_LEN - length:].unsqueeze(0)
            outputs, state = model.gru(sequence)
            # Top layer, right after the last real item.
            torch.testing.assert_close(out[row], outputs[0, -1], rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(out[row], state[-1, 0], rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- #
# SASRec
# --------------------------------------------------------------------------- #


def _sasrec_all_positions(model, history, mask):
    """Outputs at every position (the final LayerNorm's output), via a forward hook."""
    captured = {}
    handle = model.norm.register_forward_hook(lambda m, i, o: captured.setdefault("x", o))
    try:
        with torch.no_grad():
            last = model(history, mask, torch.zeros(history.shape[0], DIM))
    finally:
        handle.remove()
    return captured["x"], last


@pytest.mark.parametrize("heads", [1, 2])
def test_sasrec_is_causal(heads):
    model = build_backbone("sasrec", DIM, SEQ_LEN, backbone_options("sasrec", num_heads=heads)).eval()
    history, mask, _ = make_batch(lengths=[SEQ_LEN, SEQ_LEN])
    j = 2
    changed = history.clone()
    changed[:, j + 1] += 2.0 * torch.randn(2, DIM)  # change position j + 1 only
    a, last_a = _sasrec_all_positions(model, history, mask)
    b, last_b = _sasrec_all_positions(model, changed, mask)
    assert a.shape == (2, SEQ_LEN, DIM)
    torch.testing.assert_close(last_a, a[:, -1])  # the user vector is the last position
    # Positions up to j never see position j + 1 ...
    torch.testing.assert_close(a[:, : j + 1], b[:, : j + 1], rtol=1e-5, atol=1e-6)
    # ... while the later ones, including the user vector, do.
    for pos in range(j + 1, SEQ_LEN):
        assert not torch.allclose(a[:, pos], b[:, pos], atol=1e-4)
    assert not torch.allclose(last_a, last_b, atol=1e-4)


def test_sasrec_earliest_real_item_reaches_last_output_of_padded_row():
    model = backbone("sasrec")
    history, mask, target = make_batch(lengths=[3])
    changed = history.clone()
    changed[0, SEQ_LEN - 3] += 3.0 * torch.randn(DIM)
    with torch.no_grad():
        assert not torch.allclose(model(history, mask, target), model(changed, mask, target), atol=1e-4)


def test_sasrec_padding_invariant_in_train_mode_too():
    model = build_backbone("sasrec", DIM, SEQ_LEN, backbone_options("sasrec", dropout=0.2)).train()
    history, mask, target = make_batch()
    perturbed = with_new_padding(history, mask)  # drawn before seeding the dropout masks
    torch.manual_seed(123)
    a = model(history, mask, target)
    torch.manual_seed(123)
    b = model(perturbed, mask, target)
    assert torch.isfinite(a).all()
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


# Independent reference for SASRec (PROTOCOL 3 / the CausalSelfAttentionBlock docstring),
# written from the documented maths with explicit loops in float64: per row, per query
# position, per head. Shares the module's weights and nothing else.

SASREC_FULL = backbone_options("sasrec", num_blocks=2, num_heads=2, dropout=0.2)
REFERENCE_LENGTHS = [1, 3, 6, 2, 5, 4]  # every row padded differently (6 = no padding)


def _randomize(module, generator):
    """Non-trivial values for every parameter, LayerNorm scale and shift included."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.5)


def _layer_norm(x, norm):
    mean = x.mean()
    var = ((x - mean) ** 2).mean()  # biased variance, as LayerNorm
    return (x - mean) / torch.sqrt(var + norm.eps) * norm.weight.double() + norm.bias.double()


def _reference_block(block, x, mask):
    """Pre-norm block on one row x (L, d) float64: x + attn(LN(x)), then x + FFN(LN(x)).

    Query i attends to key j iff j <= i and (j is real or j == i); ``mask`` (L,) is True
    on real items.
    """
    seq_len, dim = x.shape
    heads = block.num_heads
    width = dim // heads
    w_qkv, b_qkv = block.qkv.weight.double(), block.qkv.bias.double()
    w_q, w_k, w_v = w_qkv[:dim], w_qkv[dim:2 * dim], w_qkv[2 * dim:]
    b_q, b_k, b_v = b_qkv[:dim], b_qkv[dim:2 * dim], b_qkv[2 * dim:]
    normed = [_layer_norm(x[i], block.attention_norm) for i in range(seq_len)]
    q = [w_q @ n + b_q for n in normed]
    k = [w_k @ n + b_k for n in normed]
    v = [w_v @ n + b_v for n in normed]
    after_attention = []
    for i in range(seq_len):
        visible = [j for j in range(i + 1) if bool(mask[j]) or j == i]
        head_outputs = []
        for h in range(heads):
            part = slice(h * width, (h + 1) * width)
            scores = torch.stack([q[i][part] @ k[j][part] / math.sqrt(width) for j in visible])
            weights = torch.exp(scores - scores.max())
            weights = weights / weights.sum()
            head_outputs.append(sum(w * v[j][part] for w, j in zip(weights, visible)))
        attended = torch.cat(head_outputs)
        after_attention.append(x[i] + block.out.weight.double() @ attended + block.out.bias.double())
    first, second = block.ffn[0], block.ffn[2]
    rows = []
    for y in after_attention:
        hidden = torch.relu(first.weight.double() @ _layer_norm(y, block.ffn_norm) + first.bias.double())
        rows.append(y + second.weight.double() @ hidden + second.bias.double())
    return torch.stack(rows)


def _reference_sasrec_last(model, history, mask):
    """SASRec's user vector: scaled embeddings + positions, zeroed padding, blocks
    (padding zeroed after each), final LayerNorm, last position."""
    out = []
    for row in range(history.shape[0]):
        keep = mask[row].double().unsqueeze(-1)
        x = (history[row].double() * math.sqrt(model.dim) + model.position.weight.double()) * keep
        for block in model.blocks:
            x = _reference_block(block, x, mask[row]) * keep
        out.append(_layer_norm(x[-1], model.norm))
    return torch.stack(out)


def test_sasrec_attention_mask_follows_the_documented_rule():
    _, mask, _ = make_batch(lengths=REFERENCE_LENGTHS)
    allowed = SASRec.attention_mask(mask)
    for row in range(len(REFERENCE_LENGTHS)):
        for i in range(SEQ_LEN):
            for j in range(SEQ_LEN):
                expected = j <= i and (bool(mask[row, j]) or j == i)
                assert bool(allowed[row, i, j]) == expected, (row, i, j)


def test_causal_self_attention_block_matches_loop_reference():
    generator = torch.Generator().manual_seed(7)
    model = build_backbone("sasrec", DIM, SEQ_LEN, SASREC_FULL).eval()
    _randomize(model, generator)
    block = model.blocks[0]
    assert block.num_heads == 2
    x = torch.randn(len(REFERENCE_LENGTHS), SEQ_LEN, DIM, generator=generator)
    _, mask, _ = make_batch(lengths=REFERENCE_LENGTHS)
    with torch.no_grad():
        out = block(x, SASRec.attention_mask(mask))
        expected = torch.stack(
            [_reference_block(block, x[row].double(), mask[row]) for row in range(len(x))]
        )
    # Every position, padded query rows included (they see only themselves).
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=1e-5)


def test_sasrec_user_vector_matches_loop_reference():
    generator = torch.Generator().manual_seed(11)
    model = build_backbone("sasrec", DIM, SEQ_LEN, SASREC_FULL).eval()
    _randomize(model, generator)
    history, mask, target = make_batch(lengths=REFERENCE_LENGTHS)
    history = with_new_padding(history, mask)  # padding values must not leak in
    with torch.no_grad():
        out = model(history, mask, target)
        expected = _reference_sasrec_last(model, history, mask)
    assert out.shape == (len(REFERENCE_LENGTHS), DIM)
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- #
# DIN
# --------------------------------------------------------------------------- #


def test_din_attention_masks_padding_and_sums_to_one():
    model = backbone("din")
    history, mask, target = make_batch()
    with torch.no_grad():
        weights = model.attention_weights(history, mask, target)
        out = model(history, mask, target)
    assert weights.shape == (len(LENGTHS), SEQ_LEN)
    assert (weights[~mask] == 0).all()
    assert (weights[mask] > 0).all()
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(len(LENGTHS)))
    # The user vector is the attention-weighted sum of the history (brute force).
    for row in range(len(LENGTHS)):
        expected = sum(weights[row, j] * history[row, j] for j in range(SEQ_LEN) if mask[row, j])
        torch.testing.assert_close(out[row], expected, rtol=1e-5, atol=1e-6)
    # A single real item gets all the weight: u is that item's embedding.
    for row in (r for r, n in enumerate(LENGTHS) if n == 1):
        torch.testing.assert_close(out[row], history[row, -1])


def test_din_decomposed_first_layer_equals_the_concatenated_features():
    """The activation unit on the literal [h, t, h - t, h * t] (the paper's form) gives
    the same weights and the same gradients as the library's decomposed first layer."""
    model = backbone("din")
    history, mask, target = make_batch()
    history.requires_grad_(True)
    target.requires_grad_(True)

    def reference():
        t = target.unsqueeze(1).expand_as(history)
        features = torch.cat([history, t, history - t, history * t], dim=-1)
        scores = model.activation_unit(features).squeeze(-1).masked_fill(~mask, float("-inf"))
        return torch.softmax(scores, dim=1)

    upstream = torch.randn(len(LENGTHS), SEQ_LEN)
    results = []
    for weights_of in (reference, lambda: model.attention_weights(history, mask, target)):
        weights = weights_of()
        inputs = [history, target, *model.parameters()]
        results.append((weights, torch.autograd.grad((weights * upstream).sum(), inputs)))
    (expected, expected_grads), (actual, actual_grads) = results
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)
    for got, want in zip(actual_grads, expected_grads):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_din_really_attends_and_depends_on_the_target():
    model = backbone("din")
    history, mask, _ = make_batch(lengths=[SEQ_LEN, 4])
    t1, t2 = torch.randn(2, DIM), torch.randn(2, DIM)
    with torch.no_grad():
        w1 = model.attention_weights(history, mask, t1)
        w2 = model.attention_weights(history, mask, t2)
        u1, u2 = model(history, mask, t1), model(history, mask, t2)
    assert not torch.allclose(w1, w2, atol=1e-4)
    assert not torch.allclose(u1, u2, atol=1e-4)
    # Not a plain sum or mean of the history (the reproduction's bug).
    lengths = mask.sum(dim=1, keepdim=True)
    uniform = mask.float() / lengths
    assert not torch.allclose(w1, uniform, atol=1e-3)
    assert not torch.allclose(u1, (history * mask.unsqueeze(-1)).sum(dim=1), atol=1e-3)


# --------------------------------------------------------------------------- #
# Head maths
# --------------------------------------------------------------------------- #


def _random_head(batch=None):
    shape = () if batch is None else (batch,)
    return HeadWeights(
        torch.randn(*shape, DIM, DIM), torch.randn(*shape, DIM),
        torch.randn(*shape, DIM, DIM), torch.randn(*shape, DIM),
    )


def test_apply_head_per_row_equal_to_shared_when_expanded():
    user = torch.randn(5, DIM)
    shared = _random_head()
    expanded = HeadWeights(*(t.unsqueeze(0).expand(5, *t.shape) for t in shared.tensors()))
    assert not shared.per_row and expanded.per_row
    torch.testing.assert_close(apply_head(user, expanded), apply_head(user, shared), rtol=1e-5, atol=1e-5)


def test_apply_head_per_row_uses_each_rows_own_head():
    user = torch.randn(4, DIM)
    heads = _random_head(batch=4)
    out = apply_head(user, heads)
    for row in range(4):
        one = HeadWeights(*(t[row] for t in heads.tensors()))
        torch.testing.assert_close(out[row], apply_head(user[row:row + 1], one)[0], rtol=1e-5, atol=1e-5)
    # MLP d -> d (tanh) -> d written out for one row.
    w1, b1, w2, b2 = (t[0] for t in heads.tensors())
    manual = w2 @ torch.tanh(w1 @ user[0] + b1) + b2
    torch.testing.assert_close(out[0], manual, rtol=1e-5, atol=1e-5)


def test_static_head_weights_are_its_layers():
    head = StaticHead(DIM)
    weights = head.weights(torch.randn(2, SEQ_LEN, DIM), torch.ones(2, SEQ_LEN, dtype=torch.bool))
    assert weights.w1 is head.layer1.weight and weights.b2 is head.layer2.bias
    assert sum(t.numel() for t in weights.tensors()) == 2 * DIM * DIM + 2 * DIM


# --------------------------------------------------------------------------- #
# Recommender
# --------------------------------------------------------------------------- #


def _histories(num_items=20):
    history = torch.zeros(len(LENGTHS), SEQ_LEN, dtype=torch.long)
    for row, length in enumerate(LENGTHS):
        history[row, SEQ_LEN - length:] = torch.randint(1, num_items + 1, (length,))
    target = torch.randint(1, num_items + 1, (len(LENGTHS),))
    return history, target


@pytest.mark.parametrize("name", NAMES)
def test_recommender_logits_finite_and_gradients_reach_every_part(name):
    num_items = 20
    model = Recommender(
        ModelConfig(num_items=num_items, max_seq_len=SEQ_LEN, backbone=name, dim=DIM,
                    backbone_options=OPTIONS[name])
    )
    history, target = _histories(num_items)
    logits = model(history, target)
    assert logits.shape == (len(LENGTHS),)
    assert torch.isfinite(logits).all()
    labels = torch.tensor([1.0, 0.0, 1.0, 0.0, 0.0])
    nn.functional.binary_cross_entropy_with_logits(logits, labels).backward()

    for part in (model.backbone, model.target_tower, model.head):
        for pname, p in part.named_parameters():
            assert p.grad is not None, f"{type(part).__name__}.{pname} got no gradient"
            assert torch.isfinite(p.grad).all(), pname
            assert p.grad.abs().sum() > 0, f"{type(part).__name__}.{pname} got a zero gradient"
    grad = model.items.weight.grad
    used = torch.unique(torch.cat([history[history > 0], target]))
    unused = [i for i in range(1, num_items + 1) if i not in set(used.tolist())]
    assert (grad[used].abs().sum(dim=1) > 0).all()
    assert (grad[0] == 0).all()  # padding row
    assert (grad[unused] == 0).all()


@pytest.mark.parametrize("name", NAMES)
def test_the_base_model_sends_nothing_and_scores_on_the_device_as_in_the_cloud(name):
    model = Recommender(
        ModelConfig(num_items=20, max_seq_len=SEQ_LEN, backbone=name, dim=DIM,
                    backbone_options=OPTIONS[name])
    ).eval()
    history, target = _histories()
    with torch.no_grad():
        default = model(history, target)
        assert model.message(history) == {}
        torch.testing.assert_close(model.score(history, target, torch.arange(len(history)), {}), default)
