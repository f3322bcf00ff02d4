"""The stream core: names, sequence, store, publish after commit, recovery,
retention, idempotency. It never imports a door (realtime/, api/)."""
