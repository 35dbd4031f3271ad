"""The decode engine's policy contract (vecgen.decoding.engine) on a tiny random model."""

from __future__ import annotations

import pytest
import torch

from vecgen.backends import ContractError
from vecgen.config import SamplingConfig
from vecgen.decoding import Action, MixingConfig, Mode, Observation, generate, run

GREEDY = SamplingConfig()


class Script:
    """Feeds ``forced`` token ids first, then samples ``n`` steps greedily (fed), then stops."""

    def __init__(self, forced, n, mixing="onehot"):
        self.forced, self.n, self.tokens = list(forced), n, []
        self.mode = Mode("script", GREEDY, MixingConfig(rule=mixing))

    def next_input(self):
        if self.forced:
            return self.forced.pop(0)
        return self.mode if len(self.tokens) < self.n else None

    def observe(self, obs: Observation):
        self.tokens.append(obs.token)
        return Action.feed if len(self.tokens) < self.n else Action.done

    def max_inputs(self):
        return len(self.forced) + self.n


def test_forced_tokens_then_sampling_equal_the_longer_prompt(tiny_lm):
    """Forced ids are fed through the model's own input rows, one per step: forcing [a, b] and then
    decoding equals decoding after the prompt + [a, b]."""
    lm = tiny_lm("qwen3")
    prompt, extra = lm.encode("The capital of France"), lm.encode(" is Paris")
    p = Script(extra, 4)
    res = run(lm, [prompt], [p], record_top_k=3)
    ref = generate(lm, [prompt + extra], sampling=GREEDY, max_new_tokens=4, stop_ids=[])
    assert p.tokens == ref.token_ids(0)
    row = res.rows[0]
    assert row.forced == extra and row.phases == ["script"] * 4 and row.tokens.tolist() == p.tokens
    assert row.top_ids.shape == (4, 3) and row.fed == ["feed"] * 3 + ["done"]


def test_rows_with_different_plans_share_a_step(tiny_lm):
    """One row is forced while another samples in the same step; each equals its run alone."""
    lm = tiny_lm("qwen2")
    a, b = lm.encode("Hello there"), lm.encode("Once upon")
    pa, pb = Script([], 5), Script(lm.encode(" a time"), 3)
    run(lm, [a, b], [pa, pb])
    qa, qb = Script([], 5), Script(lm.encode(" a time"), 3)
    run(lm, [a], [qa])
    run(lm, [b], [qb])
    assert (pa.tokens, pb.tokens) == (qa.tokens, qb.tokens)


@pytest.mark.parametrize("bad", ["x", 1.5, True, Mode("again", GREEDY, MixingConfig(rule="onehot"))])
def test_policy_contract_violations_are_contract_errors(tiny_lm, bad):
    lm = tiny_lm("qwen2")

    class Broken(Script):
        def observe(self, obs):
            return Action.retry  # then next_input returns ``bad``

        def next_input(self):
            return self.mode if not self.tokens and not getattr(self, "asked", False) else bad

    class FirstThenBad(Broken):
        def next_input(self):
            if getattr(self, "asked", False):
                return bad
            self.asked = True
            return self.mode

    with pytest.raises(ContractError):
        run(lm, [lm.encode("Hi")], [FirstThenBad([], 2)])


def test_contract_errors_exit_1_with_a_message_that_says_it_is_a_bug(monkeypatch, capsys):
    import vecgen.cli as cli

    class Broken:
        def main(self, **kwargs):
            raise ContractError("backend returned 2 rows for 3")

    monkeypatch.setattr(cli, "command", Broken)
    with pytest.raises(SystemExit) as exit_info:
        cli.main([])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "internal error" in err and "a bug" in err and "backend returned 2 rows" in err and "Traceback" not in err


def test_wrong_number_of_policies_is_a_contract_error(tiny_lm):
    lm = tiny_lm("qwen2")
    with pytest.raises(ContractError, match="1 policies for 2 prompts"):
        run(lm, [[1, 2], [3]], [Script([], 1)])


def test_records_are_copied_once_and_typed(tiny_lm):
    """Per-row records: phases and actions as lists, tensors on the CPU with the stated shapes."""
    lm = tiny_lm("llama")
    ps = [Script([], 3, "soft"), Script([], 2, "soft")]
    res = run(lm, [lm.encode("Hi"), lm.encode("Good morning to")], ps, record_top_k=4, keep_vectors=True)
    for p, row in zip(ps, res.rows):
        n = len(p.tokens)
        assert row.tokens.device.type == "cpu" and row.tokens.tolist() == p.tokens
        assert row.mix_ids.shape == (n, 4) and row.mix_weights.shape == (n, 4) and row.vectors.shape == (n, lm.hidden_size)
        assert row.entropy.shape == (n,) and row.mix_entropy.shape == (n,)
        torch.testing.assert_close(row.mix_weights.sum(-1), torch.ones(n))  # greedy soft: one-hot weights


def test_feed_last_returns_the_state_after_the_last_vector(tiny_lm):
    """With ``feed_last`` every row's last vector is fed too; the returned state's logits are those of the
    next step, for every row (rows leave the batch only when they are done)."""
    lm = tiny_lm("qwen2")
    prompts = [lm.encode("Hello there"), lm.encode("Once upon a time")]
    res = generate(lm, prompts, sampling=GREEDY, max_new_tokens=3, stop_ids=[], feed_last=True)
    longer = generate(lm, prompts, sampling=GREEDY, max_new_tokens=4, stop_ids=[])
    assert res.state is not None and res.state.batch_size == 2
    assert res.state.logits.argmax(-1).tolist() == [longer.token_ids(i)[3] for i in range(2)]
    assert generate(lm, prompts, sampling=GREEDY, max_new_tokens=3, stop_ids=[]).state is None


@pytest.mark.parametrize("family", ["qwen2", "gemma3"])
def test_prompts_admitted_while_running_equal_their_runs_alone(tiny_lm, family):
    """``admit`` hands over prompts while the loop runs (one per call, as requests arrive); each row's greedy tokens
    and its record (handed to ``on_row_end`` as it ends) equal the prompt run alone, and the loop ends when nothing
    is live and nothing arrives."""
    lm = tiny_lm(family)
    texts = ["Hello there", "Once upon a time, far", "The capital", "A", "Numbers: 1, 2"]
    lengths = [6, 2, 9, 4, 3]
    arriving = [(lm.encode(t), Script([], n)) for t, n in zip(texts, lengths)]
    queue = list(arriving)
    ended = {}
    calls = []

    def admit(free):
        calls.append(free)
        return [queue.pop(0)] if queue else []

    res = run(lm, [], [], max_batch=2, admit=admit, record_top_k=2,
              on_row_end=lambda i, rec, err: ended.setdefault(i, (rec, err)))
    assert res.rows == [] and res.state is None and not queue
    assert sorted(ended) == list(range(5)) and all(err is None for _, err in ended.values())
    for i, (ids, policy) in enumerate(arriving):
        alone = Script([], lengths[i])
        ref = run(lm, [ids], [alone], record_top_k=2).rows[0]
        assert policy.tokens == alone.tokens
        rec = ended[i][0]
        assert rec.tokens.tolist() == alone.tokens and rec.fed == ref.fed
        torch.testing.assert_close(rec.top_probs, ref.top_probs)  # float32 kernels: batch vs alone
    assert max(calls) <= 2


def test_on_row_end_ends_a_nan_row_alone(tiny_lm, monkeypatch):
    """With ``on_row_end``, NaN logits in one row end that row with a NonFiniteError; the other row goes on and
    equals its run alone. Without it, the same NaN raises."""
    from vecgen.errors import NonFiniteError

    lm = tiny_lm("qwen2")
    a, b = lm.encode("Hello there"), lm.encode("Once upon")
    original = lm.backend.extend
    fired = []

    def extend(state, vectors, **kw):
        out = original(state, vectors, **kw)
        if out.logits.shape[0] == 2 and not fired:
            fired.append(1)
            out.logits[1] = float("nan")
        return out

    monkeypatch.setattr(lm.backend, "extend", extend)
    ended = {}
    pa, pb = Script([], 6), Script([], 6)
    run(lm, [a, b], [pa, pb], max_batch=2, on_row_end=lambda i, rec, err: ended.setdefault(i, err))
    assert ended[0] is None and isinstance(ended[1], NonFiniteError) and ended[1].row == 1
    monkeypatch.setattr(lm.backend, "extend", original)
    alone = Script([], 6)
    run(lm, [a], [alone])
    assert pa.tokens == alone.tokens and len(pb.tokens) == 1
    monkeypatch.setattr(lm.backend, "extend", extend)
    fired.clear()
    with pytest.raises(NonFiniteError):
        run(lm, [a, b], [Script([], 6), Script([], 6)])
