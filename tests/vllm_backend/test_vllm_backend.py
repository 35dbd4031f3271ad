"""The vLLM backend (``--backend vllm``) against the transformers backend, against vLLM's own prompt-embeddings
path, across tensor-parallel sizes and over HTTP.

Runs where vLLM is installed (CPU: ``vllm-cpu`` 0.32 in its own environment, ``scripts/vllm-env.sh``; CI builds it);
elsewhere the module is skipped as a whole. Both backends run float32 on the CPU, so greedy paths are compared token
for token. Each vLLM instance gets 1 GiB of KV cache per rank (``VLLM_CPU_KVCACHE_SPACE``, vLLM's CPU setting) so
that three instances and a transformers model fit a 23 GB machine beside each other.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("vllm")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

import torch  # noqa: E402

import vecgen  # noqa: E402
from vecgen.backends.contract import Batch  # noqa: E402
from vecgen.config import SamplingConfig  # noqa: E402
from vecgen.errors import ConfigError, UnsupportedError  # noqa: E402
from vecgen.thinking.think import think  # noqa: E402

from helpers.models import save_tiny_model  # noqa: E402

PROMPTS = ["def fib(n):", "The capital of France is", "Write a haiku about the sea."]
QUESTIONS = ["What is 12 + 30?", "Is 17 a prime number?"]


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
    a = vl.think(QUESTIONS, method="soft", max_think_tokens=24, max_answer_tokens=12)
    b = tf.think(QUESTIONS, method="soft", max_think_tokens=24, max_answer_tokens=12)
    assert [(o.trace, o.answer) for o in a] == [(o.trace, o.answer) for o in b]


def test_switch_thinking_equals_transformers(pair):
    """``switch`` changes between concept tokens and sampled tokens on the entropy of each row's own distribution."""
    vl, tf = pair
    a = vl.think(QUESTIONS, method="switch", max_think_tokens=24, max_answer_tokens=12)
    b = tf.think(QUESTIONS, method="switch", max_think_tokens=24, max_answer_tokens=12)
    assert [(o.trace, o.answer) for o in a] == [(o.trace, o.answer) for o in b]


@pytest.mark.parametrize("rule", ["soft", "full", "moi"])
def test_concept_tokens_and_their_translations_equal_transformers(pair, rule):
    """Concept tokens of each rule but ``hidden`` (their top weights) and every translation method of them (the
    vectors fed back inside prompts on vLLM) give transformers' tokens. Weights compared to 1e-4: float32 both, the
    logits of a prefill and of decode steps summed in other orders."""
    vl, tf = pair
    a = vl.concept("The capital of France is", n=3, rule=rule)
    b = tf.concept("The capital of France is", n=3, rule=rule)
    assert [[w.token for w in step[:3]] for step in a.top] == [[w.token for w in step[:3]] for step in b.top]
    torch.testing.assert_close(torch.tensor([[w.weight for w in step[:3]] for step in a.top]),
                               torch.tensor([[w.weight for w in step[:3]] for step in b.top]), atol=1e-4, rtol=0)
    methods = ["nearest", "direct", "completion", "fewshot", "instruction"]
    ta, tb = a.translate(methods, max_new_tokens=8), b.translate(methods, max_new_tokens=8)
    assert {m: t.token_ids for m, t in ta.items()} == {m: t.token_ids for m, t in tb.items()}


def test_gated_thinking_equals_transformers(pair):
    vl, tf = pair
    a = vl.think(QUESTIONS, method="gated", max_think_tokens=24, max_answer_tokens=12)
    b = tf.think(QUESTIONS, method="gated", max_think_tokens=24, max_answer_tokens=12)
    assert [(o.trace, o.answer) for o in a] == [(o.trace, o.answer) for o in b]


def test_continuous_batching_rows_equal_alone(pair):
    """Two rows at a time over three questions: the third joins while a row still decodes (the scheduler holds
    the running rows while it is prefilled); every answer equals the question decoded alone."""
    vl, _ = pair
    q = ["What is 3 * 7?", "Name a prime above 10.", "What is 100 - 58?"]
    together = vl.think(q, method="cot", batch_size=2, max_think_tokens=16, max_answer_tokens=8)
    alone = [vl.think([x], method="cot", batch_size=1, max_think_tokens=16, max_answer_tokens=8)[0] for x in q]
    assert [(o.trace, o.answer) for o in together] == [(o.trace, o.answer) for o in alone]


def test_vector_inputs_equal_prompt_embeds_resubmission(pair):
    """The independent oracle: three concept tokens fed inside vLLM's runner give the same next-token distribution
    as vLLM's stock prompt-embeddings path (``{"prompt_embeds": E[prompt] ++ vectors}``, one request, no vecgen hook
    active). Tolerance: 2e-3 nats on the top-5 log-probabilities, float32 both (a prefill of the whole sequence vs
    one decode step per vector sums attention in another order)."""
    from vllm import SamplingParams

    vl, _ = pair
    backend = vl.backend
    ids = torch.tensor([vl.encode("Think of a colour, then name a fruit of that colour:")])
    state = backend.prefill(Batch(input_ids=ids, inputs_embeds=None, attention_mask=torch.ones_like(ids)))
    fed = []
    for _ in range(3):
        top = state.logits[0].topk(8)
        w = torch.softmax(top.values, dim=-1).to(backend.dtype)
        vector = (w[:, None] * backend.input_rows(top.indices)).sum(0)  # (d,) a concept token of the top 8
        fed.append(vector)
        state = backend.extend(state, vector[None])
    ours = torch.log_softmax(state.logits[0].float(), dim=-1)
    del state  # the row leaves vLLM
    backend.release_unreferenced()
    assert not backend.scheduler.requests
    embeds = torch.cat([backend.input_rows(ids[0]), torch.stack(fed)]).cpu()
    backend.scheduler.allowed = None  # stock scheduling for the oracle request
    try:
        out = backend.llm.generate([{"prompt_embeds": embeds}],
                                   SamplingParams(max_tokens=1, temperature=0.0, logprobs=5), use_tqdm=False)
    finally:
        backend.scheduler.allowed = set()
    theirs = out[0].outputs[0].logprobs[0]
    top5 = ours.topk(5).indices.tolist()
    assert sorted(top5) == sorted(theirs)
    torch.testing.assert_close(torch.tensor([ours[i].item() for i in top5]),
                               torch.tensor([theirs[i].logprob for i in top5]), atol=2e-3, rtol=0)


def test_finished_rows_leave_vllm(pair):
    """Every request of a finished call (rows that ended, rows of continuous batching, concept tokens) is aborted
    once no decode state refers to it: nothing stays in vLLM's scheduler holding KV cache blocks."""
    vl, _ = pair
    vl.think(["What is 3 * 7?", "Name a prime above 10.", "What is 100 - 58?"], method="cot", batch_size=2,
             max_think_tokens=8, max_answer_tokens=4)
    vl.concept("The capital of France is", n=2)
    vl.backend.release_unreferenced()
    assert not vl.backend.scheduler.requests


def test_serve_answers_openai_client_with_reasoning_content(pair):
    """``vecgen serve --backend vllm``: the openai client's soft-thinking chat returns the offline trace as
    ``reasoning_content`` and the answer as ``content``; a bad request is a 400; a client that disconnects
    mid-stream frees its row and its vLLM request."""
    openai = pytest.importorskip("openai")
    import httpx

    from helpers.serving import live_server

    vl, _ = pair
    q = "What is 17 + 25?"
    offline = think(vl, [q], method="soft", sampling=SamplingConfig(seed=0), max_think_tokens=48)[0]
    with live_server(vl, max_batch=4) as (url, server):
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=600)
        r = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": q}], temperature=0,
                                           seed=0, extra_body={"thinking": {"method": "soft", "max_think_tokens": 48}})
        # the server's guarantees on this backend: a bad request is a 400 before it queues; a client that leaves
        # mid-stream frees its row, and its vLLM request goes with it
        bad = httpx.post(url + "/v1/completions", json={"prompt": "hi", "max_tokens": -1}, timeout=60)
        assert bad.status_code == 400
        body = {"prompt": "Tell me a long story", "max_tokens": 200, "temperature": 0, "stream": True}
        with httpx.stream("POST", url + "/v1/completions", json=body, timeout=120) as resp:
            assert next(line for line in resp.iter_lines() if line.startswith("data:"))
            assert server.worker.busy == 1
        deadline = time.time() + 60
        while server.worker.busy and time.time() < deadline:
            time.sleep(0.05)
        assert server.worker.busy == 0
        assert httpx.post(url + "/v1/completions", json={"prompt": "hi", "max_tokens": 2}, timeout=120).status_code == 200
    vl.backend.release_unreferenced()
    assert not vl.backend.scheduler.requests
    msg = r.choices[0].message
    assert msg.reasoning_content == offline.trace and msg.content == offline.answer
    assert msg.reasoning_content


def test_lm_eval_generate_until_equals_transformers(pair, monkeypatch):
    """vecgen's lm-eval model with ``backend=vllm`` (its model arguments checked by the real path; the load returns
    the module's engine, see tiny_parity.py for why a second one stays out of this process): soft-thinking answers
    to generate_until requests equal those of ``backend=transformers``; its log-likelihoods name transformers."""
    pytest.importorskip("lm_eval")
    from lm_eval.api.instance import Instance

    import vecgen.lmeval as lmeval

    vl, tf = pair
    reqs = [Instance(request_type="generate_until", doc={}, idx=i,
                     arguments=(f"Question: {q}\nAnswer:", {"until": ["\n"], "max_gen_toks": 8}))
            for i, q in enumerate(QUESTIONS)]
    outs = {}
    for name, model in (("vllm", vl), ("transformers", tf)):
        monkeypatch.setattr("vecgen.api.load_model", lambda *a, _m=model, **k: _m)  # after load's checks
        lm = lmeval.VecgenLM(model="default", backend=name, method="soft", max_think_tokens=16, batch_size=2,
                             **({"n_ctx": 2048} if name == "vllm" else {}))
        outs[name] = lm.generate_until(reqs, disable_tqdm=True)
        if name == "vllm":
            with pytest.raises(UnsupportedError, match="transformers"):
                lm.loglikelihood([Instance(request_type="loglikelihood", doc={}, arguments=("Hi", " there"), idx=0)],
                                 disable_tqdm=True)
    assert outs["vllm"] == outs["transformers"] and any(o.strip() for o in outs["vllm"])


def test_tensor_parallel_2_equals_1(pair):
    """``tensor_parallel_size=2`` (two CPU ranks, one core each): the same greedy tokens and soft traces as 1."""
    vl, _ = pair
    tp2 = vecgen.load("default", backend="vllm", n_ctx=2048, tensor_parallel_size=2)
    assert tp2.backend.tensor_parallel_size == 2
    assert tp2.generate(PROMPTS, max_new_tokens=24) == vl.generate(PROMPTS, max_new_tokens=24)
    a = tp2.think(QUESTIONS, method="soft", max_think_tokens=24, max_answer_tokens=12)
    b = vl.think(QUESTIONS, method="soft", max_think_tokens=24, max_answer_tokens=12)
    assert [(o.trace, o.answer) for o in a] == [(o.trace, o.answer) for o in b]


@pytest.mark.parametrize("family", ["qwen2", "llama"])
def test_tiny_random_config_greedy_equals_transformers(tmp_path, family):
    """A tiny random model saved from a config (head size 32, which vLLM's CPU attention takes) decodes the same
    greedy tokens and soft-thinking traces on vLLM as on transformers (``tiny_parity.py``, in a process of its own)."""
    folder = save_tiny_model(tmp_path / family, family, hidden_size=128)
    proc = subprocess.run([sys.executable, str(Path(__file__).with_name("tiny_parity.py")), str(folder)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0 and "PARITY OK" in proc.stdout, proc.stderr[-4000:]


def test_hidden_rule_names_transformers(pair):
    vl, _ = pair
    with pytest.raises(UnsupportedError, match="transformers"):
        vl.think(["What is 2 + 2?"], method="hidden", max_think_tokens=4, max_answer_tokens=4)


def test_tensor_parallel_beyond_devices_refused_before_load():
    with pytest.raises(ConfigError, match="tensor_parallel_size"):
        vecgen.load("default", backend="vllm", tensor_parallel_size=1024)
