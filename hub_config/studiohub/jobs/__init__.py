"""Training jobs: a hub service that runs a user's notebook, script or command on a
catalog image and size, with one or many replicas (docs/training.md)."""
