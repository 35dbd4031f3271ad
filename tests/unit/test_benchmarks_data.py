"""Benchmark data (GSM8K, task files), numeric answer checking with math-verify, and the Wilson interval."""

import importlib.util
import json
from pathlib import Path

import pytest

from vecgen.benchmarks_data import (
    GSM8K_TEST_SIZE,
    Task,
    final_answer_of_solution,
    load_benchmark,
    load_gsm8k,
    load_task_file,
    shipped_gsm8k_path,
    write_task_file,
)
from vecgen.errors import ConfigError


def check_answer(output, reference):
    return check_task(Task("t", "q", reference), output)


def extract_answer(output):
    return check_answer(output, "0").pred
from vecgen.benchmarks_data import check_answer as check_task
from vecgen.stats import paired_comparison, wilson_interval


@pytest.mark.parametrize(
    "output,expected",
    [
        ("#### 18", "18"),
        ("The answer is 18.", "18"),
        ("$18.00", "18"),
        ("She makes 9 * 2 = $18 a day.\n#### 18", "18"),
        ("Therefore she earns \\(\\boxed{18}\\) dollars.", "18"),
        (" 18\n", "18"),
    ],
)
def test_answer_extraction_and_check(output, expected):
    assert extract_answer(output) == expected
    verdict = check_answer(output, "18")
    assert verdict.correct and verdict.pred == expected
    assert not check_answer(output, "19").correct


@pytest.mark.parametrize("output", ["I do not know.", "", "   ", "Let me think about it"])
def test_answer_less_output_is_refused(output):
    assert extract_answer(output) is None
    verdict = check_answer(output, "18")
    assert verdict.pred is None and not verdict.correct


def test_equivalent_forms_and_thousands():
    assert check_answer("The answer is 1,000.", "1000").correct
    assert check_answer("#### 0.5", "1/2").correct
    assert check_answer("about 22%", "22").correct
    assert not check_answer("#### 17", "18").correct


def test_gsm8k_final_answer_line():
    assert final_answer_of_solution("9 * 2 = 18\n#### 18") == "18"
    assert final_answer_of_solution("#### 1,000") == "1000"
    assert final_answer_of_solution("no final line") is None


def test_shipped_gsm8k_with_license():
    path = shipped_gsm8k_path()
    assert path.is_file() and (path.parent / "LICENSE").is_file()
    assert "MIT License" in (path.parent / "LICENSE").read_text()
    tasks = load_gsm8k("shipped")
    assert len(tasks) == GSM8K_TEST_SIZE == 1319
    first = tasks[0]
    assert first.id == "gsm8k-test-0000" and first.answer == "18" and first.question.startswith("Janet")
    assert first.solution.endswith("#### 18")
    assert len({t.id for t in tasks}) == len(tasks)
    assert load_benchmark("gsm8k", limit=5) == tasks[:5]


def test_gsm8k_from_a_jsonl_path_and_the_hub(tmp_path):
    lines = shipped_gsm8k_path().read_text().splitlines()[:3]
    path = tmp_path / "mini.jsonl"
    path.write_text("\n".join(lines) + "\n")
    assert load_gsm8k(path) == load_gsm8k("shipped")[:3]
    if importlib.util.find_spec("datasets") is None:
        with pytest.raises(ConfigError, match="datasets"):
            load_gsm8k("hub")


def test_task_file_round_trip_and_defaults(tmp_path):
    path = tmp_path / "arith.jsonl"
    path.write_text(
        '{"id": "a", "question": "2 + 3?", "answer": 5, "level": 1}\n'
        "\n"
        '{"question": "Tom has 3 and buys 4.", "answer": "He has 7.\\n#### 7"}\n'
    )
    tasks = load_task_file(path)
    assert tasks[0] == Task("a", "2 + 3?", "5", "numeric") and tasks[0].meta == {"level": 1}
    assert tasks[1].id == "arith-3" and tasks[1].answer == "7" and tasks[1].solution.endswith("#### 7")
    again = tmp_path / "again.jsonl"
    write_task_file(again, tasks)
    assert load_task_file(again) == tasks
    assert load_benchmark(str(path)) == tasks


@pytest.mark.parametrize(
    "content,fragment",
    [
        ('{"question": "a", "answer": "1"}\n{"question": "b", "answer": "2"}\n{"question": "c", "answer": \n', "line 3: invalid JSON"),
        ('{"question": "a", "answer": "1"}\n{"answer": "2"}\n', "line 2: 'question' must be a non-empty string"),
        ('{"question": "a"}\n', "line 1: 'answer' must be"),
        ('{"id": "x", "question": "a", "answer": "1"}\n{"id": "x", "question": "b", "answer": "2"}\n', "line 2: duplicate id 'x' (first on line 1)"),
        ("[1, 2]\n", "line 1: expected a JSON object"),
        ('{"question": "a", "answer": "work\\n####"}\n', "line 1: 'answer' has '####'"),
        ("\n\n", "no tasks"),
    ],
)
def test_malformed_task_files_name_the_line(tmp_path, content, fragment):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(ConfigError) as err:
        load_task_file(path)
    assert fragment in str(err.value) and str(path) in str(err.value)


def test_bad_benchmark_requests():
    with pytest.raises(ConfigError, match="unknown benchmark 'gsm9k'.*gsm8k"):
        load_benchmark("gsm9k")
    for bad in (0, -3):
        with pytest.raises(ConfigError, match="^limit="):  # the library names its parameter (the CLI shows --limit)
            load_benchmark("gsm8k", limit=bad)
    with pytest.raises(ConfigError, match="task file not found"):
        load_benchmark("missing.jsonl")
    with pytest.raises(ConfigError, match="split"):
        load_gsm8k("shipped", split="dev")


def test_arena_tasks_plug_in_as_a_benchmark(tmp_path):
    from vecgen.benchmarks_data.arena import FAMILIES, heldout_set

    tasks = load_benchmark("arena", limit=6)
    items = heldout_set(0, 6, list(FAMILIES), 1)
    assert tasks == items and [t.meta["family"] for t in tasks] == list(FAMILIES)
    assert {t.answer_type for t in tasks} == {"numeric", "yesno", "choice"}
    for t in tasks:
        assert "Answer with only" not in t.question
        assert check_task(t, f"The answer is {t.answer}.").correct
    # A task file written from them reads back unchanged and runs as --benchmark PATH.
    path = write_task_file(tmp_path / "arena.jsonl", tasks)
    assert load_benchmark(str(path)) == tasks
    hard = load_benchmark("arena", source="math_word@3", limit=2)
    assert all(t.meta["difficulty"] == 3 and t.meta["source"] == "reasoning-gym:gsm_symbolic" for t in hard)
    assert {t.answer_type for t in load_benchmark("arena", source="logic,causal", limit=4)} == {"yesno"}
    with pytest.raises(ConfigError, match="unknown task family 'logik'"):
        load_benchmark("arena", source="logik")
    with pytest.raises(ConfigError, match="FAMILY"):
        load_benchmark("arena", source="math_word@hard")


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = wilson_interval(10, 10)
    assert hi == 1.0 and lo == pytest.approx(0.7225, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_paired_comparison_counts_and_exact_mcnemar():
    a = [True, True, True, True, False, False, True]
    b = [True, False, False, False, False, True, True]
    c = paired_comparison(a, b)
    assert (c.n, c.both, c.only_a, c.only_b, c.neither) == (7, 2, 3, 1, 1)
    # Exact two-sided binomial test of 3 of 4 discordant items at p = 1/2: 2 * (1 + 4) / 16.
    assert c.p_value == pytest.approx(10 / 16)
    assert paired_comparison([True] * 6, [False] * 6).p_value == pytest.approx(2 / 64)
    assert paired_comparison([True, False], [True, False]).p_value == 1.0
    with pytest.raises(ValueError, match="same items"):
        paired_comparison([True], [True, False])


def test_shipped_data_is_package_data():
    root = Path(__import__("vecgen").__file__).parent
    assert (root / "data" / "gsm8k" / "test.jsonl").is_file()
    first = json.loads((root / "data" / "gsm8k" / "test.jsonl").read_text().splitlines()[0])
    assert first["answer"].endswith("#### 18")
