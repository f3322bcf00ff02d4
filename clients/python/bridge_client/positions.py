"""Where each stream stands: the last `seq` per stream (SPEC §5, §8).

`Positions` is what `client.positions` returns and what a bot saves to resume
after a restart: the personal stream's `seq` and each topic's, as handled by the
application. It is plain data: `to_dict()` is JSON-ready and `from_dict()` reads it
back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bridge_client.message import PERSONAL


@dataclass
class Positions:
    personal: int | None = None
    topics: dict[str, int] = field(default_factory=dict)

    def get(self, stream: str) -> int | None:
        return self.personal if stream == PERSONAL else self.topics.get(stream)

    def advance(self, stream: str, seq: int) -> bool:
        """Move `stream` to `seq` if that is forward; False for a seq already
        passed (a duplicate)."""
        current = self.get(stream)
        if current is not None and seq <= current:
            return False
        if stream == PERSONAL:
            self.personal = seq
        else:
            self.topics[stream] = seq
        return True

    def copy(self) -> Positions:
        return Positions(self.personal, dict(self.topics))

    def to_dict(self) -> dict[str, Any]:
        return {"personal": self.personal, "topics": dict(self.topics)}

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> Positions:
        personal = value.get("personal")
        topics = value.get("topics") or {}
        return cls(
            int(personal) if personal is not None else None,
            {str(t): int(s) for t, s in topics.items()},
        )
