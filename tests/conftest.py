"""Test-wide guard: no test may reach beyond this machine (127.0.0.0/8, ::1, unix sockets)."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


class NetworkGuardError(RuntimeError):
    """A test tried to reach a non-loopback address."""


def _is_loopback_host(host: Any) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode()
    host = str(host)
    if host in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _check(address: Any) -> None:
    if isinstance(address, tuple) and address and not _is_loopback_host(address[0]):
        raise NetworkGuardError(f"test tried to reach non-loopback address {address[0]!r}")


def _guarded_connect(self: socket.socket, address: Any) -> None:
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _check(address)
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _check(address)
    return _real_connect_ex(self, address)


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    if not _is_loopback_host(host):
        raise NetworkGuardError(f"test tried to resolve non-loopback host {host!r}")
    return _real_getaddrinfo(host, *args, **kwargs)


def pytest_configure(config: pytest.Config) -> None:
    """Install the guard before any test module is imported: import-time code is covered too."""
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = _guarded_getaddrinfo


def pytest_unconfigure(config: pytest.Config) -> None:
    socket.socket.connect = _real_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _real_connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = _real_getaddrinfo


@pytest.fixture(scope="session")
def pg() -> Any:
    """A real PostgreSQL (tests/pg.py), started on first use and stopped after the session."""
    from tests.pg import LocalPostgres

    server = LocalPostgres()
    yield server
    server.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def journal_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """A fresh journal URL on each back end: a SQLite file, or a new database on `pg`."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'j.sqlite'}"
    return str(request.getfixturevalue("pg").url())
