"""The library's top (issue 26): ``import vecgen`` gives one model object whose methods are what the commands run,
in-memory evaluations, the probes as functions of a model, and the backend capabilities the features read through."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
import torch

import vecgen
from vecgen.backends import build_batch
from vecgen.benchmarks_data import Task
from vecgen.config import CONCEPT_SAMPLING_DEFAULTS, SamplingConfig
from vecgen.decoding import MixingConfig, generate
from vecgen.decoding.metrics import token_text
from vecgen.errors import ConfigError
from vecgen.models import LoadedModel
from vecgen.thinking import ThinkConfig, build_prompt, prompt_style, run_thinking
from helpers.cli import cli, one_line_error  # the CLI runner and one-line error check of the guards


@pytest.fixture(scope="module")
def m(tiny_model_dir):
    return vecgen.load(str(tiny_model_dir("qwen2")), device="cpu", dtype="float32", show_progress=False)


def test_the_top_level_names_resolve_and_are_listed():
    for name in ("load", "Model", "ConceptTokens", "ThinkOutput", "evaluate", "Evaluation", "probes", "Task"):
        assert name in dir(vecgen) and name in vecgen.__all__
        assert getattr(vecgen, name) is not None
    assert callable(vecgen.probes.superposition) and callable(vecgen.probes.lens) and callable(vecgen.probes.analogy)
    with pytest.raises(AttributeError):
        vecgen.no_such_name  # noqa: B018


def test_load_returns_one_model_class_that_every_function_takes(m):
    assert type(m) is vecgen.Model and isinstance(m, LoadedModel)
    assert m.backend.name == "transformers" and m.hidden_size == m.embedding.shape[1]


def test_generate_is_the_decode_loops_greedy_text(m):
    ids = m.encode("Once upon a time")
    ref = generate(m, [ids], sampling=SamplingConfig(max_new_tokens=6))
    assert m.generate("Once upon a time", max_new_tokens=6) == ref.text(0, m.tokenizer)
    assert m.generate(["Once upon a time", "Hello"], max_new_tokens=6)[0] == ref.text(0, m.tokenizer)
    with pytest.raises(ConfigError, match="empty prompt"):
        m.generate("  ")


def test_concept_tokens_are_the_soft_mixture_of_the_next_token_distribution(m):
    c = m.concept("The capital of France is", n=3)
    assert c.vectors.shape == (3, m.hidden_size) and c.vectors.dtype == torch.float32
    # the first vector's weights: the 10 largest of softmax(logits) at temperature 1, renormalised
    state = m.backend.prefill(build_batch(m, [m.encode("The capital of France is")]))
    p = torch.softmax(state.logits[0, : m.n_real_vocab], -1)
    top_p, top_i = p.topk(10)
    assert [t.token for t in c.top[0]] == [token_text(m.tokenizer, int(i)) for i in top_i]
    torch.testing.assert_close(torch.tensor([t.weight for t in c.top[0]]), top_p / top_p.sum(), atol=1e-5, rtol=0)
    w = torch.tensor([t.weight for t in c.top[0]])
    assert c.entropy[0] == pytest.approx(float(-(w * w.log()).sum()), abs=1e-4)  # nats, of the weights
    torch.testing.assert_close(c.vectors[0], (w[:, None] * m.embedding[top_i]).sum(0), atol=1e-5, rtol=1e-4)
    assert c.top[0][0] == (c.top[0][0].token, c.top[0][0].weight)  # prints as (token, weight)


def test_concept_matches_the_command_lines_protocol(m):
    from vecgen.concept import ConceptConfig, run_concept

    run = run_concept([m], ConceptConfig.create(prompts=["Once upon a time"], n_values=[2],
                                                methods=["nearest", "completion"], translation_tokens=4))
    c = m.concept("Once upon a time", n=2)
    rec = run.records[0]
    assert [v.token for v in rec.vectors] == c.tokens
    assert [[t.token for t in v.top] for v in rec.vectors] == [[t.token for t in row] for row in c.top]
    got = c.translate(["nearest", "completion"], max_new_tokens=4)
    assert got["completion"].token_ids == rec.translations["completion"].token_ids
    assert c.translate("nearest").text == rec.translations["nearest"].text
    with pytest.raises(ConfigError, match="n=5"):
        c.translate("nearest", n=5)


def test_concept_tokens_and_traces_show_the_viewers_chips(m):
    c = m.concept("Hello", n=2)
    page = c._repr_html_()
    assert page.count('class="chip"') == 2 and "H = " in page and ".chip" in page  # the viewer's styles inlined
    out = m.think("What is 2 + 2?", method="cot", max_think_tokens=3, max_answer_tokens=2)
    page = out._repr_html_()
    assert page.count('class="chip"') == out.think_tokens and "answer:" in page


def test_chip_colours_are_the_run_viewers_scale():
    from importlib import resources

    from vecgen.reports.chips import H_MAX, VIRIDIS, entropy_colour

    js = resources.files("vecgen").joinpath("data", "view", "view.js").read_text(encoding="utf-8")
    assert float(re.search(r"const H_MAX = ([\d.]+)", js).group(1)) == H_MAX
    assert re.findall(r'"(#[0-9a-f]{6})"', js[js.index("const VIRIDIS"):js.index("];", js.index("const VIRIDIS"))]) \
        == list(VIRIDIS)
    assert entropy_colour(0.0) == VIRIDIS[0] and entropy_colour(99.0) == VIRIDIS[-1] and entropy_colour(None) == "#cccccc"


def test_think_is_the_runners_output_for_the_prompt_vecgen_think_builds(m):
    q = "Tom has 3 apples and buys 4 more. How many apples does he have?"
    out = m.think(q, method="cot", max_think_tokens=5, max_answer_tokens=3)
    style = prompt_style(m)
    ref = run_thinking(m, [m.encode(build_prompt(m, q, style, direct=False))],
                       ThinkConfig.create(method="cot", max_think_tokens=5, max_answer_tokens=3),
                       style.end_marker(m.tokenizer))[0]
    assert (out.trace_ids, out.answer_ids, out.stop_reason) == (ref.trace_ids, ref.answer_ids, ref.stop_reason)
    assert out.think_tokens <= 5 and out.method == "cot" and out.question == q
    outs = m.think([q, "What is 5 - 2?"], method="direct", max_answer_tokens=2)
    assert len(outs) == 2 and all(o.think_tokens == 0 for o in outs)
    with pytest.raises(ConfigError, match="unknown method 'dream'"):
        m.think(q, method="dream")


TASKS = [Task(id=f"t{i}", question=f"What is {i} + {i}?", answer=str(2 * i)) for i in range(1, 5)]


def test_evaluate_in_memory_writes_nothing_and_equals_the_run_folder(m, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    kw = dict(methods=["direct", "cot"], max_think_tokens=3, max_answer_tokens=2, batch_size=2, progress=False)
    ev = vecgen.evaluate(m, TASKS, **kw)
    assert list(tmp_path.iterdir()) == []  # nothing written
    assert ev.names == ["direct", "cot"] and ev.summary["cot"].n == 4 and ev.run_dir is None
    pair = ev.compare("direct", "cot")
    assert pair.n == 4 and pair.both + pair.only_a + pair.only_b + pair.neither == 4
    df = ev.to_pandas()
    assert len(df) == 8 and set(df["method"]) == {"direct", "cot"}
    assert "<table>" in ev._repr_html_()
    with pytest.raises(ConfigError, match="'soft' is not in this evaluation"):
        ev.compare("direct", "soft")
    written = vecgen.evaluate(m, TASKS, out=tmp_path / "runs" / "e", **kw)
    run = tmp_path / "runs" / "e"
    assert {"records.jsonl", "results.json", "report.md", "think.png", "settings.json"} <= {p.name for p in run.iterdir()}
    timed = ("seconds", "batch_seconds")
    lines = [{k: v for k, v in json.loads(s).items() if k not in timed} for s in (run / "records.jsonl").read_text().splitlines()]
    mem = [{k: v for k, v in json.loads(json.dumps(vars(r), default=vars)).items() if k not in timed} for r in ev.records]
    assert sorted(lines, key=lambda d: (d["method"], d["id"])) == sorted(mem, key=lambda d: (d["method"], d["id"]))
    again = vecgen.evaluate(m, TASKS, out=run, **kw)  # resumes: every item is already there
    assert [r.answer for r in again.records] == [r.answer for r in written.records]


def test_evaluate_validates_before_any_work(m):
    with pytest.raises(ConfigError, match="batch_size=0"):
        vecgen.evaluate(m, TASKS, batch_size=0)
    with pytest.raises(ConfigError, match="unknown method"):
        vecgen.evaluate(m, TASKS, methods=["dream"])
    with pytest.raises(ConfigError, match="benchmark"):
        vecgen.evaluate(m, [])


@pytest.mark.parametrize("args,fragment", [
    (["think", "--batch-size", "0"], "--batch-size=0"),
    (["think", "--limit", "0"], "--limit=0"),
    (["think", "--samples", "2", "--methods", "cot"], "--temperature"),
    (["generate", "x", "--threads", "0"], "--threads must be between 1 and 1024"),
    (["concept", "--n-ctx", "64"], "--n-ctx applies to --backend llamacpp, vllm only"),
])
def test_library_errors_name_parameters_and_the_cli_shows_its_flags(args, fragment, capsys, monkeypatch):
    monkeypatch.setattr("vecgen.api.load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    code, _, err = cli(args, capsys)
    one_line_error(code, err, fragment)


def test_the_probes_are_functions_of_a_model(m):
    res = vecgen.probes.superposition(m, ["Once upon a time", "The capital of France is"], mixture_top_k=3,
                                      alphas=[0, 0.5, 1])
    assert len(res.pairs) == 2 and res.settings["alphas"] == [0.0, 0.5, 1.0] and len(res.mixtures) == 2
    lens = vecgen.probes.lens(m, ["Hello there"], n=2, after=1, summary_prompts=2)
    assert len(lens.records) == 1 and lens.first_token is not None and lens.first_token.prompts == 2
    arith = vecgen.probes.analogy(m, {"r": [("one", "two"), ("three", "four")]}, frames=False)
    assert set(arith.accuracy) == {"input", "output"}
    with pytest.raises(ConfigError, match="alphas"):
        vecgen.probes.superposition(m, ["x"], alphas=[0.2, 0.5])


def test_backend_capabilities_equal_the_transformers_forward(m):
    batch = build_batch(m, [m.encode("Once upon a time"), m.encode("Hi")])
    with torch.no_grad():
        ref = m.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                      position_ids=(batch.attention_mask.cumsum(-1) - 1).clamp_min(0), output_hidden_states=True)
        logits = m.backend.forward_logits(batch, keep=3)
        states = m.backend.hidden_states(batch)
    # logits_to_keep runs the LM head on 3 positions instead of all: another matmul shape, float32 rounding (~3e-7)
    torch.testing.assert_close(logits, ref.logits[:, -3:].float(), atol=1e-5, rtol=1e-5)
    assert len(states) == m.config.num_hidden_layers + 1
    torch.testing.assert_close(m.backend.unembed(states[-1][:, -1], final=True), ref.logits[:, -1].float(),
                               atol=1e-5, rtol=1e-5)  # the LM head on the normalised last state: the logits


def test_no_command_function_is_longer_than_60_lines():
    root = Path(vecgen.__file__).parent / "cli"
    long = []
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 60:
                long.append(f"{path.name}:{node.name}")
    assert long == []


def test_concept_settings_defaults_are_the_command_lines(m):
    c = m.concept("Hi", n=1)
    assert c.sampling == SamplingConfig(**CONCEPT_SAMPLING_DEFAULTS) and c.mixing == MixingConfig(rule="soft")
