from __future__ import annotations

import uuid


def fresh_user_id(prefix: str = "user") -> str:
    """A user id no other test uses, so its stream starts at seq 1."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
