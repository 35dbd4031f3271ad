"""vecgen as an lm-evaluation-harness model: local task YAMLs over local JSON data, no hub access."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

lm_eval = pytest.importorskip("lm_eval", reason="the lmeval extra is installed in CI (pip install -e '.[lmeval]')")

from helpers.lmeval_tasks import generate_until_task  # noqa: E402

from vecgen.errors import ConfigError  # noqa: E402
from vecgen.lmeval import VecgenLM  # noqa: E402

QA = [{"question": "What is 2 + 3?", "answer": "5"}, {"question": "What is 1 + 1?", "answer": "2"},
      {"question": "Name a colour.", "answer": "red"}]
MC = [{"question": "Which is a fruit?", "choices": ["stone", "pear"], "label": 1},
      {"question": "Which is a colour?", "choices": ["red", "run", "ran"], "label": 0}]


def _tasks(tmp_path: Path) -> Path:
    d = tmp_path / "tasks"
    d.mkdir()
    generate_until_task(d, "vecgen_mini_qa", QA, doc_to_text="Question: {{question}}\nAnswer:",
                        until=["\n", "Question:"], max_gen_toks=6)
    (d / "mc.jsonl").write_text("".join(json.dumps(r) + "\n" for r in MC))
    (d / "mc.yaml").write_text(f"""task: vecgen_mini_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {d / 'mc.jsonl'}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{label}}}}"
metric_list:
  - metric: acc
""")
    return d


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _model(tiny_model_dir, **args):
    return VecgenLM(model=str(tiny_model_dir("qwen2")), device="cpu", dtype="float32", **args)


def _direct_logprob(lm, context, continuation):
    """Σ log p(continuation | context) from one transformers forward pass of the unpadded sequence."""
    ctx, cont = lm.encode(context), lm.encode(continuation)
    ids = torch.tensor([ctx + cont])
    with torch.no_grad():
        logits = lm.model(input_ids=ids).logits[0, :, : lm.n_real_vocab].float()
    logp = torch.log_softmax(logits, -1)
    return sum(float(logp[len(ctx) - 1 + i, t]) for i, t in enumerate(cont))


def test_loglikelihood_equals_a_direct_forward_pass(tiny_model_dir):
    from lm_eval.api.instance import Instance

    model = _model(tiny_model_dir, batch_size=2)
    pairs = [("Question: What is 2 + 3?\nAnswer:", " 5"), ("Which is a fruit?", " pear"), ("Hi", " there you are")]
    reqs = [Instance(request_type="loglikelihood", doc={}, arguments=p, idx=i) for i, p in enumerate(pairs)]
    got = model.loglikelihood(reqs, disable_tqdm=True)
    for (ctx, cont), (ll, greedy) in zip(pairs, got):
        # left padding in a batch of 2 vs one unpadded row: float32 summation order only
        torch.testing.assert_close(torch.tensor(ll), torch.tensor(_direct_logprob(model.lm, ctx, cont)), atol=2e-4, rtol=1e-5)
        assert isinstance(greedy, bool)
    rolling = model.loglikelihood_rolling([Instance(request_type="loglikelihood_rolling", doc={}, arguments=("Hello world, hi.",),
                                                    idx=0)], disable_tqdm=True)[0]
    ids = model.lm.encode("Hello world, hi.")
    first = model.lm.tokenizer.eos_token_id if model.lm.tokenizer.bos_token_id is None else model.lm.tokenizer.bos_token_id
    expected = model.score([[first]], [ids])[0][0]
    assert rolling == pytest.approx(expected, abs=1e-4) and rolling < 0


def test_generate_until_honours_stop_sequences_and_methods(tiny_model_dir):
    from lm_eval.api.instance import Instance

    reqs = [Instance(request_type="generate_until", doc={}, arguments=(f"Question: {q['question']}\nAnswer:",
                                                                      {"until": ["\n"], "max_gen_toks": 5}), idx=i)
            for i, q in enumerate(QA)]
    direct = _model(tiny_model_dir, method="direct")
    outs = direct.generate_until(reqs, disable_tqdm=True)
    assert len(outs) == 3 and all("\n" not in o for o in outs)
    # the same greedy generation as the engine's own answer phase, cut at the stop string
    from vecgen.thinking.runner import ThinkConfig, cut_at_stop, run_thinking

    cfg = ThinkConfig.create(method="direct", max_answer_tokens=5, answer_stops_at_newline=False)
    ref = run_thinking(direct.lm, [direct.lm.encode(r.args[0]) for r in reqs], cfg, direct.style.end_marker(direct.lm.tokenizer))
    assert outs == [cut_at_stop(o.answer, ["\n"])[0] for o in ref]
    soft = _model(tiny_model_dir, method="soft", max_think_tokens=4, batch_size=2)
    outs = soft.generate_until(reqs, disable_tqdm=True)
    assert len(outs) == 3 and all(isinstance(o, str) and "\n" not in o for o in outs)


@pytest.mark.parametrize("args,fragment", [
    ({"method": "telepathy"}, "unknown method 'telepathy'"),
    ({"method": "cot,soft"}, "one method"),
    ({"max_think_tokens": "many"}, "max_think_tokens='many': expected an integer"),
    ({"colour": "red"}, "unknown key 'colour'"),
    ({"noise": "perlin"}, "noise"),
    ({"batch_size": 0}, "batch_size=0"),
    ({"tensor_parallel_size": 2}, "tensor_parallel_size"),  # a vLLM option on the transformers backend
    ({"n_ctx": "long"}, "n_ctx='long': expected an integer"),
])
def test_bad_model_args_are_refused_before_loading(tiny_model_dir, monkeypatch, args, fragment):
    monkeypatch.setattr("vecgen.api.load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    with pytest.raises(ConfigError, match=fragment):
        _model(tiny_model_dir, **args)


@pytest.mark.slow
def test_lm_eval_command_runs_a_local_task_with_soft_thinking(tiny_model_dir, tmp_path):
    """The documented command: vecgen-lm-eval (lm_eval's CLI with the vecgen model) on local task YAMLs."""
    tasks = _tasks(tmp_path)
    out = tmp_path / "out"
    exe = Path(sys.executable).with_name("vecgen-lm-eval")
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [str(exe), "--model", "vecgen", "--model_args",
           f"model={tiny_model_dir('qwen2')},method=soft,max_think_tokens=3,device=cpu,dtype=float32",
           "--tasks", "vecgen_mini_qa,vecgen_mini_mc", "--include_path", str(tasks), "--batch_size", "2",
           "--output_path", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(next(out.rglob("results_*.json")).read_text())["results"]
    assert 0.0 <= results["vecgen_mini_qa"]["exact_match,none"] <= 1.0
    assert 0.0 <= results["vecgen_mini_mc"]["acc,none"] <= 1.0
    bad = subprocess.run([str(exe), "--model", "vecgen", "--model_args", "method=telepathy", "--tasks",
                          "vecgen_mini_qa", "--include_path", str(tasks)], capture_output=True, text=True, env=env,
                         timeout=600)
    assert bad.returncode == 2 and "unknown method 'telepathy'" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.slow
def test_lm_eval_multiple_choice_accuracy_follows_the_loglikelihoods(tiny_model_dir, tmp_path):
    """simple_evaluate on the local multiple-choice task: the harness's acc equals the share of items whose
    correct choice has the highest log-likelihood computed directly."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    tasks = _tasks(tmp_path)
    model = _model(tiny_model_dir, batch_size=4)
    res = simple_evaluate(model=model, tasks=["vecgen_mini_mc"], task_manager=TaskManager(include_path=str(tasks)))
    acc = res["results"]["vecgen_mini_mc"]["acc,none"]
    hits = 0
    for doc in MC:
        scores = [_direct_logprob(model.lm, doc["question"], " " + c) for c in doc["choices"]]
        hits += int(max(range(len(scores)), key=scores.__getitem__) == doc["label"])
    assert acc == pytest.approx(hits / len(MC))


def test_generate_until_reads_the_answer_sampler_from_gen_kwargs(tiny_model_dir, caplog):
    from lm_eval.api.instance import Instance

    def reqs(gen):
        return [Instance(request_type="generate_until", doc={}, arguments=(f"Question: {q['question']}\nAnswer:",
                                                                          {"until": ["\n"], "max_gen_toks": 5, **gen}),
                         idx=i) for i, q in enumerate(QA)]

    direct = _model(tiny_model_dir, method="direct", seed=3)
    greedy = direct.generate_until(reqs({}), disable_tqdm=True)
    # top_k=1 leaves one token to draw, so a hot sampler must give the greedy answers: top_k is honoured
    with caplog.at_level("WARNING", logger="vecgen.lmeval"):
        hot = direct.generate_until(reqs({"do_sample": True, "temperature": 2.0, "top_k": 1, "num_beams": 1}),
                                    disable_tqdm=True)
    assert hot == greedy
    assert direct.generate_until(reqs({"do_sample": True, "temperature": 2.0}), disable_tqdm=True) != greedy  # sampling on
    assert "num_beams" in caplog.text
    s = direct._answer_sampling({"do_sample": True, "top_p": 0.9, "min_p": 0.05})
    assert (s.temperature, s.top_p, s.min_p, s.seed) == (1.0, 0.9, 0.05, 3)
    assert direct._answer_sampling({"temperature": 0.8}).temperature == 0.0  # no do_sample: greedy
    with pytest.raises(ConfigError, match="top_p"):
        direct._answer_sampling({"do_sample": True, "top_p": 2.0})
    with pytest.raises(ConfigError, match="temperature"):  # a task file's typo is a config error, not a crash
        direct._answer_sampling({"do_sample": True, "temperature": "warm"})
