"""A local X API v2 sandbox: a loopback HTTP server speaking the endpoints triagebot uses.

The command line, ``python -m bot.channels.sandbox``: serve in the foreground until interrupted.
"""

from __future__ import annotations

import argparse
import logging
import threading

from bot.channels.sandbox.payload import DEFAULT_BOT_HANDLE, DEFAULT_BOT_USER_ID
from bot.channels.sandbox.server import SandboxServer

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    """``python -m bot.channels.sandbox --port N``: serve in the foreground until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m bot.channels.sandbox",  # not "__main__.py", argparse's guess under -m
        description=__doc__.split("\n")[0] if __doc__ else None,
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--bot-user-id", default=DEFAULT_BOT_USER_ID)
    parser.add_argument("--bot-handle", default=DEFAULT_BOT_HANDLE)
    parser.add_argument("--bearer-token", default=None)
    parser.add_argument("--keepalive", type=float, default=20.0, help="seconds between keep-alives")
    opts = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    server = SandboxServer(
        opts.host,
        opts.port,
        bot_user_id=opts.bot_user_id,
        bot_handle=opts.bot_handle,
        bearer_token=opts.bearer_token,
        keepalive_interval=opts.keepalive,
    )
    with server:
        log.info("X API sandbox on %s (control: %s/_sandbox/)", server.base_url, server.base_url)
        print(f"X API sandbox listening on {server.base_url}", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
