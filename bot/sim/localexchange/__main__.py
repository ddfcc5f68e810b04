"""`python -m bot.sim.localexchange [--port N]`: serve the local Binance (with control routes)
on 127.0.0.1 and print `PORT <n>` once listening; runs until killed."""

from __future__ import annotations

import argparse
import asyncio

from bot.sim.localexchange import serve
from bot.sim.localexchange.binance import LocalBinance
from bot.sim.localexchange.control import add_control


async def main(port: int) -> None:
    server = LocalBinance()
    add_control(server)
    async with serve(server.app, port) as bound:
        print(f"PORT {bound}", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(main(parser.parse_args().port))
