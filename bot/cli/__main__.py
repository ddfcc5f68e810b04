"""`python -m bot.cli`: the same as the `liqguard` command."""

from bot.cli import main

main()
