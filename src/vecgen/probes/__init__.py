"""Probes of what a model does with vectors it is fed: can it read a superposition?

The probes are functions taking a model (:func:`vecgen.load`)::

    res = vecgen.probes.superposition(m)          # α-sweep of two token embeddings after 102 prompts
    lens = vecgen.probes.lens(m, ["Once upon a time"], n=3)   # logit lens at concept-token positions
    arith = vecgen.probes.analogy(m)              # e(b) − e(a) + e(c) on 126 shipped word pairs

* :mod:`.sweep` — the superposition sweep and the model's own concept tokens fed back;
* :mod:`.logit_lens` — the logit lens at concept-token positions;
* :mod:`.arithmetic` — vector arithmetic on token embeddings;
* :mod:`.reader_data`, :mod:`.reader`, :mod:`.reader_run` — a LoRA reader trained to read concept tokens back;
* :mod:`.runs` — the probes as calls on a model and what their runs write; :mod:`.report` — reports and figures;
  :mod:`.common` — what the probes share.
"""

from . import reader, reader_data, reader_run  # the LoRA reader: vecgen.probes.reader_run.train_run(...)
from .arithmetic import (
           AnalogyHit,
           FrameHit,
           Quadruple,
           load_pairs,
           make_quadruples,
           nearest_excluding,
           solve_analogies,
)
from .logit_lens import (
           FirstTokenLens,
           LensRecord,
           LensTrace,
           first_token_lens,
           lens_logprobs,
           lens_trace,
)
from .runs import AnalogyResult, LensResult, analogy, lens, superposition
from .sweep import MixtureProbe, PairSweep, SuperpositionResult, run_superposition

__all__ = ["reader", "reader_data", "reader_run", "AnalogyHit", "AnalogyResult", "FirstTokenLens", "FrameHit", "LensRecord", "LensResult", "LensTrace",
           "MixtureProbe", "PairSweep", "Quadruple", "SuperpositionResult", "analogy", "first_token_lens", "lens",
           "lens_logprobs", "lens_trace", "load_pairs", "make_quadruples", "nearest_excluding", "run_superposition",
           "solve_analogies", "superposition"]
