"""The `--live` gate: nothing trades real money unless every condition below holds.

1. `mode: live` in liqguard.yaml AND the `--live` flag (the explicit confirmation)
2. keys for the trading venue (and the options venue, if puts are configured), and every
   venue the policy names is one the live broker trades (a hedge set for `bybit` while the
   broker trades Binance would otherwise be refused at the first anomaly)
3. the keys cannot withdraw, where the venue tells (Binance `GET /sapi/v1/account/
   apiRestrictions` enableWithdrawals; OKX `account/config` perm; Bybit `user/query-api`),
   unless `exchanges.allow_withdrawal_keys: true`
4. a loud banner says what it will trade with: venue, REAL or demo, endpoints, balance,
   positions, open orders
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.app.errors import SetupError
from bot.brokers.ccxt_broker import CcxtBroker
from bot.ccxt.exchange import credentials, describe_error
from bot.config.settings import Settings
from bot.config.venues import config_venue, venue_label
from bot.engine.policy import check_policy
from bot.secrets import Secrets

Echo = Callable[[str], None]


class LiveRefused(SetupError):
    """Live trading refused; the message says why and what to change."""


def check_live_switches(settings: Settings, live_flag: bool) -> None:
    """Condition 1, the one check of the two switches: either alone refuses to start."""
    if settings.mode == "live" and not live_flag:
        raise LiveRefused(
            "liqguard.yaml says mode: live but --live was not given: refusing to start; "
            "live trading needs the --live flag too (add --live to trade for real, or set "
            "mode: paper)"
        )
    if live_flag and settings.mode != "live":
        raise LiveRefused(
            f"--live given but liqguard.yaml says mode: {settings.mode!r}; set `mode: live` "
            "in the config as the second, deliberate confirmation"
        )


def policy_venue_problems(settings: Settings) -> list[str]:
    """Policy actions whose venue the live broker cannot trade: `params.venue` must be the
    trading venue; puts (hedge mode "puts") need `options_venue` set to their option_venue."""
    ex = settings.exchanges
    trading = venue_label(ex.trading_venue)
    problems: list[str] = []
    for path, step in check_policy(settings.policy).items():
        where = f"{path.rsplit('[', 1)[0]} {step.config.strategy}"
        venue = getattr(step.params, "venue", None)
        if venue and config_venue(str(venue)) != ex.trading_venue:
            problems.append(
                f"{where}: venue {venue!r} is not traded live (exchanges.trading_venue is "
                f"{ex.trading_venue}); set params.venue: {trading} or leave it out"
            )
        if getattr(step.params, "mode", None) == "puts":
            want = config_venue(str(getattr(step.params, "option_venue", "")))
            if want != ex.options_venue:
                problems.append(
                    f"{where}: puts on {want!r} but exchanges.options_venue is "
                    f"{ex.options_venue}; set exchanges.options_venue: {want}"
                )
    return problems


def check_policy_venues(settings: Settings) -> None:
    """Live only: refuse a policy that would send orders to a venue the broker does not trade."""
    problems = policy_venue_problems(settings)
    if problems:
        raise LiveRefused(
            "the policy names venues live trading cannot reach:\n  " + "\n  ".join(problems)
        )


def check_live_request(settings: Settings, secrets: Secrets | None, live_flag: bool) -> None:
    """Conditions 1 and 2, without any network: raise LiveRefused naming the fix."""
    check_live_switches(settings, live_flag)
    check_policy_venues(settings)
    ex = settings.exchanges
    for venue in filter(None, (ex.trading_venue, ex.options_venue)):
        if not credentials(venue, secrets):
            raise LiveRefused(
                f"no API keys for {venue}: set LIQGUARD_{venue.upper()}_API_KEY and "
                f"LIQGUARD_{venue.upper()}_API_SECRET (trade permission only, no withdrawals)"
            )


async def can_withdraw(exchange: Any) -> bool | None:
    """Whether the keys may withdraw, as the venue says; None when it cannot tell."""
    if exchange.id == "binanceusdm":
        info = await exchange.sapi_get_account_apirestrictions()
        return bool(info.get("enableWithdrawals"))
    if exchange.id == "okx":
        data = (await exchange.private_get_account_config()).get("data") or [{}]
        return "withdraw" in str(data[0].get("perm", "")).split(",")
    if exchange.id == "bybit":
        result = (await exchange.private_get_v5_user_query_api()).get("result") or {}
        wallet = (result.get("permissions") or {}).get("Wallet") or []
        return "Withdraw" in wallet
    return None


async def live_gate(
    settings: Settings,
    broker: CcxtBroker,
    *,
    echo: Echo = print,
) -> None:
    """The checks that ask the venue (withdrawal rights, the account); print the banner; raise
    LiveRefused if anything is wrong. check_live_request ran before the broker was made."""
    ex_cfg = settings.exchanges
    accounts = [(ex_cfg.trading_venue, broker.exchange)]
    if ex_cfg.options_venue and broker.options_exchange is not broker.exchange:
        accounts.append((ex_cfg.options_venue, broker.options_exchange))
    for venue, exchange in accounts:
        if ex_cfg.venue(venue).demo:
            echo(f"{venue}: demo account, withdrawal check skipped (demo funds only)")
            continue
        try:
            withdraw = await can_withdraw(exchange)
        except Exception as exc:  # auth failures land here: refuse, do not guess
            raise LiveRefused(
                f"{venue}: could not read the key's permissions ({describe_error(exc)}); "
                "check the keys and their IP whitelist"
            ) from exc
        if withdraw is None:
            echo(f"WARNING: {venue} does not say whether these keys can withdraw; make sure not")
        elif withdraw and not ex_cfg.allow_withdrawal_keys:
            raise LiveRefused(
                f"{venue}: these API keys can WITHDRAW funds. Create trade-only keys (no "
                "withdrawal permission), or set exchanges.allow_withdrawal_keys: true"
            )
        elif withdraw:
            echo(
                f"WARNING: {venue}: these API keys can WITHDRAW funds; allowed by "
                "exchanges.allow_withdrawal_keys: true"
            )
        else:
            echo(f"{venue}: the keys cannot withdraw (checked with the venue)")
    try:
        portfolio = await broker.refresh(all_symbols=True)
    except Exception as exc:  # refuse rather than trade an account we cannot read
        raise LiveRefused(
            f"{ex_cfg.trading_venue}: could not read the account ({describe_error(exc)})"
        ) from exc
    cfg = ex_cfg.venue(ex_cfg.trading_venue)
    kind = "DEMO (the venue's paper account)" if cfg.demo else "REAL MONEY"
    lines = [
        "=" * 72,
        f"LIVE TRADING - {kind}",
        f"  venue:     {ex_cfg.trading_venue} ({broker.exchange.id})",
        f"  endpoints: {cfg.endpoints.rest or 'venue default'}",
        f"  options:   {ex_cfg.options_venue or 'none (no puts)'}",
        f"  balance:   {portfolio.balance_usd:,.2f} USD in stablecoins",
        f"  positions: {len(portfolio.positions)}, open orders: {len(portfolio.open_orders)}",
    ]
    lines += [
        f"    {p.symbol} {p.side} {p.size:g} @ {p.entry_price:g} (mark {p.mark_price:g})"
        for p in portfolio.positions
    ]
    lines += ["  it will place protective orders on this account by itself.", "=" * 72]
    echo("\n".join(lines))
