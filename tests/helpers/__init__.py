"""Helpers shared by the test suite and the benchmarks: tiny models, the in-process CLI, a live server, local lm-eval
tasks, transformers' reference decoding, GGUF export and synthetic run folders. ``tests/`` is on pytest's path
(``pythonpath`` in pyproject.toml), so tests import them as ``helpers.<module>``; benchmarks add ``tests/`` to
``sys.path`` themselves."""
