"""A bot on bridge_client: it answers every message it gets (a mention, or a
direct message) by streaming its reply word by word, the way an AI answer comes.

    BRIDGE_URL=http://127.0.0.1:8000 python examples/echo_bot.py [--handle echo_bot]

The handle must be an active public account (`PUBLIC_ACCOUNTS=echo_bot`; `make
demo` sets it). In token mode, set `BRIDGE_API_KEY` to one of the account's API
keys: a public account connects with its key as the token. The client reconnects
by itself when the server restarts, and `--positions FILE` keeps where the bot
got to, so a restarted bot answers what was sent while it was away.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
from pathlib import Path

from bridge_client import Client, Message, Positions, StateChange

logger = logging.getLogger("echo_bot")


def reply_to(message: Message) -> list[str]:
    """The words of the answer, each with the space after it."""
    said = message.text or json.dumps(message.data)
    return [f"{word} " for word in f"You said: {said}".split()]


def load(path: Path | None) -> Positions | None:
    if path is None or not path.exists():
        return None
    return Positions.from_dict(json.loads(path.read_text()))


def save(path: Path | None, positions: Positions) -> None:
    if path is not None:
        path.write_text(json.dumps(positions.to_dict()))


async def run(url: str, handle: str, positions_file: Path | None, pause: float) -> None:
    bot = Client(
        url,
        user_id=handle,
        token=os.environ.get("BRIDGE_API_KEY") or None,
        positions=load(positions_file),
    )

    @bot.on("message")
    async def answer(message: Message) -> None:
        # Never answer itself, an anonymous push, or another streamed answer
        # (two bots would talk forever).
        if message.sender in (None, handle) or message.stream_id:
            return
        async with bot.stream(to=message.sender) as reply:
            for word in reply_to(message):
                await reply.send(word)
                await asyncio.sleep(pause)
        logger.info("answered %s (%s)", message.sender, message.id)
        # Positions move once this handler returns: save them just after.
        asyncio.get_running_loop().call_soon(save, positions_file, bot.positions)

    @bot.on("state")
    def show(change: StateChange) -> None:
        logger.info("%s %s", change.state.value, change.code or "")

    # The server may still be starting (`make demo` starts both at once).
    await bot.connect(timeout=120)
    print(f"{handle} is listening at {url}; mention @{handle} to get an answer")
    try:
        await bot.wait_closed()
    finally:
        await bot.close()
        save(positions_file, bot.positions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url", default=os.environ.get("BRIDGE_URL", "http://127.0.0.1:8000")
    )
    parser.add_argument("--handle", default=os.environ.get("BRIDGE_BOT", "echo_bot"))
    parser.add_argument("--positions", type=Path, help="a JSON file to resume from")
    parser.add_argument("--pause", type=float, default=0.1, help="seconds per word")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: a quiet exit
        asyncio.run(run(args.url, args.handle, args.positions, args.pause))


if __name__ == "__main__":
    main()
