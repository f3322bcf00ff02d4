from django.urls import path, re_path

from messaging.realtime.consumers import BridgeConsumer, UnknownPathConsumer
from messaging.realtime.monitor import MonitorConsumer

websocket_urlpatterns = [
    path("ws", BridgeConsumer.as_asgi()),
    # The admin's Live connections page (staff session only).
    path("ws/monitor", MonitorConsumer.as_asgi()),
    re_path(r"", UnknownPathConsumer.as_asgi()),
]
