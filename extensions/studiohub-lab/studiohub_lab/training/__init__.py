"""The Lab's training jobs routes: forwarded to the hub's jobs service (docs/training.md)."""
