"""``vecgen serve`` on the real default model (Qwen2.5-Coder-0.5B-Instruct): docs/serving.md's openai-client call with soft
thinking, its streamed reasoning, and a plain chat answer, each equal to the offline library call."""

import json

import pytest

pytest.importorskip("fastapi", reason="the serve extra is installed in CI (pip install -e '.[serve]')")
openai = pytest.importorskip("openai")
import httpx  # noqa: E402

from vecgen.config import SamplingConfig  # noqa: E402
from vecgen.decoding import generate  # noqa: E402
from vecgen.models import render_chat  # noqa: E402
from vecgen.thinking.think import think  # noqa: E402

from helpers.serving import live_server  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_soft_thinking_over_http_equals_model_think(default_lm):
    lm = default_lm
    q = "What is 17 + 25?"
    offline = think(lm, [q], method="soft", sampling=SamplingConfig(seed=0), max_think_tokens=96)[0]
    with live_server(lm, max_batch=4) as (url, _):
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=600)
        r = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": q}], temperature=0,
                                           seed=0, extra_body={"thinking": {"method": "soft", "max_think_tokens": 96}})
        msg = r.choices[0].message
        assert msg.reasoning_content == offline.trace and msg.content == offline.answer
        assert offline.answer.strip() == "42"
        assert r.usage.completion_tokens_details.reasoning_tokens == offline.think_tokens
        # docs/serving.md's curl: server-sent events, reasoning deltas first, then the answer's
        body = {"messages": [{"role": "user", "content": q}], "temperature": 0, "seed": 0, "stream": True,
                "thinking": {"method": "soft", "max_think_tokens": 96}}
        channels = []
        with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=600) as resp:
            for line in resp.iter_lines():
                if line.startswith("data: {"):
                    for choice in json.loads(line[6:])["choices"]:
                        channels += [k for k in ("reasoning_content", "content") if choice["delta"].get(k)]
        assert channels[0] == "reasoning_content" and channels[-1] == "content"
        assert channels.index("content") > len(channels) // 2  # the answer comes after the reasoning
        # plain chat: the decode loop's greedy continuation of the chat prompt
        chat = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Say hello."}],
                                              temperature=0, max_tokens=16)
        ids = lm.encode(render_chat(lm.tokenizer, [{"role": "user", "content": "Say hello."}]))
        assert chat.choices[0].message.content == generate(lm, [ids], max_new_tokens=16).text(0, lm.tokenizer)
