"""Fixtures for the accounts tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from accounts import selectors


@pytest.fixture(autouse=True)
def cold_handle_cache() -> Iterator[None]:
    """Each test starts and ends with an empty handle cache.

    The cache is per process and outlives a test's rolled-back transaction, so an
    account created (or deactivated) by one test could otherwise leak into the
    next one for up to selectors.CACHE_SECONDS.
    """
    selectors.invalidate_cache()
    yield
    selectors.invalidate_cache()
