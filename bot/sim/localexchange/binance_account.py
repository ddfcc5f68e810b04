"""The account side of the local Binance USD-M: brackets, positions, balances, key rights."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web


class BinanceError(Exception):
    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status


@dataclass
class Position:
    amount: float = 0.0  # signed: > 0 long
    entry_price: float = 0.0


class AccountReads:
    """Signed account reads; mixed into LocalBinance, which owns the state."""

    positions: dict[str, Position]
    marks: dict[str, float]
    leverage: float
    balance_usdt: float
    withdrawals_enabled: bool

    async def _signed(self, request: web.Request) -> dict[str, str]:
        raise NotImplementedError

    @staticmethod
    def _json(data: Any, status: int = 200) -> web.Response:
        return web.json_response(data, status=status)

    async def _brackets(self, request: web.Request) -> web.Response:
        await self._signed(request)
        bracket = {
            "bracket": 1,
            "initialLeverage": 125,
            "notionalCap": 10_000_000,
            "notionalFloor": 0,
            "maintMarginRatio": 0.004,
            "cum": 0.0,
        }
        return self._json([{"symbol": s, "brackets": [bracket]} for s in self.marks])

    def _used_margin(self) -> float:
        return sum(abs(p.amount) * self.marks[s] / self.leverage for s, p in self.positions.items())

    def _upnl(self) -> float:
        return sum(p.amount * (self.marks[s] - p.entry_price) for s, p in self.positions.items())

    async def _position_risk(self, request: web.Request) -> web.Response:
        await self._signed(request)
        now = int(time.time() * 1000)
        out = []
        for s, p in self.positions.items():
            if p.amount == 0:
                continue
            mark = self.marks[s]
            liq = p.entry_price * (1 - 0.9 / self.leverage * (1 if p.amount > 0 else -1))
            out.append(
                {
                    "symbol": s,
                    "positionSide": "BOTH",
                    "positionAmt": repr(p.amount),
                    "entryPrice": repr(p.entry_price),
                    "breakEvenPrice": repr(p.entry_price),
                    "markPrice": repr(mark),
                    "unRealizedProfit": repr(p.amount * (mark - p.entry_price)),
                    "liquidationPrice": repr(round(liq, 1)),
                    "leverage": str(int(self.leverage)),
                    "marginType": "cross",
                    "isolatedMargin": "0",
                    "isolatedWallet": "0",
                    "notional": repr(p.amount * mark),
                    "marginAsset": "USDT",
                    "initialMargin": repr(abs(p.amount) * mark / self.leverage),
                    "maintMargin": repr(abs(p.amount) * mark * 0.004),
                    "isAutoAddMargin": "false",
                    "maxNotionalValue": "10000000",
                    "updateTime": now,
                }
            )
        return self._json(out)

    def _available(self) -> float:
        return self.balance_usdt + self._upnl() - self._used_margin()

    async def _balance(self, request: web.Request) -> web.Response:
        await self._signed(request)
        return self._json(
            [
                {
                    "accountAlias": "local",
                    "asset": "USDT",
                    "balance": repr(self.balance_usdt),
                    "crossWalletBalance": repr(self.balance_usdt),
                    "crossUnPnl": repr(self._upnl()),
                    "availableBalance": repr(self._available()),
                    "maxWithdrawAmount": repr(self._available()),
                    "marginAvailable": True,
                    "updateTime": int(time.time() * 1000),
                }
            ]
        )

    async def _account(self, request: web.Request) -> web.Response:
        await self._signed(request)
        asset = {
            "asset": "USDT",
            "walletBalance": repr(self.balance_usdt),
            "unrealizedProfit": repr(self._upnl()),
            "marginBalance": repr(self.balance_usdt + self._upnl()),
            "availableBalance": repr(self._available()),
            "maxWithdrawAmount": repr(self._available()),
            "crossWalletBalance": repr(self.balance_usdt),
            "initialMargin": repr(self._used_margin()),
            "updateTime": int(time.time() * 1000),
        }
        return self._json(
            {
                "totalWalletBalance": repr(self.balance_usdt),
                "availableBalance": repr(self._available()),
                "assets": [asset],
                "positions": [],
            }
        )

    async def _api_restrictions(self, request: web.Request) -> web.Response:
        await self._signed(request)
        return self._json(
            {
                "ipRestrict": False,
                "createTime": 1700000000000,
                "enableWithdrawals": self.withdrawals_enabled,
                "enableReading": True,
                "enableFutures": True,
                "enableSpotAndMarginTrading": False,
            }
        )
