"""Model endpoints against the same model in-process and behind a bare server (run.py)."""
