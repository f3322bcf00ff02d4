"""What the application is handed: messages and streamed parts (SPEC §3, §9)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PERSONAL = "~personal"  # the stream key of the user's own stream (not a topic name)


def stream_key(frame: dict[str, Any]) -> str:
    """Which stream a `message` frame's `seq` counts in.

    A topic message has `topic` and `to: null`; a bot's personal copy of a
    mention made in a topic has `topic` too, but `to` is the bot and its `seq`
    is the bot's personal one (SPEC §8)."""
    topic = frame.get("topic")
    if topic and frame.get("to") is None:
        return str(topic)
    return PERSONAL


@dataclass(frozen=True)
class Message:
    id: str
    seq: int | None
    event: str
    sender: str | None  # the frame's `from`
    to: str | None
    topic: str | None
    data: Any
    timestamp: str
    mentions: list[str] = field(default_factory=list)
    stream_id: str | None = None
    incomplete: bool = False
    recalled: bool = False
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_frame(cls, frame: dict[str, Any]) -> Message:
        return cls(
            id=str(frame.get("id")),
            seq=frame.get("seq"),
            event=str(frame.get("event", "message")),
            sender=frame.get("from"),
            to=frame.get("to"),
            topic=frame.get("topic"),
            data=frame.get("data"),
            timestamp=str(frame.get("timestamp", "")),
            mentions=list(frame.get("mentions") or []),
            stream_id=frame.get("stream_id"),
            incomplete=bool(frame.get("incomplete", False)),
            recalled=bool(frame.get("recalled", False)),
            raw=frame,
        )

    @property
    def stream(self) -> str:
        """The stream this message's `seq` counts in: a topic, or PERSONAL."""
        return stream_key(self.raw)

    @property
    def text(self) -> str | None:
        """`data.text` when the data is an object with a string `text`."""
        text = self.data.get("text") if isinstance(self.data, dict) else None
        return text if isinstance(text, str) else None


@dataclass(frozen=True)
class StreamPart:
    """One live part of a message sent in parts; the whole message follows as a
    `Message` with the same `id` and its `stream_id` (SPEC §9)."""

    id: str
    stream_id: str
    sender: str | None
    to: str | None
    topic: str | None
    index: int
    delta: str

    @classmethod
    def from_frame(cls, frame: dict[str, Any]) -> StreamPart:
        return cls(
            id=str(frame.get("id")),
            stream_id=str(frame.get("stream_id")),
            sender=frame.get("from"),
            to=frame.get("to"),
            topic=frame.get("topic"),
            index=int(frame.get("index", 0)),
            delta=str(frame.get("delta", "")),
        )
