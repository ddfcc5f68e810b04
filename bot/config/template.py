"""The commented `liqguard.yaml` that `liqguard init` writes: the defaults, spelled out."""

from __future__ import annotations

TEMPLATE = """\
# liqguard.yaml — written by `liqguard init`. Every value below is the default; delete what
# you do not change. Secrets (API keys, bot token) never go here: use the environment or .env.

mode: paper            # paper (default) | live — live ALSO needs `liqguard run --live`

# Detector rules (see "Detecting anomalies" in the README). Exchange streams and on-chain
# lending run at different scales, so each has its own rule. Recalibrate on your own history:
# `liqguard calibrate TAPE... --config liqguard.yaml` (docs/calibrating.md).
rules:
  - name: exchanges            # every exchange stream; `binance` counts binance-usdm/-coinm
    venues: [binance, bybit, okx, deribit, gate, dydx, bitget, htx, hyperliquid]
    window_s: 3600             # rolling window W
    threshold_usd: 4000000     # base threshold T0, from calibrate on the bundled Binance tapes
    factor: 2                  # level k fires at T0 * factor^(k-1)
    escalation_window_s: 7200  # no anomaly for this long: level back to 0 (calm)
  - name: defi                 # on-chain lending (chains:): Aave pools, Compound v3 Comets
    venues: [aave, compound]
    window_s: 3600
    threshold_usd: 1000000     # Santiment's Liquidations anomaly: $1M in an hour
    factor: 2
    escalation_window_s: 7200

# What to do at each escalation level. A level runs the actions of the highest configured
# level <= it (level 5 runs level 4's). approval: auto | confirm | notify.
# confirm: a person answers within timeout_s, else on_timeout: execute | cancel |
# execute_if_reducing (execute only if the strategy reduces exposure).
policy:
  levels:
    1:
      - strategy: stop_loss          # protective stops 2% from the mark
        approval: auto
    2:
      - strategy: reduce_exposure    # sides: threatened = the side being liquidated most
        params: {fraction: 0.25}
        approval: auto
      - strategy: hedge              # short the perp on a 2nd venue: half the net long
        params: {hedge_ratio: 0.5, venue: bybit}   # (positions net per venue and symbol)
        approval: confirm
        timeout_s: 300
        on_timeout: cancel
    3:
      - strategy: reduce_exposure    # half of what is left, as a 3-slice TWAP
        params: {fraction: 0.5, slices: 3, slice_interval_s: 60}
        approval: confirm
        timeout_s: 120
        on_timeout: execute_if_reducing
    4:
      - strategy: halt               # ladder to REDUCING (only risk-reducing orders pass),
        params: {state: REDUCING}    # page humans; a person resumes
        approval: auto
    5:
      - strategy: halt               # ladder to HALTED: nothing but cancels
        params: {state: HALTED}
        approval: auto
  calm:
    - strategy: unhedge              # unwind the hedge once the cascade is over
      approval: confirm
      timeout_s: 900
      on_timeout: cancel
  # rules:                           # optional: another policy for one detector rule
  #   btc-only: {levels: {1: [{strategy: stop_loss}]}, calm: []}

# Limits checked between plan and execution (see "Safety").
risk:
  max_order_usd: 500000
  max_action_usd: 1000000
  max_actions_per_hour: 20

# The simulated account of paper mode and replays.
paper:
  balance_usd: 100000
  positions:
    - {venue: binance-usdm, symbol: BTCUSDT, side: long, size: 2.5, leverage: 3}
      # entry_price: null = the first price seen; liquidation_price: null = computed
  # portfolio_file: portfolio.yaml   # balance_usd + positions from a file instead
  slippage_bps: 2
  cascade_slippage_bps_per_musd: 1   # extra bps per $1M liquidated in the window
  max_slippage_bps: 150
  fee_bps: 5
  maintenance_margin_rate: 0.005
  liquidation_fee_bps: 50
  options:                   # hedge mode "puts": a Black-76 model, not a market
    iv: 0.6                  # implied vol, 0.6 = 60%; or a table {moneyness, days, iv}
    # vol_file: dvol.csv     # Deribit DVOL candles (percent): sets the vol level over time
    rate: 0.0                # continuous annual rate
    half_spread_pct: 2       # of the model premium; + cascade_half_spread_pct_per_musd
    cascade_half_spread_pct_per_musd: 1

# Live venues (paper mode on live data: `liqguard run --source binance,bybit,okx`; trading:
# `--live` with `mode: live`). See "Going live" in the README.
exchanges:
  venues:
    binance: {price_symbols: [BTCUSDT, ETHUSDT]}   # !forceOrder@arr, all symbols
    bybit: {symbols: [BTCUSDT, ETHUSDT, SOLUSDT]}  # allLiquidation.<SYM>, one socket
    okx: {}                                        # liquidation-orders, SWAP and FUTURES
    # each venue: enabled, symbols, silence_s (120: blind alert), demo, endpoints {rest, ws}
  trading_venue: binance     # the account the live broker trades
  options_venue: null        # deribit | okx | bybit: where hedge mode "puts" buys
  allow_withdrawal_keys: false
  record_dir: null           # a folder: every raw message as rotating JSON lines

journal:
  url: null                  # SQLite path or SQLAlchemy URL; null = ./var/liqguard.sqlite
  checkpoint_every_events: 200

approvals:
  channel: auto              # auto | console | telegram
  override_approvers: 1      # people who confirm a runtime change (/threshold, /rule, /policy)
  override_timeout_s: 300    # unconfirmed by then: nothing changes

logging:
  level: INFO

# Watching it from outside (see "Monitoring" and "Running as a service"). Off by default.
metrics:
  listen: null               # HOST:PORT (true = 127.0.0.1:9464): Prometheus /metrics
http:
  listen: null               # HOST:PORT (true = 127.0.0.1:8088): the status page
  token_env: LIQGUARD_HTTP_TOKEN   # the variable holding the token for its buttons
healthcheck:
  ping_url: null             # an http(s) URL GET every interval_s while healthy
  interval_s: 30
  beat_s: 1                  # heartbeat period
  max_loop_lag_s: 5          # unhealthy when the event loop lags more
  max_commit_age_s: null     # unhealthy when the journal has not committed for this long

# Paging (off): wake a person through PagerDuty, Opsgenie or email; keys from the environment.
# paging:
#   pagerduty: {routing_key_env: PAGERDUTY_ROUTING_KEY}
#   opsgenie: {api_key_env: OPSGENIE_API_KEY, region: us}
#   email: {host: smtp.example.com, port: 587, username_env: SMTP_USERNAME,
#           password_env: SMTP_PASSWORD, from_addr: liqguard@example.com, to: [oncall@example.com]}
#   triggers: [halt, feed_blind, unhealthy, approval_expired]

# Bridges (none): tell the fund's other bots when the ladder moves; credentials from the env.
# bridges:
#   - {kind: freqtrade, name: ft, url: "http://127.0.0.1:8080", auth: jwt,
#      username_env: FREQTRADE_USERNAME, password_env: FREQTRADE_PASSWORD, forceexit_on_halt: false}
#   - {kind: hummingbot, name: mm, url: "http://127.0.0.1:8000", bots: [mm-btc], stop_on: REDUCING}
#   - {kind: webhook, name: desk, url: "https://hooks.example.com/x",
#      secret_env: LIQGUARD_BRIDGE_SECRET}
"""
