"""The Lab's model endpoints routes: forwarded to the hub's models service (issue #15)."""
