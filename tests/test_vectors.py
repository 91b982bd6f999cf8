import numpy as np
import pytest

from matryoshka_adaptor.errors import InputError
from matryoshka_adaptor.vectors import check_embeddings, part_means, pca_rotation, start_maps


def test_within_part_axes_ignore_what_tells_the_parts_apart() -> None:
    """Two parts (two languages) offset along coordinate 0; inside each, documents differ most along coordinate 1.
    Pooled centring puts the offset first; centring each part on its own mean puts coordinate 1 first."""
    rng = np.random.default_rng(0)
    docs = rng.standard_normal((400, 4)) * np.array([0.1, 1.0, 0.3, 0.2])
    parts = np.repeat([0, 1], 200)
    docs[parts == 1, 0] += 5.0
    pooled = start_maps(docs.astype(np.float32))["centred_axes"][0]
    within, centre = start_maps(docs.astype(np.float32), parts=parts)["centred_axes"]
    assert abs(pooled[0, 0]) > 0.99 and abs(within[0, 1]) > 0.99 and centre is None
    assert np.allclose(part_means(docs, parts), [docs[:200].mean(0), docs[200:].mean(0)])


def test_a_centre_per_part_is_applied_block_by_block() -> None:
    rng = np.random.default_rng(1)
    docs = rng.standard_normal((70_000, 3)).astype(np.float32)  # more rows than one block of 65,536
    parts = (np.arange(70_000) >= 66_000).astype(np.int64)  # the second part straddles the block boundary
    centres = np.array([[0.0] * 3, [3.0] * 3])
    centred = (docs - centres[parts]).astype(np.float32)
    assert np.allclose(pca_rotation(docs, centres, parts), pca_rotation(centred, np.zeros(3)), atol=1e-5)


@pytest.mark.parametrize(("x", "dim", "match"), [
    (np.zeros(4), None, r"docs: expected a 2-D array \(n, d\), got shape \(4,\)"),
    (np.zeros((2, 3)), 4, r"docs: expected width 4, got 3"),
    (np.array([[0.0, 1.0], [np.nan, 0.0]]), None, r"docs: row 1 holds NaN or inf \(1 such rows\)"),
])
def test_check_embeddings_names_what_is_wrong(x, dim, match) -> None:
    with pytest.raises(InputError, match=match):
        check_embeddings(x, dim, "docs")


def test_check_embeddings_without_a_width_takes_any_as_float32() -> None:
    assert check_embeddings(np.ones((2, 5), dtype=np.float64), None).dtype == np.float32
