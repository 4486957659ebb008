from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.httpserver import LocalServer  # noqa: E402

from monitor.settings import Settings  # noqa: E402


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--regen-golden", action="store_true", help="rewrite golden files from current output")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "both_databases: run the test on SQLite and on PostgreSQL "
                                       "(MONITOR_TEST_POSTGRES_URL; skipped with the reason when unset)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("both_databases") and "database_url" in metafunc.fixturenames:
        metafunc.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The test's database: a SQLite file, or (tests marked both_databases) a fresh PostgreSQL schema too."""
    if getattr(request, "param", "sqlite") == "sqlite":
        yield f"sqlite:///{tmp_path / 'monitor.db'}"
        return
    from support.pg import fresh_schema

    with fresh_schema() as url:
        yield url


@pytest.fixture
def server() -> Iterator[LocalServer]:
    srv = LocalServer("127.0.0.1").start()
    yield srv
    srv.stop()


@pytest.fixture
def forbidden_server() -> Iterator[LocalServer]:
    """A server on 127.0.0.2: content-derived URLs must never reach it."""
    srv = LocalServer("127.0.0.2").start()
    yield srv
    srv.stop()


def write_feeds(path: Path, feeds: list[dict[str, Any]]) -> Path:
    import yaml

    path.write_text(yaml.safe_dump({"feeds": feeds}, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture
def make_settings(tmp_path: Path, database_url: str) -> Callable[..., Settings]:
    def build(feeds: list[dict[str, Any]], **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": database_url,
            "feeds_file": write_feeds(tmp_path / "feeds.yaml", feeds),
            "rules_dir": ROOT / "rules",
            "allow_private_networks": "127.0.0.1/32",
            "connect_timeout": 2,
            "fetch_timeout": 5,
            "workers": 1,
            "parse_timeout": 10,
            "extract_timeout": 20,
            "per_host_delay": 0,  # everything here is on 127.0.0.1; spacing has its own test
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return build


@pytest.fixture
def unused_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for a server the test starts itself)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def slack() -> Iterator[Any]:
    """A fake Slack on 127.0.0.1 (support.fakeslack)."""
    from support.fakeslack import FakeSlack

    fake = FakeSlack()
    yield fake
    fake.shutdown()
    fake.server_close()


@pytest.fixture
def smtp(unused_port: int) -> Iterator[tuple[Any, int]]:
    """A real SMTP server (aiosmtpd, support.mailbox) on 127.0.0.1: (mailbox, port)."""
    from support.mailbox import Mailbox, start

    box = Mailbox()
    controller = start(box, unused_port)
    yield box, unused_port
    controller.stop()
