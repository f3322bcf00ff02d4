"""Where open streamed messages live (SPEC §9): Redis, next to the channel layer.

A message sent in parts may have its parts arrive at different processes (HTTP
parts load-balanced, say), yet every subscriber must see them in `index`
order. So one Lua script, run on the Redis shard of the recipient's group,
checks the stream, assigns the part its index, appends its delta and PUBLISHes
it to the group in one atomic step: Redis runs scripts one at a time, and a
channel's subscribers get its messages in PUBLISH order. The layer event is
packed by the script itself (cmsgpack, the layer's msgpack format) because the
frame's `index` is only known there.

Per stream (`bridge:stream:<scope>:<stream id>`, a hash): its message id,
target, sender, event, next index and state, `open` → `closing` (the final
part arrived, or the server took over an idle stream; the message is being
stored) → `done` (kept for FINISHED_TTL_SECONDS so that a late part is
refused, not the start of a new stream). The joined text is a string key next
to it (`…:text`, APPEND per part). `bridge:streams:open:<scope>` is the set of
a sender's open streams (BRIDGE_MAX_OPEN_STREAMS), and `bridge:streams:due` a
sorted set of streams by the time the server must finish them: idle streams,
and `closing` ones whose finisher did not report back (it crashed, or the
database was down), which are taken over and stored again.

Nothing here is durable: a Redis that restarts empty forgets open streams, and
their parts so far are lost with it (docs/protocol.md).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from messaging.streams import publish

PREFIX = "bridge:stream:"
DUE_KEY = "bridge:streams:due"
# How long a finished stream's id stays taken (a late part: `stream_closed`).
FINISHED_TTL_SECONDS = 3600
# How long a finisher may take to store a message before another process takes
# the stream over and stores it (the message id makes a second store a no-op).
CLAIM_MS = 15_000
# Streams the server finishes per shard per sweep.
SWEEP_LIMIT = 100

_KEEP_ALIVE = """
local function keep_alive(ms)
  redis.call('PEXPIRE', KEYS[1], ms)
  redis.call('PEXPIRE', KEYS[2], ms)
  redis.call('PEXPIRE', KEYS[3], ms)
end
"""

# KEYS: state, text, open set, due. ARGV: [1] group channel, [2] now ms,
# [3] idle ms, [4] max open, [5] max bytes, [6] new message id, [7] target
# stream, [8] sender ('' for none), [9] event, [10..12] the frame around its
# id and index, [13] delta, [14] final '1'/'0', [15] final data JSON or '',
# [16] the event's `stream` ('' for a personal target), [17] exclude,
# [18] persist '1'/'0', [19] claim ms, [20] group, [21] stream id.
_PART = (
    _KEEP_ALIVE
    + """
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'closing' or state == 'done' then return {'stream_closed'} end
if state and redis.call('HGET', KEYS[1], 'target') ~= ARGV[7] then
  return {'stream_conflict'}
end
local delta = ARGV[13]
if redis.call('STRLEN', KEYS[2]) + #delta > tonumber(ARGV[5]) then
  return {'too_large'}
end
if not state then
  if redis.call('SCARD', KEYS[3]) >= tonumber(ARGV[4]) then
    return {'too_many_streams'}
  end
  redis.call('HSET', KEYS[1], 'state', 'open', 'id', ARGV[6], 'target', ARGV[7],
    'sender', ARGV[8], 'event', ARGV[9], 'next', 0, 'stream', ARGV[16],
    'exclude', ARGV[17], 'persist', ARGV[18], 'group', ARGV[20],
    'stream_id', ARGV[21], 'open_key', KEYS[3], 'incomplete', '0')
  redis.call('SADD', KEYS[3], KEYS[1])
end
local id = redis.call('HGET', KEYS[1], 'id')
local index = -1
if #delta > 0 then
  index = redis.call('HINCRBY', KEYS[1], 'next', 1) - 1
  redis.call('APPEND', KEYS[2], delta)
  local event = {type = 'bridge.deliver',
                 frame = ARGV[10] .. id .. ARGV[11] .. index .. ARGV[12]}
  if ARGV[16] ~= '' then event['stream'] = ARGV[16] end
  if ARGV[17] ~= '' then event['exclude'] = ARGV[17] end
  redis.call('PUBLISH', ARGV[1], cmsgpack.pack(event))
end
local now = tonumber(ARGV[2])
if ARGV[14] == '1' then
  redis.call('HSET', KEYS[1], 'state', 'closing', 'final_data', ARGV[15])
  redis.call('ZADD', KEYS[4], now + tonumber(ARGV[19]), KEYS[1])
  keep_alive(tonumber(ARGV[19]) * 4)
  local f = redis.call('HMGET', KEYS[1], 'event', 'sender', 'persist', 'exclude')
  return {'final', id, index, redis.call('GET', KEYS[2]) or '', f[1], f[2], f[3],
          f[4]}
end
redis.call('ZADD', KEYS[4], now + tonumber(ARGV[3]), KEYS[1])
keep_alive(tonumber(ARGV[3]) * 2 + tonumber(ARGV[19]) * 4)
return {'part', id, index}
"""
)

# Claims every stream due by now on this shard. KEYS: due. ARGV: [1] '',
# [2] now ms, [3] claim ms, [4] limit.
_SWEEP = """
local now = tonumber(ARGV[2])
local claim = tonumber(ARGV[3])
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0,
                       tonumber(ARGV[4]))
local claimed = {}
for _, key in ipairs(due) do
  local state = redis.call('HGET', key, 'state')
  if state == 'open' or state == 'closing' then
    if state == 'open' then redis.call('HSET', key, 'incomplete', '1') end
    redis.call('HSET', key, 'state', 'closing')
    redis.call('ZADD', KEYS[1], now + claim, key)
    redis.call('PEXPIRE', key, claim * 4)
    redis.call('PEXPIRE', key .. ':text', claim * 4)
    local f = redis.call('HMGET', key, 'id', 'target', 'sender', 'event',
      'exclude', 'persist', 'group', 'stream_id', 'open_key', 'incomplete',
      'final_data')
    table.insert(claimed, {key, redis.call('GET', key .. ':text') or '',
      f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10], f[11] or ''})
  else
    redis.call('ZREM', KEYS[1], key)
  end
end
return claimed
"""

# KEYS: state, text, open set, due. ARGV: [1] group channel, [2] finished ttl.
_FORGET = """
redis.call('HSET', KEYS[1], 'state', 'done')
redis.call('HDEL', KEYS[1], 'final_data')
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[3], KEYS[1])
redis.call('ZREM', KEYS[4], KEYS[1])
return 1
"""


_REFUSALS = {
    "stream_closed": "this stream has ended; start another with a new stream_id",
    "stream_conflict": "this stream_id is open to another recipient",
    "too_many_streams": "too many open streams; finish one first",
    "too_large": "the stream's text would be over BRIDGE_MAX_MESSAGE_BYTES",
}


class PartRefused(Exception):
    """A part that is not taken; `code` is the frame's or reply's error code."""

    def __init__(self, code: str) -> None:
        self.code = code
        self.message = _REFUSALS[code]
        super().__init__(self.message)


@dataclass(frozen=True)
class PartScript:
    """One part, ready for _PART: where it goes and the frame around its holes."""

    scope: str
    stream_id: str
    group: str
    target: str
    sender: str | None
    event: str
    frame_around: tuple[str, str, str]
    delta: str
    final: bool
    final_data: dict[str, Any] | None
    event_stream: str
    exclude: str
    persist: bool


@dataclass(frozen=True)
class Taken:
    """A part taken: the stream's message id, the part's index (None for an
    empty delta); on the final part the joined text and what the stream's
    first part said (event, sender, persist, exclude)."""

    message_id: str
    index: int | None
    text: str | None = None
    event: str = "message"
    sender: str | None = None
    persist: bool = True
    exclude: str = ""


@dataclass(frozen=True)
class Claimed:
    """A stream the server finishes (idle, or its finisher never reported)."""

    key: str
    text: str
    message_id: str
    target: str
    sender: str | None
    event: str
    exclude: str
    persist: bool
    group: str
    stream_id: str
    open_key: str
    incomplete: bool
    final_data: dict[str, Any] | None


def _keys(key: str, open_key: str) -> list[str]:
    return [key, key + ":text", open_key, DUE_KEY]


def _part_keys(part: PartScript) -> list[str]:
    return _keys(f"{PREFIX}{part.scope}:{part.stream_id}", open_key(part.scope))


def open_key(scope: str) -> str:
    return f"bridge:streams:open:{scope}"


def _part_args(
    part: PartScript, *, new_id: str, idle_seconds: float, max_open: int, max_bytes: int
) -> list[Any]:
    before_id, between, after_index = part.frame_around
    return [
        int(time.time() * 1000),
        int(idle_seconds * 1000),
        max_open,
        max_bytes,
        new_id,
        part.target,
        part.sender or "",
        part.event,
        before_id,
        between,
        after_index,
        part.delta,
        "1" if part.final else "0",
        "" if part.final_data is None else json.dumps(part.final_data),
        part.event_stream,
        part.exclude,
        "1" if part.persist else "0",
        CLAIM_MS,
        part.group,
        part.stream_id,
    ]


def _taken(reply: list[Any]) -> Taken:
    status = _text(reply[0])
    if status not in ("part", "final"):
        raise PartRefused(status)
    index = int(reply[2])
    message_id = _text(reply[1])
    if status == "part":
        return Taken(message_id=message_id, index=None if index < 0 else index)
    event, sender, persist, exclude = (_text(value) for value in reply[4:8])
    return Taken(
        message_id=message_id,
        index=None if index < 0 else index,
        text=_text(reply[3]),
        event=event,
        sender=sender or None,
        persist=persist == "1",
        exclude=exclude,
    )


async def take_part(part: PartScript, **limits: Any) -> Taken:
    """Run _PART; raises PartRefused or LayerUnavailable."""
    args = _part_args(part, new_id=str(uuid.uuid4()), **limits)
    reply = await publish.run_script(part.group, _PART, _part_keys(part), args)
    return _taken(reply)


async def forget(group: str, key: str, open_set: str) -> None:
    """The stream's message is stored: the stream is done."""
    await publish.run_script(
        group, _FORGET, _keys(key, open_set), [FINISHED_TTL_SECONDS]
    )


def part_key(scope: str, stream_id: str) -> str:
    return f"{PREFIX}{scope}:{stream_id}"


async def claim_due() -> list[Claimed]:
    """Take over every stream the server must finish now, on every shard."""
    replies = await publish.run_script_on_every_shard(
        _SWEEP, [DUE_KEY], [int(time.time() * 1000), CLAIM_MS, SWEEP_LIMIT]
    )
    return [_claimed(row) for reply in replies for row in reply]


def _claimed(row: list[Any]) -> Claimed:
    (key, text, message_id, target, sender, event, exclude, persist, group) = (
        _text(value) for value in row[:9]
    )
    stream_id, open_set, incomplete, final_data = (_text(value) for value in row[9:])
    return Claimed(
        key=key,
        text=text,
        message_id=message_id,
        target=target,
        sender=sender or None,
        event=event,
        exclude=exclude,
        persist=persist == "1",
        group=group,
        stream_id=stream_id,
        open_key=open_set,
        incomplete=incomplete == "1",
        final_data=json.loads(final_data) if final_data else None,
    )


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
