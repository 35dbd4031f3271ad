"""``vecgen rescore RUN_DIR`` (issue 38, item 2): a finished run re-checked with today's checkers, without the model.

A run is made on a tiny model, then its records are edited to what an older checker wrote (a restated expression
credited, a reasoning-gym reference that was a number read as one number); rescore must put today's verdicts back,
list exactly the changed ones, recompute the summaries and the paired tests, and change nothing when run twice.
"""

from __future__ import annotations

import json

import pytest

from helpers.cli import cli, one_line_error
from vecgen.thinking.rescore import rescore


def _records(run):
    return [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]


def _write(run, rows):
    (run / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def rg_run(tiny_model_dir, tmp_path, capsys):
    code, _, err = cli(["think", "-m", tiny_model_dir("qwen2"), "--benchmark", "rg:chain_sum:seed=2", "--limit", "4",
                        "--methods", "direct,cot", "--max-think-tokens", "4", "--max-answer-tokens", "3",
                        "--out-dir", tmp_path, "--run-name", "r"], capsys)
    assert code == 0, err
    return tmp_path / "r"


def test_rescore_restores_todays_verdicts_and_lists_the_changes(rg_run, capsys):
    rows = _records(rg_run)
    original = {(r["method"], r["id"]): (r["pred"], r["correct"], r["score"]) for r in rows}
    question = rows[0]["question"]
    expr = question.split("Calculate", 1)[-1].strip().rstrip(".=").strip() if "Calculate" in question else None
    # what an older checker wrote: item 0 answered with the question's own expression and credited;
    # item 1 answered right but recorded wrong
    rows[0].update(answer=f" {expr}", pred=rows[0]["reference"], correct=True, score=1.0)
    rows[1].update(answer=f" The answer is {rows[1]['reference']}.", pred="0", correct=False, score=0.0)
    _write(rg_run, rows)
    code, out, err = cli(["rescore", rg_run], capsys)
    assert code == 0, err
    assert "2 of 8 verdicts changed" in out
    after = _records(rg_run)
    assert after[0]["correct"] is False and after[0]["score"] == 0.0 and after[0]["pred"] == expr
    assert after[1]["correct"] is True and after[1]["score"] == 1.0 and after[1]["pred"] == rows[1]["reference"]
    for r in after[2:]:  # untouched records keep their verdicts
        assert (r["pred"], r["correct"], r["score"]) == original[(r["method"], r["id"])]
    diff = json.loads((rg_run / "rescore.json").read_text())
    assert [(c["method"], c["id"]) for c in diff["changes"]] == [(rows[0]["method"], rows[0]["id"]),
                                                               (rows[1]["method"], rows[1]["id"])]
    assert diff["changes"][0]["old"]["correct"] is True and diff["changes"][0]["new"]["correct"] is False
    res = json.loads((rg_run / "results.json").read_text())
    for m in ("direct", "cot"):
        mine = [r for r in after if r["method"] == m]
        assert res["results"][m]["correct"] == sum(r["correct"] for r in mine)
        assert res["results"][m]["mean_score"] == pytest.approx(sum(r["score"] for r in mine) / len(mine))
    pair = res["paired"][0]
    assert (pair["a"], pair["b"]) == ("direct", "cot") and pair["n"] == 4
    assert res["rescored"]["changes"] == 2
    report = (rg_run / "report.md").read_text()
    assert "| direct |" in report
    for m in ("direct", "cot"):  # answers at the 3-token answer budget on more than 5% of items are warned about
        mine = [r for r in after if r["method"] == m]
        hits = sum(r["answer_tokens"] >= 3 for r in mine)
        assert res["results"][m]["answer_budget_hits"] == hits
        assert (f"{m}: {hits} of 4 answers" in report) is (hits / 4 > 0.05)
    # a second rescore changes nothing
    again = rescore(rg_run)
    assert again.changes == [] and _records(rg_run) == after


def test_rescore_refuses_what_it_cannot_rescore(rg_run, tmp_path, capsys):
    code, _, err = cli(["rescore", tmp_path / "missing"], capsys)
    one_line_error(code, err, "is not a folder")
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = cli(["rescore", empty], capsys)
    one_line_error(code, err, "settings.json", "finished `vecgen think` run folder")
    rows = _records(rg_run)
    rows[0]["question"] = "another question"
    _write(rg_run, rows)
    before = (rg_run / "records.jsonl").read_text()
    code, _, err = cli(["rescore", rg_run], capsys)
    one_line_error(code, err, "is not the item the run answered", "nothing was rewritten")
    assert (rg_run / "records.jsonl").read_text() == before
    (rg_run / "results.json").write_text("{not json")
    code, _, err = cli(["rescore", rg_run], capsys)
    one_line_error(code, err, "results.json is not valid JSON")


def test_to_pandas_carries_answer_prediction_score_and_verdict(tiny_model_dir):
    import vecgen

    m = vecgen.load(str(tiny_model_dir("qwen2")))
    ev = vecgen.evaluate(m, "rg:chain_sum:seed=2", limit=2, methods=["direct"], max_answer_tokens=3, progress=False)
    df = ev.to_pandas()
    for col in ("answer", "pred", "score", "correct", "reference"):
        assert col in df.columns
    assert list(df["answer"]) == [r.answer for r in ev.records]
    assert list(df["score"]) == [r.score for r in ev.records]
    assert ev.summary["direct"].answer_budget_hits == sum(r.answer_tokens >= 3 for r in ev.records)
