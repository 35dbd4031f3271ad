"""The from-scratch Qwen2/Qwen3 reference model against transformers on tiny random configs."""

import json
import subprocess
import sys

import pytest
import torch
from torch.testing import assert_close

from vecgen.config import SamplingConfig
from vecgen.decoding import MixingConfig, generate
from vecgen.errors import ConfigError, UnsupportedModelError
from vecgen.models import adapter_for
from vecgen.reference import (
    KVCache,
    ReferenceConfig,
    apply_rope,
    from_transformers,
    load_reference,
    map_state_dict,
    repeat_kv,
    rope_cos_sin,
    rope_inverse_frequencies,
)
from vecgen.reference.compare import capture_transformers, compare

from helpers.cli import cli, cli_subprocess
from helpers.models import tiny_config

GREEDY = SamplingConfig(temperature=0.0, max_new_tokens=8)

#: name → (family, config overrides). 7:1 = 14 query heads over 2 KV heads, as in Qwen2.5-0.5B.
VARIANTS = {
    "qwen2": ("qwen2", {}),
    "qwen3": ("qwen3", {}),
    "qwen2-7to1-tied": ("qwen2", dict(hidden_size=112, num_attention_heads=14, num_key_value_heads=2,
                                      tie_word_embeddings=True)),
    "qwen3-7to1-tied": ("qwen3", dict(hidden_size=112, num_attention_heads=14, num_key_value_heads=2, head_dim=8,
                                      tie_word_embeddings=True)),
}
_MODELS: dict = {}


def hf_model(variant: str):
    """A tiny random transformers model whose norm gains and biases are random too (initialised to 1 and 0
    they would hide a swapped norm or bias)."""
    if variant not in _MODELS:
        from transformers import AutoModelForCausalLM

        family, overrides = VARIANTS[variant]
        torch.manual_seed(1)
        model = AutoModelForCausalLM.from_config(tiny_config(family, **overrides)).eval()
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("bias"):
                    p.normal_(0.0, 0.5)
                elif "norm" in name:
                    p.copy_(1.0 + 0.3 * torch.randn_like(p))
        model.requires_grad_(False)
        _MODELS[variant] = model
    return _MODELS[variant]


def ids_batch(n: int = 11, seed: int = 0, batch: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 151_000, (batch, n), generator=g)


# ------------------------------------------------------------------------------------- pieces


def test_repeat_kv_expands_each_kv_head_to_its_query_group():
    B, n_kv, S, head_dim, n_rep = 2, 2, 3, 4, 7
    kv = torch.arange(B * n_kv * S * head_dim, dtype=torch.float32).view(B, n_kv, S, head_dim)
    out = repeat_kv(kv, n_rep)
    assert out.shape == (B, 14, S, head_dim)
    for h in range(14):  # query heads 0-6 read KV head 0, heads 7-13 read KV head 1
        assert torch.equal(out[:, h], kv[:, h // n_rep])
    assert torch.equal(out, torch.repeat_interleave(kv, n_rep, dim=1))
    assert repeat_kv(kv, 1) is kv


def test_rope_at_position_zero_is_the_identity():
    x = torch.randn(2, 3, 1, 16)  # (B, heads, T=1, head_dim)
    cos, sin = rope_cos_sin(torch.zeros(2, 1, dtype=torch.long), rope_inverse_frequencies(16, 1e6), torch.float32)
    assert torch.equal(apply_rope(x, cos, sin), x)


def test_rope_rotates_by_relative_position():
    """<rope(q, m), rope(k, n)> depends only on m − n, and rotations keep norms (Su et al. 2021)."""
    head_dim, inv_freq = 16, rope_inverse_frequencies(16, 10_000.0)
    q, k = torch.randn(1, 1, 1, head_dim, dtype=torch.float64), torch.randn(1, 1, 1, head_dim, dtype=torch.float64)

    def rot(x, pos):
        cos, sin = rope_cos_sin(torch.tensor([[pos]]), inv_freq, torch.float64)
        return apply_rope(x, cos, sin)

    dots = [float((rot(q, m) * rot(k, m - 3)).sum()) for m in (3, 10, 50)]
    assert dots[0] == pytest.approx(dots[1], rel=1e-5) and dots[0] == pytest.approx(dots[2], rel=1e-5)
    assert float(rot(q, 7).norm()) == pytest.approx(float(q.norm()), rel=1e-6)  # angles in float32
    assert not torch.allclose(rot(q, 7), q)


def test_config_reads_rope_theta_and_family_facts():
    qwen3 = tiny_config("qwen3", rope_theta=12345.0)
    cfg = ReferenceConfig.from_transformers(qwen3, adapter_for(qwen3))
    assert cfg.rope_theta == 12345.0 and cfg.qk_norm and not cfg.qkv_bias and cfg.head_dim == 16
    with pytest.raises(ConfigError, match="multiple of"):
        ReferenceConfig(**{**cfg.__dict__, "num_key_value_heads": 3})


# ---------------------------------------------------------------------- against transformers


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_tap_and_the_logits_equal_transformers(variant):
    model = hf_model(variant)
    ref = from_transformers(model)
    ids = ids_batch(11)
    theirs = capture_transformers(model, input_ids=ids)
    with torch.no_grad():
        ours = ref(input_ids=ids, taps=True).taps
    names = ref.tap_names()
    assert set(names) == set(ours) == set(theirs)  # every component is captured on both sides
    if VARIANTS[variant][0] == "qwen3":
        assert "layers.1.q_norm" in names
    for name in names:
        assert_close(ours[name], theirs[name], msg=lambda m, name=name: f"{name}: {m}")


def test_weights_are_shared_tied_and_strictly_mapped():
    tied, untied = hf_model("qwen2-7to1-tied"), hf_model("qwen2")
    ref = from_transformers(tied)
    assert ref.lm_head.weight is ref.tok_embeddings.weight
    assert ref.tok_embeddings.weight.data_ptr() == tied.model.embed_tokens.weight.data_ptr()
    ref_u = from_transformers(untied, copy=True)
    assert not torch.equal(ref_u.lm_head.weight, ref_u.tok_embeddings.weight)
    assert ref_u.tok_embeddings.weight.data_ptr() != untied.model.embed_tokens.weight.data_ptr()
    assert sum(p.numel() for p in ref.parameters()) == sum(p.numel() for p in tied.parameters())
    cfg = ref_u.config
    state = dict(untied.state_dict())
    with pytest.raises(UnsupportedModelError, match="unused"):
        map_state_dict({**state, "model.layers.0.self_attn.extra.weight": torch.zeros(1)}, cfg)
    del state["model.layers.1.self_attn.q_proj.bias"]
    with pytest.raises(UnsupportedModelError, match="missing"):
        map_state_dict(state, cfg)


def test_left_padded_batch_equals_transformers_and_single_prompts():
    model = hf_model("qwen2-7to1-tied")
    ref = from_transformers(model)
    lengths = [4, 9, 6]
    T = max(lengths)
    ids = ids_batch(T, seed=3, batch=3)
    mask = torch.zeros(3, T, dtype=torch.long)
    for i, n in enumerate(lengths):
        mask[i, T - n:] = 1
    positions = (mask.cumsum(-1) - 1).clamp_min(0)
    with torch.no_grad():
        ours = ref(input_ids=ids, attention_mask=mask, position_ids=positions).logits
        theirs = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits
        real = mask.bool()
        assert_close(ours[real], theirs[real])
        assert torch.isfinite(ours).all()  # padding rows stay finite too
        for i, n in enumerate(lengths):
            single = ref(input_ids=ids[i:i + 1, T - n:]).logits
            assert_close(ours[i, T - n:], single[0])


@pytest.mark.parametrize("variant", ["qwen2", "qwen3-7to1-tied"])
def test_cached_decoding_equals_uncached(variant):
    ref = from_transformers(hf_model(variant))
    ids = ids_batch(12, seed=5)
    with torch.no_grad():
        full = ref(input_ids=ids).logits  # (1, 12, V) without a cache
        out = ref(input_ids=ids[:, :7], use_cache=True)
        assert isinstance(out.past_key_values, KVCache) and out.past_key_values.get_seq_length() == 7
        steps = [out.logits[:, -1]]
        for t in range(7, 12):  # one position at a time, as embeddings, on top of the cache
            out = ref(inputs_embeds=ref.tok_embeddings(ids[:, t:t + 1]), past_key_values=out.past_key_values,
                      use_cache=True, logits_to_keep=1)
            steps.append(out.logits[:, -1])
    cache = out.past_key_values
    assert cache.get_seq_length() == 12
    assert_close(torch.stack(steps[:-1], 1), full[:, 6:11])
    assert_close(steps[-1], full[:, 11])
    assert torch.equal(torch.stack(steps, 1).argmax(-1)[:, :-1], full[:, 6:11].argmax(-1))
    cache.crop(9)  # undo the last three positions, then redo one
    with torch.no_grad():
        again = ref(input_ids=ids[:, 9:10], past_key_values=cache, use_cache=True).logits
    assert cache.get_seq_length() == 10
    assert_close(again[:, -1], full[:, 9])


def test_inputs_embeds_equal_input_ids_and_math_attention_equals_sdpa():
    model = hf_model("qwen3")
    ref, ref_math = from_transformers(model), from_transformers(model, attention="math")
    ids = ids_batch(8, seed=2)
    with torch.no_grad():
        a = ref(input_ids=ids).logits
        b = ref(inputs_embeds=ref.tok_embeddings(ids)).logits
        out = ref_math(input_ids=ids, taps=["layers.0.attn_probs"])
    assert torch.equal(a, b)
    assert_close(out.logits, a)
    probs = out.taps["layers.0.attn_probs"]  # (B, heads, T, S)
    assert probs.shape == (1, 4, 8, 8)
    assert_close(probs.sum(-1), torch.ones(1, 4, 8))
    assert torch.equal(probs.triu(1), torch.zeros_like(probs))  # causal: nothing from the future


# ----------------------------------------------------------------------- the decode loop


@pytest.mark.parametrize("family", ["qwen2", "qwen3"])
def test_generate_through_reference_equals_transformers_token_for_token(tiny_lm, family):
    lm = tiny_lm(family)
    ref_lm = lm.with_model(from_transformers(lm))
    prompts = [lm.encode("The capital of France is"), lm.encode("Hi")]
    ours = generate(ref_lm, prompts, sampling=GREEDY, stop_ids=[])
    theirs = generate(lm, prompts, sampling=GREEDY, stop_ids=[])
    for row in range(2):  # left-padded batch; the transformers path equals HF generate (test_loop.py)
        assert ours.token_ids(row) == theirs.token_ids(row) and len(ours.token_ids(row)) == 8
    assert ref_lm.describe()["parameters"] == lm.describe()["parameters"]
    assert ref_lm.stop_token_ids() == lm.stop_token_ids()


def test_concept_tokens_through_reference_match_transformers(tiny_lm):
    lm = tiny_lm("qwen2")
    ref_lm = lm.with_model(from_transformers(lm))
    ids = lm.encode("Once upon a time")
    kw = dict(sampling=SamplingConfig(temperature=1.0, max_new_tokens=5), mixing=MixingConfig(rule="soft", max_topk=10),
              stop_ids=[], keep_vectors=True, record_top_k=10)
    ours, theirs = generate(ref_lm, [ids], **kw), generate(lm, [ids], **kw)
    assert_close(ours.vectors(0), theirs.vectors(0))
    for a, b in zip(ours.steps, theirs.steps):
        assert torch.equal(a.mix_ids, b.mix_ids)


# ------------------------------------------------------------- taps and interventions


def test_intervention_replaces_a_component_and_hooks_follow_the_decode_loop(tiny_lm):
    lm = tiny_lm("qwen2")
    ref = from_transformers(lm)
    ids = torch.tensor([lm.encode("Hello there")])
    with torch.no_grad():
        base = ref(input_ids=ids, taps=True)
        same = ref(input_ids=ids, intervene=lambda name, x: None)
        cut = ref(input_ids=ids, taps=["layers.0.*"],
                  intervene=lambda name, x: torch.zeros_like(x) if name == "layers.0.mlp_out" else None)
    assert torch.equal(same.logits, base.logits)
    assert torch.equal(cut.taps["layers.0.out"], cut.taps["layers.0.resid_attn"])  # MLP removed from layer 0
    assert not torch.allclose(cut.logits, base.logits)
    with pytest.raises(ConfigError, match="shape"):
        ref(input_ids=ids, intervene=lambda name, x: x[..., :1] if name == "embed" else None)

    seen = []
    handle = ref.add_hook(lambda name, x: seen.append((name, tuple(x.shape))) if name == "layers.1.out" else None)
    ref_lm = lm.with_model(ref)
    with ref.capture(["layers.1.q_rope", "logits"]) as calls:
        generate(ref_lm, [ids[0].tolist()], sampling=SamplingConfig(max_new_tokens=3), stop_ids=[])
    handle.remove()
    n = ids.shape[1]
    assert seen == [("layers.1.out", (1, n, 64)), ("layers.1.out", (1, 1, 64)), ("layers.1.out", (1, 1, 64))]
    assert [c["layers.1.q_rope"].shape for c in calls] == [(1, 4, n, 16), (1, 4, 1, 16), (1, 4, 1, 16)]
    assert set(calls[0]) == {"layers.1.q_rope", "logits"}
    with torch.no_grad():
        ref(input_ids=ids)
    assert len(seen) == 3  # removed hooks stay removed


# --------------------------------------------------------------- comparison and errors


def test_compare_points_at_the_first_wrong_component(tiny_lm):
    lm = tiny_lm("qwen3")
    ids = lm.encode("The capital of France is")
    good = compare(lm, ids)
    assert good.passed and good.next_token_reference == good.next_token_transformers
    assert [t.id for t in good.top_reference] == [t.id for t in good.top_transformers] and len(good.top_reference) == 5
    broken = from_transformers(lm, copy=True)
    with torch.no_grad():
        broken.blocks[1].attn.k_norm.weight.mul_(1.5)
    bad = compare(lm, ids, reference=broken)
    assert not bad.passed and bad.first_failure.name == "layers.1.k_norm"
    assert all(r.ok for r in bad.rows[: bad.rows.index(bad.first_failure)])


def test_unsupported_architecture_is_a_clear_error(tiny_lm):
    with pytest.raises(UnsupportedModelError, match="^not supported: gpt2; supported: qwen2, qwen3$"):
        from_transformers(tiny_lm("gpt2"))
    llama = tiny_config("llama")  # Llama-like, but not a family the reference model implements
    with pytest.raises(UnsupportedModelError, match="^not supported: llama; supported: qwen2, qwen3$"):
        ReferenceConfig.from_transformers(llama, adapter_for(llama))


def test_scaled_rope_and_sliding_window_are_refused():
    cfg = tiny_config("qwen2", rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 1e6})
    with pytest.raises(UnsupportedModelError, match="rope_type='linear'"):
        ReferenceConfig.from_transformers(cfg, adapter_for(cfg))
    cfg = tiny_config("qwen2", use_sliding_window=True, sliding_window=16, max_window_layers=0)
    with pytest.raises(UnsupportedModelError, match="sliding-window"):
        ReferenceConfig.from_transformers(cfg, adapter_for(cfg))


def test_load_reference_and_bad_calls(tiny_model_dir):
    lm = load_reference(str(tiny_model_dir("qwen3")), device="cpu", dtype="float32", show_progress=False)
    assert type(lm.model).__name__ == "ReferenceModel" and lm.describe()["model_type"] == "qwen3"
    ids = torch.tensor([[1, 2, 3]])
    with pytest.raises(ConfigError, match="exactly one"):
        lm.model()
    with pytest.raises(ConfigError, match="attention_mask"):
        lm.model(input_ids=ids, attention_mask=torch.ones(1, 5))


@pytest.mark.slow
def test_verify_command(tiny_model_dir, tmp_path, monkeypatch):
    ok = cli(["verify", "-m", str(tiny_model_dir("qwen2")), "--prompt", "Hello world",
                                  "--out-dir", str(tmp_path), "--run-name", "v"])
    assert ok.exit_code == 0, ok.output
    assert "PASS" in ok.stdout and "tolerance float32" in ok.stdout and "k_rope" in ok.stdout
    results = json.loads((tmp_path / "v" / "results.json").read_text())["results"]
    assert results["passed"] and results["next_token"]["transformers"] == results["next_token"]["reference"]
    assert any(r["name"] == "layers.1.k_rope" for r in results["rows"])

    import vecgen.reference as reference

    def broken(lm, **kw):  # a reference model with one wrong weight: verify must fail and name it
        ref = from_transformers(lm, copy=True)
        with torch.no_grad():
            ref.blocks[0].attn.wv.bias.add_(0.1)
        return ref

    monkeypatch.setattr(reference, "from_transformers", broken)
    fail = cli(["verify", "-m", str(tiny_model_dir("qwen2")), "--out-dir", str(tmp_path),
                                    "--show", "failures"])
    assert fail.exit_code == 1 and "FAIL" in fail.stdout and "layers.0.v" in fail.stdout
    bad = cli_subprocess("verify", "-m", str(tiny_model_dir("gpt2")), "--out-dir", str(tmp_path))  # the real entry point
    assert bad.returncode == 2
    assert "not supported: gpt2; supported: qwen2, qwen3" in bad.stderr and "Traceback" not in bad.stderr
