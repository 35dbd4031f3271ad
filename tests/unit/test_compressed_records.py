"""Compressed records (issue 35, item 5): a finished run folder's ``records.jsonl`` kept as ``records.jsonl.gz``
(what the shipped folders under ``docs/results`` hold) is read as it is by the run viewer, ``vecgen rescore`` and
every records reader, and a resumed run brings it back and goes on as if it had never been compressed."""

from __future__ import annotations

import gzip
import json

import pytest

from helpers.cli import cli
from helpers.tasks import SUMS, write_tasks
from vecgen.io import read_jsonl
from vecgen.reports import compress_records
from vecgen.reports.view import view_payload



@pytest.fixture()
def finished(tiny_model_dir, tmp_path, capsys):
    tasks = write_tasks(tmp_path / "tasks.jsonl", SUMS[:4])
    args = ["think", "--benchmark", tasks, "--model", tiny_model_dir("qwen2"), "--methods", "direct,cot",
            "--limit", "3", "--max-think-tokens", "3", "--max-answer-tokens", "2", "--out-dir", tmp_path / "runs",
            "--run-name", "r", "--device", "cpu"]
    code, _, err = cli(args, capsys)
    assert code == 0, err
    return tmp_path / "runs" / "r", args


def test_compressed_records_read_the_same_everywhere(finished, capsys):
    run, _ = finished
    plain = (run / "records.jsonl").read_text()
    before = view_payload(run)
    assert compress_records(run) == [run / "records.jsonl.gz"]
    assert not (run / "records.jsonl").exists()
    assert gzip.decompress((run / "records.jsonl.gz").read_bytes()).decode() == plain
    assert list(read_jsonl(run / "records.jsonl")) == [json.loads(x) for x in plain.splitlines()]
    assert view_payload(run)["think"] == before["think"]  # the viewer's data, item for item
    code, out, err = cli(["rescore", run], capsys)  # reads them and keeps them compressed
    assert code == 0, err
    assert "0 of 6 verdicts changed" in out
    assert (run / "records.jsonl.gz").exists() and not (run / "records.jsonl").exists()


def test_a_resumed_run_brings_them_back_and_goes_on(finished, capsys):
    run, args = finished
    first = (run / "records.jsonl").read_text().splitlines()
    compress_records(run)
    limit = args.index("--limit") + 1
    more = [*args[:limit], "4", *args[limit + 1:]]  # one more item: only its two answers are new
    code, _, err = cli(more, capsys)
    assert code == 0, err
    lines = (run / "records.jsonl").read_text().splitlines()
    assert not (run / "records.jsonl.gz").exists()
    assert lines[: len(first)] == first and len(lines) == len(first) + 2
    assert sorted(json.loads(x)["id"] for x in lines[len(first):]) == ["t4", "t4"]
