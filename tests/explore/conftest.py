"""Fixtures of the explore tests: one small trained shapes run and its warmed-up Explorer."""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from jaxcnn.explore import Explorer
from tests.explore.serving import serving, train_shapes_run

if TYPE_CHECKING:
    from playwright.sync_api import Browser


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


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the session's browser tests (tests/explore/browser.py).

    Without a browser these tests skip, except in CI (``CI=true``), where they fail: a browser
    test skipped in CI would pass nothing.
    """
    missing = None
    if importlib.util.find_spec("playwright") is None:
        missing = "no playwright: pip install -e '.[dev]'"
    else:
        from tests.explore.browser import chromium_version, find_chromium, launch

        path = find_chromium()
        if path is None:
            missing = "no Chromium: install Debian's chromium package or point $CHROMIUM at one"
    if missing is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true, but {missing}", pytrace=False)
        pytest.skip(missing)
    assert path is not None
    version = chromium_version(path)
    logging.getLogger(__name__).warning("browser tests use %s (%s)", version, path)
    with launch(path) as chromium:
        yield chromium
