"""Model endpoints: the hub service ``models``, its replicas and what Kubernetes receives."""
