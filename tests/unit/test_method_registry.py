"""The thinking-method registry's proof (issue 35, item 1): a method registered from this test file, with nothing
under ``src/`` edited, runs through ``vecgen.evaluate``, the ``vecgen think`` command line (its flag in ``--help``), a
grid, ``vecgen serve`` (and its OpenAPI document) and the lm-eval model, validated before load and resumed like the
built-in methods.

The method, ``sharp``, is soft thinking with its own fixed concept-token temperature (``mix_temperature``): a
concept-token method whose only change is its thinking sampler.
"""

from __future__ import annotations

import json

import httpx
import pytest
from pydantic import Field

import vecgen
from helpers.cli import cli, never_load, one_line_error
from helpers.serving import live_server
from helpers.tasks import SUMS, write_tasks
from vecgen.errors import ConfigError
from vecgen.thinking.methods import (
    MethodSettings,
    ThinkingMethod,
    get_method,
    method_names,
    register_method,
    unregister_method,
)
from vecgen.thinking.runner import ThinkConfig
from vecgen.thinking.settings import EvaluationSettings


class SharpSettings(MethodSettings):
    mix_temperature: float = Field(0.3, gt=0.0, le=2.0, description="the concept tokens' own fixed temperature "
                                                                     "(default 0.3).")


SHARP = ThinkingMethod("sharp", "soft thinking at a fixed concept-token temperature; --mix-temperature",
                       settings=SharpSettings, concept_tokens=True,
                       sampling=lambda sampling, s: sampling.model_copy(update={"temperature": s.mix_temperature}))

TASKS = SUMS[:3]


@pytest.fixture(autouse=True, scope="module")
def sharp():
    register_method(SHARP)
    yield SHARP
    unregister_method("sharp")


@pytest.fixture()
def task_file(tmp_path):
    return write_tasks(tmp_path / "tiny.jsonl", TASKS)


def think_args(model, task_file, out, *extra):
    return ["think", "--benchmark", task_file, "--model", model, "--batch-size", "2", "--max-think-tokens", "3",
            "--max-answer-tokens", "2", "--out-dir", out, "--device", "cpu", *extra]


def test_the_method_is_registered_with_its_settings_and_refuses_bad_ones():
    assert "sharp" in method_names() and get_method("sharp") is SHARP
    cfg = ThinkConfig.create(method="sharp", mix_temperature=0.5)
    assert cfg.think_sampling.temperature == 0.5 and cfg.think_sampling.top_k == 30  # the method's change only
    assert cfg.method_settings.mix_temperature == 0.5
    with pytest.raises(ConfigError, match="mix_temperature") as exc:
        ThinkConfig.create(method="sharp", mix_temperature=0)
    assert exc.value.params == ("mix_temperature",)
    with pytest.raises(ConfigError, match="a setting of sharp, not of soft"):
        ThinkConfig.create(method="soft", mix_temperature=0.5)
    with pytest.raises(ValueError, match="already registered"):
        register_method(SHARP)
    with pytest.raises(ValueError, match="field of every method"):
        class Bad(MethodSettings):
            max_think_tokens: int = 3
        register_method(ThinkingMethod("bad", "x", settings=Bad))


def test_evaluation_settings_give_each_method_its_own_settings():
    s = EvaluationSettings.create(benchmark="tasks", methods=["soft", "sharp"], mix_temperature=0.45)
    cfgs = s.method_configs()
    assert cfgs["sharp"].think_sampling.temperature == 0.45 and cfgs["soft"].think_sampling.temperature == 0.6
    assert cfgs["sharp"].saved_settings()["mix_temperature"] == 0.45 and "mix_temperature" not in cfgs["soft"].saved_settings()
    with pytest.raises(ConfigError, match="mix_temperature is a setting of sharp, which is not among the methods"):
        EvaluationSettings.create(benchmark="tasks", methods=["cot"], mix_temperature=0.45)


def test_vecgen_evaluate_and_model_think_run_it(tiny_lm):
    lm = tiny_lm("qwen2")
    tasks = [vecgen.Task(**t) for t in TASKS]
    ev = vecgen.evaluate(lm, tasks, methods=["sharp"], mix_temperature=0.5, max_think_tokens=3, max_answer_tokens=2,
                         progress=False)
    assert ev.summary["sharp"].n == 3
    assert {r.method for r in ev.records} == {"sharp"}
    out = vecgen.Model.think(lm, "What is 2 + 2?", method="sharp", mix_temperature=0.5, max_think_tokens=3)
    assert out.method == "sharp" and out.think_tokens <= 3 + 2
    with pytest.raises(ConfigError, match="mix_temperature"):
        vecgen.Model.think(lm, "What is 2 + 2?", method="sharp", mix_temperature=5.0)


def test_the_command_line_lists_validates_runs_and_resumes_it(tiny_model_dir, task_file, tmp_path, capsys,
                                                              monkeypatch):
    code, out, _ = cli(["think", "--help"], capsys)
    flat = " ".join(out.replace("│", " ").split())  # rich draws the options in a box
    assert code == 0 and "--mix-temperature" in flat and "sharp (soft thinking at a fixed concept-token" in flat
    assert "sharp: the concept tokens' own fixed temperature" in flat
    model, runs = str(tiny_model_dir("qwen2")), tmp_path / "runs"
    with monkeypatch.context() as m:  # bad values are refused before any model loads, naming the flag
        never_load(m)
        code, _, err = cli(think_args(model, task_file, runs, "--methods", "sharp", "--mix-temperature", "0"), capsys)
        one_line_error(code, err, "--mix-temperature")
        code, _, err = cli(think_args(model, task_file, runs, "--methods", "cot", "--mix-temperature", "0.5"), capsys)
        one_line_error(code, err, "--mix-temperature is a setting of sharp")
    run = ["--methods", "cot,sharp", "--mix-temperature", "0.5", "--run-name", "r"]
    code, _, err = cli(think_args(model, task_file, runs, *run), capsys)
    assert code == 0, err
    saved = json.loads((runs / "r" / "settings.json").read_text())["methods"]["sharp"]
    assert saved["mix_temperature"] == 0.5 and saved["think_sampling"]["temperature"] == 0.5
    lines = (runs / "r" / "records.jsonl").read_text().splitlines()
    assert sorted(json.loads(x)["method"] for x in lines) == ["cot"] * 3 + ["sharp"] * 3
    code, _, err = cli(think_args(model, task_file, runs, *run), capsys)  # resume: nothing left to answer
    assert code == 0, err
    assert (runs / "r" / "records.jsonl").read_text().splitlines() == lines
    code, _, err = cli(think_args(model, task_file, runs, "--methods", "cot,sharp", "--mix-temperature", "0.7",
                                  "--run-name", "r"), capsys)
    one_line_error(code, err, "different settings", "mix_temperature")


def test_a_grid_varies_its_setting(tiny_model_dir, task_file, tmp_path, capsys):
    code, _, err = cli(think_args(str(tiny_model_dir("qwen2")), task_file, tmp_path, "--methods", "sharp,cot",
                                  "--grid", "mix_temperature=0.2,0.9", "--run-name", "g"), capsys)
    assert code == 0, err
    methods = json.loads((tmp_path / "g" / "settings.json").read_text())["methods"]
    assert methods["sharp[mix_temperature=0.2]"]["think_sampling"]["temperature"] == 0.2
    assert methods["sharp[mix_temperature=0.9]"]["think_sampling"]["temperature"] == 0.9
    assert methods["cot[mix_temperature=0.2]"] == methods["cot[mix_temperature=0.9]"]  # cot has no such setting


def test_vecgen_serve_takes_it_in_the_thinking_object(tiny_lm):
    with live_server(tiny_lm("qwen2"), max_batch=2, max_tokens=64) as (url, _):
        schema = httpx.get(url + "/openapi.json").json()["components"]["schemas"]["ThinkingRequest"]["properties"]
        assert schema["mix_temperature"]["exclusiveMinimum"] == 0.0 and "sharp" in schema["method"]["enum"]
        body = {"messages": [{"role": "user", "content": "What is 2 + 2?"}], "max_tokens": 3,
                "thinking": {"method": "sharp", "mix_temperature": 0.5, "max_think_tokens": 3}}
        res = httpx.post(url + "/v1/chat/completions", json=body, timeout=120)
        assert res.status_code == 200, res.text
        assert "reasoning_content" in res.json()["choices"][0]["message"]
        body["thinking"]["mix_temperature"] = 9
        res = httpx.post(url + "/v1/chat/completions", json=body, timeout=120)
        assert res.status_code == 400 and res.json()["error"]["param"] == "thinking.mix_temperature", res.text
        body["thinking"] = {"method": "soft", "mix_temperature": 0.5}
        res = httpx.post(url + "/v1/chat/completions", json=body, timeout=120)
        assert res.status_code == 400 and "a setting of sharp" in res.json()["error"]["message"], res.text


def test_the_lm_eval_model_takes_its_setting(tiny_model_dir):
    pytest.importorskip("lm_eval")
    from lm_eval.api.instance import Instance

    from vecgen.lmeval import VecgenLM

    model = VecgenLM(model=str(tiny_model_dir("qwen2")), method="sharp", mix_temperature=0.4, max_think_tokens=3,
                     device="cpu")
    assert model.config.method == "sharp" and model.config.think_sampling.temperature == 0.4
    reqs = [Instance(request_type="generate_until", doc={}, arguments=("Question: What is 2 + 3?\nAnswer:",
                                                                      {"until": ["\n"], "max_gen_toks": 3}), idx=0)]
    assert isinstance(model.generate_until(reqs, disable_tqdm=True)[0], str)
    with pytest.raises(ConfigError, match="mix_temperature"):
        VecgenLM(model=str(tiny_model_dir("qwen2")), method="sharp", mix_temperature=-1, device="cpu")
