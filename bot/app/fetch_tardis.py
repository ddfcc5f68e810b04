"""`liqguard fetch tardis`: Tardis.dev liquidations through its official client -> one unified tape.

The download is the `tardis-dev` package's own `download_datasets_async` (data type
`liquidations`), which fetches `{endpoint}/{exchange}/liquidations/{YYYY}/{MM}/{DD}/{SYMBOL}.csv.gz`
(default endpoint https://datasets.tardis.dev/v1, overridable by argument or
$LIQGUARD_TARDIS_DATASETS_URL, as the tests do with a server on 127.0.0.1). The first day of
each month is free without an API key; other days need one, sent by the client as a Bearer
header and never printed. Each day file is read by the `tardis` tape format (bot.sources.tardis:
USD per venue, bad rows rejected with a reason), the rows of all symbols of a day are put in
time order, and the result is written as the unified CSV (`ts_ms,venue,symbol,side,price,
quantity,notional_usd`), so every command reads it on the columnar path and the conversion is
done, and its rejections shown, once.
"""

from __future__ import annotations

import asyncio
import csv
import os
import tempfile
import urllib.error
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from bot.events import Liquidation
from bot.sources.files import Rejection, open_tape
from bot.sources.formats import UNIFIED_COLUMNS
from bot.sources.tardis import TARDIS_EXCHANGES
from bot.sources.validate import TapeError

ENDPOINT_ENV = "LIQGUARD_TARDIS_DATASETS_URL"
KEY_ENV = "LIQGUARD_TARDIS_API_KEY"
DATA_TYPE = "liquidations"
TIMEOUT_S = 600.0  # the client retries failures for long: give up after this, with a sentence
KEPT_REJECTIONS = 10


class FetchError(Exception):
    """A sentence for the person; exit_code 2 for usage and credentials, 1 for the rest."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class FetchResult:
    files: int = 0
    rows: int = 0
    rejected: int = 0
    first_rejections: list[tuple[str, Rejection]] = field(default_factory=list)
    venues: set[str] = field(default_factory=set)


def endpoint_url(given: str | None = None) -> str:
    from tardis_dev import DEFAULT_DATASETS_ENDPOINT

    return (given or os.environ.get(ENDPOINT_ENV) or DEFAULT_DATASETS_ENDPOINT).rstrip("/")


def check_exchange(exchange: str) -> str:
    if exchange not in TARDIS_EXCHANGES:
        raise FetchError(
            f"--exchange {exchange!r}: liqguard converts Tardis.dev liquidations of "
            f"{', '.join(TARDIS_EXCHANGES)} only (their amount units are known).",
            exit_code=2,
        )
    return exchange


def tardis_symbol(symbol: str) -> str:
    """The symbol as the client puts it in the URL and file name."""
    return symbol.strip().replace(":", "-").replace("/", "-").upper()


def _download(
    exchange: str,
    symbols: Sequence[str],
    first: date,
    last: date,
    folder: str,
    endpoint: str,
    api_key: str,
    timeout_s: float,
) -> None:
    from tardis_dev import download_datasets_async

    job = download_datasets_async(
        exchange=exchange,
        data_types=[DATA_TYPE],
        symbols=list(symbols),
        from_date=first.isoformat(),
        to_date=(last + timedelta(days=1)).isoformat(),  # the client's end is exclusive
        api_key=api_key,
        download_dir=folder,
        endpoint=endpoint,
        concurrency=4,
    )
    try:
        asyncio.run(asyncio.wait_for(job, timeout_s))
    except urllib.error.HTTPError as exc:
        raise _http_error(exc, bool(api_key)) from None
    except TimeoutError:
        raise FetchError(
            f"{endpoint}: no complete answer within {timeout_s:g} s (the client retries "
            "failed downloads); check the endpoint and the network, or raise --timeout."
        ) from None
    except OSError as exc:  # aiohttp's connection errors are OSErrors
        raise FetchError(f"{endpoint}: cannot be reached ({exc}).") from None


def _http_error(exc: urllib.error.HTTPError, with_key: bool) -> FetchError:
    url = exc.filename or exc.geturl() or "the datasets API"
    if exc.code in (401, 403) and not with_key:
        return FetchError(
            f"{url}: HTTP {exc.code}: without an API key Tardis.dev serves only the first "
            f"day of each month; set {KEY_ENV} in the environment or .env, or fetch first days.",
            exit_code=2,
        )
    if exc.code in (401, 403):
        return FetchError(
            f"{url}: HTTP {exc.code}: Tardis.dev refused the API key in {KEY_ENV} (wrong, "
            "expired, or its plan does not cover this exchange or date); check the key.",
            exit_code=2,
        )
    if exc.code == 404:
        return FetchError(
            f"{url}: HTTP 404: no such file (a symbol Tardis.dev does not have for this "
            "exchange, or a day outside its history); check --symbols and the dates."
        )
    return FetchError(f"{url}: HTTP {exc.code} from the datasets API; try again later.")


def _row(liq: Liquidation) -> list[str]:
    def num(x: float | None) -> str:
        return "" if x is None else repr(x)  # repr round-trips: the reader gets the same float

    return [str(liq.ts_ms), liq.venue, liq.symbol, liq.side, num(liq.price),
            num(liq.quantity), num(liq.notional_usd)]  # fmt: skip


def fetch_tardis(
    exchange: str,
    symbols: Sequence[str],
    first: date,
    last: date,
    output: Path,
    *,
    endpoint: str | None = None,
    api_key: str = "",
    download_dir: Path | None = None,
    timeout_s: float = TIMEOUT_S,
    progress: Callable[[str], None] | None = None,
) -> FetchResult:
    """Download [first, last] (UTC days, both included) and write one unified tape."""
    check_exchange(exchange)
    names = list(dict.fromkeys(tardis_symbol(s) for s in symbols if s.strip()))
    if not names:
        raise FetchError("--symbols is empty; name at least one (e.g. BTCUSDT).", exit_code=2)
    if last < first:
        raise FetchError(f"--to {last} is before --from {first}.", exit_code=2)
    url = endpoint_url(endpoint)
    with tempfile.TemporaryDirectory(prefix="liqguard-tardis-") as scratch:
        folder = str(download_dir) if download_dir is not None else scratch
        if progress is not None:
            progress(f"downloading {exchange} {DATA_TYPE} of {', '.join(names)} from {url}")
        _download(exchange, names, first, last, folder, url, api_key, timeout_s)
        return _convert(exchange, names, first, last, Path(folder), output)


def _convert(
    exchange: str, names: list[str], first: date, last: date, folder: Path, output: Path
) -> FetchResult:
    from tardis_dev import default_file_name

    result = FetchResult()
    part = output.with_name(output.name + ".part")  # nothing at `output` unless all went well
    try:
        with part.open("w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(UNIFIED_COLUMNS)
            day = first
            while day <= last:
                midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
                events: list[Liquidation] = []
                for name in names:
                    path = folder / default_file_name(exchange, DATA_TYPE, midnight, name, "csv")
                    events += _read(path, result)
                # One day of every symbol, in time order: the detector reads rows in order.
                events.sort(key=lambda e: e.ts_ms)
                writer.writerows(_row(e) for e in events)
                result.rows += len(events)
                result.venues.update(e.venue for e in events)
                day += timedelta(days=1)
        part.replace(output)
    except OSError as exc:
        raise FetchError(f"{output}: cannot write it ({exc.strerror or exc}).") from None
    finally:
        part.unlink(missing_ok=True)
    return result


def _read(path: Path, result: FetchResult) -> list[Liquidation]:
    result.files += 1
    try:
        tape = open_tape(path)
        if tape.format != "tardis":
            raise TapeError(f"{path} is not a Tardis.dev liquidations CSV (its first line).")
        events = list(tape)
    except TapeError as exc:
        if "is empty" in str(exc):
            return []  # Tardis serves an empty gzip file for a day without liquidations
        raise FetchError(str(exc)) from None
    result.rejected += tape.stats.rejected
    for r in tape.stats.first_rejections:
        if len(result.first_rejections) < KEPT_REJECTIONS:
            result.first_rejections.append((path.name, r))
    return events
