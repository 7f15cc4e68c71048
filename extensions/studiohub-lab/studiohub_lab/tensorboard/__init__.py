"""TensorBoard inside JupyterLab: one TensorBoard per set of folders, served through the
user's own server from a private unix socket. See docs/tensorboard.md."""
