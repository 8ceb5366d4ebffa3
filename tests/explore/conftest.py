"""Fixtures of the explore tests: one small trained shapes run and its warmed-up Explorer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jaxcnn.explore import Explorer
from tests.explore.serving import serving, train_shapes_run


@pytest.fixture(scope="session")
def shapes_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-epoch shapes run directory (checkpoint.npz, history.json)."""
    return train_shapes_run(tmp_path_factory.mktemp("explore") / "shapes")


@pytest.fixture(scope="session")
def shapes_explorer(shapes_run: Path) -> Explorer:
    """An Explorer over the shapes run, every function compiled."""
    explorer = Explorer(shapes_run, note=lambda _: None)
    explorer.warm_up()
    return explorer


@pytest.fixture(scope="session")
def bare_explorer() -> Explorer:
    """An Explorer without a run (the kernel views only), compiled."""
    explorer = Explorer(None, note=lambda _: None)
    explorer.warm_up()
    return explorer


@pytest.fixture(scope="session")
def shapes_url(shapes_explorer: Explorer) -> Iterator[str]:
    """The URL of a server of the shapes run, for the whole session."""
    with serving(shapes_explorer) as url:
        yield url


@pytest.fixture(scope="session")
def bare_url(bare_explorer: Explorer) -> Iterator[str]:
    """The URL of a server without a run."""
    with serving(bare_explorer) as url:
        yield url
