"""The WebSocket door: handshake, consumer, frames in, subscriptions, heartbeat.
It parses and authorizes, then hands over to the stream core."""
