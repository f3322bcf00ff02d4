"""`python -m bridge_client`: listen, push and mint tokens from a shell.

    python -m bridge_client listen --user alice [--topic room:1] [--count N]
    python -m bridge_client push --user alice "build #42 passed"
    python -m bridge_client token alice [--topic room:1]

`BRIDGE_URL` (default http://127.0.0.1:8000) and `BRIDGE_API_KEY` (token mode;
none in open mode) say where and as whom. `listen` prints one JSON line per
message; with an API key it connects with a token minted for the user (and
mints a new one when it is about to expire).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from bridge_client.errors import BridgeError
from bridge_client.http import AsyncBridgeHTTP, BridgeHTTP
from bridge_client.message import Message
from bridge_client.realtime import Client, Subscription


def _print(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False), flush=True)


async def listen(args: argparse.Namespace) -> int:
    http = AsyncBridgeHTTP(args.url)
    provider = None
    if http.api_key:

        async def provider() -> str:
            reply = await http.token(args.user, topics=args.topic or None)
            return str(reply["token"])

    client = Client(http.url, user_id=args.user, token_provider=provider)
    done = asyncio.Event()
    seen = 0

    def show(message: Message) -> None:
        nonlocal seen
        _print(message.raw)
        seen += 1
        if args.count and seen >= args.count:
            done.set()

    def report(subscription: Subscription) -> None:
        if subscription.recovered is False:
            _print({"type": "not_recovered", "topic": subscription.topic})

    client.on("message", show)
    client.on("subscribed", report)
    client.on(
        "history_truncated",
        lambda t: _print(
            {
                "type": "history_truncated",
                "stream": t.stream,
                "oldest_seq": t.oldest_seq,
            }
        ),
    )
    try:
        await client.connect()
        for topic in args.topic or []:
            await client.subscribe(topic)
        print(f"# listening as {client.user_id}", file=sys.stderr, flush=True)
        closed = asyncio.create_task(client.wait_closed())
        finished = asyncio.create_task(done.wait())
        await asyncio.wait([closed, finished], return_when=asyncio.FIRST_COMPLETED)
        finished.cancel()
        if closed.done():
            closed.result()
        closed.cancel()
    finally:
        await client.close()
        await http.aclose()
    return 0


def push(args: argparse.Namespace) -> int:
    with BridgeHTTP(args.url) as http:
        target = {"topic": args.topic} if args.topic else {"user_id": args.user}
        reply = http.push(
            message=args.text, event=args.event, sender=args.sender, **target
        )
    _print(reply)
    return 0


def token(args: argparse.Namespace) -> int:
    with BridgeHTTP(args.url) as http:
        reply = http.token(args.user_id, topics=args.topic or None)
    print(reply["token"])
    print(f"# expires at {reply['expires_at']}", file=sys.stderr)
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="python -m bridge_client",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    root.add_argument("--url", help="the server (default: $BRIDGE_URL)")
    commands = root.add_subparsers(dest="command", required=True)

    one = commands.add_parser("listen", help="print a user's messages as JSON lines")
    one.add_argument("--user", required=True)
    one.add_argument("--topic", action="append", help="also subscribe (repeatable)")
    one.add_argument("--count", type=int, default=0, help="exit after N messages")
    one.set_defaults(run=lambda a: asyncio.run(listen(a)))

    two = commands.add_parser("push", help="push a text message")
    target = two.add_mutually_exclusive_group(required=True)
    target.add_argument("--user")
    target.add_argument("--topic")
    two.add_argument("--event", default=None)
    two.add_argument("--sender", help="the message's from (a key with 'sender')")
    two.add_argument("text")
    two.set_defaults(run=push)

    three = commands.add_parser("token", help="mint a WebSocket token")
    three.add_argument("user_id")
    three.add_argument("--topic", action="append", help="grant a topic (repeatable)")
    three.set_defaults(run=token)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return 130
    except BridgeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
