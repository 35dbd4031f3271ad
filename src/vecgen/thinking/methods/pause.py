"""``pause``: the curriculum control of COCONUT (pause tokens trained with the same curriculum; ``vecgen train
--method pause``): after ``<bot>`` the learned ``<pause>`` token is fed ``n_thoughts`` times (the trained number by
default), nothing sampled, then ``<eot>``, then the answer."""

from __future__ import annotations

from ...errors import ConfigError
from .coconut import ThoughtSettings, thoughts_of
from .registry import RowContext, ThinkingMethod, register_method


def _pauses(settings: ThoughtSettings, ctx: RowContext) -> list[int]:
    n = thoughts_of("pause", settings, ctx)
    token = ctx.reasoning.pause if ctx.reasoning is not None else "<pause>"
    pause_id = ctx.tokenizer.convert_tokens_to_ids(token)
    if pause_id is None or pause_id == ctx.tokenizer.unk_token_id or not isinstance(pause_id, int):
        raise ConfigError(f"pause feeds the token {token!r}, which this model's tokenizer lacks; use a checkpoint of "
                          "vecgen train --method pause", param="method")
    return [pause_id] * n


PAUSE = register_method(ThinkingMethod(
    "pause", "a vecgen train pause checkpoint's learned pause tokens, fed without sampling; --n-thoughts",
    settings=ThoughtSettings, forced_thoughts=_pauses, stop_reasons=("thoughts",), ends_on_trace=False))

__all__ = ["PAUSE"]
