"""``python -m bot.channels.sandbox``: see :func:`bot.channels.sandbox.cli.main`."""

from bot.channels.sandbox.cli import main

if __name__ == "__main__":
    main()
