"""A real local chain for the tests: anvil (from npm) on 127.0.0.1, or in-process eth-tester.

`make test` installs anvil (package.json at the top: `npm ci` puts it in node_modules/).
The tests run the binary itself on a free port and kill it (not `npx anvil`: killing npx
leaves anvil running). Without anvil the tests that need it FAIL, saying how to install it;
what needs no websocket also runs on eth-tester (web3[tester], no Node).
"""

from __future__ import annotations

import asyncio
import os
import platform
import shutil
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from web3 import AsyncHTTPProvider, AsyncWeb3

REPO = Path(__file__).resolve().parents[2]
INSTALL_HINT = (
    "anvil is not installed: run `make test` (it runs `npm ci`, installing @foundry-rs/anvil "
    "from package.json into node_modules/), or set LIQGUARD_ANVIL to an anvil binary"
)
_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def anvil_path() -> Path | None:
    """The anvil binary: $LIQGUARD_ANVIL, the npm package in node_modules/, or PATH."""
    if os.environ.get("LIQGUARD_ANVIL"):
        given = Path(os.environ["LIQGUARD_ANVIL"])
        return given if given.is_file() else None
    system = {"Linux": "linux", "Darwin": "darwin", "Windows": "win32"}.get(platform.system())
    arch = _ARCH.get(platform.machine().lower())
    exe = "anvil.exe" if system == "win32" else "anvil"
    candidate = REPO / "node_modules" / "@foundry-rs" / f"anvil-{system}-{arch}" / "bin" / exe
    if candidate.is_file():
        return candidate
    found = shutil.which("anvil")
    return Path(found) if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Anvil:
    port: int
    process: asyncio.subprocess.Process

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


@asynccontextmanager
async def running_anvil() -> AsyncIterator[Anvil]:
    """Start anvil on a free loopback port; kill it (the binary) on exit."""
    binary = anvil_path()
    if binary is None:
        pytest.fail(INSTALL_HINT)
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        str(binary), "--host", "127.0.0.1", "--port", str(port), "--silent",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    anvil = Anvil(port, process)
    w3 = AsyncWeb3(AsyncHTTPProvider(anvil.http_url, exception_retry_configuration=None))
    try:
        for _ in range(500):
            if process.returncode is not None:
                pytest.fail(f"anvil exited at start with code {process.returncode}")
            try:
                await w3.eth.chain_id
                break
            except Exception:
                await asyncio.sleep(0.02)
        else:
            pytest.fail("anvil did not answer on its port within 10 s")
        yield anvil
    finally:
        await w3.provider.disconnect()
        if process.returncode is None:
            process.kill()
        await process.wait()


def tester_web3() -> AsyncWeb3:
    """An in-process chain (eth-tester + py-evm): HTTP-like calls, no websocket."""
    from web3.providers.eth_tester import AsyncEthereumTesterProvider

    return AsyncWeb3(AsyncEthereumTesterProvider())
