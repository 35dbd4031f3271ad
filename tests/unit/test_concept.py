"""The concept-token experiment on tiny random models: records, files, NaN handling, bad input."""

import json

import pytest
import torch

from vecgen.concept import ConceptConfig, ConceptRun, run_concept, write_outputs
from vecgen.config import SamplingConfig
from vecgen.decoding import MixingConfig, generate
from vecgen.errors import ConfigError, NoChatTemplateError, NonFiniteError
from vecgen.reports import RunWriter

SMALL = dict(prompts=["The capital of France is", "2 plus 2 equals"], n_values=[1, 2], translation_tokens=3)


def test_records_files_and_prefix_property(tiny_lm, tmp_path):
    lm = tiny_lm("qwen2")
    cfg = ConceptConfig.create(**SMALL, mixing=MixingConfig.create(rule="soft", noise="gumbel"))
    writer = RunWriter("concept", name="t", root=tmp_path, config=cfg)
    run = run_concept([lm], cfg, writer=writer)
    write_outputs(run, cfg, writer)
    lines = [json.loads(x) for x in (tmp_path / "t" / "records.jsonl").read_text().splitlines()]
    assert [(r["prompt_index"], r["n"]) for r in lines] == [(0, 1), (0, 2), (1, 1), (1, 2)]
    rec = lines[1]
    assert len(rec["vectors"]) == 2 and set(rec["translations"]) == {"nearest", "direct", "completion", "fewshot",
                                                                      "instruction", "patchscope", "selfie"}
    for t in rec["translations"].values():
        assert isinstance(t["token_ids"], list) and "raw_text" in t and "empty_reason" in t
    v = rec["vectors"][0]
    for key in ("top", "entropy", "nearest_cosine", "nearest_l2", "manifold_distance", "relative_manifold_distance",
                "norm", "distribution_entropy"):
        assert key in v
    results = json.loads((tmp_path / "t" / "results.json").read_text())
    assert results["status"] == "ok" and len(results["results"]["records"]) == 4
    assert results["config"]["mixing"]["noise"] == "gumbel" and "packages" in results["environment"]
    assert (tmp_path / "t" / "concept_weights.png").stat().st_size > 1000
    assert "## " in (tmp_path / "t" / "report.md").read_text()
    # The first N vectors of a max(N)-step run are the vectors of an N-step run (same seed, same draws).
    vectors = torch.load(tmp_path / "t" / "vectors.pt")[lm.name]["2 plus 2 equals"]  # (2, d)
    alone = generate(lm, [lm.encode("2 plus 2 equals")], sampling=cfg.sampling, mixing=cfg.mixing, max_new_tokens=1,
                     stop_ids=[], keep_vectors=True).vectors(0)
    torch.testing.assert_close(alone[0], vectors[0])


def test_first_concept_token_weights_match_the_softmax(tiny_lm):
    lm = tiny_lm("qwen3")
    cfg = ConceptConfig.create(prompts=["Hello there"], n_values=[1], methods=["nearest"], translation_tokens=1)
    rec = run_concept([lm], cfg).records[0]
    with torch.no_grad():
        logits = lm.model(torch.tensor([lm.encode("Hello there")])).logits[0, -1, : lm.n_real_vocab]
    p, ids = torch.topk(torch.softmax(logits, -1), 10)
    top = rec.vectors[0].top  # typed records: TokenWeight(id, token, value)
    assert [t.id for t in top] == ids.tolist()
    torch.testing.assert_close(torch.tensor([t.value for t in top]), p / p.sum(), rtol=1e-4, atol=1e-6)


def test_methods_default_skips_instruction_without_template_but_explicit_is_an_error(tiny_lm):
    lm = tiny_lm("gpt2")
    run = run_concept([lm], ConceptConfig.create(prompts=["Hi"], n_values=[1], translation_tokens=1))
    assert "instruction" not in run.records[0].translations and "no chat template" in run.notes[0]
    with pytest.raises(NoChatTemplateError, match="chat template"):
        run_concept([lm], ConceptConfig.create(prompts=["Hi"], n_values=[1], methods=["instruction"]))


class NaNAfter(torch.nn.Module):
    """Wraps a model; once a prefill of ``trigger`` ids is seen, the ``after``-th extend returns NaN logits."""

    def __init__(self, inner, trigger, after=2):
        super().__init__()
        self.inner, self.trigger, self.after, self.count = inner, trigger, after, None
        self.config, self.generation_config = inner.config, inner.generation_config

    def get_input_embeddings(self):
        return self.inner.get_input_embeddings()

    def forward(self, **kwargs):
        out = self.inner(**kwargs)
        ids = kwargs.get("input_ids")
        if ids is not None and ids.shape[0] == 1 and ids[0].tolist() == self.trigger:
            self.count = 0
        elif self.count is not None:
            self.count += 1
            if self.count == self.after:
                out.logits = torch.full_like(out.logits, float("nan"))
        return out


def test_nan_stops_the_run_naming_step_and_prompt_and_keeps_earlier_records(tiny_lm, tmp_path):
    lm = tiny_lm("qwen2")
    prompts = ["The capital of France is", "2 plus 2 equals", "Once upon a time"]
    bad = lm.with_model(NaNAfter(lm.model, lm.encode(prompts[1]), after=2))
    cfg = ConceptConfig.create(prompts=prompts, n_values=[2, 4], methods=["nearest", "direct"], translation_tokens=2)
    writer = RunWriter("concept", name="nan", root=tmp_path)
    run = ConceptRun([], [], [], {}, {})
    with pytest.raises(NonFiniteError) as info:
        run_concept([bad], cfg, writer=writer, into=run)
    err = info.value
    assert err.row == 1 and err.step == 2
    assert "concept token 3" in str(err) and "'2 plus 2 equals'" in str(err) and "2 records" in str(err)
    kept = [json.loads(x) for x in (tmp_path / "nan" / "records.jsonl").read_text().splitlines()]
    assert [(r["prompt"], r["n"]) for r in kept] == [(prompts[0], 2), (prompts[0], 4)]
    write_outputs(run, cfg, writer, status="failed", error=str(err))
    results = json.loads((tmp_path / "nan" / "results.json").read_text())
    assert results["status"] == "failed" and len(results["results"]["records"]) == 2


@pytest.mark.parametrize(
    "values,fragment",
    [
        ({"n_values": [2, 0]}, "N=0"),
        ({"n_values": []}, "no N values"),
        ({"prompts": ["ok", "  "]}, "empty prompt"),
        ({"prompts": []}, "no prompts"),
        ({"methods": ["nearest", "telepathy"]}, "unknown translation method 'telepathy'"),
        ({"translation_tokens": 0}, "translation_tokens=0"),
    ],
)
def test_bad_config_is_one_clear_error(values, fragment):
    with pytest.raises(ConfigError, match=fragment):
        ConceptConfig.create(**values)


def test_english_only_weights_stay_on_english_tokens(tiny_lm):
    from vecgen.vocab import english_token_mask

    lm = tiny_lm("qwen2")
    allowed = english_token_mask(lm, policy="text")
    cfg = ConceptConfig.create(prompts=["Once upon a time"], n_values=[3], methods=["nearest", "direct"],
                               translation_tokens=3, english_only=True,
                               sampling=SamplingConfig(temperature=1.5))
    rec = run_concept([lm], cfg).records[0]
    ids = [t.id for v in rec.vectors for t in v.top] + rec.translations["direct"].token_ids
    assert len(ids) > 10 and all(bool(allowed[i]) for i in ids)
