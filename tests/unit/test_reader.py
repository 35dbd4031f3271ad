"""The concept-token reader (issue 17, part 4): target format, scoring, LoRA training and resumption on a tiny model."""

import json

import pytest
import torch
from helpers.cli import cli, never_load, one_line_error

from vecgen.errors import ConfigError
from vecgen.models import load_model
from vecgen.probes.reader import TrainState, add_lora, continuation_kl, load_lora_state, lora_state, train_reader
from vecgen.probes.reader_data import (
    ReaderConfig,
    ReaderExample,
    cut_prompts,
    format_target,
    make_examples,
    parse_reading,
    score_reading,
)


def _example(texts, weights, n_ids=None):
    ids = n_ids or [[10 * i + j for j in range(3)] for i in range(len(texts))]
    return ReaderExample("p", torch.zeros(len(texts), 4), ids, texts, weights)


HOSTILE = [[' Paris', '"quoted"', 'back\\slash'], ['a | b', '\n', '日本'], ['1. x', 'text: y', ' 0']]
WEIGHTS = [[0.62, 0.21, 0.05], [0.5, 0.25, 0.25], [1.0, 0.0, 0.0]]


def test_target_format_round_trips_hostile_tokens():
    ex = _example(HOSTILE, WEIGHTS)
    target = format_target(ex)
    assert target.splitlines()[0] == 'text: ' + json.dumps(' Parisa | b1. x', ensure_ascii=False)
    reading = parse_reading(target)
    assert reading.text == " Parisa | b1. x"
    assert [[t for t, _ in pos] for pos in reading.positions] == HOSTILE
    assert [[w for _, w in pos] for pos in reading.positions] == WEIGHTS
    sc = score_reading(ex, reading)
    assert sc == {"exact": True, "top2_correct": 3, "positions": 3, "weight_abs_error": pytest.approx(0.0),
                  "weights": 9}


def test_scoring_of_partial_and_wrong_readings():
    ex = _example(HOSTILE, WEIGHTS)
    wrong = '1. " Paris" 60 | "x" 20\n2. "b" 50 | "\\n" 30 | "日本" 20\ngarbage line\n4. "extra" 100'
    sc = score_reading(ex, parse_reading(wrong))
    assert not sc["exact"]  # position 2 top-1 wrong, position 3 missing, an extra position 4
    assert sc["top2_correct"] == 1  # position 2's second entry
    # |0.60-0.62| + |0.20-0.21| + 0.05 (missing) + 0 + |0.30-0.25| + |0.20-0.25| + 1.0 (position 3 missing)
    assert sc["weight_abs_error"] == pytest.approx(0.02 + 0.01 + 0.05 + 0.0 + 0.05 + 0.05 + 1.0)
    empty = score_reading(ex, parse_reading("no reading at all"))
    assert not empty["exact"] and empty["top2_correct"] == 0 and empty["weight_abs_error"] == pytest.approx(2.88)  # every weight missing: their sum


def test_exact_match_needs_every_position_and_no_more():
    ex = _example([[" a", " b", " c"]], [[0.9, 0.05, 0.05]])
    assert score_reading(ex, parse_reading('1. " a" 90'))["exact"]
    assert not score_reading(ex, parse_reading('1. " a" 90\n2. " a" 90'))["exact"]


@pytest.mark.parametrize("values, fragment", [({"n_min": 5, "n_max": 2}, "n_min=5 > n_max=2"),
                                              ({"mixture_top_k": 2}, "mixture_top_k"), ({"lr": 0}, "lr"),
                                              ({"target_modules": []}, "target_modules")])
def test_bad_reader_settings(values, fragment):
    with pytest.raises(ConfigError, match=fragment):
        ReaderConfig.create(**values)


def test_cut_prompts_are_seeded_and_cut_after_a_word():
    texts = ["one two three four five six", "alpha beta gamma delta"]
    a = cut_prompts(texts, 6, seed=3)
    assert a == cut_prompts(texts, 6, seed=3) and a != cut_prompts(texts, 6, seed=4)
    for p in a:
        words = p.split()
        assert 3 <= len(words) < 6 and any(t.startswith(p) for t in texts)


@pytest.fixture
def fresh_tiny(tiny_model_dir):
    """A fresh tiny qwen2 model per call: a LoRA adapter is injected into the model in place, so the shared
    session model must not be used."""
    return lambda: load_model(str(tiny_model_dir("qwen2")), device="cpu", dtype="float32", show_progress=False)


PROMPTS = ["Natalia sold clips to", "Weng earns 12 an", "Betty is saving money for", "Julie is reading a"]


def test_examples_hold_the_mixtures_top_weights(fresh_tiny):
    lm = fresh_tiny()
    cfg = ReaderConfig.create(train_examples=4, n_min=2, n_max=3)
    ex = make_examples(lm, PROMPTS, cfg, seed=0)
    assert [e.prompt for e in ex] == PROMPTS and all(2 <= e.n <= 3 for e in ex)
    for e in ex:
        assert e.vectors.shape == (e.n, lm.hidden_size) and all(len(t) == 3 for t in e.top_ids)
        assert all(w[0] >= w[1] >= w[2] for w in e.top_weights)
    again = make_examples(lm, PROMPTS, cfg, seed=0)
    assert all(torch.equal(a.vectors, b.vectors) and a.top_ids == b.top_ids for a, b in zip(ex, again))


@pytest.mark.slow
def test_training_lowers_the_loss_and_a_fresh_adapter_changes_nothing(fresh_tiny):
    lm = fresh_tiny()
    # the tiny random model's LM head has small random weights (logits near 0): an adapter on the attention alone
    # moves its loss from ln(151936) ≈ 11.9 by only ~0.4, so the head gets an adapter here too
    cfg = ReaderConfig.create(train_examples=4, batch_size=2, epochs=8, lr=1e-2, n_min=2, n_max=2, lora_r=4,
                              target_modules=["q_proj", "v_proj", "lm_head"])
    ex = make_examples(lm, PROMPTS, cfg, seed=0)
    peft = add_lora(lm, cfg)
    kl0 = continuation_kl(lm, peft, ex)
    assert kl0["kl"]["mean"] == 0.0  # LoRA's B starts at zero: the adapted model is the base model
    state, _ = train_reader(lm, peft, ex, cfg)
    assert state.step == 16 and len(state.losses) == 16
    assert sum(state.losses[-4:]) / 4 < state.losses[0] - 3.0, state.losses  # measured: 11.9 → 3.3
    assert continuation_kl(lm, peft, ex)["kl"]["mean"] > 0.0


@pytest.mark.slow
def test_a_resumed_run_ends_bit_identical(fresh_tiny):
    cfg = ReaderConfig.create(train_examples=4, batch_size=2, epochs=2, lr=1e-2, n_min=2, n_max=2, lora_r=4,
                              checkpoint_every=1)
    lm = fresh_tiny()
    ex = make_examples(lm, PROMPTS, cfg, seed=0)
    peft = add_lora(lm, cfg)
    straight, _ = train_reader(lm, peft, ex, cfg)
    want = lora_state(peft)

    lm2 = fresh_tiny()
    peft2 = add_lora(lm2, cfg)
    saved = {}
    train_reader(lm2, peft2, ex, cfg, stop_after=3,
                 checkpoint=lambda s, o: saved.update(lora=lora_state(peft2), opt=o.state_dict(), step=s.step,
                                                      losses=list(s.losses)))
    assert saved["step"] == 3
    lm3 = fresh_tiny()  # a new process: fresh model, adapter and optimizer from the checkpoint
    peft3 = add_lora(lm3, cfg)
    load_lora_state(peft3, saved["lora"])
    import copy

    resumed, _ = train_reader(lm3, peft3, ex, cfg, state=TrainState(saved["step"], saved["losses"]),
                              optimizer_state=copy.deepcopy(saved["opt"]))
    got = lora_state(peft3)
    assert resumed.losses == straight.losses
    assert set(got) == set(want) and all(torch.equal(got[k], want[k]) for k in want)


# ------------------------------------------------------------------------------------------- the CLI


@pytest.mark.parametrize("args, fragment", [
    (["train", "--n-min", "5", "--n-max", "2"], "n_min=5 > n_max=2"),
    (["train", "--resume"], "--resume needs --run-name"),
    (["train", "--methods", "telepathy"], "telepathy"),
    (["train", "--lora-r", "0"], "lora_r"),
    (["eval", "/nonexistent/reader.pt"], "reader checkpoint not found"),
    (["eval", "--source", "web", "x"], "--source"),
])
def test_bad_reader_options_fail_before_loading(args, fragment, capsys, monkeypatch):
    never_load(monkeypatch)
    code, _, err = cli(["reader", *args], capsys)
    one_line_error(code, err, fragment)


@pytest.mark.slow
def test_reader_run_and_checkpoints_of_another_model(tiny_model_dir, capsys, tmp_path, monkeypatch):
    q2 = str(tiny_model_dir("qwen2"))
    code, out, err = cli(["reader", "train", "--model", q2, "--device", "cpu", "--out-dir", tmp_path, "--run-name", "r",
                          "--train-examples", "4", "--eval-examples", "2", "--n-max", "2", "--methods", "nearest,direct",
                          "--checkpoint-every", "1"], capsys)
    assert code == 0, err
    run = tmp_path / "r"
    res = json.loads((run / "results.json").read_text())["results"]
    assert res["training"]["steps"] == 1 and set(res["evaluation"]["translations"]) == {"nearest", "direct"}
    assert res["evaluation"]["reader"]["examples"] == 2
    assert len((run / "eval_records.jsonl").read_text().splitlines()) == 4  # 2 examples × (base, reader)
    assert (run / "reader.pt").exists() and (run / "checkpoint.pt").exists() and (run / "loss.png").exists()
    # a second fresh run into the same folder is refused; a resume with other settings too
    code, _, err = cli(["reader", "train", "--model", q2, "--out-dir", tmp_path, "--run-name", "r"], capsys)
    one_line_error(code, err, "already holds")
    code, _, err = cli(["reader", "train", "--model", q2, "--out-dir", tmp_path, "--run-name", "r", "--resume",
                        "--train-examples", "4", "--eval-examples", "2", "--n-max", "2", "--lr", "0.1"], capsys)
    one_line_error(code, err, "other settings", "lr")
    # the reader evaluated with another model: refused before loading it
    never_load(monkeypatch)
    code, _, err = cli(["reader", "eval", run, "--model", str(tiny_model_dir("qwen3"))], capsys)
    one_line_error(code, err, "reader of", "--model")
    not_reader = tmp_path / "x.pt"
    torch.save({"format": "something else"}, not_reader)
    code, _, err = cli(["reader", "eval", not_reader, "--model", q2], capsys)
    one_line_error(code, err, "not a vecgen reader checkpoint")
