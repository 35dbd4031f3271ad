"""Property-based tests (Hypothesis) of the numerical core and of the readers of user files.

* the sampler and every mixing rule, over generated logits (large magnitudes, ``-inf`` masks, ties), temperatures
  (down to the smallest positive floats), ``top_k`` / ``top_p`` / ``min_p`` and noise settings: finite, normalised,
  truncation respected, greedy = argmax;
* the task-file readers over generated JSONL / BIG-bench records: a task list or one :class:`ConfigError` naming the
  line, never another exception;
* run-folder recovery over torn ``records.jsonl`` files: a resumed run ends with every item exactly once.

The number of examples is bounded and the seed fixed (the ``vecgen`` profile in ``tests/conftest.py``), so CI and
the fast tier see the same cases; ``HYPOTHESIS_PROFILE=dev`` explores more.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from vecgen.config import SamplingConfig
from vecgen.decoding.mixing import MIXING_RULES, Mixture, MixingConfig, get_rule, mix_embeddings, push_from_top1
from vecgen.decoding.sampling import MIN_TEMPERATURE, logits_to_probs, tempered_softmax
from vecgen.errors import ConfigError

# --------------------------------------------------------------------------------------------- strategies

#: Logit values a model can produce in float32, from tiny to huge, plus masked entries.
_VALUES = st.one_of(
    st.floats(-1e4, 1e4, width=32, allow_subnormal=True),
    st.floats(-3.0000000054977558e+38, 3.0000000054977558e+38, width=32),
    st.sampled_from([0.0, 1.0, -1.0, 1e-45, -1e-45]),
)


@st.composite
def logits_and_mask(draw, max_rows: int = 3, max_vocab: int = 40):
    """``(logits (B, V) float32, mask bool (V,) | int | None)`` with at least one allowed finite logit per row."""
    B = draw(st.integers(1, max_rows))
    V = draw(st.integers(2, max_vocab))
    rows = [draw(st.lists(_VALUES, min_size=V, max_size=V)) for _ in range(B)]
    logits = torch.tensor(rows, dtype=torch.float32)
    # some entries -inf (a model's own "never"), but every row keeps one finite allowed entry
    neg = torch.tensor(draw(st.lists(st.booleans(), min_size=B * V, max_size=B * V))).view(B, V)
    kind = draw(st.sampled_from(["none", "bool", "int"]))
    if kind == "bool":
        mask = torch.tensor(draw(st.lists(st.booleans(), min_size=V, max_size=V)))
        mask[draw(st.integers(0, V - 1))] = True
    elif kind == "int":
        mask = draw(st.integers(1, V))
    else:
        mask = None
    allowed = (torch.arange(V) < mask) if isinstance(mask, int) else (mask if mask is not None else torch.ones(V, dtype=torch.bool))
    keep = int(torch.nonzero(allowed)[0])
    neg[:, keep] = False
    logits = logits.masked_fill(neg & (torch.rand(B, V, generator=torch.Generator().manual_seed(V)) < 0.3),
                                float("-inf"))
    return logits, mask


#: Temperatures the options accept: 0 (greedy), the smallest positive floats, ordinary values, the maximum.
TEMPERATURES = st.one_of(
    st.just(0.0),
    st.sampled_from([5e-324, 1e-320, 1e-45, 1.4e-45, 1e-38, 1e-30, 2.0]),
    st.floats(min_value=0.0, max_value=2.0, allow_subnormal=True),
)


@st.composite
def sampling_configs(draw) -> SamplingConfig:
    return SamplingConfig(
        temperature=draw(TEMPERATURES),
        top_k=draw(st.integers(0, 50)),
        top_p=draw(st.one_of(st.just(1.0), st.sampled_from([1e-45, 1e-9]), st.floats(1e-6, 1.0))),
        min_p=draw(st.one_of(st.just(0.0), st.just(1.0), st.floats(0.0, 1.0))),
        seed=draw(st.integers(0, 2**31)),
    )


@st.composite
def mixing_configs(draw) -> MixingConfig:
    return MixingConfig(
        rule=draw(st.sampled_from(sorted(MIXING_RULES))),
        max_topk=draw(st.integers(1, 50)),
        beta=draw(st.one_of(st.just(0.0), st.floats(0.0, 1e6))),
        noise=draw(st.sampled_from(["none", "gumbel", "dirichlet"])),
        gumbel_tau=draw(st.one_of(st.sampled_from([5e-324, 1e-45, 1e-30]), st.floats(1e-6, 100.0))),
        dirichlet_alpha=draw(st.one_of(st.sampled_from([5e-324, 1e-300, 1e-45, 1e30, 1e300]),
                                       st.floats(1e-6, 1e6))),
        anti_collapse=draw(st.one_of(st.just(0.0), st.floats(0.0, 100.0))),
    )


def _allowed(mask, V: int) -> torch.Tensor:
    if mask is None:
        return torch.ones(V, dtype=torch.bool)
    if isinstance(mask, int):
        return torch.arange(V) < mask
    return mask


# ------------------------------------------------------------------------------------------------ sampler


@given(logits_and_mask(), sampling_configs())
def test_sampler_gives_finite_normalised_distributions_on_allowed_tokens(data, cfg):
    logits, mask = data
    probs, full = logits_to_probs(logits, cfg, mask, return_full=True)
    for p in (probs, full):
        assert torch.isfinite(p).all()
        assert (p >= 0).all()
        torch.testing.assert_close(p.sum(-1), torch.ones(p.shape[0]), rtol=0, atol=1e-5)  # float32 sums of <= 40 terms
    allowed = _allowed(mask, logits.shape[-1])[: probs.shape[-1]]
    assert (probs[:, ~allowed] == 0).all()
    # the tokens of largest logit have the largest probability, at every temperature (probabilities of logits closer
    # than float32 can tell apart at that temperature may tie, so the argmax of probs need not be the logits')
    z = logits[:, : probs.shape[-1]].masked_fill(~allowed, float("-inf"))
    top = z.argmax(-1, keepdim=True)
    assert torch.equal(full.gather(-1, top).squeeze(-1), full.amax(-1))
    if cfg.greedy:
        assert torch.equal(probs.gather(-1, top).squeeze(-1), torch.ones(probs.shape[0]))


@given(logits_and_mask(), sampling_configs())
def test_top_k_support_is_respected(data, cfg):
    logits, mask = data
    assume(cfg.top_k > 0 and not cfg.greedy)
    probs, full = logits_to_probs(logits, cfg, mask, return_full=True)
    for row in range(probs.shape[0]):
        kept = probs[row] > 0
        if int(kept.sum()) > cfg.top_k:  # only ties at the k-th value keep more (transformers' rule too)
            kth = torch.topk(full[row], cfg.top_k).values[-1]
            assert (full[row][kept] >= kth).all() and int((full[row] > kth).sum()) < cfg.top_k


@given(logits_and_mask(), st.sampled_from([0.0, 5e-324, 1e-45, 1e-38, 1e-30]))
def test_the_greedy_limit_is_the_argmax(data, temperature):
    """T = 0 is the one-hot at the first maximum; a tiny T leaves no mass on tokens whose logit is more than 40·T
    below the maximum (their exact probability is below e^-40), even for logits a subnormal apart."""
    logits, mask = data
    cfg = SamplingConfig(temperature=temperature)
    probs = logits_to_probs(logits, cfg, mask)
    allowed = _allowed(mask, logits.shape[-1])[: probs.shape[-1]]
    z = logits[:, : probs.shape[-1]].masked_fill(~allowed, float("-inf")).double()
    if temperature == 0.0:
        assert torch.equal(probs.argmax(-1), z.argmax(-1)) and int((probs > 0).sum()) == probs.shape[0]
        return
    far = (z.amax(-1, keepdim=True) - z) > 40 * temperature  # (B, V)
    assert float(probs.masked_fill(~far, 0).sum(-1).max()) <= 1e-6


@given(st.lists(st.floats(-3.0000000054977558e+38, 3.0000000054977558e+38, width=32), min_size=2, max_size=30),
       st.floats(min_value=0.0, max_value=1e6, allow_subnormal=True, exclude_min=True))
def test_tempered_softmax_is_finite_for_any_positive_temperature(values, temperature):
    p = tempered_softmax(torch.tensor([values]), temperature)
    assert torch.isfinite(p).all() and abs(float(p.sum()) - 1.0) < 1e-5
    if temperature <= MIN_TEMPERATURE:
        x = torch.tensor(values)
        assert float(p[0][x == x.max()].sum()) == pytest.approx(1.0, abs=1e-6)


# ------------------------------------------------------------------------------------------- mixing rules


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(logits_and_mask(), sampling_configs(), mixing_configs())
def test_every_mixing_rule_gives_finite_normalised_weights_and_vectors(data, sampling, mixing):
    logits, mask = data
    V = logits.shape[-1]
    rule = get_rule(mixing.rule)
    gen = torch.Generator().manual_seed(sampling.seed)
    m: Mixture = push_from_top1(rule(logits, sampling, mixing, mask, gen), mixing.anti_collapse)  # as the engine does
    w = m.weights
    assert torch.isfinite(w).all() and (w >= 0).all()
    torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[0]), rtol=0, atol=1e-5)
    ids, _ = m.top(w.shape[-1])
    allowed = _allowed(mask, V)
    assert allowed[m.token].all()  # the step's token is an allowed one
    assert allowed[ids[torch.gather(w, -1, torch.topk(w, w.shape[-1]).indices) > 0]].all()
    if mixing.rule == "soft":
        assert int((w > 0).sum(-1).max()) <= mixing.max_topk
    E = torch.randn(V, 8, generator=torch.Generator().manual_seed(1))
    hidden = torch.randn(logits.shape[0], 8) * 1e3 if m.hidden_scale is not None else None
    vec = mix_embeddings(E, m, hidden=hidden)
    assert vec.shape == (logits.shape[0], 8) and torch.isfinite(vec).all()
    if m.vector_weights is not None:  # SeLaR's push: coefficients still sum to 1, finite
        assert torch.isfinite(m.vector_weights).all()
        torch.testing.assert_close(m.vector_weights.sum(-1), torch.ones(w.shape[0]), rtol=0, atol=1e-4)


# ------------------------------------------------------------------------------------------- task readers

_JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30), st.floats(allow_nan=False),
                          st.text(max_size=12))
_JSON = st.recursive(_JSON_SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                            st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                     max_leaves=6)
_FIELDS = st.sampled_from(["question", "answer", "id", "answer_type", "choices", "aliases", "solution"])
_FIELD_VALUES = st.one_of(_JSON, st.sampled_from(["numeric", "choice", "yesno", "exact", "A", "yes", "12", "#### 4",
                                                  "", " ", "\ud800", "x\udcff"]),
                          st.lists(st.sampled_from(["a", "b", "c", "a", "\ud800"]), max_size=4))
_RECORDS = st.one_of(
    st.dictionaries(_FIELDS, _FIELD_VALUES, max_size=6),
    st.fixed_dictionaries({"question": st.text(min_size=1, max_size=20), "answer": st.integers(-999, 999)}),
    _JSON,
)
#: Raw lines: records, broken JSON, non-finite literals, lone surrogate escapes.
_LINES = st.one_of(
    _RECORDS.map(lambda r: json.dumps(r, ensure_ascii=True)),
    st.sampled_from(['{"question": "How many?", "answer": NaN}', '{"question": "q", "answer": Infinity}',
                     '{"question": "q", "answer": -Infinity}', '{"question": "q", "answer": 1e400}',
                     '{"question": "\\ud800?", "answer": 1}', '{"question": "q"', "", "   ", "[1, 2]", "nul"]),
    st.text(max_size=20).filter(lambda t: "\n" not in t and "\r" not in t),
)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    return path


def _one_line_config_error(exc: ConfigError, path: Path) -> None:
    msg = str(exc)
    assert "\n" not in msg and str(path) in msg, msg


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(_LINES, min_size=1, max_size=5))
def test_task_files_give_tasks_or_one_error_naming_the_line(tmp_path, lines):
    from vecgen.benchmarks_data.tasks import load_task_file

    path = _write(tmp_path / "tasks.jsonl", "\n".join(lines) + "\n")
    try:
        tasks = load_task_file(path)
    except ConfigError as exc:
        _one_line_config_error(exc, path)
        msg = str(exc)
        assert "line " in msg or "no tasks" in msg or "not UTF-8" in msg, msg
        return
    assert tasks
    for t in tasks:
        assert t.question.strip() and t.question.encode("utf-8")
        if t.answer_type == "numeric":
            assert all(math.isfinite(float(x)) for x in [t.answer] if x.lstrip("-").replace(".", "", 1).isdigit())


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.one_of(
    st.fixed_dictionaries({"examples": st.lists(st.one_of(
        st.fixed_dictionaries({"input": st.text(max_size=10), "target": st.one_of(_JSON, st.text(max_size=5))}),
        st.fixed_dictionaries({"input": st.text(max_size=10),
                               "target_scores": st.dictionaries(st.text(max_size=4), _JSON_SCALARS, max_size=4)}),
        _JSON), max_size=4)}, optional={"task_prefix": _JSON}),
    _JSON))
def test_bigbench_files_give_tasks_or_one_error_naming_the_example(tmp_path, data):
    from vecgen.benchmarks_data.tasks import load_task_file

    path = _write(tmp_path / "task.json", json.dumps(data))
    try:
        tasks = load_task_file(path)
    except ConfigError as exc:
        _one_line_config_error(exc, path)
        return
    assert tasks and all(t.question for t in tasks)


# ------------------------------------------------------------------------------------------- run folders


@pytest.fixture(scope="module")
def resumable_run(tiny_lm, tmp_path_factory):
    """A finished 5-item ``direct`` run of the tiny model: ``(lm, tasks, run folder, records.jsonl bytes)``."""
    import vecgen
    from vecgen.benchmarks_data import Task

    lm = tiny_lm("qwen2")
    tasks = [Task(id=f"t{i}", question=f"What is {i} + {i}?", answer=str(2 * i), answer_type="numeric")
             for i in range(5)]
    out = tmp_path_factory.mktemp("resume") / "run"
    vecgen.evaluate(lm, tasks, out=out, methods=["direct", "cot"], max_answer_tokens=3, max_think_tokens=3,
                    batch_size=2, progress=False)
    return lm, tasks, out, (out / "records.jsonl").read_bytes()


@pytest.mark.slow  # 12 resumed runs: about 10 s
@settings(max_examples=12, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
          deadline=None)
@given(cut=st.floats(0.0, 1.0), junk=st.sampled_from([b"", b"{\"met", b"\xff\xfe", b"{}\n{\"x\": 1"]))
def test_a_resumed_run_ends_with_every_item_exactly_once(resumable_run, tmp_path, cut, junk):
    import shutil

    import vecgen

    lm, tasks, src, data = resumable_run
    run = tmp_path / f"run-{abs(hash((cut, junk)))}"
    shutil.copytree(src, run)
    for f in ("results.json", "report.md"):
        (run / f).unlink(missing_ok=True)
    (run / "records.jsonl").write_bytes(data[: int(len(data) * cut)] + junk)  # a crash mid-append, or garbage
    ev = vecgen.evaluate(lm, tasks, out=run, methods=["direct", "cot"], max_answer_tokens=3, max_think_tokens=3,
                         batch_size=2, progress=False)
    keys = [(r.method, r.id) for r in ev.records]
    assert sorted(keys) == sorted((m, t.id) for m in ("direct", "cot") for t in tasks)
    on_disk = []
    for line in (run / "records.jsonl").read_text(errors="replace").splitlines():
        try:
            on_disk.append(json.loads(line))
        except ValueError:
            continue  # a line the crash or the garbage broke: skipped on resume, as read_jsonl skips it
    valid = [(r["method"], r["id"]) for r in on_disk if isinstance(r, dict) and "method" in r]
    assert sorted(set(valid)) == sorted(keys) and len(valid) == len(set(valid))
