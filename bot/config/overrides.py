"""Runtime overrides: a person's changes to the running rules and policy, on top of the file.

Pure: no I/O. The journal keeps the overrides (bot.app.overrides reads and writes them); the
effective configuration is always the file's settings with the journaled overrides applied in
order.

- Override: one change (threshold, rule on/off, a policy step's approval mode, or clear)
- parse_command(name, args) -> Override      (/threshold RULE USD, /rule RULE on|off,
                                              /policy [RULE:]LEVEL STEP auto|confirm|notify)
- Overlay: file settings + the overrides so far; apply(override) -> Overlay, running() -> Settings
- replay(file_settings, overrides) -> (Overlay, refusals): the start-up path, never raising
- diff_lines(before, after): what a change does, one line per setting
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pydantic import ValidationError

from bot.config.policy import ActionConfig, LevelsPolicy, PolicyConfig
from bot.config.rules import RuleConfig
from bot.config.settings import Settings
from bot.events import ApprovalMode

CONFIG_STRATEGY = "config change"  # the `strategy` of the approval request a change rides on
Kind = Literal["threshold", "rule", "policy", "clear"]
MODES = tuple(m.value for m in ApprovalMode)
USAGE = {
    "threshold": "/threshold RULE USD, e.g. /threshold all 2500000",
    "rule": "/rule RULE on|off, e.g. /rule btc off",
    "policy": "/policy [RULE:]LEVEL STEP auto|confirm|notify, e.g. /policy 2 hedge auto",
}


class OverrideError(ValueError):
    """An override that cannot be applied; the message says what and how to fix it."""


@dataclass(frozen=True, slots=True)
class Override:
    """One runtime change. `rule` is None for the default policy block and for clear."""

    kind: Kind
    rule: str | None = None
    threshold_usd: float | None = None
    enabled: bool | None = None
    level: int | None = None  # policy: the configured level; None = calm
    step: str | None = None  # policy: a strategy name or a step index (0-based, as in the file)
    mode: ApprovalMode | None = None

    def text(self) -> str:
        """The command that makes this change (what the journal and the diff show)."""
        if self.kind == "threshold":
            return f"/threshold {self.rule} {self.threshold_usd:.2f}"
        if self.kind == "rule":
            return f"/rule {self.rule} {'on' if self.enabled else 'off'}"
        if self.kind == "policy":
            where = "calm" if self.level is None else str(self.level)
            prefix = f"{self.rule}:" if self.rule else ""
            return f"/policy {prefix}{where} {self.step} {self.mode}"
        return "/overrides clear"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        for key in ("rule", "threshold_usd", "enabled", "level", "step"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.mode is not None:
            out["mode"] = self.mode.value
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Override:
        mode = data.get("mode")
        return cls(
            kind=data["kind"],
            rule=data.get("rule"),
            threshold_usd=data.get("threshold_usd"),
            enabled=data.get("enabled"),
            level=data.get("level"),
            step=data.get("step"),
            mode=ApprovalMode(mode) if mode is not None else None,
        )


def _usd(text: str) -> float:
    cleaned = text.replace(",", "").replace("_", "").lstrip("$")
    scale = 1.0
    if cleaned[-1:].lower() in ("k", "m"):
        scale = 1e3 if cleaned[-1].lower() == "k" else 1e6
        cleaned = cleaned[:-1]
    try:
        value = float(cleaned) * scale
    except ValueError:
        raise OverrideError(f"{text!r} is not an amount of USD; {USAGE['threshold']}") from None
    if not value == value or value in (float("inf"), float("-inf")):
        raise OverrideError(f"{text!r} is not an amount of USD; {USAGE['threshold']}")
    return value


def parse_command(name: str, args: list[str]) -> Override:
    """The Override a chat or page command asks for; OverrideError with the usage if malformed."""
    if name == "threshold":
        if len(args) != 2:
            raise OverrideError(f"give a rule and an amount: {USAGE['threshold']}")
        return Override("threshold", rule=args[0], threshold_usd=_usd(args[1]))
    if name == "rule":
        if len(args) != 2 or args[1].lower() not in ("on", "off"):
            raise OverrideError(f"give a rule and on or off: {USAGE['rule']}")
        return Override("rule", rule=args[0], enabled=args[1].lower() == "on")
    if name == "policy":
        if len(args) != 3 or args[2].lower() not in MODES:
            raise OverrideError(f"give a level, a step and a mode: {USAGE['policy']}")
        rule, _, where = args[0].rpartition(":")
        level: int | None = None
        if where.lower() != "calm":
            if not where.isdigit() or int(where) < 1:
                raise OverrideError(
                    f"level {where!r}: give a level number (1, 2, ...) or calm; {USAGE['policy']}"
                )
            level = int(where)
        return Override(
            "policy",
            rule=rule or None,
            level=level,
            step=args[1],
            mode=ApprovalMode(args[2].lower()),
        )
    if name == "overrides" and args == ["clear"]:
        return Override("clear")
    raise OverrideError(f"/{name} is not a change liqguard knows; use " + "; ".join(USAGE.values()))


@dataclass(frozen=True)
class Overlay:
    """The file's settings with overrides applied: every rule (off ones too) and which are off."""

    file: Settings
    settings: Settings  # every rule, thresholds and policy as overridden
    off: frozenset[str] = frozenset()
    applied: tuple[Override, ...] = field(default=())

    @classmethod
    def of(cls, file: Settings) -> Overlay:
        return cls(file, file)

    def running(self) -> Settings:
        """What the bot runs with: the rules turned off left out."""
        if not self.off:
            return self.settings
        rules = tuple(r for r in self.settings.rules if r.name not in self.off)
        return self.settings.model_copy(update={"rules": rules})

    def apply(self, ov: Override) -> Overlay:
        """This overlay with `ov` on top; OverrideError (nothing changed) when it cannot apply."""
        if ov.kind == "clear":
            return replace(Overlay.of(self.file), applied=(*self.applied, ov))
        if ov.kind == "policy":
            return replace(
                self,
                settings=self.settings.model_copy(update={"policy": _policy(self.settings, ov)}),
                applied=(*self.applied, ov),
            )
        names = [r.name for r in self.settings.rules]
        if ov.rule not in names:
            raise OverrideError(
                f"rule {ov.rule!r} is not in the configuration (rules: {', '.join(names)}); "
                "give one of those names"
            )
        if ov.kind == "rule":
            off = self.off - {ov.rule} if ov.enabled else self.off | {ov.rule}
            if len(off) == len(names):
                raise OverrideError(
                    f"rule {ov.rule!r} is the last one on; liqguard needs a rule to watch: "
                    "use /pause or /halt to stop trading instead"
                )
            return replace(self, off=frozenset(off), applied=(*self.applied, ov))
        rules = []
        for r in self.settings.rules:
            if r.name == ov.rule:
                data = {**r.model_dump(exclude_unset=True), "threshold_usd": ov.threshold_usd}
                try:
                    r = RuleConfig.model_validate(data)
                except ValidationError as exc:
                    why = exc.errors()[0]["msg"]
                    raise OverrideError(
                        f"rule {ov.rule!r} threshold {ov.threshold_usd!r}: {why}; give at least "
                        "0.01 USD"
                    ) from None
            rules.append(r)
        return replace(
            self,
            settings=self.settings.model_copy(update={"rules": tuple(rules)}),
            applied=(*self.applied, ov),
        )


def _policy(settings: Settings, ov: Override) -> PolicyConfig:
    policy = settings.policy
    if ov.rule is not None and ov.rule not in policy.rules:
        known = ", ".join(policy.rules) or "none"
        raise OverrideError(
            f"policy.rules has no block {ov.rule!r} (per-rule blocks: {known}); leave out "
            "'RULE:' to change the default policy"
        )
    block: LevelsPolicy = policy.rules[ov.rule] if ov.rule is not None else policy
    prefix = f"policy.rules.{ov.rule}" if ov.rule is not None else "policy"
    if ov.level is None:
        steps, where = block.calm, f"{prefix}.calm"
    elif ov.level in block.levels:
        steps, where = block.levels[ov.level], f"{prefix}.levels.{ov.level}"
    else:
        known = ", ".join(str(k) for k in sorted(block.levels)) or "none"
        raise OverrideError(
            f"{prefix}.levels has no level {ov.level} (configured: {known}, or calm); give one of "
            "those"
        )
    index = _step_index(steps, str(ov.step), where)
    assert ov.mode is not None
    changed: tuple[ActionConfig, ...] = tuple(
        s.model_copy(update={"approval": ov.mode}) if i == index else s for i, s in enumerate(steps)
    )
    if ov.level is None:
        new_block = block.model_copy(update={"calm": changed})
    else:
        new_block = block.model_copy(update={"levels": {**block.levels, ov.level: changed}})
    if ov.rule is None:
        assert isinstance(new_block, PolicyConfig)
        return new_block
    return policy.model_copy(update={"rules": {**policy.rules, ov.rule: new_block}})


def _step_index(steps: tuple[ActionConfig, ...], step: str, where: str) -> int:
    names = [s.strategy for s in steps]
    listing = ", ".join(f"{i} {n}" for i, n in enumerate(names)) or "none"
    if step.isdigit():
        if int(step) < len(steps):
            return int(step)
        raise OverrideError(f"{where} has no step {step} (steps: {listing}); give one of those")
    matches = [i for i, n in enumerate(names) if n == step]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise OverrideError(f"{where} has no {step!r} step (steps: {listing}); give one of those")
    raise OverrideError(f"{where} has {len(matches)} {step!r} steps; give its number ({listing})")


def replay(
    file: Settings, overrides: list[tuple[Override, dict[str, Any]]]
) -> tuple[Overlay, list[str]]:
    """The file's settings with the journaled overrides in order; an override that no longer
    applies (its rule or step left the file) is skipped, with one line saying so."""
    overlay = Overlay.of(file)
    refusals = []
    for ov, meta in overrides:
        try:
            overlay = overlay.apply(ov)
        except OverrideError as exc:
            who = f" (by {meta['by']})" if meta.get("by") else ""
            refusals.append(f"override {ov.text()}{who} no longer applies: {exc}")
    return overlay, refusals


def diff_lines(before: Overlay, after: Overlay) -> list[str]:
    """One line per running setting that differs: `rules.all.threshold_usd: $1M -> $2M`."""
    out = []
    old_rules = {r.name: r for r in before.settings.rules}
    for r in after.settings.rules:
        o = old_rules.get(r.name)
        if o is not None and o.threshold_usd != r.threshold_usd:
            out.append(
                f"rules.{r.name}.threshold_usd: {o.threshold_usd:,.2f} -> {r.threshold_usd:,.2f}"
            )
        was, now = r.name not in before.off, r.name not in after.off
        if o is not None and was != now:
            out.append(f"rules.{r.name}: {'on' if was else 'off'} -> {'on' if now else 'off'}")
    out += _policy_diff(before.settings.policy, after.settings.policy)
    return out


def _policy_diff(a: PolicyConfig, b: PolicyConfig) -> list[str]:
    blocks: list[tuple[str, LevelsPolicy, LevelsPolicy]] = [("policy", a, b)]
    blocks += [(f"policy.rules.{n}", a.rules[n], lp) for n, lp in b.rules.items() if n in a.rules]
    out = []
    for prefix, x, y in blocks:
        pairs = [(f"{prefix}.calm", x.calm, y.calm)]
        pairs += [(f"{prefix}.levels.{k}", x.levels.get(k, ()), v) for k, v in y.levels.items()]
        for where, old, new in pairs:
            for i, (s, t) in enumerate(zip(old, new, strict=False)):
                if s.approval != t.approval:
                    out.append(
                        f"{where}[{i}] ({t.strategy}).approval: {s.approval} -> {t.approval}"
                    )
    return out
