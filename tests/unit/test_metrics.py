"""Per-vector metrics: nearest-token search (chunked) against brute force, manifold distance."""

import pytest
import torch

from vecgen.decoding.metrics import EmbeddingIndex, embedding_index, vector_metrics

V, N_REAL, D = 103, 97, 16


@pytest.fixture
def index():
    torch.manual_seed(0)
    E = torch.randn(V, D)
    return EmbeddingIndex(E, N_REAL, chunk_rows=10)  # several chunks, the last one partial


def test_nearest_matches_brute_force_and_skips_padding(index):
    E = index.embedding
    q = torch.randn(5, D)
    q[0] = E[N_REAL + 1] * 3  # a padding row is its exact match; it must not be returned
    cos = torch.nn.functional.cosine_similarity(q[:, None], E[None, :N_REAL], dim=-1)  # (5, n_real)
    l2 = torch.cdist(q, E[:N_REAL])  # (5, n_real)
    ids, scores = index.nearest(q, 3, "cosine")
    ref_s, ref_i = torch.topk(cos, 3, dim=-1)
    assert ids.tolist() == ref_i.tolist()
    torch.testing.assert_close(scores, ref_s)
    ids, dist = index.nearest(q, 3, "l2")
    ref_d, ref_i = torch.topk(-l2, 3, dim=-1)
    assert ids.tolist() == ref_i.tolist()
    torch.testing.assert_close(dist, -ref_d)
    assert bool((ids < N_REAL).all())


def test_a_real_token_is_its_own_nearest_at_distance_zero(index):
    E = index.embedding
    ids, dist = index.nearest(E[[3, 50, 96]], 1, "l2")
    assert ids[:, 0].tolist() == [3, 50, 96]
    assert dist.abs().max().item() == 0.0
    ids, cos = index.nearest(E[[3, 50, 96]], 1, "cosine")
    assert ids[:, 0].tolist() == [3, 50, 96]
    torch.testing.assert_close(cos, torch.ones(3, 1))


def test_mean_norm_covers_real_rows_only(index):
    E = index.embedding
    assert index.mean_norm == pytest.approx(E[:N_REAL].norm(dim=-1).mean().item(), rel=1e-6)


def test_bad_arguments(index):
    with pytest.raises(ValueError, match="metric"):
        index.nearest(torch.randn(1, D), 1, "dot")
    with pytest.raises(ValueError, match="k="):
        index.nearest(torch.randn(1, D), 0)


def test_vector_metrics_on_a_tiny_model(tiny_lm):
    lm = tiny_lm("qwen2")
    E = lm.embedding
    paris = lm.encode(" Paris")[0]
    mix = 0.5 * E[paris] + 0.5 * E[11]  # (d,)
    vectors = torch.stack([E[paris], mix])  # (2, d)
    ids = torch.tensor([[paris, 0], [paris, 11]])
    w = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    m = vector_metrics(lm, vectors, mix_ids=ids, mix_weights=w)
    idx = embedding_index(lm)
    assert m[0].nearest_cosine.id == paris and m[0].nearest_l2.id == paris
    assert m[0].manifold_distance == 0.0 and m[0].entropy == 0.0
    assert [t.token for t in m[0].top] == [" Paris"]  # zero weights are dropped
    assert m[1].entropy == pytest.approx(0.6931472, abs=1e-6)  # ln 2 nats
    dist = torch.cdist(mix[None].float(), E[: lm.n_real_vocab].float()).min().item()
    assert m[1].manifold_distance == pytest.approx(dist, rel=1e-4)
    assert m[1].relative_manifold_distance == pytest.approx(dist / idx.mean_norm, rel=1e-4)
    assert m[1].norm == pytest.approx(mix.norm().item(), rel=1e-5)
    assert m[1].relative_norm == pytest.approx(mix.norm().item() / idx.mean_norm, rel=1e-5)
