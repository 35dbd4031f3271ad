"""``vecgen serve`` against real clients: the official ``openai`` client, raw HTTP (httpx), asyncio concurrency and
lm-eval's ``local-chat-completions``, each on a live server on a free localhost port with a tiny random model.

Served greedy outputs are compared token for token (as text) with the offline library calls on the same inputs:
``vecgen.decoding.generate`` for chat and text completions, ``vecgen.thinking.think.think`` for thinking,
``vecgen.concept.tokens.concept_tokens`` for concept tokens (weights within float32 kernel tolerance: a served row
shares its batch with others, ``assert_close``'s float32 defaults)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import torch

pytest.importorskip("fastapi", reason="the serve extra is installed in CI (pip install -e '.[serve]')")
openai = pytest.importorskip("openai", reason="the test extra installs the openai client")
import httpx  # noqa: E402

from vecgen.concept.tokens import concept_tokens  # noqa: E402
from vecgen.config import SamplingConfig  # noqa: E402
from vecgen.decoding import generate  # noqa: E402
from vecgen.decoding.mixing import MixingConfig  # noqa: E402
from vecgen.models import render_chat  # noqa: E402
from vecgen.thinking.think import think  # noqa: E402

from helpers.lmeval_tasks import generate_until_task  # noqa: E402
from helpers.serving import free_port, live_server  # noqa: E402

QUESTIONS = ["What is 2 + 3?", "Name a colour.", "How many legs has a cat?", "What is 7 times 6?"]


@pytest.fixture(scope="module")
def served(tiny_lm):
    lm = tiny_lm("qwen2")
    with live_server(lm, max_batch=4, max_tokens=64) as (url, server):
        yield lm, url, server


@pytest.fixture(scope="module")
def client(served):
    return openai.OpenAI(base_url=served[1] + "/v1", api_key="unused", max_retries=0, timeout=120)


def offline_chat(lm, messages, max_tokens):
    ids = lm.encode(render_chat(lm.tokenizer, messages))
    res = generate(lm, [ids], sampling=SamplingConfig(), max_new_tokens=max_tokens)
    return res.text(0, lm.tokenizer), ids


def offline_text(lm, prompt, max_tokens):
    res = generate(lm, [lm.encode(prompt)], sampling=SamplingConfig(), max_new_tokens=max_tokens)
    return res.text(0, lm.tokenizer)


# ---------------------------------------------------------------------------------------------- the openai client


def test_models_lists_the_served_model(client, served):
    models = client.models.list().data
    assert [m.id for m in models] == ["tiny"]
    assert models[0].model_extra["max_model_len"] == served[0].context_length


def test_chat_greedy_equals_offline_generation(client, served):
    lm = served[0]
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}]
    r = client.chat.completions.create(model="tiny", messages=messages, max_tokens=12, temperature=0)
    text, ids = offline_chat(lm, messages, 12)
    assert r.choices[0].message.content == text
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens == len(ids) and r.usage.completion_tokens <= 12


def test_completions_and_their_stream_equal_offline_generation(client, served):
    lm = served[0]
    expected = offline_text(lm, "The capital of France is", 10)
    r = client.completions.create(model="tiny", prompt="The capital of France is", max_tokens=10, temperature=0)
    assert r.choices[0].text == expected
    chunks = list(client.completions.create(model="tiny", prompt="The capital of France is", max_tokens=10,
                                            temperature=0, stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == expected
    assert chunks[-1].choices[0].finish_reason == r.choices[0].finish_reason


def test_stop_strings_cut_the_text_streamed_or_not(client, served):
    lm = served[0]
    full = offline_text(lm, "Once upon a time", 24)
    stop = next((full[i:i + 2] for i in range(3, len(full) - 2) if full[i:i + 2].strip()), None)
    assert stop is not None, full
    r = client.completions.create(model="tiny", prompt="Once upon a time", max_tokens=24, temperature=0, stop=[stop])
    assert r.choices[0].text == full[: full.index(stop)] and r.choices[0].finish_reason == "stop"
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model="tiny", prompt="Once upon a time", max_tokens=24, temperature=0, stop=[stop], stream=True) if c.choices)
    assert streamed == r.choices[0].text


@pytest.mark.parametrize("method", ["cot", "soft"])
def test_thinking_returns_reasoning_content_equal_to_offline_think(client, served, method):
    lm = served[0]
    q = QUESTIONS[0]
    body = {"thinking": {"method": method, "max_think_tokens": 6}}
    r = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": q}], temperature=0, seed=3,
                                       max_tokens=5, extra_body=body)
    out = think(lm, [q], method=method, sampling=SamplingConfig(seed=3), max_think_tokens=6, max_answer_tokens=5)[0]
    msg = r.choices[0].message
    assert msg.reasoning_content == out.trace and msg.content == out.answer
    assert r.usage.completion_tokens_details.reasoning_tokens == out.think_tokens
    assert r.usage.completion_tokens == out.generated_tokens
    assert r.choices[0].model_extra["thinking"]["stop_reason"] == out.stop_reason
    # streamed: reasoning_content and content arrive as their own deltas, and add up to the same texts
    reasoning, content, usage = "", "", None
    for chunk in client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": q}], temperature=0,
                                                seed=3, max_tokens=5, extra_body=body, stream=True,
                                                stream_options={"include_usage": True}):
        if not chunk.choices:
            usage = chunk.usage
            continue
        delta = chunk.choices[0].delta
        reasoning += getattr(delta, "reasoning_content", None) or ""
        content += delta.content or ""
    assert (reasoning, content) == (out.trace, out.answer)
    assert usage is not None and usage.completion_tokens_details.reasoning_tokens == out.think_tokens


def test_concept_tokens_equal_offline_concept_tokens(client, served):
    lm = served[0]
    r = client.completions.create(model="tiny", prompt="The capital of France is", max_tokens=1,
                                  extra_body={"concept_tokens": {"n": 3, "rule": "soft", "max_topk": 5, "seed": 7}})
    served_ct = r.choices[0].model_extra["concept_tokens"]
    offline = concept_tokens(lm, ["The capital of France is"], n=3, sampling=SamplingConfig(temperature=1.0, seed=7),
                             mixing=MixingConfig(rule="soft", max_topk=5), record_top_k=10)[0]
    assert len(served_ct) == 3
    for got, want in zip(served_ct, offline.top):
        assert [t["token"] for t in got["top"]] == [w.token for w in want]
        torch.testing.assert_close(torch.tensor([t["weight"] for t in got["top"]]), torch.tensor([w.weight for w in want]))
    torch.testing.assert_close(torch.tensor([c["entropy"] for c in served_ct]), torch.tensor(offline.entropy))


def test_n_choices_with_a_seed_are_reproducible(client):
    kw = dict(model="tiny", prompt="Hello", max_tokens=6, temperature=1.0, n=3, seed=11)
    a = client.completions.create(**kw)
    b = client.completions.create(**kw)
    assert [c.index for c in a.choices] == [0, 1, 2]
    assert [c.text for c in a.choices] == [c.text for c in b.choices]


# ------------------------------------------------------------------------------------------------- concurrency


def test_sixteen_concurrent_requests_all_complete_and_equal_offline_outputs(served):
    lm, url, server = served
    aclient = openai.AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=300)
    requests = []
    for i in range(16):
        q = QUESTIONS[i % 4] + " " * (i // 4)
        if i % 4 == 0:
            requests.append(("chat", q, dict(messages=[{"role": "user", "content": q}], max_tokens=4 + i % 7)))
        elif i % 4 == 1:
            requests.append(("text", q, dict(prompt=q, max_tokens=3 + i % 9)))
        else:
            method = "cot" if i % 4 == 2 else "soft"
            requests.append((method, q, dict(messages=[{"role": "user", "content": q}], max_tokens=3, seed=5,
                                             extra_body={"thinking": {"method": method, "max_think_tokens": 2 + i}})))

    async def one(kind, kwargs):
        if kind == "text":
            return (await aclient.completions.create(model="tiny", temperature=0, **kwargs)).choices[0]
        return (await aclient.chat.completions.create(model="tiny", temperature=0, **kwargs)).choices[0]

    async def all_of():
        return await asyncio.gather(*(one(kind, kw) for kind, _, kw in requests))

    steps_before = server.worker.stats["steps"]
    row_steps_before = server.worker.stats["row_steps"]
    results = asyncio.run(all_of())
    assert len(results) == 16
    for (kind, q, kw), got in zip(requests, results):
        if kind == "chat":
            assert got.message.content == offline_chat(lm, kw["messages"], kw["max_tokens"])[0]
        elif kind == "text":
            assert got.text == offline_text(lm, q, kw["max_tokens"])
        else:
            out = think(lm, [q], method=kind, sampling=SamplingConfig(seed=5), max_answer_tokens=3,
                        max_think_tokens=kw["extra_body"]["thinking"]["max_think_tokens"])[0]
            assert (got.message.reasoning_content, got.message.content) == (out.trace, out.answer), kind
    steps = server.worker.stats["steps"] - steps_before
    assert server.worker.stats["row_steps"] - row_steps_before > steps  # rows did share steps: one batch
    assert server.worker.busy == 0


@pytest.mark.slow
def test_the_llamacpp_backend_serves_concurrent_requests_too(tiny_llamacpp):
    """The same server on llama.cpp (sequence ids instead of a padded cache): concurrent greedy completions and a soft
    thinking request equal their offline runs on the same backend."""
    lm = tiny_llamacpp("qwen2")
    prompts = ["Hello there", "Once upon a time", "The capital of France is", "Numbers:"]
    expected = [offline_text(lm, p, 5 + i) for i, p in enumerate(prompts)]
    out = think(lm, [QUESTIONS[1]], method="soft", sampling=SamplingConfig(seed=2), max_think_tokens=5,
                max_answer_tokens=3)[0]
    with live_server(lm, max_batch=3) as (url, _):
        aclient = openai.AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=120)

        async def all_of():
            texts = [aclient.completions.create(model="tiny", prompt=p, max_tokens=5 + i, temperature=0)
                     for i, p in enumerate(prompts)]
            soft = aclient.chat.completions.create(
                model="tiny", messages=[{"role": "user", "content": QUESTIONS[1]}], temperature=0, seed=2, max_tokens=3,
                extra_body={"thinking": {"method": "soft", "max_think_tokens": 5}})
            return await asyncio.gather(*texts, soft)

        *texts, soft = asyncio.run(all_of())
    assert [r.choices[0].text for r in texts] == expected
    assert (soft.choices[0].message.reasoning_content, soft.choices[0].message.content) == (out.trace, out.answer)


def test_rows_wait_for_kv_cells_a_shared_context_lacks(tiny_lm, monkeypatch):
    """On a backend whose rows share a fixed pool of KV cells (llama.cpp's n_ctx), a request is admitted only when its
    prompt and budget fit beside the live rows: with room for one row at a time, concurrent requests run one after
    another and all complete, equal to their offline runs."""
    lm = tiny_lm("qwen2")
    prompts = ["Hello there", "Once upon a time", "Numbers:"]
    expected = [offline_text(lm, p, 12) for p in prompts]
    monkeypatch.setattr(lm.backend, "n_ctx", 20, raising=False)
    with live_server(lm, max_batch=4) as (url, server):
        assert server.worker.cells == 20
        aclient = openai.AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=120)

        async def all_of():
            return await asyncio.gather(*(aclient.completions.create(model="tiny", prompt=p, max_tokens=12,
                                                                     temperature=0) for p in prompts))

        results = asyncio.run(all_of())
        stats = dict(server.worker.stats)
    assert [r.choices[0].text for r in results] == expected
    assert stats["row_steps"] == stats["steps"]  # never two rows at once


# --------------------------------------------------------------------------------------- bad input and faults


def _post(url, path, body, **kw):
    content = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return httpx.post(url + path, content=content, headers={"content-type": "application/json", **kw.pop("headers", {})},
                      timeout=kw.pop("timeout", 60), **kw)


@pytest.mark.parametrize("body,param,fragment", [
    (b"{not json", None, "malformed JSON"),
    (b"[1, 2]", None, "JSON object"),
    (b'{"messages": [{"role": "user", "content": "hi"}], "temperature": NaN}', None, "NaN"),
    ({"messages": [{"role": "user", "content": "hi"}], "bogus": 1}, "bogus", "unknown field"),
    ({"messages": []}, "messages", "messages"),
    ({"messages": [{"role": "robot", "content": "hi"}]}, "messages.0.role", "role"),
    ({"messages": [{"role": "user", "content": "hi"}], "temperature": 7}, "temperature", "[0, 2]"),
    ({"messages": [{"role": "user", "content": "hi"}], "top_p": 0}, "top_p", "top_p"),
    ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}, "max_tokens", "max_tokens"),
    ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 65}, "max_tokens", "limit of 64"),
    ({"messages": [{"role": "user", "content": "hi"}], "n": 99}, "n", "n"),
    ({"messages": [{"role": "user", "content": "hi"}], "seed": -1}, "seed", "seed"),
    ({"messages": [{"role": "user", "content": "hi"}], "stop": ["a"] * 17}, "stop", "stop"),
    ({"messages": [{"role": "user", "content": "hi"}], "logprobs": True}, "logprobs", "not supported"),
    ({"messages": [{"role": "user", "content": "\ud800"}]}, "messages", "Unicode"),
    ({"messages": [{"role": "user", "content": "hi " * 600}], "max_tokens": 8}, "messages", "context"),
    ({"messages": [{"role": "user", "content": "hi"}], "thinking": {"method": "telepathy"}}, "thinking.method",
     "telepathy"),
    ({"messages": [{"role": "user", "content": "hi"}], "thinking": {"method": "soft", "cold_stop_tau": -1}},
     "thinking.cold_stop_tau", "cold_stop_tau"),
    ({"messages": [{"role": "user", "content": "hi"}], "thinking": {"method": "soft", "telepathy": 1}},
     "thinking.telepathy", "telepathy"),
    ({"messages": [{"role": "user", "content": "hi"}], "thinking": {"method": "soft", "max_think_tokens": 65}},
     "thinking.max_think_tokens", "limit"),
    ({"messages": [{"role": "user", "content": "hi"}], "thinking": {"mixing": {"rule": "bogus"}}}, "thinking",
     "bogus"),
    ({"messages": [{"role": "user", "content": "hi"}], "thinking": {"mixing": {"bogus": 1}}},
     "thinking.mixing.bogus", "thinking.mixing.bogus"),
    ({"messages": [{"role": "user", "content": "hi"}], "thinking": {"think_sampling": {"temperature": 9}}},
     "thinking.think_sampling.temperature", "[0, 2]"),
    ({"messages": [{"role": "user", "content": "hi"}], "thinking": {"think_sampling": {"temperature": "hot"}}},
     "thinking.think_sampling.temperature", "wrong type"),
    ({"messages": [{"role": "user", "content": "hi"}], "thinking": {"think_sampling": {"bogus": 1}}},
     "thinking.think_sampling.bogus", "unknown field"),
    ({"messages": [{"role": "user", "content": "hi"}], "thinking": {"mixing": {"max_topk": "x"}}},
     "thinking.mixing.max_topk", "wrong type"),
    ({"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}, "temperature", "wrong type"),
    ({"messages": [{"role": "user", "content": "hi"}], "concept_tokens": {"n": 2, "rule": "bogus"}},
     "concept_tokens.rule", "bogus"),
    ({"messages": [{"role": "user", "content": "hi"}], "concept_tokens": {"n": 2}, "stream": True}, "stream",
     "stream"),
])
def test_bad_chat_requests_get_400_naming_the_field(served, body, param, fragment):
    r = _post(served[1], "/v1/chat/completions", body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and fragment in err["message"], err
    if param is not None:
        assert err["param"] == param or (err["param"] or "").startswith(param), err


@pytest.mark.parametrize("body,fragment", [
    ({"prompt": ""}, "empty"),
    ({"prompt": [10**9]}, "outside the vocabulary"),
    ({"prompt": "hi", "echo": True}, "echo"),
    ({"prompt": "hi", "max_tokens": 5000}, "limit"),
    ({"model": "tiny"}, "missing field 'prompt'"),
    ({"prompt": "hi", "thinking": {"method": "soft"}}, "own field of /v1/chat/completions"),
    ({"prompt": "hi " * 600, "max_tokens": 8}, "lower max_tokens"),
])
def test_bad_completion_requests_get_400(served, body, fragment):
    r = _post(served[1], "/v1/completions", body)
    assert r.status_code == 400 and fragment in r.json()["error"]["message"], r.text


def test_unknown_model_is_404_and_a_huge_body_413(served):
    r = _post(served[1], "/v1/completions", {"model": "gpt-9", "prompt": "hi"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    r = _post(served[1], "/v1/completions", {"prompt": "x" * 2_000_000})
    assert r.status_code == 413 and "limit" in r.json()["error"]["message"]
    assert _post(served[1], "/v1/completions", {"prompt": "hi", "max_tokens": 2}).status_code == 200  # still serving


def test_deep_json_is_a_400_and_unknown_routes_and_methods_are_openai_errors(served):
    deep = '{"messages": [{"role": "user", "content": "hi"}], "x": ' + "[" * 5000 + "]" * 5000 + "}"
    r = _post(served[1], "/v1/chat/completions", deep)
    assert r.status_code == 400, r.text
    assert "deeper than 64 levels" in r.json()["error"]["message"]
    r = httpx.get(served[1] + "/v1/nowhere", timeout=30)
    err = r.json()["error"]
    assert r.status_code == 404 and err["type"] == "invalid_request_error" and "/v1/chat/completions" in err["message"]
    r = httpx.get(served[1] + "/v1/chat/completions", timeout=30)
    assert r.status_code == 405 and "GET is not allowed" in r.json()["error"]["message"]
    assert _post(served[1], "/v1/completions", {"prompt": "hi", "max_tokens": 2}).status_code == 200  # still serving


def test_the_api_key_is_required_when_set(tiny_lm):
    with live_server(tiny_lm("qwen2"), api_key="s3cret") as (url, _):
        assert httpx.get(url + "/v1/models").status_code == 401
        r = httpx.get(url + "/v1/models", headers={"authorization": "Bearer wrong"})
        assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
        assert httpx.get(url + "/v1/models", headers={"authorization": "Bearer s3cret"}).status_code == 200
        assert httpx.get(url + "/health").status_code == 200
        ok = openai.OpenAI(base_url=url + "/v1", api_key="s3cret", max_retries=0)
        assert ok.completions.create(model="tiny", prompt="hi", max_tokens=2).choices
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=url + "/v1", api_key="nope", max_retries=0).models.list()


def test_a_client_that_disconnects_mid_stream_frees_its_row(served):
    _, url, server = served
    body = {"prompt": "Tell me a long story", "max_tokens": 64, "temperature": 0, "stream": True}
    with httpx.stream("POST", url + "/v1/completions", json=body, timeout=60) as r:
        lines = r.iter_lines()
        assert next(line for line in lines if line.startswith("data:"))
        assert server.worker.busy == 1
    deadline = time.time() + 30  # the row leaves at the next step once the server sees the disconnect
    while server.worker.busy and time.time() < deadline:
        time.sleep(0.05)
    assert server.worker.busy == 0
    steps = server.worker.stats["row_steps"]
    time.sleep(0.3)
    assert server.worker.stats["row_steps"] == steps  # nothing decodes for the gone client
    assert _post(url, "/v1/completions", {"prompt": "hi", "max_tokens": 2}).status_code == 200


@pytest.mark.parametrize("backend", ["transformers", pytest.param("llamacpp", marks=pytest.mark.slow)])
def test_a_non_streamed_thinking_client_that_leaves_frees_its_row_at_the_next_step(tiny_lm, tiny_llamacpp, backend,
                                                                                  monkeypatch, caplog):
    from vecgen.serve import worker as worker_mod

    observe = worker_mod.ServedRow.observe

    def slow_observe(self, obs):  # 50 ms a step: the request would take 100 steps x 50 ms = 5 s
        time.sleep(0.05)
        return observe(self, obs)

    monkeypatch.setattr(worker_mod.ServedRow, "observe", slow_observe)
    caplog.set_level("INFO", logger="vecgen.serve.worker")
    lm = tiny_lm("qwen2") if backend == "transformers" else tiny_llamacpp("qwen2")
    with live_server(lm, max_batch=2, max_tokens=100) as (url, server):
        body = {"messages": [{"role": "user", "content": "think"}], "max_tokens": 4,
                "thinking": {"method": "soft", "max_think_tokens": 96, "cold_stop_tau": 0}}
        with pytest.raises(httpx.TimeoutException):
            _post(url, "/v1/chat/completions", body, timeout=0.6)  # the client gives up and closes its connection
        left = time.time()
        while server.worker.busy and time.time() < left + 10:
            time.sleep(0.02)
        freed_after = time.time() - left
        assert server.worker.busy == 0
        assert server.worker.stats["row_steps"] < 40, server.worker.stats  # not run to its natural end (100 steps)
        assert freed_after < 2.0
        assert any("its client left" in r.getMessage() for r in caplog.records)


def test_one_requests_nan_fails_that_request_only(tiny_lm, monkeypatch):
    """A NaN in one row's logits: that request gets 500 (and the error is logged); its neighbour finishes with the
    same text as alone."""
    lm = tiny_lm("qwen2")
    backend = lm.backend
    original = backend.extend
    fired = {"n": 0}

    def extend(state, vectors, **kw):
        out = original(state, vectors, **kw)
        if out.logits.shape[0] == 2 and not fired["n"]:
            fired["n"] = 1
            out.logits[0] = float("nan")  # row 0: the request admitted first
        return out

    monkeypatch.setattr(backend, "extend", extend)
    expected = offline_text(lm, "Second request", 6)
    with live_server(lm, max_batch=4) as (url, server):
        results = {}

        def first():
            results["a"] = _post(url, "/v1/completions", {"prompt": "First request", "max_tokens": 40, "temperature": 0})

        t = threading.Thread(target=first)
        t.start()
        while not server.worker.rows:
            time.sleep(0.01)
        b = _post(url, "/v1/completions", {"prompt": "Second request", "max_tokens": 6, "temperature": 0})
        t.join(60)
    assert fired["n"] == 1
    assert results["a"].status_code == 500 and "NaN" in results["a"].json()["error"]["message"]
    assert b.status_code == 200 and b.json()["choices"][0]["text"] == expected


def test_a_policy_error_fails_its_request_only(served, monkeypatch):
    """A row policy that raises (a contract error: a bug) fails its request with 500 and a log line; a request decoding
    beside it completes with its offline text."""
    from vecgen.backends import ContractError
    from vecgen.thinking.runner import ThinkPolicy

    lm, url, server = served

    def broken(self, obs):
        raise ContractError("policy broke its contract")

    monkeypatch.setattr(ThinkPolicy, "observe", broken)
    expected = offline_text(lm, "Beside it", 8)
    results = {}

    def thinking():
        results["think"] = _post(url, "/v1/chat/completions", {
            "messages": [{"role": "user", "content": "hi"}], "temperature": 0, "max_tokens": 4,
            "thinking": {"method": "cot", "max_think_tokens": 6}})

    import logging

    logged: list[str] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = lambda record: logged.append(record.getMessage())  # type: ignore[method-assign]
    worker_log = logging.getLogger("vecgen.serve.worker")
    worker_log.addHandler(handler)  # directly: the CLI's logging setup stops "vecgen" records from propagating
    t = threading.Thread(target=thinking)
    try:
        t.start()
        text = _post(url, "/v1/completions", {"prompt": "Beside it", "max_tokens": 8, "temperature": 0})
        t.join(60)
    finally:
        worker_log.removeHandler(handler)
    assert results["think"].status_code == 500
    assert "ContractError" in results["think"].json()["error"]["message"]
    assert text.status_code == 200 and text.json()["choices"][0]["text"] == expected
    assert any("policy broke its contract" in m for m in logged)
    assert server.worker.busy == 0


@pytest.mark.slow
def test_lm_eval_local_chat_completions_runs_a_local_task(served, tmp_path, monkeypatch):
    pytest.importorskip("lm_eval", reason="the lmeval extra is installed in CI")
    import lm_eval.models.openai_completions  # noqa: F401  (registers local-chat-completions even after vecgen's model)
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    lm, url, _ = served
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("OPENAI_API_KEY", "unused")
    rows = [{"question": q, "answer": "5"} for q in QUESTIONS[:3]]
    d = generate_until_task(tmp_path / "tasks", "vecgen_serve_qa", rows, doc_to_text="{{question}}",
                            until=["Question:"], max_gen_toks=6, temperature=0)
    res = simple_evaluate(model="local-chat-completions",
                          model_args=f"model=tiny,base_url={url}/v1/chat/completions,tokenized_requests=False,"
                                     "num_concurrent=3,max_retries=1",
                          tasks=["vecgen_serve_qa"], task_manager=TaskManager(include_path=str(d)),
                          apply_chat_template=True, log_samples=True)
    samples = res["samples"]["vecgen_serve_qa"]
    assert len(samples) == 3
    for s in samples:
        expected = offline_chat(lm, [{"role": "user", "content": s["doc"]["question"]}], 6)[0].split("Question:")[0]
        assert s["resps"][0][0] == expected
    assert 0.0 <= res["results"]["vecgen_serve_qa"]["exact_match,none"] <= 1.0


# ------------------------------------------------------------------------------------------ the command line


def _serve_cmd(model_dir, port, *extra):
    return [sys.executable, "-m", "vecgen", "serve", "--model", str(model_dir), "--device", "cpu", "--dtype",
            "float32", "--port", str(port), "--max-tokens", "64", *extra]


def _wait_healthy(url, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise AssertionError("the server did not become healthy")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.slow
def test_a_signal_stops_admitting_finishes_in_flight_rows_and_exits_0(tiny_model_dir, sig):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(_serve_cmd(tiny_model_dir("qwen2"), port), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        _wait_healthy(url, proc)
        got = {}

        def in_flight():
            with httpx.stream("POST", url + "/v1/completions", timeout=120,
                              json={"prompt": "Count", "max_tokens": 60, "temperature": 0, "stream": True}) as r:
                got["lines"] = [line for line in r.iter_lines() if line.startswith("data:")]

        t = threading.Thread(target=in_flight)
        t.start()
        time.sleep(1.0)
        proc.send_signal(sig)
        t.join(120)
        code = proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, proc.stderr.read()
    assert got["lines"][-1] == "data: [DONE]"
    last = json.loads(got["lines"][-2].removeprefix("data: "))
    assert last["choices"][0]["finish_reason"] in ("length", "stop")
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/health", timeout=2)


@pytest.mark.slow
def test_a_second_signal_answers_in_flight_requests_503_and_exits_130(tiny_model_dir):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(_serve_cmd(tiny_model_dir("qwen2"), port, "--max-tokens", "400"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        _wait_healthy(url, proc)
        got = {}

        def in_flight():
            got["r"] = httpx.post(url + "/v1/completions", timeout=120,
                                  json={"prompt": "Count", "max_tokens": 400, "temperature": 0})

        t = threading.Thread(target=in_flight)
        t.start()
        deadline = time.time() + 60
        while httpx.get(url + "/health", timeout=5).json()["busy_rows"] < 1 and time.time() < deadline:
            time.sleep(0.05)  # the row is decoding (400 tokens: seconds)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        t.join(120)
        code = proc.wait(120)
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 130, err
    r = got["r"]
    assert r.status_code == 503 and r.json()["error"]["type"] == "service_unavailable", r.text
    assert "second signal" in r.json()["error"]["message"]
    assert "Traceback" not in err and "CancelledError" not in err, err


@pytest.mark.parametrize("argv,fragment", [
    (["--host", "0.0.0.0"], "--api-key"),
    (["--host", "0.0.0.0", "--api-key", " "], "empty"),
    (["--host", "no.such.host.invalid", "--api-key", "k"], "cannot be resolved"),
    (["--log-level", "loud"], "--log-level"),
    (["--max-batch", "0"], "--max-batch"),
])
def test_bad_serve_options_are_one_line_before_loading(argv, fragment, capsys, monkeypatch):
    from helpers.cli import cli, never_load

    never_load(monkeypatch)
    code, _, err = cli(["serve", *argv], capsys)
    assert code == 2 and fragment in err and "Traceback" not in err, err
    assert len([ln for ln in err.splitlines() if ln.strip()]) == 1, err


def test_a_port_in_use_is_one_line(capsys, monkeypatch):
    from helpers.cli import cli, never_load

    never_load(monkeypatch)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        code, _, err = cli(["serve", "--port", str(port)], capsys)
    assert code == 2 and "--port" in err and "Traceback" not in err, err

