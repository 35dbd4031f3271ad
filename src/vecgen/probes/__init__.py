"""Probes of what a model does with vectors it is fed (issue 17): vector arithmetic on token embeddings
(:mod:`vecgen.probes.analogy`). The superposition sweep, the logit lens and the trained reader are not
written yet."""

from .analogy import AnalogyHit, Quadruple, load_pairs, make_quadruples, nearest_excluding, solve_analogies

__all__ = ["AnalogyHit", "Quadruple", "load_pairs", "make_quadruples", "nearest_excluding", "solve_analogies"]
