"""The numerics fingerprint: the same on a rerun, apart between methods, moved by exactly
the change that moves a method's numbers."""
from __future__ import annotations

import numpy as np
import pytest

from duet_pipeline.experiments.fingerprint import RTOL, compute_fingerprints, same_numerics, tiny_ratings

from conftest import PARAMETERS

METHODS = ["base", "duet", "duet-pa-linear", "lhuc", "poso"]


@pytest.fixture(scope="module")
def prints() -> dict:
    return compute_fingerprints(PARAMETERS, "ml-100k", ["din"], METHODS)


def test_the_tiny_log_is_fixed_and_integer_drawn() -> None:
    first, again = tiny_ratings(), tiny_ratings()
    assert first.equals(again)
    sizes = first.groupby("user_id").size()
    assert first.groupby("user_id")["timestamp"].nunique().eq(sizes).all()  # no tie for the time order
    assert first.groupby("user_id")["item_id"].nunique().eq(sizes).all()


def test_a_rerun_reproduces_every_fingerprint_exactly(prints) -> None:
    again = compute_fingerprints(PARAMETERS, "ml-100k", ["din"], ["base", "duet"])
    for key, values in again.items():
        assert same_numerics(prints[key], values), key
        # Far inside the tolerance: float64 and one thread order leave ~1e-13 at most.
        assert np.allclose(prints[key], values, rtol=1e-12, atol=0)


def test_the_closest_registered_variants_are_told_apart(prints) -> None:
    """duet-pa-linear differs from duet only by position weights that start near 1: the
    smallest real change between two registered variants, and still far above RTOL."""
    duet, linear = np.array(prints[("din", "duet")]), np.array(prints[("din", "duet-pa-linear")])
    assert not same_numerics(prints[("din", "duet")], prints[("din", "duet-pa-linear")])
    assert np.max(np.abs(duet - linear) / np.abs(duet)) > 10 * RTOL
    for (a, b) in [(("din", "base"), ("din", "lhuc")), (("din", "lhuc"), ("din", "poso"))]:
        assert not same_numerics(prints[a], prints[b])


def test_a_change_to_one_method_moves_that_method_only(prints, monkeypatch: pytest.MonkeyPatch) -> None:
    """A change to what LHUC's device half computes (here its scores scaled by 1 + 1e-4,
    as small as a change in rounding order would never be) moves LHUC's fingerprint and
    leaves every other method's, which a refactor that keeps the numbers must also do."""
    from duet_pipeline.methods import get_method

    module = get_method("lhuc").module
    original = module.personalize

    def nudged(*args, **kwargs):
        result = original(*args, **kwargs)
        result.scores = result.scores * (1 + 1e-4)
        return result

    monkeypatch.setattr(module, "personalize", nudged)
    moved = compute_fingerprints(PARAMETERS, "ml-100k", ["din"], ["base", "lhuc", "poso"])
    changed = {key for key in moved if not same_numerics(prints[key], moved[key])}
    assert changed == {("din", "lhuc")}


def test_the_float64_run_restores_the_default_dtype(prints) -> None:
    import torch

    assert torch.get_default_dtype() == torch.float32
