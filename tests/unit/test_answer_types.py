"""Answer types: one Task type, one checker per type, task files that name or infer the type, BIG-bench JSON."""

import json

import pytest

from vecgen.io import read_jsonl
from vecgen.benchmarks_data import (
    ANSWER_TYPES,
    CHECKERS,
    Task,
    check_answer,
    infer_answer_type,
    load_benchmark,
    load_task_file,
    task_text,
    write_task_file,
)
from vecgen.errors import ConfigError

CHOICE = Task("c", "Which is a fruit?", "pear", "choice", choices=("stone", "pear", "chair"))


@pytest.mark.parametrize("output", [
    "B", " B\n", "B.", "(B)", "**B**", "**(B)**", "Answer: B.", "The answer is B", "\\boxed{B}", "$\\boxed{B}$",
    "Option B", "B) pear", "B. pear", "pear", "The correct option is B.", "**B. pear**", "b",
    "The answer is:\n\n**B**", "B\nBecause a pear grows on a tree, while A is a stone.", "A pear is a fruit.",
    "Option B is correct", "B pear",
])
def test_choice_reads_letters_and_option_text_with_decorations(output):
    verdict = check_answer(CHOICE, output)
    assert verdict.correct and verdict.pred == "pear", output


@pytest.mark.parametrize("output", ["A", "(C)", "**A**", "\\boxed{C}", "stone", "Answer: A. stone", "", "I am not sure",
                                    "D", "Answer: E"])
def test_choice_rejects_other_options_and_no_answer(output):
    verdict = check_answer(CHOICE, output)
    assert not verdict.correct, output
    if output in ("", "I am not sure", "D", "Answer: E"):
        assert verdict.pred is None  # D and E are not options of a three-option task


def test_choice_letter_of_the_answer_and_the_prompt_lists_lettered_options():
    assert CHOICE.letter == "B"
    assert task_text(CHOICE) == "Which is a fruit?\nA. stone\nB. pear\nC. chair"
    assert task_text(Task("n", "2 + 3?", "5")) == "2 + 3?"


YES = Task("y", "Is ice cold?", "Yes", "yesno")


@pytest.mark.parametrize("output,correct", [
    ("Yes", True), ("yes.", True), ("**Yes**", True), ("Answer: yes.", True), ("\\boxed{Yes}", True),
    ("Yes, it is.\nNo further rule applies.", True), ("The answer is: Yes", True),
    ("No", False), ("**No**", False), ("Answer: no.", False), ("Nobody knows", False), ("", False),
    ("No\nExplanation: yes, the alarm rings", False),
])
def test_yesno_reads_the_first_yes_or_no_word(output, correct):
    assert check_answer(YES, output).correct is correct, output


EXACT = Task("e", "Spell the number of sides of a triangle.", "three", "exact", aliases=("3",))


@pytest.mark.parametrize("output,correct", [
    ("three", True), ("Three.", True), ("**Three**", True), ("Answer: three", True), ("3", True),
    ("\\boxed{three}", True), ("The answer is three.", True), ("three. A triangle has three sides.", True),
    ("four", False), ("threes", False), ("thirty", False), ("", False), ("not three", False),
])
def test_exact_normalises_and_accepts_aliases(output, correct):
    assert check_answer(EXACT, output).correct is correct, output


def test_exact_ignores_articles_case_and_punctuation():
    task = Task("e", "Capital of France?", "Paris", "exact")
    for ok in ("paris", "PARIS!", "The answer is Paris.", "**Paris**", "`Paris`"):
        assert check_answer(task, ok).correct, ok
    assert check_answer(Task("e", "q", "the Eiffel Tower", "exact"), "Eiffel tower").correct


@pytest.mark.parametrize("output", ["18", "**18**", "\\boxed{18}", "Answer: 18.", "#### 18", "$18.00", "18 dollars"])
def test_numeric_decorations(output):
    assert check_answer(Task("n", "q", "18"), output).correct, output


def test_numeric_aliases_and_every_type_has_a_checker():
    assert check_answer(Task("n", "q", "0.5", aliases=("1/3",)), "1/3").correct
    assert set(ANSWER_TYPES) <= set(CHECKERS) <= {*ANSWER_TYPES, "rg"}  # rg: reasoning-gym items, generated only


@pytest.mark.parametrize("answer,choices,expected", [
    ("18", (), "numeric"), ("-2.5", (), "numeric"), ("\\frac{1}{2}", (), "numeric"), ("yes", (), "yesno"),
    ("No.", (), "yesno"), ("Paris", (), "exact"), ("three", (), "exact"), ("pear", ("stone", "pear"), "choice"),
])
def test_answer_type_inference(answer, choices, expected):
    assert infer_answer_type(answer, choices) == expected


def test_task_file_types_choices_aliases_round_trip(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [
        {"id": "a", "question": "2 + 3?", "answer": 5, "answer_type": "numeric"},
        {"id": "b", "question": "Which is a fruit?", "choices": ["stone", "pear"], "answer": "B"},
        {"id": "c", "question": "Is ice cold?", "answer": "yes", "answer_type": "yesno"},
        {"id": "d", "question": "Spell 3.", "answer": "three", "answer_type": "exact", "aliases": ["3"]},
    ]) + "\n")
    tasks = load_task_file(path)
    assert [t.answer_type for t in tasks] == ["numeric", "choice", "yesno", "exact"]
    assert tasks[1].answer == "pear" and tasks[1].choices == ("stone", "pear")  # the letter became the option
    assert tasks[2].answer == "Yes" and tasks[3].aliases == ("3",)
    again = write_task_file(tmp_path / "again.jsonl", tasks)
    assert load_task_file(again) == tasks


def test_a_file_of_one_inferred_type_needs_no_answer_type(tmp_path):
    path = tmp_path / "yn.jsonl"
    path.write_text('{"question": "Is ice cold?", "answer": "Yes"}\n{"question": "Is fire cold?", "answer": "no"}\n')
    assert [(t.answer_type, t.answer) for t in load_task_file(path)] == [("yesno", "Yes"), ("yesno", "No")]


@pytest.mark.parametrize("lines,fragment", [
    ([{"question": "2 + 3?", "answer": "5"}, {"question": "Spell 3.", "answer": "three"}],
     "mixes answer types without 'answer_type': line 2 reads as exact"),
    ([{"question": "Is ice cold?", "answer": "Yes"}, {"question": "2 + 3?", "answer": 5}],
     "mixes answer types"),
    ([{"question": "Fruit?", "choices": ["stone", "pear"], "answer": "apple"}], "'apple' is not among the choices"),
    ([{"question": "Fruit?", "choices": ["stone", "pear"], "answer": "C"}], "'C' is not among the choices"),
    ([{"question": "Fruit?", "choices": ["pear"], "answer": "pear"}], "at least 2 choices"),
    ([{"question": "Fruit?", "choices": ["pear", "Pear"], "answer": "pear"}], "same option twice"),
    ([{"question": "Fruit?", "choices": "pear, stone", "answer": "pear"}], "'choices' must be a list"),
    ([{"question": "Q?", "answer": "x", "answer_type": "string"}], "unknown answer_type 'string'"),
    ([{"question": "Q?", "answer": "maybe", "answer_type": "yesno"}], "must be Yes or No"),
    ([{"question": "Q?", "answer": "four", "answer_type": "numeric"}], "can never be scored correct"),
    ([{"question": "Q?", "answer": "4", "answer_type": "numeric", "aliases": ["four"]}], "'four' can never be scored"),
    ([{"question": "Q?", "answer": "a", "answer_type": "exact"}], "empty once normalised"),
    ([{"question": "Q?", "answer": "4", "answer_type": "yesno", "choices": ["4", "5"]}], "choices belong to"),
])
def test_bad_typed_task_files_name_the_line_and_the_fix(tmp_path, lines, fragment):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    with pytest.raises(ConfigError) as err:
        load_task_file(path)
    assert fragment in str(err.value) and str(path) in str(err.value)


def _bigbench(tmp_path, examples, **extra):
    path = tmp_path / "task.json"
    path.write_text(json.dumps({"name": "mini", "description": "a test task", "keywords": [], **extra,
                                "examples": examples}))
    return path


def test_bigbench_json_maps_targets_and_target_scores(tmp_path):
    path = _bigbench(tmp_path, [
        {"input": "Which is a fruit?", "target_scores": {"stone": 0, "pear": 1, "chair": 0}},
        {"input": "Which is a colour?", "target_scores": {"red": 1.0, "run": 0.0}},
    ], task_prefix="Pick one.\n")
    tasks = load_benchmark(str(path))
    assert [t.id for t in tasks] == ["task-0000", "task-0001"]
    assert tasks[0].answer_type == "choice" and tasks[0].answer == "pear" and tasks[0].choices == ("stone", "pear", "chair")
    assert tasks[0].question == "Pick one.\nWhich is a fruit?"
    numeric = load_task_file(_bigbench(tmp_path, [{"input": "2 + 3 =", "target": "5"}, {"input": "3 * 3 =", "target": ["9"]}]))
    assert [(t.answer_type, t.answer) for t in numeric] == [("numeric", "5"), ("numeric", "9")]
    words = load_task_file(_bigbench(tmp_path, [{"input": "Spell 3.", "target": ["three", "3"]},
                                                {"input": "Opposite of hot?", "target": "cold"}]))
    assert [(t.answer_type, t.answer, t.aliases) for t in words] == [("exact", "three", ("3",)), ("exact", "cold", ())]
    yn = load_task_file(_bigbench(tmp_path, [{"input": "Is ice cold?", "target": "yes"}]))
    assert yn[0].answer_type == "yesno" and yn[0].answer == "Yes"


@pytest.mark.parametrize("data,fragment", [
    ({"examples": []}, "non-empty 'examples'"),
    ([1, 2], "non-empty 'examples'"),
    ({"examples": [{"target": "1"}]}, "example 0: expected an object with a string 'input'"),
    ({"examples": [{"input": "q"}]}, "example 0: needs 'target'"),
    ({"examples": [{"input": "q", "target": ""}]}, "needs 'target'"),
    ({"examples": [{"input": "q", "target_scores": {"a": 1, "b": 1}}]}, "2 options with the top score"),
    ({"examples": [{"input": "q", "target_scores": {"a": 1}}]}, "at least 2 options"),
    ({"examples": [{"input": "q", "target_scores": {"a": "yes", "b": 0}}]}, "at least 2 options to numbers"),
    ({"examples": [{"input": "2+3", "target": "5"}, {"input": "spell 3", "target": "three"}]}, "mixes answer types"),
])
def test_bad_bigbench_files(tmp_path, data, fragment):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError) as err:
        load_task_file(path)
    assert fragment in str(err.value) and str(path) in str(err.value)


def test_invalid_json_in_a_bigbench_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"examples": [')
    with pytest.raises(ConfigError, match="invalid JSON"):
        load_task_file(path)


def test_the_checker_keeps_the_verdicts_of_the_shipped_gsm8k_runs():
    """The shipped GSM8K runs were checked by the numeric checker before answer types existed; the one checker
    must give every one of their 500 records the same verdict."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "docs" / "results"
    n = 0
    for name in ("think-gsm8k100-default", "think-gsm8k50-hidden-default"):
        for rec in read_jsonl(root / name / "records.jsonl"):  # shipped compressed: records.jsonl.gz
            verdict = check_answer(Task(rec["id"], rec["question"], rec["reference"]), rec["answer"])
            assert verdict.correct == rec["correct"], rec["answer"]
            n += 1
    assert n == 500


def test_prompts_ask_for_each_answer_type_and_cue_non_numeric_reasoning(tiny_lm):
    from vecgen.thinking.prompts import build_prompt, prompt_style

    lm = tiny_lm("qwen2")
    style = prompt_style(lm)
    cot = build_prompt(lm, CHOICE, style, direct=False)
    assert "A. stone\nB. pear\nC. chair" in cot and "the letter of the correct option" in cot
    assert cot.endswith("Let's think step by step.\n")
    assert build_prompt(lm, YES, style, direct=True).endswith("Answer:") and "Yes or No" in build_prompt(lm, YES, style, direct=True)
    numeric = Task("n", "What is 2 + 3?", "5")
    assert build_prompt(lm, numeric, style, direct=False) == build_prompt(lm, "What is 2 + 3?", style, direct=False)
    assert not build_prompt(lm, numeric, style, direct=False).endswith("step by step.\n")
    q3 = tiny_lm("qwen3")
    think = build_prompt(q3, CHOICE, prompt_style(q3), direct=False)
    assert "put the letter of the correct option within \\boxed{}" in think and think.endswith("<think>\n")


def test_the_example_task_files_in_the_docs_load():
    from pathlib import Path

    docs = Path(__file__).resolve().parents[2] / "docs" / "examples"
    odd = load_benchmark(str(docs / "bigbench_odd_one_out.json"))
    assert len(odd) == 5 and all(t.answer_type == "choice" for t in odd) and odd[0].answer == "hammer"
    mixed = load_benchmark(str(docs / "mixed_types.jsonl"))
    assert [t.answer_type for t in mixed] == ["numeric", "choice", "yesno", "exact"] and mixed[1].answer == "pear"
