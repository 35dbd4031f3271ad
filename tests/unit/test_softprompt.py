"""Soft prompts on tiny random models: placement equivalence with transformers and PEFT, training,
exact resume, the arena and its checkers, bad input."""

import copy
import dataclasses
import json
import subprocess
import sys

import pytest

from helpers.cli import cli, cli_subprocess, one_line_error
import torch

from vecgen.config import SamplingConfig
from vecgen.decoding import build_batch, generate
from vecgen.errors import ConfigError
from vecgen.models import format_prompt, load_model
from vecgen.reports import RunWriter
from vecgen.softprompt import (
    FAMILIES,
    SoftPrompt,
    TrainConfig,
    answer_loss,
    describe_vectors,
    evaluate_checkpoint,
    heldout_set,
    load_checkpoint,
    prompt_parts,
    resume_config,
    target_ids,
    train,
    training_step,
)
from vecgen.benchmarks_data import check_answer as _check
from vecgen.benchmarks_data.arena import training_item, training_schedule


def check_answer(item, response):
    return _check(item, response)
from vecgen.checkpoints import check_model_identity, model_identity
from vecgen.softprompt.prompt import DEFAULT_SYSTEM

QUESTION = "What is 2 + 3?\nAnswer with only the final number."


def _logits(lm, segments):
    batch = build_batch(lm, [segments])
    with torch.no_grad():
        return lm.model(inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask).logits  # (1, T, V)


# ---------------------------------------------------------------- placement and PEFT


@pytest.mark.parametrize("chat", [True, False])
def test_prefix_placement_equals_base_concat_and_peft(tiny_lm, chat):
    lm = tiny_lm("qwen2")
    soft = SoftPrompt.create(lm, 4, "random", seed=1)
    parts = prompt_parts(lm, QUESTION, chat=chat)
    ours = _logits(lm, soft.segments(parts, "prefix"))  # (1, 4 + T, V)

    embeds = lm.embed(torch.tensor([parts.ids]))  # (1, T, d)
    with torch.no_grad():
        base = lm.model(inputs_embeds=torch.cat([soft.vectors[None], embeds], dim=1)).logits
    torch.testing.assert_close(ours, base)

    peft_model = soft.to_peft(copy.deepcopy(lm.model))
    ids = torch.tensor([parts.ids])
    with torch.no_grad():
        peft_logits = peft_model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
    assert peft_logits.shape == ours.shape
    torch.testing.assert_close(ours, peft_logits)
    torch.testing.assert_close(SoftPrompt.from_peft(peft_model).vectors, soft.vectors)

    # the decode loop's prefill (what generation uses) sees the same last-position logits
    state = lm.backend.prefill(build_batch(lm, [soft.segments(parts, "prefix")]))
    torch.testing.assert_close(state.logits, peft_logits[:, -1].float())


def test_prefix_greedy_generation_matches_peft_token_for_token(tiny_lm):
    lm = tiny_lm("qwen3")
    soft = SoftPrompt.create(lm, 3, "vocab", seed=2)
    parts = prompt_parts(lm, QUESTION, chat=True)
    ours = generate(lm, [soft.segments(parts, "prefix")], sampling=SamplingConfig(max_new_tokens=8), stop_ids=[])
    peft_model = soft.to_peft(copy.deepcopy(lm.model))
    ids = torch.tensor([parts.ids])
    with torch.no_grad():
        ref = peft_model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                  max_new_tokens=8, min_new_tokens=8, pad_token_id=lm.tokenizer.pad_token_id)
    assert ours.token_ids(0) == ref[0, -8:].tolist()


def test_text_init_equals_peft_text_init(tiny_lm, tiny_model_dir):
    from peft import PromptEmbedding, PromptTuningConfig, TaskType

    lm = tiny_lm("qwen2")
    for n, text in [(8, "Hello world"), (3, "Solve the problem and answer with only the final answer.")]:
        ours = SoftPrompt.create(lm, n, "text", text=text)
        cfg = PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=n, token_dim=lm.hidden_size,
                                 num_transformer_submodules=1, prompt_tuning_init="TEXT", prompt_tuning_init_text=text,
                                 tokenizer_name_or_path=str(tiny_model_dir("qwen2")))
        theirs = PromptEmbedding(cfg, lm.model.get_input_embeddings()).embedding.weight
        torch.testing.assert_close(ours.vectors, theirs, rtol=0, atol=0)


def test_vocab_init_uses_real_token_rows_and_the_seed(tiny_lm):
    lm = tiny_lm("qwen2")
    assert lm.n_real_vocab < lm.vocab_rows  # the tiny model has padding rows, like Qwen
    a = SoftPrompt.create(lm, 16, "vocab", seed=5).vectors
    b = SoftPrompt.create(lm, 16, "vocab", seed=5).vectors
    c = SoftPrompt.create(lm, 16, "vocab", seed=6).vectors
    assert torch.equal(a, b) and not torch.equal(a, c)
    E = lm.embedding
    for v in a:
        rows = (E == v).all(-1).nonzero().flatten()
        assert len(rows) >= 1 and int(rows.min()) < lm.n_real_vocab


def test_random_init_is_at_the_embedding_scale(tiny_lm):
    lm = tiny_lm("qwen2")
    v = SoftPrompt.create(lm, 64, "random", seed=0).vectors
    mean_norm = lm.embedding[: lm.n_real_vocab].norm(dim=-1).mean()
    ratio = float(v.detach().norm(dim=-1).mean() / mean_norm)
    assert 0.8 < ratio < 1.25, ratio


def test_in_turn_placement_sits_inside_the_user_turn(tiny_lm):
    lm = tiny_lm("qwen2")
    parts = prompt_parts(lm, QUESTION, chat=True)
    head = lm.tokenizer.decode(parts.head)
    assert head.endswith("<|im_start|>user\n") and DEFAULT_SYSTEM in head
    assert lm.tokenizer.decode(parts.tail).startswith("What is 2 + 3?")
    # without a soft prompt the tokens are exactly the chat-formatted prompt
    assert parts.ids == lm.encode(format_prompt(lm.tokenizer, QUESTION, chat=True, system=DEFAULT_SYSTEM))
    soft = SoftPrompt.create(lm, 4, "random", seed=3)
    batch = build_batch(lm, [soft.segments(parts, "in-turn")])
    x = batch.inputs_embeds[0]  # (T + 4, d)
    h = len(parts.head)
    torch.testing.assert_close(x[:h], lm.embed(torch.tensor([parts.head]))[0])
    torch.testing.assert_close(x[h : h + 4], soft.vectors)
    torch.testing.assert_close(x[h + 4 :], lm.embed(torch.tensor([parts.tail]))[0])


def test_plain_prompt_and_targets(tiny_lm):
    lm = tiny_lm("qwen2")
    parts = prompt_parts(lm, "What is 2 + 3?", chat=False)
    assert lm.tokenizer.decode(parts.ids) == "Question: What is 2 + 3?\nAnswer:"
    eos = lm.tokenizer.eos_token_id
    assert target_ids(lm, "5", chat=False) == lm.encode(" 5") + [eos]
    assert target_ids(lm, "5", chat=True) == lm.encode("5") + [eos]
    assert eos in lm.stop_token_ids()


# ---------------------------------------------------------------- training


def test_answer_loss_covers_only_the_answer_tokens(tiny_lm):
    lm = tiny_lm("qwen2")
    soft = SoftPrompt.create(lm, 4, "random", seed=0)
    parts = prompt_parts(lm, QUESTION, chat=True)
    target = target_ids(lm, "5", chat=True)
    with torch.no_grad():
        ours = answer_loss(lm, soft.vectors, parts, target, "in-turn")
        full = _logits(lm, soft.segments(parts, "in-turn") + [target])[0]  # (T, V)
    k = len(target)
    manual = torch.nn.functional.cross_entropy(full[-k - 1 : -1], torch.tensor(target))
    torch.testing.assert_close(ours, manual)


def test_gradients_reach_only_the_soft_prompt(tiny_lm):
    lm0 = tiny_lm("qwen2")
    model = copy.deepcopy(lm0.model).requires_grad_(True)  # even a model with trainable weights is frozen
    lm = lm0.with_model(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    soft = SoftPrompt.create(lm, 4, "text")
    start = soft.vectors.detach().clone()
    opt = torch.optim.Adam([soft.vectors], lr=1e-2)
    parts = prompt_parts(lm, QUESTION, chat=True)
    training_step(lm, soft, opt, parts, target_ids(lm, "5", chat=True), "prefix")
    assert soft.vectors.grad is not None and float(soft.vectors.grad.abs().sum()) > 0
    assert all(p.grad is None and not p.requires_grad for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not torch.equal(start, soft.vectors.detach())


@pytest.mark.parametrize("placement", ["prefix", "in-turn"])
def test_a_few_steps_reduce_the_loss_on_one_example(tiny_lm, placement):
    lm = tiny_lm("qwen2")
    soft = SoftPrompt.create(lm, 4, "text")
    opt = torch.optim.Adam([soft.vectors], lr=1e-2)
    parts = prompt_parts(lm, QUESTION, chat=True)
    target = target_ids(lm, "5", chat=True)
    losses = [training_step(lm, soft, opt, parts, target, placement) for _ in range(6)]
    with torch.no_grad():
        after = float(answer_loss(lm, soft.vectors, parts, target, placement))
    assert after < losses[0] - 0.05, (losses, after)


def _config(tmp_model, **kw):
    base = dict(model=str(tmp_model), episodes=4, eval_interval=2, eval_size=2, max_new_tokens=1, soft_tokens=3,
                lr=1e-2, families=["arithmetic", "causal", "comparison"])
    return TrainConfig.create(**{**base, **kw})


def test_resume_continues_with_identical_losses(tiny_lm, tiny_model_dir, tmp_path):
    lm = tiny_lm("qwen2")
    cfg = _config(tiny_model_dir("qwen2"))
    full = train(lm, cfg, RunWriter("softprompt", name="full", root=tmp_path, config=cfg), show_progress=False)

    def interrupt(episode, record):
        if episode == 3:
            raise KeyboardInterrupt

    writer = RunWriter("softprompt", name="cut", root=tmp_path, config=cfg)
    with pytest.raises(KeyboardInterrupt):
        train(lm, cfg, writer, show_progress=False, on_episode=interrupt)
    ckpt = load_checkpoint(writer.path("checkpoint.pt"))  # intact, from the evaluation at episode 2
    assert ckpt["episode"] == 2 and len(ckpt["log"]) == 2
    resumed = train(lm, resume_config(ckpt), RunWriter("softprompt", name="cut", root=tmp_path, config=cfg),
                    resume=True, show_progress=False)
    losses = [r["loss"] for r in full["curves"]["train"]]
    assert [r["loss"] for r in resumed["curves"]["train"]] == losses
    assert len(set(losses)) > 1
    assert [e["accuracy"] for e in resumed["curves"]["eval"]] == [e["accuracy"] for e in full["curves"]["eval"]]
    a = load_checkpoint(tmp_path / "full" / "checkpoint.pt")["soft_prompt"]
    b = load_checkpoint(writer.path("checkpoint.pt"))["soft_prompt"]
    assert torch.equal(a, b)
    episodes = [json.loads(line)["episode"] for line in writer.path("records.jsonl").read_text().splitlines()]
    assert episodes == [1, 2, 3, 4]
    results = json.loads(writer.path("results.json").read_text())
    assert results["results"]["status"] == "finished" and results["results"]["baseline"]["n"] == 2
    assert writer.path("learning_curves.png").stat().st_size > 1000
    assert sorted(p.name for p in writer.path("checkpoints").iterdir()) == ["ep00000.pt", "ep00002.pt", "ep00004.pt"]


def test_resume_keeps_the_configuration_and_may_extend(tiny_model_dir):
    ckpt = {"config": _config(tiny_model_dir("qwen2")).model_dump(mode="json"), "episode": 3}
    assert resume_config(ckpt, episodes=9).episodes == 9
    assert resume_config(ckpt).lr == 1e-2
    with pytest.raises(ConfigError, match="other settings \\(lr: 0.01 → 0.5\\)"):
        resume_config(ckpt, lr=0.5)
    ckpt = {"config": _config(tiny_model_dir("qwen2"), eval_interval=1).model_dump(mode="json"), "episode": 3}
    with pytest.raises(ConfigError, match="fewer than the 3 already done"):
        resume_config(ckpt, episodes=2)


def test_fresh_run_refuses_a_folder_with_a_checkpoint_and_resume_needs_one(tiny_lm, tiny_model_dir, tmp_path):
    lm = tiny_lm("qwen2")
    cfg = _config(tiny_model_dir("qwen2"), episodes=1, eval_interval=1, eval_size=1, max_new_tokens=1)
    with pytest.raises(ConfigError, match="checkpoint not found"):
        train(lm, cfg, RunWriter("softprompt", name="r", root=tmp_path), resume=True, show_progress=False)
    train(lm, cfg, RunWriter("softprompt", name="r", root=tmp_path), show_progress=False)
    with pytest.raises(ConfigError, match="already holds a run"):
        train(lm, cfg, RunWriter("softprompt", name="r", root=tmp_path), show_progress=False)


def test_checkpoint_from_another_model_or_embedding_size_is_refused(tiny_lm, tmp_path):
    from helpers.models import save_tiny_model

    lm = tiny_lm("qwen2")
    ident = model_identity(lm)
    check_model_identity(ident, lm)  # the same model passes
    with pytest.raises(ConfigError, match="width 896 .* has embedding size 64"):
        check_model_identity({**ident, "hidden_size": 896, "name": "big"}, lm)
    with pytest.raises(ConfigError, match="model_type differs"):
        check_model_identity(model_identity(tiny_lm("qwen3")), lm)
    other = load_model(str(save_tiny_model(tmp_path / "other", "qwen2", seed=1)), device="cpu", dtype="float32",
                       show_progress=False)
    with pytest.raises(ConfigError, match="embedding matrix differs"):
        check_model_identity(ident, other)
    ckpt = {"model": ident, "config": {}, "soft_prompt": torch.zeros(2, 64), "episode": 0}
    with pytest.raises(ConfigError, match="embedding matrix differs"):
        evaluate_checkpoint(other, ckpt, show_progress=False)


# ---------------------------------------------------------------- arena


def test_arena_is_deterministic_for_a_seed():
    families = list(FAMILIES)
    a = heldout_set(7, 24, families, 2)
    b = heldout_set(7, 24, families, 2)
    c = heldout_set(8, 24, families, 2)
    assert [(i.question, i.answer) for i in a] == [(i.question, i.answer) for i in b]
    assert [i.question for i in a] != [i.question for i in c]
    assert [i.meta["family"] for i in a[:6]] == families  # round-robin
    s = training_schedule(7, 40, families, a, 2)
    assert s == training_schedule(7, 40, families, b, 2)
    assert training_schedule(7, 15, families, a, 2) == s[:15]  # prefix-stable
    for difficulty in (1, 2, 3):
        for name in families:
            x = training_item(7, name, 3, difficulty)
            assert x == training_item(7, name, 3, difficulty)


@pytest.mark.parametrize("difficulty", [1, 2, 3])
def test_heldout_set_is_disjoint_from_training_items(difficulty):
    families = list(FAMILIES)
    heldout = heldout_set(0, 60, families, difficulty)
    assert len({i.question for i in heldout}) == 60
    questions = {i.question for i in heldout}
    for family, index in training_schedule(0, 200, families, heldout, difficulty):
        assert training_item(0, family, index, difficulty).question not in questions


def _wrong(item):
    if item.answer_type == "numeric":
        return str(int(float(item.answer)) + 1)
    if item.answer_type == "yesno":
        return "No" if item.answer == "Yes" else "Yes"
    return next(c for c in item.choices if c != item.answer)


@pytest.mark.parametrize("difficulty", [1, 2, 3])
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_checker_accepts_the_reference_and_rejects_a_wrong_answer(family, difficulty):
    for index in range(8):
        item = training_item(3, family, index, difficulty)
        for response in (item.answer, f"The answer is {item.answer}.", f" {item.answer}\n", f"**{item.answer}**"):
            assert check_answer(item, response).correct, (item.question, item.answer, response)
        wrong = _wrong(item)
        for response in (wrong, f"The answer is {wrong}.", "I don't know", ""):
            assert not check_answer(item, response).correct, (item.question, item.answer, response)


def test_number_checker_is_tolerant_of_formatting():
    item = training_item(0, "math_word", 0, 1)
    item = dataclasses.replace(item, answer="42")
    for ok in ("42", "42.0", "The answer is 42.", "$42$", "\\boxed{42}", "= 42", "42 apples",
               "42.0\nTo solve this problem, we add 40 and 2.", "40 + 2 = 42", "The answer is:\n\n42",
               "First 40, then 2 more.\nSo the answer is 42.", "42\n```python\nx = 40 + 2\nprint(x)\n```"):
        assert check_answer(item, ok).correct, ok
    for bad in ("41", "4.2", "420", "The answer is 24.", "24\nTo check: 40 + 2 = 42", "x"):
        assert not check_answer(item, bad).correct, bad
    assert check_answer(item, "The answer is 42.0").pred == "42"


def test_yes_no_and_choice_checkers():
    yes = training_item(0, "causal", 0, 1)
    yes = dataclasses.replace(yes, answer="Yes")
    assert check_answer(yes, "yes, it does").correct
    assert check_answer(yes, "Yes.\nExplanation: no rule stops it.").correct
    assert not check_answer(yes, "No\nExplanation: yes, the alarm rings, but").correct
    assert not check_answer(yes, "No.").correct
    assert not check_answer(yes, "Nobody knows").correct  # "no" must be a word
    cmp = training_item(0, "comparison", 0, 2)
    other = next(c for c in cmp.choices if c != cmp.answer)
    assert check_answer(cmp, f"{cmp.answer} is {'larger' if 'larger' in cmp.question else 'smaller'}").correct
    assert check_answer(cmp, f"**{cmp.letter}**").correct and check_answer(cmp, f"({cmp.letter}) {cmp.answer}").correct
    assert not check_answer(cmp, f"{other}").correct


def test_a_plain_completion_response_is_cut_at_the_next_question():
    item = training_item(0, "arithmetic", 0, 1)
    assert check_answer(item, f" {item.answer}\nQuestion: What is 1 + 1?\nAnswer: 2").correct


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "values,fragment",
    [
        ({"lr": 0}, "lr=0: allowed range is > 0"),
        ({"lr": -1e-3}, "lr=-0.001"),
        ({"soft_tokens": 0}, "soft_tokens=0: allowed range is >= 1"),
        ({"episodes": 10, "eval_interval": 20}, "eval_interval=20 is larger than episodes=10"),
        ({"placement": "middle"}, "placement='middle': allowed range is prefix or in-turn"),
        ({"init": "zeros"}, "init='zeros'"),
        ({"difficulty": 4}, "difficulty=4"),
        ({"families": ["arithmetic", "chess"]}, "unknown task families ['chess']"),
    ],
)
def test_invalid_hyperparameters_are_one_clear_error(values, fragment):
    with pytest.raises(ConfigError) as err:
        TrainConfig.create(**values)
    assert fragment in str(err.value)


def test_describe_vectors_finds_a_tokens_own_row(tiny_lm):
    lm = tiny_lm("qwen2")
    ids = lm.encode(" Paris is")
    vectors = lm.embed(torch.tensor([ids]))[0]  # (2, d)
    rows = describe_vectors(lm, vectors, k=3)
    assert [r["nearest"][0]["id"] for r in rows] == ids
    assert all(abs(r["nearest"][0]["cosine"] - 1) < 1e-5 and r["manifold_distance"] < 1e-4 for r in rows)


def _cli(*args):
    """``vecgen *args`` through the one test runner (:func:`helpers.cli.cli`)."""
    return cli(args)

@pytest.mark.slow
def test_cli_train_eval_inspect_on_a_tiny_model(tiny_model_dir, tmp_path):
    model = str(tiny_model_dir("qwen2"))
    out = _cli("softprompt", "train", "-m", model, "--episodes", "2", "--eval-interval", "2", "--eval-size", "2",
               "-n", "1", "--soft-tokens", "2", "--placement", "in-turn", "--no-chat-template", "--run-name", "t",
               "--out-dir", str(tmp_path), "--device", "cpu")
    assert out.exit_code == 0, out.output
    run = tmp_path / "t"
    for name in ("results.json", "learning_curves.png", "report.md", "checkpoint.pt", "records.jsonl"):
        assert (run / name).is_file(), name
    config = json.loads((run / "results.json").read_text())["config"]
    assert config["placement"] == "in-turn" and config["chat_template"] is False and config["episodes"] == 2
    out = _cli("softprompt", "eval", "--checkpoint", str(run / "checkpoint.pt"), "--run-name", "e", "--out-dir",
               str(tmp_path), "--device", "cpu")
    assert out.exit_code == 0, out.output
    assert "no soft prompt" in out.output
    assert json.loads((tmp_path / "e" / "results.json").read_text())["results"]["baseline"]["n"] == 2
    out = _cli("softprompt", "inspect", "--checkpoint", str(run), "-k", "2", "--device", "cpu")
    assert out.exit_code == 0, out.output
    assert "nearest tokens" in out.output
    out = _cli("softprompt", "train", "-m", model, "--run-name", "t", "--out-dir", str(tmp_path), "--episodes", "2",
               "--eval-interval", "2")
    one_line_error(out.code, out.err, "already holds a run")


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--lr", "0"], "lr=0.0: allowed range is > 0"),
        (["--soft-tokens", "0"], "soft_tokens=0"),
        (["--episodes", "10", "--eval-interval", "20"], "eval_interval=20 is larger than episodes=10"),
        (["--resume"], "--resume needs --run-name"),
    ],
)
def test_cli_bad_hyperparameters(args, fragment):
    out = _cli("softprompt", "train", *args)
    one_line_error(out.code, out.err, fragment)


@pytest.mark.slow
def test_cli_bad_input_is_one_line_with_exit_status_2():
    out = cli_subprocess("softprompt", "train", "--lr", "-1")
    assert out.returncode == 2
    assert "lr=-1.0: allowed range is > 0" in out.stderr and "Traceback" not in out.stderr
