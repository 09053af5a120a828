"""scripts.parallel.Workers: the same results as a plain loop, with and without processes."""

from __future__ import annotations

import pytest

from scripts.parallel import Workers


def _square(value: int) -> int:
    return value * value


@pytest.mark.parametrize("count", [1, 2])
def test_results_match_a_plain_loop(count):
    with Workers(count) as workers:
        results = sorted(workers.imap_unordered(_square, range(20)))
    assert results == [value * value for value in range(20)]
