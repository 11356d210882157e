"""Fixtures of the search tests: a real PostgreSQL server (see ``postgres.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from children import Pool
from needs import require
from postgres import fresh_database, missing, running_postgres


def _require_postgres() -> None:
    require(missing(), "PostgreSQL tests")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server for the whole session (started once: initdb takes seconds)."""
    _require_postgres()
    with running_postgres() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """The URL of a fresh database on the session's server (dropped after the test)."""
    with fresh_database(postgres_server) as url:
        yield url


@pytest.fixture(scope="session")
def children() -> Iterator[Pool]:
    """Child processes that import nasviz together, once (see ``children.py``): one serves
    every shared-study test, three are killed in them, one is killed during halving, one is
    killed holding a journal's lock."""
    pool = Pool(size=6)
    yield pool
    pool.close()


@pytest.fixture(scope="session")
def helper(children: Pool):
    """One child that serves job after job (never killed)."""
    return children.take()
