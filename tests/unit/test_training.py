"""vecgen train: sequences, the continuous-thought forward, the task generators, runs, resume and inference through
the engine (tiny scratch models; every run takes seconds)."""

from __future__ import annotations

import json
from collections import deque

import pytest
import torch
from helpers.cli import cli, never_load, one_line_error

import vecgen
from vecgen.benchmarks_data import ConfigError, load_task_file
from vecgen.benchmarks_data.multiplication import digits_value, generate_multiplication
from vecgen.benchmarks_data.prosqa import PERSONS, generate_prosqa, load_prosqa_valid, write_coconut_json
from vecgen.reports import RunWriter
from vecgen.training import TrainSettings, train
from vecgen.training.forward import sequence_loss, thought_logits
from vecgen.training.sequences import IGNORE, Example, MarkerIds, build_example, collate, encode_task

IDS = MarkerIds(bot=3, eot=4, pause=5, eos=2, pad=0)


def tiny_gpt2(vocab: int = 30):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=vocab, n_positions=64, n_embd=32, n_layer=2, n_head=2, resid_pdrop=0.0,
                     embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=2, eos_token_id=2)
    return GPT2LMHeadModel(cfg).eval()


# -- sequences and the forward pass ---------------------------------------------------------------------------------

def test_examples_follow_coconuts_layout():
    from vecgen.training.sequences import Encoded

    enc = Encoded(question=(7, 8), steps=((10, 11), (12,), (13, 14)), answer=(20, 21))
    nocot = build_example(enc, IDS, "nocot")
    assert (nocot.prefix, nocot.n_thoughts, nocot.rest) == ((7, 8, 3), 0, (4, 20, 21, 2))
    assert nocot.rest_loss == (False, True, True, True)
    cot = build_example(enc, IDS, "cot")
    assert cot.rest == (10, 11, 12, 13, 14, 4, 20, 21, 2) and all(cot.rest_loss)
    stage2 = build_example(enc, IDS, "coconut", stage=2, c=2, stages=3)
    assert stage2.n_thoughts == 4 and stage2.rest == (4, 13, 14, 20, 21, 2)
    assert stage2.rest_loss[0] is False and all(stage2.rest_loss[1:])
    # beyond the chain: padded to c * stage, or capped at the steps without padding
    assert build_example(enc, IDS, "coconut", stage=5, c=1, stages=6, pad_to_last_stage=True).n_thoughts == 5
    assert build_example(enc, IDS, "coconut", stage=5, c=1, stages=6).n_thoughts == 3
    assert build_example(enc, IDS, "pause", stage=1, c=1, stages=3).n_thoughts == 1


def test_collate_aligns_the_thoughts_and_labels_only_the_rest():
    exs = [Example((7, 8, 9, 3), 2, (4, 10, 2), (False, True, True)), Example((7, 3), 0, (4, 12, 2), (False, True, True))]
    b = collate(exs, IDS)
    assert b.prefix_width == 4 and b.max_thoughts == 2
    assert b.input_ids[1, :2].tolist() == [0, 0] and b.attention_mask[1, :2].tolist() == [0, 0]
    assert b.thought_mask[0, 4:6].all() and not b.thought_mask[1].any()
    assert b.position_ids[1, 2:5].tolist() == [0, 1, 2]
    assert b.labels[0].tolist() == [IGNORE] * 7 + [10, 2]
    assert b.labels[1].tolist()[:5] == [IGNORE] * 5 and b.labels[1, 5:7].tolist() == [12, 2]


def test_thought_forward_equals_each_example_fed_its_own_hidden_states():
    model = tiny_gpt2()
    exs = [Example((7, 8, 9, 3), 2, (4, 10, 11, 2), (False, True, True, True)),
           Example((7, 3), 0, (4, 12, 2), (False, True, True)),
           Example((8, 9, 10, 11, 12, 3), 3, (4, 13, 2), (False, True, True))]
    batch = collate(exs, IDS)
    logits = thought_logits(model, batch, continuous=True)
    wte = model.transformer.wte
    for i, e in enumerate(exs):
        emb = wte(torch.tensor([list(e.prefix)]))
        for _ in range(e.n_thoughts):  # one pass per thought, no padding, no cache
            emb = torch.cat([emb, model(inputs_embeds=emb, output_hidden_states=True).hidden_states[-1][:, -1:]], 1)
        emb = torch.cat([emb, wte(torch.tensor([list(e.rest)]))], 1)
        start = batch.prefix_width - len(e.prefix)
        # float32, 2 layers: the padded multi-pass batch and the unpadded passes differ by summation order only
        torch.testing.assert_close(logits[i, start:start + e.length], model(inputs_embeds=emb).logits[0],
                                   rtol=1e-5, atol=1e-5)


def test_gradients_flow_through_the_thoughts():
    model = tiny_gpt2()
    model.train()
    batch = collate([Example((7, 8, 3), 2, (4, 10, 2), (False, True, True))], IDS)
    loss = sequence_loss(thought_logits(model, batch, continuous=True), batch.labels)
    grads = torch.autograd.grad(loss, model.transformer.ln_f.weight)[0]
    # pause: the same positions hold a token, not a hidden state: another loss, another gradient
    loss_pause = sequence_loss(thought_logits(model, batch, continuous=False), batch.labels)
    grads_pause = torch.autograd.grad(loss_pause, model.transformer.ln_f.weight)[0]
    assert grads.abs().sum() > 0 and not torch.allclose(grads, grads_pause)


# -- task generators and the coconut format -------------------------------------------------------------------------

def _reach(edges, start):
    adj = {}
    for a, b in edges:
        adj.setdefault(a, []).append(b)
    depth, queue = {start: 0}, deque([start])
    while queue:
        n = queue.popleft()
        for m in adj.get(n, ()):
            if m not in depth:
                depth[m] = depth[n] + 1
                queue.append(m)
    return depth, adj


def test_prosqa_generator_plants_a_shortest_proof_and_an_unreachable_negative():
    items = generate_prosqa(150, seed=3)
    assert [t.question for t in items] == [t.question for t in generate_prosqa(150, seed=3)]
    assert items[0].question != generate_prosqa(1, seed=4)[0].question
    valid = {t.question for t in load_prosqa_valid()}
    for t in items:
        m = t.meta
        names = m["idx_to_symbol"]
        depth_of, adj = _reach(m["edges"], m["root"])
        assert depth_of[m["target"]] == len(t.steps) and 3 <= len(t.steps) <= 6
        assert m["neg_target"] not in depth_of
        assert not adj.get(m["target"]) and not adj.get(m["neg_target"])
        for a, b in m["edges"]:  # every fact is in the question
            fact = f"{names[a]} is a {names[b]}." if names[a] in PERSONS else f"Every {names[a]} is a {names[b]}."
            assert fact in t.question
        proof = [m["root"], *[names.index(s.split()[-1].rstrip(".")) for s in t.steps]]
        assert all([a, b] in m["edges"] for a, b in zip(proof, proof[1:]))
        assert t.answer == f"{names[m['root']]} is a {names[m['target']]}."
        assert t.question.endswith("?") and names[m["neg_target"]] in t.question.split("Is ")[-1]
        assert t.question not in valid
        assert t.answer_type == "exact"


def test_multiplication_steps_add_up():
    for t in generate_multiplication(50, digits="3x4", seed=1):
        a, b = t.meta["a"], t.meta["b"]
        assert digits_value(t.answer) == a * b and len(t.steps) == 4
        running = 0
        for i, step in enumerate(t.steps):
            partial, _, rest = step.partition(" + ")
            before, _, total = rest.partition(" ( ")
            assert digits_value(partial) == a * int(str(b)[::-1][i]) * 10 ** i
            assert digits_value(before) == running
            running = digits_value(total.rstrip(" )"))
        assert running == a * b
    with pytest.raises(ConfigError, match="MxN"):
        generate_multiplication(3, digits="44")


def test_coconut_json_round_trips_and_needs_steps(tmp_path):
    items = generate_prosqa(5, seed=0)
    path = write_coconut_json(tmp_path / "train.json", items)
    back = load_task_file(path)
    assert [(t.question, t.steps, t.answer) for t in back] == [(t.question, t.steps, t.answer) for t in items]
    assert back[0].meta["edges"] == items[0].meta["edges"]
    (tmp_path / "bad.json").write_text(json.dumps([{"question": "q?", "answer": "4"}]))
    with pytest.raises(ConfigError, match="no 'steps'"):
        load_task_file(tmp_path / "bad.json")
    assert len(load_task_file(vecgen.benchmarks_data.prosqa.shipped_prosqa_path())) == 300


# -- runs -----------------------------------------------------------------------------------------------------------

TINY = dict(train_size=24, epochs=3, epochs_per_stage=1, stages=2, layers=1, hidden=16, heads=2, batch_size=8,
            lr=3e-3, dev_limit=4)


@pytest.fixture()
def dev_file(tmp_path):
    return str(write_coconut_json(tmp_path / "dev.json", generate_prosqa(6, seed=99, prefix="dev")))


def _run(tmp_path, name, dev_file, *, on_epoch=None, resume=False, **over):
    s = TrainSettings.create(**{**TINY, "dev_data": dev_file, **over})
    with RunWriter("train", name=name, root=tmp_path / "runs", config=s, resumable=True) as w:
        return train(s, w, show_progress=False, on_epoch=on_epoch, resume=resume), w.dir


@pytest.mark.parametrize("method", ["nocot", "cot", "coconut", "pause"])
def test_every_method_trains_saves_and_answers_through_the_engine(tmp_path, dev_file, method):
    result, run = _run(tmp_path, method, dev_file, method=method)
    assert len(result.history) == 3 and result.dev["n"] == 6
    assert [h.stage for h in result.history] == ([0, 1, 2] if method in ("coconut", "pause") else [0, 0, 0])
    assert (run / "model" / "vecgen_reasoning.json").is_file() and (run / "history.jsonl").is_file()
    lm = vecgen.load(str(run))
    assert lm.reasoning is not None and lm.reasoning.method == method
    expected = {"nocot": 0, "cot": 0, "coconut": 2, "pause": 2}[method]
    assert lm.reasoning.n_thoughts == expected
    own = lm.reasoning.thinking_method
    out = lm.think([load_task_file(dev_file)[0]], method=own, max_think_tokens=40, max_answer_tokens=12)[0]
    if method == "coconut":
        assert out.think_tokens == 2 and out.modes == ["latent", "latent"] and out.forced == "<eot>"
    if method == "pause":
        assert out.forced.split() == ["<pause>", "<pause>", "<eot>"] and out.stop_reason == "thoughts"
    if method == "nocot":
        assert out.think_tokens == 0


def test_coconut_at_inference_thinks_as_trained(tmp_path, dev_file):
    """The engine's greedy answer of a coconut checkpoint equals greedy decoding with the training forward."""
    _, run = _run(tmp_path, "c", dev_file, method="coconut")
    lm = vecgen.load(str(run))
    task = load_task_file(dev_file)[1]
    fmt = lm.reasoning
    out = lm.think([task], method="coconut", max_answer_tokens=10)[0]
    tok = lm.tokenizer
    enc = encode_task(tok, task, fmt)
    ids = MarkerIds(*(tok.convert_tokens_to_ids(t) for t in (fmt.bot, fmt.eot, fmt.pause)), tok.eos_token_id,
                    tok.pad_token_id)
    rest = [ids.eot]
    for _ in range(10):
        ex = Example((*enc.question, ids.bot), fmt.n_thoughts, tuple(rest), (True,) * len(rest))
        nxt = int(thought_logits(lm.model, collate([ex], ids), continuous=True)[0, -1].argmax())
        rest.append(nxt)
        if nxt == ids.eos:
            break
    assert out.answer_ids == rest[1:]


def test_resume_after_an_interruption_is_bit_identical(tmp_path, dev_file):
    whole, run_a = _run(tmp_path, "whole", dev_file, method="coconut", stage_mix=0.5)

    def stop(rec):
        if rec.epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, "cut", dev_file, method="coconut", stage_mix=0.5, on_epoch=stop)
    resumed, run_b = _run(tmp_path, "cut", dev_file, method="coconut", stage_mix=0.5, resume=True)
    assert [h.loss for h in resumed.history] == [h.loss for h in whole.history]
    from safetensors.torch import load_file

    a, b = load_file(run_a / "model" / "model.safetensors"), load_file(run_b / "model" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_other_settings(tmp_path, dev_file):
    _run(tmp_path, "r", dev_file, method="cot", epochs=1)
    with pytest.raises(ConfigError, match="lr was 0.003"):
        _run(tmp_path, "r", dev_file, method="cot", epochs=2, lr=1e-3, resume=True)


# -- bad input ------------------------------------------------------------------------------------------------------

def test_bad_training_input_is_one_line_before_any_load(tmp_path, monkeypatch, capsys):
    never_load(monkeypatch)
    nosteps = tmp_path / "nosteps.jsonl"
    nosteps.write_text('{"question": "2+2?", "answer": "4"}\n')
    short = write_coconut_json(tmp_path / "short.json", generate_prosqa(4, seed=0))
    cases = [
        (["--method", "codi"], "unknown --method 'codi' to train; choose from: nocot, cot, coconut, pause"),
        (["--train-data", str(nosteps), "--method", "cot"], "has no 'steps'"),
        (["--train-data", str(short), "--stages", "9", "--no-pad-to-last-stage", "--dev-data", str(short)],
         "stages=9 is more than the longest chain"),
        (["--c", "0"], "--c"),
        (["--hidden", "30", "--heads", "4"], "not a multiple"),
        (["--train-data", "multiplication:4y4"], "MxN"),
        (["--resume"], "--resume needs --run-name"),
    ]
    for args, fragment in cases:
        code, _, err = cli(["train", "--out-dir", str(tmp_path / "runs"), *args], capsys)
        one_line_error(code, err, fragment)


def test_think_with_coconut_needs_a_trained_model_or_n_thoughts(tmp_path, dev_file):
    _, run = _run(tmp_path, "n", dev_file, method="nocot", epochs=1)
    lm = vecgen.load(str(run))
    lm.reasoning = None
    with pytest.raises(ConfigError, match="n_thoughts"):
        lm.think(["Is Tom a wumpus or a rempus?"], method="coconut")
    assert lm.think(["Is Tom a wumpus?"], method="coconut", n_thoughts=3, max_answer_tokens=4)[0].think_tokens == 3


def test_vecgen_train_command_writes_a_run_that_vecgen_think_answers_from(tmp_path, dev_file, capsys):
    flags = ["--train-size", "16", "--epochs", "2", "--epochs-per-stage", "1", "--stages", "1", "--layers", "1",
             "--hidden", "16", "--heads", "2", "--batch-size", "8", "--dev-data", dev_file, "--dev-limit", "2"]
    code, out, err = cli(["train", "--method", "pause", "--out-dir", str(tmp_path), "--run-name", "p", *flags], capsys)
    assert code == 0, err
    assert "dev accuracy" in out and "--methods pause" in " ".join(out.split())
    results = json.loads((tmp_path / "p" / "results.json").read_text())
    assert results["config"]["method"] == "pause" and len(results["results"]["history"]) == 2
    assert (tmp_path / "p" / "train.png").is_file() and "Dev accuracy" in (tmp_path / "p" / "report.md").read_text()
    code, out, err = cli(["think", "--model", str(tmp_path / "p"), "--benchmark", dev_file, "--methods", "pause",
                          "--out-dir", str(tmp_path), "--run-name", "t"], capsys)
    assert code == 0, err
    rec = json.loads((tmp_path / "t" / "records.jsonl").read_text().splitlines()[0])
    assert rec["method"] == "pause" and rec["stop_reason"] == "thoughts"
    # a finished run is not started again by accident
    code, _, err = cli(["train", "--method", "pause", "--out-dir", str(tmp_path), "--run-name", "p", *flags], capsys)
    one_line_error(code, err, "already holds a run")


def test_thought_readout_measures_the_frontier(tmp_path, dev_file):
    from vecgen.training.readout import thought_readout

    _, run = _run(tmp_path, "lens", dev_file, method="coconut")
    lm = vecgen.load(str(run))
    tasks = load_task_file(dev_file)
    r = thought_readout(lm, tasks, n_thoughts=3)
    assert r.n_items == 6 and len(r.frontier_mass) == 3
    for j in range(3):
        assert 0.0 <= r.frontier_mass[j] <= r.reachable_mass[j] + 1e-6 <= 1.0 + 1e-6
        assert 0.0 <= r.top1_on_proof[j] <= r.top1_frontier[j] + 1e-9 <= 1.0  # the proof's node is on the frontier
        assert r.frontier_nodes_above[j] <= r.frontier_size[j]
        assert 0.0 <= r.frontier_chance[j] <= 1.0 and (r.frontier_size[j] == 0) == (r.frontier_chance[j] == 0)
    with pytest.raises(ConfigError, match="graphs"):
        thought_readout(lm, [vecgen.Task(id="x", question="q", answer="a", answer_type="exact")])


@pytest.mark.slow
@pytest.mark.parametrize("family", ["gpt2", "qwen2"])
def test_a_pretrained_model_trains_with_its_markers_added(tmp_path, dev_file, family):
    """Any Hugging Face causal LM: the markers join its tokenizer, coconut trains through its thoughts, and the saved
    checkpoint answers through the engine with its own method."""
    from helpers.models import save_tiny_model

    base = save_tiny_model(tmp_path / "base", family)
    result = vecgen.train("coconut", run_name="hf", out_dir=str(tmp_path), model=str(base), dev_data=dev_file,
                          train_size=8, epochs=2, epochs_per_stage=1, stages=1, batch_size=4, dev_limit=2,
                          show_progress=False)
    assert len(result.history) == 2 and all(h.loss > 0 for h in result.history)
    lm = vecgen.load(result.run_dir)
    vocab = lm.tokenizer.get_vocab()
    assert {"<bot>", "<eot>", "<pause>"} <= set(vocab) and lm.reasoning.n_thoughts == 1
    out = lm.think([load_task_file(dev_file)[0]], method="coconut", max_think_tokens=4, max_answer_tokens=4)[0]
    assert out.think_tokens == 1 and out.forced == "<eot>"


@pytest.mark.slow
def test_two_gloo_processes_train_like_one(tmp_path, dev_file):
    """torchrun with 2 processes (gloo) at the same global batch: the same per-epoch losses as one process, within
    float32 summation-order differences (each process sums its own share of the token losses, then gloo adds them)."""
    import os
    import subprocess
    import sys

    flags = ["train", "--method", "coconut", "--train-size", "24", "--epochs", "3", "--epochs-per-stage", "1",
             "--stages", "2", "--layers", "1", "--hidden", "16", "--heads", "2", "--batch-size", "8", "--lr", "3e-3",
             "--stage-mix", "0.5", "--dev-data", dev_file, "--dev-limit", "2", "--out-dir", str(tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    one = subprocess.run([sys.executable, "-m", "vecgen", *flags, "--run-name", "one"], capture_output=True,
                         text=True, timeout=600, env=env)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "vecgen", *flags, "--run-name", "two"], capture_output=True, text=True, timeout=600,
                         env=env)
    assert two.returncode == 0, two.stderr[-2000:]
    h1 = [json.loads(x) for x in (tmp_path / "one" / "history.jsonl").read_text().splitlines()]
    h2 = [json.loads(x) for x in (tmp_path / "two" / "history.jsonl").read_text().splitlines()]
    assert [h["stage"] for h in h1] == [h["stage"] for h in h2] == [0, 1, 2]
    for a, b in zip(h1, h2):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4), (a, b)
    assert (tmp_path / "two" / "model" / "vecgen_reasoning.json").is_file()


def test_ctrl_c_keeps_the_last_checkpoint_and_says_how_to_resume(tmp_path, dev_file, monkeypatch, capsys):
    import vecgen.training.loop as loop

    real, calls = loop.evaluate_dev, []

    def interrupt_second_epoch(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(loop, "evaluate_dev", interrupt_second_epoch)
    flags = ["--method", "cot", "--train-size", "16", "--epochs", "3", "--layers", "1", "--hidden", "16", "--heads",
             "2", "--batch-size", "8", "--dev-data", dev_file, "--dev-limit", "2", "--out-dir", str(tmp_path),
             "--run-name", "ctrl"]
    code, _, err = cli(["train", *flags], capsys)
    assert code == 130 and "Traceback" not in err
    assert "vecgen train --resume --run-name ctrl" in " ".join(err.split())
    assert [p.name for p in (tmp_path / "ctrl" / "checkpoints").iterdir()] == ["epoch-0000"]
    monkeypatch.setattr(loop, "evaluate_dev", real)
    code, _, err = cli(["train", *flags, "--resume"], capsys)
    assert code == 0, err
    assert len((tmp_path / "ctrl" / "history.jsonl").read_text().splitlines()) == 3
