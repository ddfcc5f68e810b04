"""The guard itself: a non-loopback address fails, loopback works."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from tests.conftest import NetworkGuardError


def test_public_address_is_refused() -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with pytest.raises(NetworkGuardError):
            s.connect(("93.184.216.34", 80))
    finally:
        s.close()


def test_public_hostname_is_refused() -> None:
    with pytest.raises(NetworkGuardError):
        socket.getaddrinfo("fapi.binance.com", 443)


def test_loopback_is_allowed() -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        client.connect(("127.0.0.1", port))
        conn, _ = server.accept()
        with conn:
            client.sendall(b"ping")
            assert conn.recv(4) == b"ping"  # a local server really answers through the guard
        resolved = socket.getaddrinfo("localhost", port, type=socket.SOCK_STREAM)
        assert resolved and all(ipaddress.ip_address(r[4][0]).is_loopback for r in resolved)
    finally:
        client.close()
        server.close()
