"""Mixing rules against their formulas, on small hand-made distributions and embedding matrices."""

import math

import pytest
import torch

from vecgen.config import SamplingConfig
from vecgen.decoding import MixingConfig, get_rule, make_generator, mix_embeddings, vocab_mask

V, N_REAL, D = 50, 45, 8


@pytest.fixture
def setup():
    torch.manual_seed(0)
    E = torch.randn(V, D)  # (V, d)
    logits = torch.randn(2, V) * 2  # (B, V)
    logits[:, N_REAL:] = 50.0  # padding rows would win everything if they were not masked
    return E, logits, vocab_mask(V, N_REAL)


def test_full_is_the_dense_softmax_mixture(setup):
    E, logits, mask = setup
    s = SamplingConfig(temperature=0.7, top_k=3, top_p=0.5)  # truncation is ignored by `full` (CoT2)
    mixture = get_rule("full")(logits, s, MixingConfig(rule="full"), mask, None)
    expected_p = torch.softmax(logits[:, :N_REAL] / 0.7, dim=-1)  # (B, n_real)
    torch.testing.assert_close(mixture.weights[:, :N_REAL], expected_p)
    torch.testing.assert_close(mix_embeddings(E, mixture), expected_p @ E[:N_REAL])


def test_moi_equals_the_formula_by_hand():
    E = torch.arange(12, dtype=torch.float32).reshape(4, 3)  # 4 tokens, d = 3
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.2, 0.0]])).nan_to_num(neginf=-1e9)  # p = (0.5, 0.3, 0.2, 0)
    beta = 1.0
    s = SamplingConfig(temperature=1.0)
    mixture = get_rule("moi")(logits, s, MixingConfig(rule="moi", beta=beta), None, make_generator(3))
    y = int(mixture.token[0])
    p = [0.5, 0.3, 0.2, 0.0]
    h = -sum(q * math.log(q) for q in p if q > 0)
    h_norm = h / math.log(3)  # support of p has 3 tokens
    w = [h_norm * (p[i] + beta * (i == y)) / (1 + beta) + (1 - h_norm) * (i == y) for i in range(4)]
    expected = sum(w[i] * E[i] for i in range(4))
    torch.testing.assert_close(mix_embeddings(E, mixture)[0], expected)
    assert abs(sum(w) - 1) < 1e-9


def test_moi_with_greedy_sampling_is_the_onehot_embedding(setup):
    E, logits, mask = setup
    mixture = get_rule("moi")(logits, SamplingConfig(temperature=0.0), MixingConfig(rule="moi"), mask, None)
    y = logits[:, :N_REAL].argmax(-1)
    torch.testing.assert_close(mix_embeddings(E, mixture), E[y])


@pytest.mark.parametrize(
    "rule,extra",
    [("onehot", {}), ("soft", {}), ("full", {}), ("moi", {}), ("soft", {"noise": "gumbel"}),
     ("soft", {"noise": "dirichlet"})],
)
def test_padding_rows_never_get_weight(setup, rule, extra):
    E, logits, mask = setup
    cfg = MixingConfig.create(rule=rule, max_topk=10, **extra)
    for seed in range(5):
        m = get_rule(rule)(logits, SamplingConfig(temperature=1.0), cfg, mask, make_generator(seed))
        if m.indices is None:
            assert bool((m.weights[:, N_REAL:] == 0).all())
        else:
            assert bool(((m.indices < N_REAL) | (m.weights == 0)).all())
        assert bool((m.token < N_REAL).all())
        torch.testing.assert_close(m.weights.sum(-1), torch.ones(2))


@pytest.mark.parametrize("noise", ["gumbel", "dirichlet"])
def test_noise_is_reproducible_for_a_seed_and_rows_sum_to_one(setup, noise):
    E, logits, mask = setup
    cfg = MixingConfig.create(rule="soft", max_topk=10, noise=noise)
    s = SamplingConfig(temperature=1.0)
    a = get_rule("soft")(logits, s, cfg, mask, make_generator(7))
    b = get_rule("soft")(logits, s, cfg, mask, make_generator(7))
    c = get_rule("soft")(logits, s, cfg, mask, make_generator(8))
    plain = get_rule("soft")(logits, s, MixingConfig(rule="soft", max_topk=10), mask, None)
    assert torch.equal(a.weights, b.weights) and torch.equal(a.indices, b.indices)
    assert not torch.allclose(a.weights, c.weights)
    assert not torch.allclose(a.weights, plain.weights)  # the noise does change the weights
    torch.testing.assert_close(a.weights.sum(-1), torch.ones(2))
    assert bool((a.weights >= 0).all())


def test_soft_is_the_truncated_renormalised_distribution(setup):
    E, logits, mask = setup
    s = SamplingConfig(temperature=0.8, top_p=0.9, min_p=0.05)
    m = get_rule("soft")(logits, s, MixingConfig(rule="soft", max_topk=4), mask, None)
    p = torch.softmax(logits[:, :N_REAL] / 0.8, -1)
    for b in range(2):
        q, order = torch.sort(p[b], descending=True)
        keep = (torch.cumsum(q, 0) - q) < 0.9  # top-p
        q = q * keep / (q * keep).sum()
        keep = q >= 0.05 * q.max()  # min-p
        q = q * keep / (q * keep).sum()
        k = min(4, int((q > 0).sum()))
        w = q[:k] / q[:k].sum()  # max_topk, renormalised
        torch.testing.assert_close(m.weights[b, :k], w)
        assert m.indices[b, :k].tolist() == order[:k].tolist()
        torch.testing.assert_close(mix_embeddings(E, m)[b], w @ E[order[:k]])


@pytest.mark.parametrize("rule", ["soft", "onehot", "moi"])
def test_sparse_rules_gather_only_their_rows(setup, rule):
    E, logits, mask = setup
    s = SamplingConfig(temperature=1.0, top_k=5)  # moi's support: 5 tokens → sparse mixture
    m = get_rule(rule)(logits, s, MixingConfig(rule=rule, max_topk=3), mask, make_generator(0))
    assert m.indices is not None and m.indices.shape[-1] <= (3 if rule == "soft" else 5)
    poisoned = torch.full_like(E, float("nan"))
    rows = m.indices.flatten()
    poisoned[rows] = E[rows]  # every other row is NaN: touching one would poison the result
    out = mix_embeddings(poisoned, m)
    assert bool(torch.isfinite(out).all())
    torch.testing.assert_close(out, torch.einsum("bk,bkd->bd", m.weights, E[m.indices]))


def test_bad_mixing_values_are_clear_errors():
    from vecgen.errors import ConfigError

    with pytest.raises(ConfigError, match="beta"):
        MixingConfig.create(rule="moi", beta=-1)
    with pytest.raises(ConfigError, match="noise"):
        MixingConfig.create(rule="soft", noise="loud")
    with pytest.raises(ConfigError, match="gumbel_tau"):
        MixingConfig.create(rule="soft", gumbel_tau=0)


def test_sampler_finiteness_checks_keep_their_meaning():
    """The one-reduction fast path of mask_logits must flag exactly what the per-entry checks flag."""
    from vecgen.decoding import mask_logits
    from vecgen.errors import ConfigError, NonFiniteError

    mask = vocab_mask(V, N_REAL)
    ok = torch.randn(2, V)
    ok[0, 3] = float("-inf")  # a legal "never"
    out = mask_logits(ok, mask)
    assert bool(torch.isneginf(out[:, N_REAL:]).all()) and torch.equal(out[:, :N_REAL], ok[:, :N_REAL])
    huge = torch.full((1, V), 3e37)  # finite entries whose sum overflows: not an error
    assert bool(torch.isfinite(mask_logits(huge, mask)[:, :N_REAL]).all())
    for bad in (float("nan"), float("inf")):
        x = torch.randn(2, V)
        x[1, N_REAL + 1] = bad  # even in a padding row
        with pytest.raises(NonFiniteError):
            mask_logits(x, mask)
    only_padding_finite = torch.full((1, V), float("-inf"))
    only_padding_finite[0, N_REAL:] = 1.0
    with pytest.raises(ConfigError, match="no allowed token"):
        mask_logits(only_padding_finite, mask)
