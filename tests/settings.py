"""Settings for the test suite: the real settings, in open mode with DEBUG on.

pytest-django imports settings before any conftest fixture runs, so the defaults
that the real settings read from the environment are set here first.
"""

import os

os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("BRIDGE_AUTH_MODE", "open")
# Tests connect as the same users from one address many times a minute; the
# limits' own tests lower these (tests/messaging/test_ws_limits.py).
os.environ.setdefault("BRIDGE_HANDSHAKES_PER_MINUTE_PER_USER", "100000")
os.environ.setdefault("BRIDGE_HANDSHAKES_PER_MINUTE_PER_ADDRESS", "100000")

from bridge_project.settings import *  # noqa: F403

# The test database is a file, not SQLite's shared-cache in-memory database: there
# a second writer fails at once with "database table is locked" instead of waiting
# for the lock, so tests of concurrent pushes (tests/messaging/test_sequencing.py)
# would fail for a reason that production (a file, or PostgreSQL) never has. One
# directory per process, removed at exit with the -wal and -shm files SQLite leaves.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    import atexit
    import shutil
    import tempfile

    _test_db_dir = tempfile.mkdtemp(prefix="bridge-test-db-")
    atexit.register(shutil.rmtree, _test_db_dir, ignore_errors=True)
    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": os.path.join(_test_db_dir, "test.sqlite3")
    }

# The demo (on in open mode) creates its namespace when asgi.py is imported;
# in this process that happens during collection, where the database is shut.
# The demo's tests turn it on (tests/messaging/test_demo.py); the daphne
# processes of the e2e and browser tests run with the real settings.
BRIDGE_DEMO_ENABLED = False
