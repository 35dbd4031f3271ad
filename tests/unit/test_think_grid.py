"""`vecgen think --grid / --baseline / --samples`: ablation grids, pass@k with per-item seeds, the evaluation loop."""

import json
import math
from itertools import combinations

import pytest

from vecgen.benchmarks_data import Task
from vecgen.errors import ConfigError
from vecgen.evaluation import answer_tasks
from vecgen.thinking.grid import baseline_names, expand_grid, parse_grid
from vecgen.thinking.runner import ThinkConfig, run_thinking
from vecgen.stats import pass_at_k
from helpers.cli import cli, one_line_error  # the CLI runner and one-line error check of the guards

TASKS = [{"id": f"t{i}", "question": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(1, 6)]


@pytest.fixture()
def task_file(tmp_path):
    path = tmp_path / "tiny.jsonl"
    path.write_text("".join(json.dumps(t) + "\n" for t in TASKS))
    return path


def args(model_dir, task_file, out_dir, *extra, batch_size=2, run_name="g"):
    return ["think", "--benchmark", str(task_file), "--model", str(model_dir), "--batch-size", str(batch_size),
            "--max-think-tokens", "3", "--max-answer-tokens", "2", "--run-name", run_name, "--out-dir", str(out_dir),
            "--device", "cpu", *extra]


def records(run_dir):
    return [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines() if line.strip()]


def test_pass_at_k_is_the_unbiased_estimator():
    for n in range(1, 8):
        for c in range(n + 1):
            for k in range(1, n + 1):
                exact = 1 - math.comb(n - c, k) / math.comb(n, k)
                assert pass_at_k(n, c, k) == pytest.approx(exact)
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25) and pass_at_k(4, 1, 4) == 1.0 and pass_at_k(4, 0, 4) == 0.0
    # pass@k is the chance that k of the n samples, drawn without replacement, hold a correct one
    n, c, k = 6, 2, 3
    subsets = list(combinations([True] * c + [False] * (n - c), k))
    assert pass_at_k(n, c, k) == pytest.approx(sum(any(s) for s in subsets) / len(subsets))
    for bad in ((3, 1, 4), (3, 4, 1), (3, 1, 0)):
        with pytest.raises(ValueError):
            pass_at_k(*bad)


def test_grid_expands_every_combination_with_its_values():
    axes = parse_grid(["cold_stop_steps=0,48", "noise=none,gumbel", "think_sampling.temperature=0.6,1.0"])
    cfgs = expand_grid({"soft": ThinkConfig.create(method="soft")}, axes)
    assert len(cfgs) == 8
    c = cfgs["soft[cold_stop_steps=0,noise=gumbel,temperature=1.0]"]
    assert c.cold_stop_steps == 0 and c.mixing.noise.value == "gumbel" and c.think_sampling.temperature == 1.0
    assert c.think_sampling.top_p == 0.95  # the method's other settings are kept
    assert baseline_names(["soft"], axes, None) == {"soft": "soft[cold_stop_steps=0,noise=none,temperature=0.6]"}
    assert baseline_names(["soft"], axes, "cold_stop_steps=48") == {"soft": "soft[cold_stop_steps=48,noise=none,temperature=0.6]"}
    assert expand_grid({"cot": ThinkConfig.create(method="cot")}, []) == {"cot": ThinkConfig.create(method="cot")}


@pytest.mark.parametrize("grid,baseline,fragment", [
    (["colour=red,blue"], None, "unknown field 'colour'"),
    (["noise=none,perlin"], None, "--grid noise=perlin"),
    (["cold_stop_steps=-1,48"], None, "--grid cold_stop_steps=-1"),
    (["max_think_tokens=0"], None, "--grid max_think_tokens=0"),
    (["temperature=0.5"], None, "think_sampling.temperature or answer_sampling.temperature"),
    (["noise"], None, "expected FIELD=VALUE1,VALUE2"),
    (["noise=none,"], None, "non-empty"),
    (["noise=none,none"], None, "listed twice"),
    (["noise=none", "mixing.noise=gumbel"], None, "already an axis"),
    (["method=cot,soft"], None, "--methods"),
    (["noise=none,gumbel"], "noise=dirichlet", "not among the values of its axis"),
    (["noise=none,gumbel"], "rule=soft", "not an axis of the grid"),
    ([], "noise=none", "--baseline needs a --grid"),
])
def test_bad_grids_are_one_clear_error_before_loading(grid, baseline, fragment, capsys):
    extra = [a for g in grid for a in ("--grid", g)] + ([] if baseline is None else ["--baseline", baseline])
    code, _, err = cli(["think", "--methods", "soft", "--model", "no-such-model", *extra], capsys)
    one_line_error(code, err, fragment)


@pytest.mark.parametrize("extra,refused", [
    (["--methods", "cot,soft"], "cot"),
    (["--methods", "soft"], "soft"),  # concept tokens without noise are the mixture itself, not a draw
    (["--methods", "hidden", "--temperature", "0"], "hidden"),
    (["--methods", "soft", "--rule", "full"], "soft"),
])
def test_samples_of_a_method_that_draws_nothing_are_refused(extra, refused, capsys):
    code, _, err = cli(["think", *extra, "--samples", "4", "--model", "no-such-model"], capsys)
    one_line_error(code, err, f"{refused} draws nothing", "--temperature", "--noise gumbel")


def test_methods_that_draw_may_be_sampled():
    from vecgen.thinking.settings import deterministic

    assert not deterministic(ThinkConfig.create(method="soft", mixing={"rule": "soft", "noise": "gumbel"}))
    assert not deterministic(ThinkConfig.create(method="soft", mixing={"rule": "moi"}))
    assert not deterministic(ThinkConfig.create(method="cot", think_sampling={"temperature": 0.7}))
    assert not deterministic(ThinkConfig.create(method="soft", answer_sampling={"temperature": 0.7}))
    assert deterministic(ThinkConfig.create(method="soft")) and deterministic(ThinkConfig.create(method="cot"))


@pytest.mark.slow
def test_grid_runs_every_combination_compares_with_the_baseline_and_resumes(tiny_model_dir, task_file, tmp_path):
    out = tmp_path / "runs"
    extra = ["--methods", "soft", "--grid", "cold_stop_steps=0,1", "--grid", "noise=none,gumbel",
             "--baseline", "cold_stop_steps=1"]
    res = cli(args(tiny_model_dir("qwen2"), task_file, out, *extra))
    assert res.exit_code == 0, res.output
    recs = records(out / "g")
    names = {r["method"] for r in recs}
    assert names == {f"soft[cold_stop_steps={c},noise={n}]" for c in (0, 1) for n in ("none", "gumbel")}
    assert len(recs) == 20
    # cold_stop_steps=1 with τ = 0.01 stops at the first near-certain step; 0 never does
    assert all(r["stop_reason"] != "cold_stop" for r in recs if "cold_stop_steps=0" in r["method"])
    results = json.loads((out / "g" / "results.json").read_text())
    base = "soft[cold_stop_steps=1,noise=none]"
    assert results["baselines"] == {"soft": base}
    assert {(p["a"], p["b"]) for p in results["grid_paired"]} == {(base, n) for n in names if n != base}
    for p in results["grid_paired"]:
        assert p["n"] == 5 and p["both"] + p["only_a"] + p["only_b"] + p["neither"] == 5
    assert "Ablation grid" in (out / "g" / "report.md").read_text()
    # resume: a rerun runs nothing new and keeps the records
    res = cli(args(tiny_model_dir("qwen2"), task_file, out, *extra))
    assert res.exit_code == 0 and len(records(out / "g")) == 20
    # another grid in the same folder is refused
    res = cli(args(tiny_model_dir("qwen2"), task_file, out, "--methods", "soft", "--grid", "noise=none,dirichlet"))
    one_line_error(res.code, res.err, "different settings")


@pytest.mark.slow
def test_samples_report_pass_at_k_and_do_not_depend_on_the_batch(tiny_model_dir, task_file, tmp_path):
    out = tmp_path / "runs"
    common = ["--methods", "cot", "--temperature", "1.0", "--samples", "3", "--seed", "5"]
    res = cli(args(tiny_model_dir("qwen2"), task_file, out, *common))
    assert res.exit_code == 0, res.output
    recs = records(out / "g")
    assert len(recs) == 15 and {(r["id"], r["sample"]) for r in recs} == {(t["id"], s) for t in TASKS for s in range(3)}
    assert len({r["seed"] for r in recs}) == 15
    results = json.loads((out / "g" / "results.json").read_text())
    p = results["pass_at_k"]["cot"]
    per = {}
    for r in recs:
        per.setdefault(r["id"], []).append(r["correct"])
    assert p["items"] == 5 and p["samples"] == 3 and p["k"] == 3
    assert p["pass_at_1"] == pytest.approx(sum(sum(v) / 3 for v in per.values()) / 5)
    assert p["pass_at_k"] == pytest.approx(sum(any(v) for v in per.values()) / 5)
    assert "pass@k" in (out / "g" / "report.md").read_text()
    # interrupted after 9 records: the rerun answers only the 6 missing (item, sample) pairs, with the same seeds
    lines = (out / "g" / "records.jsonl").read_text().splitlines(keepends=True)
    (out / "g" / "records.jsonl").write_text("".join(lines[:9]))
    res = cli(args(tiny_model_dir("qwen2"), task_file, out, *common))
    assert res.exit_code == 0, res.output
    resumed = records(out / "g")
    assert len(resumed) == 15 and resumed[:9] == recs[:9]
    assert {(r["id"], r["sample"], r["trace"]) for r in resumed} == {(r["id"], r["sample"], r["trace"]) for r in recs}
    # the same samples with another batch size: every trace is the same (each row has its own seeded generators)
    res = cli(args(tiny_model_dir("qwen2"), task_file, out, *common, batch_size=5, run_name="g5"))
    assert res.exit_code == 0, res.output
    again = {(r["id"], r["sample"]): r["trace"] for r in records(out / "g5")}
    assert again == {(r["id"], r["sample"]): r["trace"] for r in recs}
    assert len({r["trace"] for r in recs}) > 5  # samples differ


def test_row_seeds_make_a_row_independent_of_its_batch(tiny_lm):
    from vecgen.thinking.prompts import build_prompt, prompt_style

    lm = tiny_lm("qwen2")
    style = prompt_style(lm)
    marker = style.end_marker(lm.tokenizer)
    cfg = ThinkConfig.create(method="soft", max_think_tokens=6, max_answer_tokens=2,
                             mixing={"rule": "soft", "noise": "gumbel"})
    prompts = [lm.encode(build_prompt(lm, q, style, direct=False)) for q in ("2 + 2?", "Halve 10.", "Hi")]
    alone = run_thinking(lm, prompts[1:2], cfg, marker, row_seeds=[11])[0]
    batched = run_thinking(lm, prompts, cfg, marker, row_seeds=[3, 11, 4])[1]
    assert batched.trace_ids == alone.trace_ids and batched.answer_ids == alone.answer_ids
    other = run_thinking(lm, prompts[1:2], cfg, marker, row_seeds=[12])[0]
    assert other.trace_ids != alone.trace_ids or other.answer_ids != alone.answer_ids
    with pytest.raises(ConfigError, match="row_seeds"):
        run_thinking(lm, prompts, cfg, marker, row_seeds=[1])


def test_answer_tasks_batches_checks_and_skips():
    tasks = [Task(f"n{i}", "q", str(i)) for i in range(5)]
    calls = []

    def echo(batch):
        calls.append([t.id for t in batch])
        return [(t.answer if t.id != "n3" else "no idea", None) for t in batch]

    got = list(answer_tasks(tasks, {"a": echo, "b": echo}, batch_size=2, skip=lambda run, t: run == "b" and t.id == "n0"))
    assert calls == [["n0", "n1"], ["n1"], ["n2", "n3"], ["n2", "n3"], ["n4"], ["n4"]]
    assert [(a.run, a.task.id, a.verdict.correct) for a in got][:3] == [("a", "n0", True), ("a", "n1", True), ("b", "n1", True)]
    assert sum(not a.verdict.correct for a in got) == 2 and all(a.batch_size in (1, 2) for a in got)
    with pytest.raises(RuntimeError, match="returned 0 answers"):
        list(answer_tasks(tasks, {"x": lambda batch: []}))
    with pytest.raises(ConfigError, match="batch_size=0"):  # the library names its parameter
        list(answer_tasks(tasks, {"a": echo}, batch_size=0))


def test_method_configs_give_soft_the_concept_distribution_and_the_rest_the_discrete_sampler():
    """The one builder of per-method settings (``vecgen think`` and the lm-eval model): soft thinks with Soft
    Thinking's concept-token defaults overridden by the given entries and seeded like the discrete sampler."""
    from vecgen.config import SamplingConfig
    from vecgen.decoding.mixing import MixingConfig
    from vecgen.thinking.runner import SOFT_THINKING_SAMPLING, method_configs

    discrete = SamplingConfig(temperature=0.7, seed=5)
    mixing = MixingConfig(rule="soft", noise="gumbel")
    cfgs = method_configs(["direct", "cot", "soft"], discrete=discrete, mixing=mixing,
                          concept={"top_k": 7, "temperature": None}, max_think_tokens=12, cold_stop_steps=None)
    assert list(cfgs) == ["direct", "cot", "soft"]
    soft = cfgs["soft"].think_sampling
    assert (soft.top_k, soft.temperature, soft.top_p, soft.seed) == (7, SOFT_THINKING_SAMPLING["temperature"],
                                                                   SOFT_THINKING_SAMPLING["top_p"], 5)
    assert cfgs["cot"].think_sampling == discrete and all(c.answer_sampling == discrete for c in cfgs.values())
    assert all(c.max_think_tokens == 12 and c.mixing == mixing for c in cfgs.values())
    greedy = SamplingConfig()
    assert method_configs(["cot"], discrete=discrete, mixing=mixing, answer=greedy)["cot"].answer_sampling == greedy
    with pytest.raises(ConfigError, match="top_p"):
        method_configs(["soft"], discrete=discrete, mixing=mixing, concept={"top_p": 1.5})
    with pytest.raises(ConfigError):
        method_configs(["sideways"], discrete=discrete, mixing=mixing)
