"""reasoning-gym benchmarks (``--benchmark rg:NAME[:key=value,...]``): parsing, seeded generation, scoring with the
generator's own verifier (partial credit kept as a score), and a run that resumes."""

from __future__ import annotations

import json

import pytest

from vecgen.benchmarks_data import check_answer, load_benchmark
from vecgen.benchmarks_data.rgym import parse_rg_spec, rg_tasks
from vecgen.errors import ConfigError


def test_specs_parse_settings_as_json_and_a_seed():
    name, seed, settings = parse_rg_spec('rg:basic_arithmetic:min_terms=3,max_terms=3,operators=["+","-"],seed=7')
    assert (name, seed) == ("basic_arithmetic", 7)
    assert settings == {"min_terms": 3, "max_terms": 3, "operators": ["+", "-"]}


@pytest.mark.parametrize("spec,fragment", [
    ("rg:no_such_generator", "--list-benchmarks"),
    ("rg:basic_arithmetic:bogus=1", "has no setting 'bogus'"),
    ("rg:basic_arithmetic:min_terms", "expected key=value"),
    ("rg:basic_arithmetic:seed=-1", "seed must be an integer"),
    ("rg:basic_arithmetic:min_terms=-1", "reasoning-gym refused the settings"),
])
def test_bad_specs_are_one_line(spec, fragment):
    with pytest.raises(ConfigError) as exc:
        load_benchmark(spec, limit=3)
    assert fragment in str(exc.value) and "\n" not in str(exc.value)


def test_items_are_seeded_and_limited():
    a = rg_tasks("rg:basic_arithmetic", 5)
    assert len(a) == 5 and [t.id for t in a] == [f"rg-basic_arithmetic-{i:05d}" for i in range(5)]
    assert [t.question for t in a] == [t.question for t in rg_tasks("rg:basic_arithmetic", 5)]
    assert [t.question for t in a] != [t.question for t in rg_tasks("rg:basic_arithmetic:seed=1", 5)]


def test_scores_come_from_the_generators_verifier_with_partial_credit():
    t = rg_tasks("rg:basic_arithmetic", 1)[0]
    right = check_answer(t, f"The answer is {t.answer}.")
    assert right.correct and right.score == 1.0 and right.pred == t.answer
    wrong = check_answer(t, "The answer is 123456789.")
    assert not wrong.correct and wrong.score == 0.0
    assert check_answer(t, "no idea").score == 0.0
    w = rg_tasks("rg:word_sorting", 1)[0]
    words = w.answer.split(", ")
    partial = check_answer(w, ", ".join(words[:-1] + ["zzz"]))
    assert 0.0 < partial.score < 1.0 and not partial.correct  # word sorting gives partial credit
    assert check_answer(w, f"Answer: {w.answer}").correct


def test_think_runs_scores_and_resumes_an_rg_benchmark(tiny_model_dir, tmp_path, capsys):
    from vecgen.cli import main

    argv = ["think", "-m", str(tiny_model_dir("qwen2")), "--benchmark", "rg:basic_arithmetic:seed=3", "--limit", "3",
            "--methods", "direct", "--max-answer-tokens", "3", "--out-dir", str(tmp_path), "--run-name", "r"]
    for _ in range(2):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 0, capsys.readouterr().err
    recs = [json.loads(line) for line in (tmp_path / "r" / "records.jsonl").read_text().splitlines()]
    assert len(recs) == 3 and all(r["score"] in (0.0, 1.0) for r in recs)  # the second run resumed: nothing new
    res = json.loads((tmp_path / "r" / "results.json").read_text())
    assert res["results"]["direct"]["mean_score"] == pytest.approx(sum(r["score"] for r in recs) / 3)
    assert "mean score" in (tmp_path / "r" / "report.md").read_text()


def test_list_benchmarks_names_every_generator(capsys):
    from vecgen.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["think", "--list-benchmarks"])
    out = capsys.readouterr().out
    assert exc.value.code == 0 and "rg:basic_arithmetic" in out and "rg:word_sorting" in out and "gsm8k" in out
