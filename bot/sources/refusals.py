"""A venue's answer that refuses a subscription: the venue's own reason, so the feed stops
`blind` with it (a retry would be refused again). Shared by the venues read over WsClient
(bot.sources.wsclient) and Hyperliquid's accounts over ccxt (bot.sources.streams)."""

from __future__ import annotations

from typing import Any


class SubscriptionRefused(ValueError):
    """The venue answered a subscribe with an error: a configuration it will not serve, so
    the feed stops `blind` with the venue's own reason (a retry would be refused again)."""


def refusal(venue: str, msg: Any) -> str | None:
    """The venue's reason if `msg` refuses a subscription, else None."""
    if not isinstance(msg, dict):
        return None
    if venue == "htx":
        # HTX: {"op": "sub", "err-code": 2011, "err-msg": ...} (0 = accepted), or the
        # {"status": "error", "err-code", "err-msg"} form of its other websockets
        code = msg.get("err-code")
        refused = msg.get("status") == "error" or (
            msg.get("op") == "sub" and code not in (None, 0, "0")
        )
        if refused:
            what = msg.get("topic") or "the subscription"
            return f"HTX refused {what}: err-code {code}: {msg.get('err-msg') or 'no reason given'}"
    if venue == "bitget" and msg.get("event") == "error":
        # Bitget: {"event": "error", "arg": {...}, "code": "30001", "msg": ...}
        arg = msg.get("arg")
        what = f"{arg.get('instType')} {arg.get('topic')}" if isinstance(arg, dict) else "it"
        return f"Bitget refused {what}: code {msg.get('code')}: {msg.get('msg') or 'no reason'}"
    if venue == "gate" and msg.get("event") == "subscribe" and isinstance(msg.get("error"), dict):
        # Gate API v4 websocket, server response: "error": {code, message}, "result": null
        err = msg["error"]
        return f"Gate refused {msg.get('channel')}: code {err.get('code')}: {err.get('message')}"
    if venue == "deribit" and msg.get("id") == 1 and isinstance(msg.get("error"), dict):
        # Deribit: the JSON-RPC error answer to our public/subscribe (id 1)
        err = msg["error"]
        return f"Deribit refused public/subscribe: code {err.get('code')}: {err.get('message')}"
    if venue == "dydx" and msg.get("type") == "error":
        # dYdX indexer (socks createErrorMessage): {type: "error", message, connection_id, ...}
        return f"dYdX refused the subscription: {msg.get('message') or 'no reason given'}"
    if venue == "hyperliquid" and msg.get("channel") == "error":
        # Hyperliquid: {"channel": "error", "data": "Cannot track more than 10 total users."}
        # (seen answering a user subscription past the limit). A duplicate subscribe is
        # harmless (ccxt ignores it) and a message-rate limit passes: neither is a refusal.
        text = str(msg.get("data") or "no reason given")
        if not text.startswith(("Already subscribed", "Cannot send more than")):
            return f"Hyperliquid refused the subscription: {text}"
    return None
