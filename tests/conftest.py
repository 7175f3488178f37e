"""Shared fixtures: connectome graphs built once per test session, in a private cache."""

from pathlib import Path

import pytest

from flygnn.datasets import FlyVisConnectome
from flygnn.flat import flatten

#: flyvis fixtures (see README.md there)
REFERENCE = Path(__file__).resolve().parent / "fixtures" / "flyvis"
SMALL_EXTENT = 3  # 2,345 neurons, 63k edges, all 604 type pairs


@pytest.fixture(scope="session")
def cache_root(tmp_path_factory) -> Path:
    """A session cache folder; ``FlyVisConnectome`` graphs live in ``cache_root / "connectome"``."""
    return tmp_path_factory.mktemp("flygnn_cache")


@pytest.fixture(autouse=True)
def _session_cache(cache_root, monkeypatch):
    """Every test caches (connectomes, rendered stimuli, responses) in the session folder, never
    in the user's cache."""
    monkeypatch.setenv("FLYGNN_CACHE", str(cache_root))


@pytest.fixture
def flygnn_cache(cache_root, monkeypatch) -> Path:
    """Point flygnn's default cache (``$FLYGNN_CACHE``) at the session cache for one test."""
    monkeypatch.setenv("FLYGNN_CACHE", str(cache_root))
    return cache_root


@pytest.fixture(scope="session")
def data15(cache_root):
    """The extent-15 connectome ``HeteroData`` (45,669 neurons, 1,513,231 edges)."""
    return FlyVisConnectome(root=cache_root / "connectome", extent=15)[0]


@pytest.fixture(scope="session")
def graph15(data15):
    return flatten(data15)


@pytest.fixture(scope="session")
def data_small(cache_root):
    """A small connectome (extent 3) for fast tests."""
    return FlyVisConnectome(root=cache_root / "connectome", extent=SMALL_EXTENT)[0]


@pytest.fixture(scope="session")
def graph_small(data_small):
    return flatten(data_small)
