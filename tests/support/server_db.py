"""Reach into a running daphne's database from a test, as an operator would:
`manage.py` subprocesses run with the server's environment."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from tests.support.daphne import REPO

MANAGE_TIMEOUT = 60.0

# A message stored with the user's next seq, as a push stores it, but whose layer
# event is never published: to a live connection it is a gap (SPEC §5).
_STORE_WITHOUT_PUBLISHING = """
import json
from django.db import transaction
from django.utils import timezone
from messaging.models import StreamEntry, Message, StreamSequence
from messaging.streams.names import personal_stream

with transaction.atomic():
    counter, _ = StreamSequence.objects.select_for_update().get_or_create(
        stream=personal_stream(USER_ID)
    )
    counter.last_seq += 1
    counter.save(update_fields=["last_seq"])
    message = Message.objects.create(
        event="message", sender=None, data=DATA, created_at=timezone.now()
    )
    StreamEntry.objects.create(
        message=message, stream=personal_stream(USER_ID), seq=counter.last_seq
    )
print(json.dumps({"id": str(message.id), "seq": counter.last_seq}))
"""


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`python manage.py <args>` with a server's env; output captured as text."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=MANAGE_TIMEOUT,
    )


def shell_json(env: dict[str, str], code: str) -> Any:
    """Run `code` in `manage.py shell`; its last output line is JSON, returned."""
    done = manage(env, "shell", "--no-imports", "-c", code)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def store_without_publishing(env: dict[str, str], user_id: str, data: Any) -> dict:
    """Store one message for `user_id` and send no layer event; returns
    {"id", "seq"}."""
    code = f"USER_ID = {user_id!r}\nDATA = {data!r}\n" + _STORE_WITHOUT_PUBLISHING
    return shell_json(env, code)
