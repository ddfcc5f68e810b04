"""A small Bot API on 127.0.0.1 that plays Telegram for the tests (aiohttp).

It answers what python-telegram-bot calls (getMe, getUpdates long poll, sendMessage,
sendPhoto multipart, editMessageText, editMessageReplyMarkup, answerCallbackQuery,
deleteWebhook, setMyCommands, ...), keeps the messages it was sent, records every call, can
answer with injected errors (429 with retry_after, 400 "message is not modified", ...), and
lets a test press a button or send a command as a given user in a given chat.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

_JSON_FIELDS = {"reply_markup", "allowed_updates", "commands", "entities", "reply_parameters"}
_NUM_FIELDS = {"chat_id", "message_id", "message_thread_id", "offset", "limit", "timeout"}
BOT_ID = 777000111


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)
    status: int = 200


@dataclass
class _Fault:
    method: str
    code: int
    description: str
    times: int
    retry_after: float | None = None


class FakeTelegram:
    """Start with `await server.start()`; `base_url`/`base_file_url` go to ApplicationBuilder."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.calls: list[Call] = []
        self.messages: dict[tuple[int, int], dict[str, Any]] = {}
        self._updates: list[dict[str, Any]] = []
        self._next_update_id = 1
        self._next_message_id: dict[int, int] = {}
        self._faults: list[_Fault] = []
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0
        # (user id, label prefix): press that button as soon as a message shows it
        self.auto_press: tuple[int, str] | None = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        app = web.Application(client_max_size=20 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=0.1
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/file/bot"

    # ------------------------------------------------------------------ test controls
    def fail(
        self,
        method: str,
        code: int = 429,
        description: str = "Too Many Requests: retry after 1",
        times: int = 1,
        retry_after: float | None = None,
    ) -> None:
        """Answer the next `times` calls of `method` with this error."""
        self._faults.append(_Fault(method, code, description, times, retry_after))

    async def press(
        self,
        user_id: int,
        chat_id: int,
        message_id: int,
        data: str,
        thread_id: int | None = None,
    ) -> str:
        """Queue a button press (callback_query); returns the callback query id."""
        query_id = f"q{self._next_update_id}"
        msg = dict(self.messages.get((chat_id, message_id)) or self._message(chat_id, message_id))
        if thread_id is not None:
            msg["message_thread_id"] = thread_id
            msg["is_topic_message"] = True
        await self._push(
            {
                "callback_query": {
                    "id": query_id,
                    "from": _user(user_id),
                    "chat_instance": f"ci{chat_id}",
                    "message": msg,
                    "data": data,
                }
            }
        )
        return query_id

    async def command(
        self, user_id: int, chat_id: int, text: str, thread_id: int | None = None
    ) -> int:
        """Queue a message (a /command) from a user; returns its message id."""
        mid = self._new_message_id(chat_id)
        msg = self._message(chat_id, mid, text=text, sender=user_id)
        if text.startswith("/"):
            msg["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        if thread_id is not None:
            msg["message_thread_id"] = thread_id
            msg["is_topic_message"] = True
        await self._push({"message": msg})
        return mid

    def sent(self, method: str | None = None) -> list[Call]:
        """Successful calls (status 200), optionally of one method."""
        return [c for c in self.calls if c.status == 200 and method in (None, c.method)]

    async def wait_for(
        self, predicate: Callable[[Call], bool], count: int = 1, timeout_s: float = 10.0
    ) -> list[Call]:
        """Wait until `count` successful calls match; return them."""

        def matching() -> list[Call]:
            return [c for c in self.calls if c.status == 200 and predicate(c)]

        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: len(matching()) >= count), timeout_s
            )
        return matching()

    async def answer_for(self, query_id: str, timeout_s: float = 10.0) -> Call:
        calls = await self.wait_for(
            lambda c: (
                c.method == "answerCallbackQuery" and c.params.get("callback_query_id") == query_id
            ),
            timeout_s=timeout_s,
        )
        return calls[0]

    # ------------------------------------------------------------------ internals
    async def _push(self, update: dict[str, Any]) -> None:
        update["update_id"] = self._next_update_id
        self._next_update_id += 1
        self._updates.append(update)
        async with self._changed:
            self._changed.notify_all()

    def _new_message_id(self, chat_id: int) -> int:
        mid = self._next_message_id.get(chat_id, 100) + 1
        self._next_message_id[chat_id] = mid
        return mid

    def _message(
        self, chat_id: int, message_id: int, text: str | None = None, sender: int = BOT_ID
    ) -> dict[str, Any]:
        msg: dict[str, Any] = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "supergroup" if chat_id < 0 else "private"},
            "from": _user(sender),
        }
        if text is not None:
            msg["text"] = text
        return msg

    async def _params(self, request: web.Request) -> tuple[dict[str, Any], dict[str, bytes]]:
        params: dict[str, Any] = dict(request.query)
        files: dict[str, bytes] = {}
        ctype = request.content_type
        if ctype == "application/json":
            params.update(await request.json())
        elif ctype.startswith("multipart/"):
            reader = await request.multipart()
            async for part in reader:
                if part.filename:  # type: ignore[union-attr]
                    files[part.name or ""] = await part.read()  # type: ignore[union-attr]
                else:
                    params[part.name or ""] = await part.text()  # type: ignore[union-attr]
        elif request.can_read_body:
            params.update(dict(await request.post()))
        for key, value in list(params.items()):
            if not isinstance(value, str):
                continue
            if key in _JSON_FIELDS:
                params[key] = json.loads(value)
            elif key in _NUM_FIELDS:
                with contextlib.suppress(ValueError):
                    params[key] = int(value) if value.lstrip("-").isdigit() else float(value)
        return params, files

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params, files = await self._params(request)
        call = Call(method, params, files)
        if request.match_info["token"] != self.token:
            return await self._record(call, 401, _error(401, "Unauthorized"))
        for fault in self._faults:
            if fault.method == method and fault.times > 0:
                fault.times -= 1
                body = _error(fault.code, fault.description)
                if fault.retry_after is not None:
                    body["parameters"] = {"retry_after": fault.retry_after}
                return await self._record(call, fault.code, body)
        handler = getattr(self, f"_m_{method}", None)
        if handler is None:
            return await self._record(call, 200, {"ok": True, "result": True})
        status, result = await handler(params, files)
        body = {"ok": True, "result": result} if status == 200 else result
        return await self._record(call, status, body)

    async def _record(self, call: Call, status: int, body: dict[str, Any]) -> web.Response:
        call.status = status
        self.calls.append(call)
        async with self._changed:
            self._changed.notify_all()
        # Telegram answers errors with HTTP status = error_code
        return web.json_response(body, status=status)

    async def _m_getMe(self, p: dict[str, Any], f: dict[str, bytes]) -> tuple[int, Any]:
        return 200, {
            "id": BOT_ID,
            "is_bot": True,
            "first_name": "liqguard test",
            "username": "liqguard_test_bot",
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    async def _m_getUpdates(self, p: dict[str, Any], f: dict[str, bytes]) -> tuple[int, Any]:
        offset = int(p.get("offset") or 0)
        timeout_s = float(p.get("timeout") or 0)
        self._updates = [u for u in self._updates if u["update_id"] >= offset]
        if not self._updates and timeout_s > 0:
            async with self._changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._changed.wait_for(lambda: bool(self._updates)), timeout_s
                    )
        return 200, list(self._updates)

    async def _m_sendMessage(self, p: dict[str, Any], f: dict[str, bytes]) -> tuple[int, Any]:
        chat_id = int(p["chat_id"])
        msg = self._message(chat_id, self._new_message_id(chat_id), text=str(p["text"]))
        return 200, self._store(msg, p)

    async def _m_sendPhoto(self, p: dict[str, Any], f: dict[str, bytes]) -> tuple[int, Any]:
        chat_id = int(p["chat_id"])
        if "photo" not in f:
            return 400, _error(400, "Bad Request: there is no photo in the request")
        msg = self._message(chat_id, self._new_message_id(chat_id))
        msg["photo"] = [{"file_id": "ph1", "file_unique_id": "u1", "width": 1, "height": 1}]
        if p.get("caption"):
            msg["caption"] = p["caption"]
        return 200, self._store(msg, p)

    def _store(self, msg: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
        if p.get("reply_markup"):
            msg["reply_markup"] = p["reply_markup"]
        if p.get("message_thread_id"):
            msg["message_thread_id"] = p["message_thread_id"]
            msg["is_topic_message"] = True
        self.messages[(msg["chat"]["id"], msg["message_id"])] = msg
        return msg

    async def _edit(self, p: dict[str, Any], text: str | None) -> tuple[int, Any]:
        key = (int(p["chat_id"]), int(p["message_id"]))
        msg = self.messages.get(key)
        if msg is None:
            return 400, _error(400, "Bad Request: message to edit not found")
        new_text = msg.get("text") if text is None else text
        new_markup = p.get("reply_markup") or None
        if new_text == msg.get("text") and new_markup == msg.get("reply_markup"):
            return 400, _error(
                400,
                "Bad Request: message is not modified: specified new message content and "
                "reply markup are exactly the same as a current content and reply markup "
                "of the message",
            )
        msg = {**msg, "text": new_text, "edit_date": int(time.time())}
        msg.pop("reply_markup", None)
        if new_markup:
            msg["reply_markup"] = new_markup
        self.messages[key] = msg
        if self.auto_press is not None and new_markup:
            user_id, label = self.auto_press
            for button in buttons(msg):
                if label in button["text"]:
                    await self.press(user_id, key[0], key[1], button["callback_data"])
                    break
        return 200, msg

    async def _m_editMessageText(self, p: dict[str, Any], f: dict[str, bytes]) -> tuple[int, Any]:
        return await self._edit(p, str(p["text"]))

    async def _m_editMessageReplyMarkup(
        self, p: dict[str, Any], f: dict[str, bytes]
    ) -> tuple[int, Any]:
        return await self._edit(p, None)


def _user(user_id: int) -> dict[str, Any]:
    return {
        "id": user_id,
        "is_bot": user_id == BOT_ID,
        "first_name": f"user{user_id}",
        "username": f"user{user_id}",
    }


def _error(code: int, description: str) -> dict[str, Any]:
    return {"ok": False, "error_code": code, "description": description}


def buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The inline buttons of a stored message, flattened."""
    rows = (message.get("reply_markup") or {}).get("inline_keyboard") or []
    return [b for row in rows for b in row]


# ---------------------------------------------------------------------------------- test kit
TOKEN = "123456789:AAEtestTOKENabcdefghijklmnopqrstuvw"
HMAC_KEY = "k" * 32
CHAT = -1001234567
ALICE, BOB, CAROL, MALLORY = 11, 22, 33, 99


def telegram_settings(server: FakeTelegram, **overrides: Any) -> Any:
    """Settings with a telegram section pointing at `server` (short polls for fast tests)."""
    from bot.config.settings import Settings
    from bot.config.telegram import TelegramConfig

    fields: dict[str, Any] = {
        "chat_id": CHAT,
        "allowed_user_ids": (ALICE, BOB, CAROL),
        "base_url": server.base_url,
        "poll_timeout_s": 0.5,
        "coalesce_s": 0.05,
        "connect_timeout_s": 2.0,
    }
    fields.update(overrides)
    return Settings(telegram=TelegramConfig(**fields))


def telegram_secrets() -> Any:
    from bot.secrets import Secrets

    return Secrets(
        _env_file=None,  # type: ignore[call-arg]
        telegram_bot_token=TOKEN,
        approval_hmac_key=HMAC_KEY,
    )
