from django.urls import path, re_path

from messaging.realtime.consumers import BridgeConsumer, UnknownPathConsumer

websocket_urlpatterns = [
    path("ws", BridgeConsumer.as_asgi()),
    re_path(r"", UnknownPathConsumer.as_asgi()),
]
