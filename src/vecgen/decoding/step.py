"""One decode step: sample → mix → observe.

For the ``b`` live rows of a step, :class:`Sampler` turns each group of rows' logits ``(g, V)`` into a
:class:`~vecgen.decoding.mixing.Mixture` with the group's sampler and mixing rule and into the vectors the rows would
feed ``(g, d)`` (one pass per group of rows that share a phase, a sampler but its seed and temperature, and a rule;
each row draws from its own random stream at its own temperature), records the step (:class:`~vecgen.decoding.records.StepLog`) and makes the step's one
host transfer (token, entropy, mixture entropy, finite per row); :func:`observe` then asks each sampled row's policy
what it feeds (the vector, the token one-hot, a forced token, or nothing: done).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..backends.contract import Backend, ContractError, DecodeState
from ..errors import NonFiniteError
from ..models import LoadedModel
from .mixing import ROW_GENERATOR_RULES, Mixture, get_rule, mean_input_norm, mix_embeddings, push_from_top1
from .policy import Action, Mode, Observation, RowPolicy
from .records import StepLog
from .sampling import MIN_TEMPERATURE, RowGenerators, entropy, make_generator, mask_logits, vocab_mask


@dataclass
class StepGroup:
    """The rows of one :class:`Mode` in one step: batch rows, the mixture and its vectors ``(g, d)``."""

    rows: list[int]
    mode: Mode
    mixture: Mixture
    vectors: torch.Tensor
    host: list[list[float]] = field(default_factory=list)  # per row: token, entropy, mix entropy, finite


#: Sample rows that draw from different random streams (pass@k samples, seeded requests) in one pass, each row from
#: its own generator (:class:`~vecgen.decoding.sampling.RowGenerators`). False: one pass per stream, as before per-row
#: generators (``benchmarks/bench_sampler.py`` runs both; the outputs are the same; set it on this module).
BATCH_STREAMS = True


class Sampler:
    """The sampler + mixing-rule half of a step: one pass per group of rows that share a phase, a sampler (but its
    seed) and a rule, each row drawing from its own stream; records to the log."""

    def __init__(self, lm: LoadedModel, backend: Backend, allowed: torch.Tensor | None, log: StepLog):
        self.lm, self.backend, self.log = lm, backend, log
        # Without an allowed set the mask is "the first n_real rows": the sampler then works on a view of
        # the real columns instead of writing -inf into the padding rows every step.
        self.mask: torch.Tensor | int = (int(lm.n_real_vocab) if allowed is None else
                                         vocab_mask(backend.vocab_rows, lm.n_real_vocab, allowed, device=backend.device))
        self.generators: dict[str, torch.Generator] = {}
        self.target_norm: float | None = None
        #: NaN/inf in a row ends that row (``failed``) instead of raising (:func:`run`'s ``on_row_end``)
        self.isolate = False
        self.stream_rows: dict[str, set[int]] = {}  # isolate only: the rows that drew from each stream
        self._keys: dict[Mode, Any] = {}  # each mode's group key (_key)

    def release(self, row: int) -> None:
        """``row`` has ended: forget the random streams no other row drew from."""
        for stream in [s for s, rows in self.stream_rows.items() if row in rows]:
            self.stream_rows[stream].discard(row)
            if not self.stream_rows[stream]:
                del self.stream_rows[stream], self.generators[stream]

    def _key(self, mode: Mode) -> Any:
        """The rows one pass samples together: the same phase, sampler (but its seed and its temperature, when that
        is positive and not below :data:`~vecgen.decoding.sampling.MIN_TEMPERATURE`) and rule; each row keeps its own
        random stream (:class:`~vecgen.decoding.sampling.RowGenerators`) and temperature. A rule that cannot take
        per-row generators (:data:`~vecgen.decoding.mixing.ROW_GENERATOR_RULES`), or :data:`BATCH_STREAMS` off: one
        pass per mode."""
        key = self._keys.get(mode)
        if key is None:
            if BATCH_STREAMS and mode.mixing.rule in ROW_GENERATOR_RULES:
                t = mode.sampling.temperature
                update: dict[str, Any] = {"seed": 0}
                if t > 0 and t >= MIN_TEMPERATURE:
                    update["temperature"] = 1.0
                key = (mode.phase, mode.sampling.model_copy(update=update), mode.mixing)
            else:
                key = (mode,)
            self._keys[mode] = key
        return key

    def _per_row_temperature(self, logits: torch.Tensor, temps: list[float]) -> torch.Tensor:
        """The rule's input for rows of different temperatures: the masked logits, less each row's maximum, divided
        by the row's temperature ``(g, V)``; the rule then runs at temperature 1. These are the numbers
        :func:`~vecgen.decoding.sampling.tempered_softmax` computes for each row at its own temperature (the same
        float32 operations), so every row's distribution is what a pass of its own gave."""
        z = mask_logits(logits, self.mask)  # (g, V) float32, disallowed tokens -inf (or the first n columns)
        z = z - z.amax(-1, keepdim=True)  # <= 0; the maximum is exactly 0
        return z / torch.tensor(temps, dtype=z.dtype, device=z.device)[:, None]

    def _generator(self, mode: Mode) -> torch.Generator:
        """``mode``'s stream's generator, made (seeded with ``mode.sampling.seed``) by the first mode that uses it."""
        gen = self.generators.get(mode.stream)
        if gen is None:
            gen = self.generators[mode.stream] = make_generator(mode.sampling.seed, self.backend.device)
        return gen

    def sample(self, state: DecodeState, live: list[int], plans: dict[int, Any], step: int,
               failed: dict[int, Exception] | None = None) -> list[StepGroup]:
        """One pass per group of rows (:meth:`_key`): the rule on their logits ``(g, V)``, each row drawing from its
        own stream's generator; records to the log; the step's one host transfer."""
        by_key: dict[Any, list[int]] = {}
        for j, i in enumerate(live):
            if isinstance(plans[i], Mode):
                by_key.setdefault(self._key(plans[i]), []).append(j)
        groups, scalars = [], []
        for rows in by_key.values():
            mode = plans[live[rows[0]]]
            gens = [self._generator(plans[live[j]]) for j in rows]
            temps = [plans[live[j]].sampling.temperature for j in rows]
            if self.isolate:
                for j in rows:
                    self.stream_rows.setdefault(plans[live[j]].stream, set()).add(live[j])
            while True:
                idx = None if len(rows) == len(live) else torch.tensor(rows, device=state.logits.device)
                logits = state.logits if idx is None else state.logits[idx]  # (g, V)
                generator = gens[0] if all(g is gens[0] for g in gens) else RowGenerators(gens)
                try:
                    if any(t != temps[0] for t in temps):  # rows of different temperatures: each its own, one pass
                        sampling = mode.sampling.model_copy(update={"temperature": 1.0})
                        mixture = get_rule(mode.mixing.rule)(self._per_row_temperature(logits, temps), sampling,
                                                             mode.mixing, None, generator)
                    else:
                        mixture = get_rule(mode.mixing.rule)(logits, mode.sampling, mode.mixing, self.mask, generator)
                    break
                except NonFiniteError:
                    bad = (torch.isnan(logits) | torch.isposinf(logits)).any(-1).nonzero()[:, 0].tolist()
                    if not self.isolate or failed is None:
                        i = live[rows[bad[0]]]
                        raise NonFiniteError(f"NaN or inf logits at step {step} for prompt {i}", step=step,
                                             row=i) from None
                    for b in bad:  # those rows end with the error; the others are sampled again
                        failed[rows[b]] = NonFiniteError(f"NaN or inf logits at step {step}", step=step,
                                                         row=live[rows[b]])
                    gens = [g for k, g in enumerate(gens) if k not in set(bad)]
                    temps = [t for k, t in enumerate(temps) if k not in set(bad)]
                    rows = [j for k, j in enumerate(rows) if k not in set(bad)]
                    if not rows:
                        break
            if not rows:
                continue
            mixture = push_from_top1(mixture, mode.mixing.anti_collapse)
            hidden = None
            if mixture.hidden_scale is not None:
                if state.hidden is None:
                    raise ContractError(f"backend {self.backend.name} returned no hidden state although one was asked for")
                hidden = state.hidden if idx is None else state.hidden[idx.to(state.hidden.device)]  # (g, d)
                if self.target_norm is None:
                    self.target_norm = mean_input_norm(self.backend, self.lm.n_real_vocab)
            v = mix_embeddings(self.backend, mixture, hidden=hidden, target_norm=self.target_norm)  # (g, d)
            ent = entropy(mixture.full_probs)  # (g,) nats
            mix_ent = mixture.entropy() + 0.0  # (g,); + 0.0 turns -0.0 into 0.0
            self.log.add([live[j] for j in rows], mixture, ent, mix_ent, v)
            finite = torch.isfinite(v.float().sum(-1))  # (g,)
            scalars.append(torch.stack([mixture.token.double(), ent.double(), mix_ent.double(), finite.double()], -1))
            groups.append(StepGroup(rows, mode, mixture, v))
        if groups:  # the step's one transfer to the host: (token, entropy, mixture entropy, finite) per row
            host = torch.cat(scalars).cpu().tolist()
            k = 0
            for g in groups:
                g.host, k = host[k : k + len(g.rows)], k + len(g.rows)
        return groups


def observe(groups: list[StepGroup], live: list[int], policies: Sequence[RowPolicy], backend: Backend,
             vec: torch.Tensor, forced: list[tuple[int, int]], log: StepLog, step: int,
             failed: dict[int, Exception] | None = None) -> set[int]:
    """Each sampled row's policy decides what is fed (written into ``vec`` / appended to ``forced``);
    returns the batch rows that are done. With ``failed``, a non-finite vector ends its row there (not raised)."""
    done: set[int] = set()
    for g in groups:
        for k, (j, (tok, ent, mix_ent, ok)) in enumerate(zip(g.rows, g.host)):
            i = live[j]
            if not ok:
                error = NonFiniteError(f"NaN or inf input vector at step {step} for prompt {i}", step=step, row=i)
                if failed is None:
                    raise error
                failed[j] = error
                continue
            returned = policies[i].observe(Observation(step, int(tok), float(ent), float(mix_ent)))
            try:
                action = Action(returned)
            except ValueError:
                raise ContractError(f"policy of prompt {i} returned {returned!r} from observe; expected an Action") from None
            log.phases[i].append(g.mode.phase)
            log.fed[i].append(action.value)
            if action == Action.feed:
                vec[j] = g.vectors[k]
            elif action == Action.feed_token:
                vec[j] = backend.input_rows(g.mixture.token[k])
            elif action == Action.done:
                done.add(j)
            else:  # retry: a forced token, or done
                again = policies[i].next_input()
                if again is None:
                    done.add(j)
                else:
                    forced.append((j, token_id(again, i)))
    return done


def wants_hidden(plans: Any) -> bool:
    """Whether a row's plan among ``plans`` feeds the last hidden state (the backend must then return it)."""
    return any(isinstance(m, Mode) and m.mixing.feeds_hidden for m in plans)


def token_id(plan: Any, row: int) -> int:
    """``plan`` as a forced token id.

    Raises:
        ContractError: the policy of prompt ``row`` returned something that is not a Mode, a token id or None.
    """
    if isinstance(plan, bool) or not isinstance(plan, int):
        raise ContractError(f"policy of prompt {row} returned {plan!r}; expected a Mode, a token id or None")
    return plan


__all__ = ["BATCH_STREAMS", "Sampler", "StepGroup", "observe", "token_id", "wants_hidden"]
