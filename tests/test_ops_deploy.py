"""deploy/: the Grafana dashboard and the alert rules use only metrics liqguard exports; the
systemd unit is a notify service with a watchdog."""

from __future__ import annotations

import configparser
import json
import re
from pathlib import Path

import yaml

from bot.journal import SqlJournal
from bot.ops.journal_tail import JournalTail
from bot.ops.metrics import Metrics

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def exported(tmp_path: Path) -> set[str]:
    journal = SqlJournal(f"sqlite:///{tmp_path / 'journal.db'}")
    m = Metrics(orchestrator=None, tail=JournalTail(journal))
    journal.close()
    names = set()
    for family in m.registry.collect():
        names.add(family.name)
        names.update(s.name for s in family.samples)
    # samples appear once a label set is used: the suffixes of every family
    for family in m.registry.collect():
        base = family.name
        names.update({f"{base}_total", f"{base}_bucket", f"{base}_count", f"{base}_sum"})
    return names


def used(text: str) -> set[str]:
    return set(re.findall(r"\bliqguard_[a-z_]+\b", text)) - {"liqguard_ladder_state_state"}


def test_dashboard_and_alerts_use_exported_metrics(tmp_path: Path) -> None:
    names = exported(tmp_path)
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    rules = yaml.safe_load((DEPLOY / "prometheus-alerts.yml").read_text())
    alerts = {r["alert"]: r["expr"] for g in rules["groups"] for r in g["rules"]}
    # feed blind, ladder not ACTIVE, bot down, approvals expiring unanswered
    assert {"LiqguardFeedBlind", "LiqguardLadderNotActive", "LiqguardDown"} <= alerts.keys()
    assert "LiqguardApprovalsExpired" in alerts
    for where, text in (("dashboard", exprs), ("alerts", " ".join(alerts.values()))):
        unknown = used(text) - names
        assert not unknown, f"{where} uses metrics liqguard does not export: {sorted(unknown)}"


def test_the_unit_is_a_notify_service_with_a_watchdog() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read_string((DEPLOY / "liqguard.service").read_text())
    service = unit["Service"]
    assert service["Type"] == "notify"
    assert int(service["WatchdogSec"]) > 0
    assert service["ExecStart"].split()[0].endswith("/liqguard")
    assert "--live" not in service["ExecStart"]  # real money is a deliberate edit
