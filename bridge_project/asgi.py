"""ASGI entry point: HTTP goes to Django, WebSocket /ws to the Bridge consumer."""

import logging
import os

from bridge_project import (
    autobahn_lazy_debug,
    autobahn_light_send_queue,
    autobahn_shared_options,
    daphne_body_limit,
    daphne_compat,
    daphne_connection_cycles,
    daphne_idle_protocol,
    daphne_send_window,
    process_tuning,
)
from bridge_project.asgi_handler import get_asgi_application

autobahn_lazy_debug.install()
autobahn_light_send_queue.install()
autobahn_shared_options.install()
daphne_compat.install()
daphne_connection_cycles.install()
daphne_idle_protocol.install()
daphne_send_window.install()  # and daphne_light_queue, which it wraps
process_tuning.cache_twisted_content_type()
process_tuning.skip_twisted_access_log()
process_tuning.cache_redis_library_version()
process_tuning.return_large_blocks_to_the_system()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bridge_project.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from accounts.services import public_accounts_ensure_at_startup  # noqa: E402
from messaging.demo import DEMO_NAMESPACES  # noqa: E402
from messaging.realtime.instance_registry import RegisteringApplication  # noqa: E402
from messaging.realtime.routing import websocket_urlpatterns  # noqa: E402
from messaging.realtime.session_auth import session_auth_stack  # noqa: E402
from messaging.streams.namespace_setup import (  # noqa: E402
    namespaces_ensure_at_startup,
)

# Bodies over the limit are refused while daphne reads them, not after.
daphne_body_limit.install(settings.BRIDGE_MAX_BODY_BYTES)
# Before the server starts its event loop, so a plain synchronous query is fine.
public_accounts_ensure_at_startup(handles=settings.PUBLIC_ACCOUNTS)
namespaces_ensure_at_startup(namespaces=settings.BRIDGE_TOPIC_NAMESPACES)
if settings.BRIDGE_DEMO_ENABLED:
    namespaces_ensure_at_startup(namespaces=DEMO_NAMESPACES)
if settings.BRIDGE_AUTH_MODE == "open":
    logging.getLogger("bridge").warning(
        "BRIDGE_AUTH_MODE=open: anyone can listen as any user and push to anyone. "
        "For local development only."
    )

# The first event of any kind (a health check, say) lists this process in
# /api/stats (messaging/realtime/instance_registry.py).
application = RegisteringApplication(
    ProtocolTypeRouter(
        {
            "http": django_asgi_app,
            # The session middleware lets a logged-in same-site browser connect
            # as its user without a token (SPEC §4).
            "websocket": session_auth_stack(URLRouter(websocket_urlpatterns)),
        }
    )
)

# Last: what is loaded by now lives as long as the process.
process_tuning.tune_garbage_collector()
