"""Settings for the test suite: the real settings, in open mode with DEBUG on.

pytest-django imports settings before any conftest fixture runs, so the defaults
that the real settings read from the environment are set here first.
"""

import os

os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("BRIDGE_AUTH_MODE", "open")

from bridge_project.settings import *  # noqa: F403

# The test database is a file, not SQLite's shared-cache in-memory database: there
# a second writer fails at once with "database table is locked" instead of waiting
# for the lock, so tests of concurrent pushes (tests/messaging/test_sequencing.py)
# would fail for a reason that production (a file, or PostgreSQL) never has.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    import tempfile

    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": os.path.join(
            tempfile.gettempdir(), f"bridge-test-{os.getpid()}.sqlite3"
        )
    }
