"""Targets for the contract suite: every door by default, or `--logx-url URL`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .targets import DOORS, Target, UrlTarget, open_target

_opened: dict[str, Target] = {}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--logx-url",
        metavar="URL",
        help="run the contract's status-level cases against this running endpoint "
        "(another logx-mock, or https://logx.optimizely.com) instead of every door",
    )


def target_names(config: pytest.Config) -> list[str]:
    url = config.getoption("--logx-url")
    return [f"url:{url}"] if url else DOORS


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "target_name" in metafunc.fixturenames:
        names = target_names(metafunc.config)
        metafunc.parametrize("target_name", names, ids=[n.split(":", 1)[0] for n in names])


def _open(name: str) -> Target:
    if name not in _opened:
        _opened[name] = UrlTarget(name[4:]) if name.startswith("url:") else open_target(name)
    return _opened[name]


@pytest.fixture(scope="session", autouse=True)
def _close_targets() -> Iterator[None]:
    yield
    for target in _opened.values():
        target.close()
    _opened.clear()


@pytest.fixture
def target(target_name: str) -> Target:
    """The door under test, reset before the test."""
    chosen = _open(target_name)
    chosen.reset()
    return chosen


@pytest.fixture
def open_door() -> object:
    """Open (or reuse) a door by name and reset it: for tests that compare doors."""

    def get(name: str) -> Target:
        chosen = _open(name)
        chosen.reset()
        return chosen

    return get
