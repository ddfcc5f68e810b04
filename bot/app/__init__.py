"""Composition: wiring for each mode, the runner, scheduling, the live gate, Telegram control."""
