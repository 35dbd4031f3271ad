import math

import pytest
import torch

from vecgen.config import SamplingConfig
from vecgen.decoding import entropy, logits_to_probs, sample, truncate, vocab_mask
from vecgen.errors import ConfigError, NonFiniteError


def cfg(**kw):
    return SamplingConfig(**kw)


def test_top_k_1_equals_argmax():
    torch.manual_seed(0)
    logits = torch.randn(4, 100)
    probs = logits_to_probs(logits, cfg(temperature=1.0, top_k=1))
    assert torch.equal(probs.argmax(-1), logits.argmax(-1))
    assert torch.equal(probs.max(-1).values, torch.ones(4))
    assert torch.equal(sample(probs), logits.argmax(-1))


def test_greedy_is_one_hot_on_argmax():
    logits = torch.tensor([[0.1, 3.0, 2.9, -1.0]])
    probs = logits_to_probs(logits, cfg(temperature=0.0))
    assert probs.tolist() == [[0.0, 1.0, 0.0, 0.0]]


def test_top_p_keeps_smallest_set_reaching_the_mass():
    p = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    out = truncate(p, cfg(temperature=1.0, top_p=0.8))
    torch.testing.assert_close(out, torch.tensor([[0.5 / 0.8, 0.3 / 0.8, 0.0, 0.0]]))
    out = truncate(p, cfg(temperature=1.0, top_p=0.81))
    torch.testing.assert_close(out, torch.tensor([[0.5, 0.3, 0.15, 0.0]]) / 0.95)
    out = truncate(p, cfg(temperature=1.0, top_p=0.1))  # the top token is always kept
    assert out.tolist() == [[1.0, 0.0, 0.0, 0.0]]


def test_min_p_threshold_is_relative_to_the_max():
    p = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    out = truncate(p, cfg(temperature=1.0, min_p=0.3))  # threshold 0.15
    torch.testing.assert_close(out, torch.tensor([[0.5, 0.3, 0.15, 0.0]]) / 0.95)


def test_top_k_then_top_p_renormalises_between():
    p = torch.tensor([[0.4, 0.3, 0.2, 0.1]])
    # after top_k=3: [4/9, 3/9, 2/9]; top_p=0.7 keeps 4/9 + 3/9 = 0.78 >= 0.7
    out = truncate(p, cfg(temperature=1.0, top_k=3, top_p=0.7))
    torch.testing.assert_close(out, torch.tensor([[4 / 7, 3 / 7, 0.0, 0.0]]))


def test_temperature_scales_logits():
    logits = torch.tensor([[1.0, 2.0, 3.0]])
    probs = logits_to_probs(logits, cfg(temperature=0.5))
    torch.testing.assert_close(probs, torch.softmax(logits / 0.5, -1))


def test_padding_rows_and_disallowed_tokens_get_zero():
    logits = torch.zeros(2, 10)
    logits[:, 8:] = 50.0  # padding rows would dominate
    mask = vocab_mask(10, 8, allowed=torch.tensor([1, 2, 3, 9]))
    probs = logits_to_probs(logits, cfg(temperature=1.0), mask)
    assert probs[:, [0, 4, 5, 6, 7, 8, 9]].abs().sum() == 0
    torch.testing.assert_close(probs.sum(-1), torch.ones(2))


def test_empty_allowed_set_and_non_finite_logits_are_clear_errors():
    with pytest.raises(ConfigError, match="empty"):
        vocab_mask(10, 8, allowed=torch.tensor([8, 9]))
    with pytest.raises(NonFiniteError):
        logits_to_probs(torch.tensor([[0.0, float("nan")]]), cfg(temperature=1.0))


def test_entropy_in_nats():
    uniform = torch.full((1, 8), 1 / 8)
    assert entropy(uniform).item() == pytest.approx(math.log(8))
    assert entropy(torch.tensor([[1.0, 0.0]])).item() == 0.0


def test_sampling_is_reproducible_with_a_seed():
    from vecgen.decoding import make_generator

    probs = torch.softmax(torch.randn(3, 50), -1)
    a = sample(probs, make_generator(7))
    b = sample(probs, make_generator(7))
    assert torch.equal(a, b)
