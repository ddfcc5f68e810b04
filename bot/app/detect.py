"""`liqguard detect`'s run: tapes through the detector, columnar when the files allow it.

- RunSummary: what a run saw (files, rows read and rejected, levels, calms, late, peaks)
- run_detect(tapes, rules, emit, progress) -> RunSummary: the columnar path for unified CSV,
  else the streaming detector, with the same output
- BatchResult, detect_file_fast(paths, rules, progress): the columnar path alone
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bot.app import tape_prefetch
from bot.config.rules import RuleConfig
from bot.detector import Detector
from bot.detector.batch import detect_columns
from bot.detector.columns import TapeColumns
from bot.events import Anomaly, Calm
from bot.sources.columnar import UnsupportedFastPath, read_unified_columns
from bot.sources.files import RecordedTape, Rejection, TapeStats

SHOWN_REJECTIONS = 5
ProgressFn = Callable[[str, int], None]  # (what is being read, bytes done of all files)


@dataclass
class BatchResult:
    """A batch run over files: events in streaming order, and what the run saw."""

    events: list[Anomaly | Calm]
    stats: list[TapeStats]  # per file: lines, read, rejected (first reasons), skipped
    late: dict[str, int]
    peaks: dict[str, tuple[int, int]]  # rule: (largest window sum in cents, clock at it)

    @property
    def read(self) -> int:
        return sum(s.read for s in self.stats)

    @property
    def rejected(self) -> int:
        return sum(s.rejected for s in self.stats)


def detect_file_fast(
    paths: Sequence[str | Path],
    rules: Sequence[RuleConfig],
    progress: Callable[[int, int], None] | None = None,
) -> BatchResult:
    """Read unified CSV files (plain or gzip) as columns and detect in batch.

    `progress(bytes_done, bytes_total)` follows the (compressed) bytes read. Raises
    UnsupportedFastPath for a file the columnar reader does not take (the caller
    falls back to the streaming sources) and TapeError for a file that is not a tape.
    """
    total = sum(Path(p).stat().st_size for p in paths)
    parts, stats = [], []
    done = 0
    for path in paths:
        report = None if progress is None else (lambda n, d=done: progress(d + n, total))
        ahead = tape_prefetch.take(path, report)  # parsed while the command loaded
        cols, st = ahead if ahead is not None else read_unified_columns(path, report)
        parts.append(cols)
        stats.append(st)
        done += Path(path).stat().st_size
    events, late, peaks = detect_columns(TapeColumns.concat(parts), rules)
    return BatchResult(events=events, stats=stats, late=late, peaks=peaks)


@dataclass
class RunSummary:
    """What a run saw, for the summary on stderr."""

    files: int = 0
    read: int = 0
    rejected: int = 0
    skipped: int = 0
    rejections: list[tuple[str, Rejection]] = field(default_factory=list)
    late: dict[str, int] = field(default_factory=dict)
    levels: dict[int, int] = field(default_factory=dict)
    calms: int = 0
    peaks: dict[str, tuple[int, int]] = field(default_factory=dict)  # rule: (cents, ts_ms)

    def add_tape(self, stats: TapeStats) -> None:
        self.files += 1
        self.read += stats.read
        self.rejected += stats.rejected
        self.skipped += stats.skipped
        room = SHOWN_REJECTIONS - len(self.rejections)
        self.rejections += [(stats.path, r) for r in stats.first_rejections[:room]]

    def add_event(self, event: Anomaly | Calm) -> None:
        if isinstance(event, Anomaly):
            self.levels[event.level] = self.levels.get(event.level, 0) + 1
        else:
            self.calms += 1


def run_detect(
    tapes: list[RecordedTape],
    rules: Sequence[RuleConfig],
    emit: Callable[[Anomaly | Calm], None],
    progress: ProgressFn | None = None,
) -> RunSummary:
    """Every event of `tapes` through the detector, in file and row order; `emit` each one."""
    summary = RunSummary()

    def counted(event: Anomaly | Calm) -> None:
        summary.add_event(event)
        emit(event)

    if not _batch(tapes, rules, summary, counted, progress):
        _stream(tapes, rules, summary, counted, progress)
    return summary


def _stream(
    tapes: list[RecordedTape],
    rules: Sequence[RuleConfig],
    summary: RunSummary,
    emit: Callable[[Anomaly | Calm], None],
    progress: ProgressFn | None,
) -> None:
    detector = Detector(rules)
    done = 0
    for tape in tapes:
        if progress is not None:
            progress(tape.path.name, done)
        for n, liq in enumerate(tape):
            for found in detector.on_liquidation(liq):
                emit(found)
            if progress is not None and n % 65536 == 0:
                progress(tape.path.name, done + tape.bytes_done)
        done += tape.size_bytes
        summary.add_tape(tape.stats)
    summary.late = dict(detector.late)
    summary.peaks = detector.peaks


def _batch(
    tapes: list[RecordedTape],
    rules: Sequence[RuleConfig],
    summary: RunSummary,
    emit: Callable[[Anomaly | Calm], None],
    progress: ProgressFn | None,
) -> bool:
    """The columnar path for unified CSV (same output as _stream); False if it does not apply."""
    if any(t.format != "unified" for t in tapes):
        tape_prefetch.cancel()
        return False
    report = None if progress is None else (lambda done, _total: progress("reading", done))
    try:
        result = detect_file_fast([t.path for t in tapes], rules, report)
    except UnsupportedFastPath:
        tape_prefetch.cancel()
        return False  # the streaming path reads it, with the same output
    for stats in result.stats:
        summary.add_tape(stats)
    summary.late = dict(result.late)
    summary.peaks = dict(result.peaks)
    for event in result.events:
        emit(event)
    return True
