"""Bridges: pause the fund's other bots when liqguard's ladder leaves ACTIVE (`bridges:`).

- channels: FreqtradeChannel, HummingbotChannel, WebhookChannel (delivery channels)
- bridges: Bridges, the Notifier that maps ladder changes to calls
- factory: build_bridges(settings, journal, ...) from the config and the environment
"""
