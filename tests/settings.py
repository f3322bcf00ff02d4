"""Settings for the test suite: the real settings, in open mode with DEBUG on.

pytest-django imports settings before any conftest fixture runs, so the defaults
that the real settings read from the environment are set here first.
"""

import os

os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("BRIDGE_AUTH_MODE", "open")

from bridge_project.settings import *  # noqa: E402, F403
