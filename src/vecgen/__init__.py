"""vecgen: vector-space generation with causal language models.

Run a model at the level of its embedding space: feed back probability-weighted mixtures of token
embeddings ("concept tokens"), read them back, think in them, learn soft prompts, analyse the vocabulary.

The main entry points::

    from vecgen.models import load_model          # one loader for every model source
    from vecgen.config import SamplingConfig      # temperature / top_k / top_p / min_p, presets
    from vecgen.decoding import generate          # one decode loop, many mixing rules
"""

__version__ = "0.1.0"
