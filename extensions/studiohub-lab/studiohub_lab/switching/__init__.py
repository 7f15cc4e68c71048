"""Per-notebook images and sizes inside the user's server: the picker's routes, the
server's book of choices and placements, the provisioner that has the hub place a
kernel, the sessions handlers that answer the hub's refusal, kernel reports and usage."""
