"""Write a tiny transformers Qwen2 / Qwen3 model as an F32 GGUF file (test helper).

The llama.cpp backend runs GGUF files only; the contract suite needs the *same* weights under
transformers and llama.cpp, so the tiny random models are exported here in float32 (no quantization),
with the tensor names and metadata of llama.cpp's ``convert_hf_to_gguf.py`` for these two architectures
(no Q/K permutation: that is done for the ``llama`` architecture only) and the tokenizer as
``tokenizer.ggml.*`` arrays (GPT-2-style BPE, padded to the embedding's rows with ``[PADn]`` tokens).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def export_gguf(model, tokenizer, path: str | Path) -> Path:
    """Write ``model`` (a transformers Qwen2ForCausalLM / Qwen3ForCausalLM) and ``tokenizer`` to ``path``."""
    import gguf

    cfg = model.config
    arch = cfg.model_type
    assert arch in ("qwen2", "qwen3"), arch
    w = gguf.GGUFWriter(str(path), arch)
    n_head, n_kv = cfg.num_attention_heads, cfg.num_key_value_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // n_head
    w.add_block_count(cfg.num_hidden_layers)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_rope_freq_base(float(getattr(cfg, "rope_theta", None) or cfg.rope_parameters["rope_theta"]))
    w.add_layer_norm_rms_eps(float(cfg.rms_norm_eps))
    w.add_file_type(gguf.LlamaFileType.ALL_F32)

    rows = model.get_input_embeddings().weight.shape[0]
    tok = json.loads(tokenizer.backend_tokenizer.to_str())
    vocab = {t: i for t, i in tokenizer.get_vocab().items()}
    tokens = [f"[PAD{i}]" for i in range(rows)]
    types = [gguf.TokenType.UNUSED] * rows
    special = {a.content for a in tokenizer.added_tokens_decoder.values()} if hasattr(tokenizer, "added_tokens_decoder") else set()
    for t, i in vocab.items():
        if i < rows:
            tokens[i] = t
            types[i] = gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL
    merges = tok["model"]["merges"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in merges]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens)
    w.add_token_types([int(t) for t in types])
    w.add_token_merges(merges)
    w.add_bos_token_id(int(cfg.bos_token_id))
    w.add_eos_token_id(int(cfg.eos_token_id))
    w.add_pad_token_id(int(cfg.pad_token_id if cfg.pad_token_id is not None else cfg.eos_token_id))
    w.add_add_bos_token(False)

    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    per_layer = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
                 "self_attn.o_proj": "attn_output", "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm",
                 "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
                 "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}
    for key, value in sd.items():
        if key in names:
            name = names[key]
        else:
            _, _, layer, rest = key.split(".", 3)
            module, kind = rest.rsplit(".", 1)
            name = f"blk.{layer}.{per_layer[module]}.{kind}"
        w.add_tensor(name, np.ascontiguousarray(value, dtype=np.float32))
    if "lm_head.weight" not in sd:  # tied: llama.cpp reads token_embd for the output
        pass
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return Path(path)
