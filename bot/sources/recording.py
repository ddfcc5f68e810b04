"""Raw stream recording and bounded dedupe: two small helpers of the live streams.

- RawRecorder: every raw websocket message, one JSON object per line, in files rotated by
  size; `liqguard` replays them with the jsonl tape reader (bot.sources.files.open_tape).
- Dedupe: remembers the last `capacity` event ids; `seen(id)` answers and remembers.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from pathlib import Path
from typing import IO, Any


class RawRecorder:
    """Append raw messages to `<dir>/<venue>-<UTC time>.jsonl`; a new file past `max_bytes`."""

    def __init__(self, directory: str | Path, venue: str, max_bytes: int = 50_000_000) -> None:
        self.directory = Path(directory)
        self.venue = venue
        self.max_bytes = max_bytes
        self.files: list[Path] = []
        self._fh: IO[str] | None = None
        self._written = 0

    def _open(self) -> IO[str]:
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        path = self.directory / f"{self.venue}-{stamp}-{len(self.files):04d}.jsonl"
        self.files.append(path)
        self._written = 0
        return path.open("a", encoding="utf-8", buffering=1)  # line-buffered: a crash keeps lines

    def write(self, message: Any) -> None:
        line = json.dumps(message, separators=(",", ":")) + "\n"
        if self._fh is None or self._written + len(line) > self.max_bytes:
            self.close()
            self._fh = self._open()
        self._fh.write(line)
        self._written += len(line)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class Dedupe:
    """A bounded memory of event ids: the oldest are forgotten first."""

    def __init__(self, capacity: int = 50_000) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()
        self.duplicates = 0

    def seen(self, event_id: str) -> bool:
        """True if `event_id` was seen (and counts it); otherwise remember it."""
        if event_id in self._ids:
            self._ids.move_to_end(event_id)
            self.duplicates += 1
            return True
        self._ids[event_id] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return False

    def __len__(self) -> int:
        return len(self._ids)
