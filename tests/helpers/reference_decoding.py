"""transformers' own greedy decoding as the reference the engine's paths are held against (shared by
the unit tests and the backend contract suite)."""

from __future__ import annotations

import torch


def hf_greedy(lm, ids, n):
    """transformers' greedy continuation of ``ids``: exactly ``n`` tokens (no early stop)."""
    x = torch.tensor([ids])
    out = lm.model.generate(x, attention_mask=torch.ones_like(x), do_sample=False, max_new_tokens=n, min_new_tokens=n,
                            pad_token_id=lm.tokenizer.pad_token_id)
    return out[0, len(ids):].tolist()


def reference_cot(lm, ids, marker, max_think, max_answer):
    """Greedy cot of one row built on transformers' generate: ``(trace, forced, answer, stop reason)``."""
    stops = set(lm.stop_token_ids())
    cont = hf_greedy(lm, ids, max_think)
    trace, forced, reason = [], list(marker.ids), "max_tokens"
    for y in cont:
        if y in stops:
            reason = "eos"
            break
        trace.append(y)
        if marker.found(trace):
            reason, forced = "marker", []
            break
    answer = hf_greedy(lm, ids + trace + forced, max_answer)
    for k, y in enumerate(answer):
        if y in stops:
            answer = answer[: k + 1]
            break
    return trace, forced, answer, reason
