"""The HTTP API client: `BridgeHTTP` (sync), `AsyncBridgeHTTP` (async)."""

from bridge_client.http.calls import push_body
from bridge_client.http.clients import AsyncBridgeHTTP, BridgeHTTP
from bridge_client.http.retry import RetryPolicy

__all__ = ["AsyncBridgeHTTP", "BridgeHTTP", "RetryPolicy", "push_body"]
