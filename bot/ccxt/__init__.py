"""The one ccxt adapter streams and brokers share: instances, throttling, error mapping."""
