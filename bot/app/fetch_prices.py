"""`liqguard fetch prices`: Binance's public kline archive (Binance Vision) -> a kline CSV that
`read_prices` reads, every zip checked against its published `.CHECKSUM` (SHA-256).

Layout served (and mimicked by the tests on 127.0.0.1):
  {base}/data/{market}/monthly/klines/{SYMBOL}/{interval}/{SYMBOL}-{interval}-{YYYY}-{MM}.zip
  {base}/data/{market}/daily/klines/{SYMBOL}/{interval}/{SYMBOL}-{interval}-{YYYY}-{MM}-{DD}.zip
each with `<file>.CHECKSUM` = "<sha256 hex>  <file name>". Whole months come from the monthly
files, the days of a partial month from the daily ones. Output: the archive's 12 columns, no
header, open and close times in epoch ms (the archive switched to µs in 2025), rows with
since <= open time < to, in time order.
"""

from __future__ import annotations

import hashlib
import io
import os
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

DEFAULT_BASE = "https://data.binance.vision"
BASE_ENV = "LIQGUARD_BINANCE_VISION_URL"  # the archive's root, overridable like the exchanges'
MARKETS = {"spot": "spot", "um": "futures/um", "cm": "futures/cm"}
INTERVALS = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d")
TIMEOUT_S = 60.0
_US_ABOVE = 10**14  # epoch ms stay below this; µs are above it


class FetchError(Exception):
    """A file could not be fetched or failed its checksum; the message names it."""


@dataclass(frozen=True)
class Archive:
    base: str
    market: str
    symbol: str
    interval: str

    def url(self, period: str, name: str) -> str:
        path = f"data/{MARKETS[self.market]}/{period}/klines/{self.symbol}/{self.interval}/{name}"
        return f"{self.base.rstrip('/')}/{path}"


def base_url(given: str | None = None) -> str:
    return given or os.environ.get(BASE_ENV) or DEFAULT_BASE


def files_for(symbol: str, interval: str, since: date, until: date) -> list[tuple[str, str]]:
    """(period, file name) covering [since, until): monthly for whole months, else daily."""
    out: list[tuple[str, str]] = []
    day = since
    while day < until:
        first = day.replace(day=1)
        nxt = (first + timedelta(days=32)).replace(day=1)
        if day == first and nxt <= until:
            out.append(("monthly", f"{symbol}-{interval}-{day:%Y-%m}.zip"))
            day = nxt
        else:
            out.append(("daily", f"{symbol}-{interval}-{day:%Y-%m-%d}.zip"))
            day += timedelta(days=1)
    return out


def _get(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp:
            return bytes(resp.read())
    except urllib.error.HTTPError as exc:
        hint = " (not published: a future date, or a symbol/interval the archive lacks)"
        raise FetchError(f"{url}: HTTP {exc.code}{hint if exc.code == 404 else ''}.") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise FetchError(f"{url}: cannot be fetched ({reason}).") from None


def _verified(archive: Archive, period: str, name: str) -> bytes:
    url = archive.url(period, name)
    blob = _get(url)
    listed = _get(url + ".CHECKSUM").decode("utf-8", "replace").split()
    if not listed:
        raise FetchError(f"{url}.CHECKSUM is empty; the zip cannot be verified.")
    digest = hashlib.sha256(blob).hexdigest()
    if digest != listed[0].lower():
        raise FetchError(
            f"{url}: SHA-256 {digest} does not match its .CHECKSUM {listed[0]}; "
            "the download is damaged or altered (run again)."
        )
    return blob


def _ms(text: str) -> str:
    value = int(text)
    return str(value // 1000 if value >= _US_ABOVE else value)


def _rows(blob: bytes, name: str) -> Iterator[list[str]]:
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as zf:
            for member in zf.namelist():
                for line in zf.read(member).decode("utf-8").splitlines():
                    cells = line.strip().split(",")
                    if not cells or not cells[0].strip().isdigit():
                        continue  # a header row (the futures archive has one)
                    cells[0] = _ms(cells[0])
                    if len(cells) > 6 and cells[6].strip().isdigit():
                        cells[6] = _ms(cells[6])
                    yield cells
    except zipfile.BadZipFile:
        raise FetchError(f"{name} is not a zip file although its checksum matched.") from None


def fetch_prices(
    symbol: str,
    interval: str,
    since: date,
    until: date,
    market: str = "spot",
    base: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[list[str]]:
    """Kline rows with since <= open time < until (UTC dates), from verified archive files."""
    archive = Archive(base_url(base), market, symbol.upper(), interval)
    lo = int(datetime(since.year, since.month, since.day, tzinfo=UTC).timestamp() * 1000)
    hi = int(datetime(until.year, until.month, until.day, tzinfo=UTC).timestamp() * 1000)
    rows: list[list[str]] = []
    for period, name in files_for(archive.symbol, interval, since, until):
        if progress is not None:
            progress(name)
        rows += [r for r in _rows(_verified(archive, period, name), name) if lo <= int(r[0]) < hi]
    rows.sort(key=lambda r: int(r[0]))
    return rows


def write_rows(rows: list[list[str]], path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(",".join(r) + "\n" for r in rows)
