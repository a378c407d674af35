"""Model runtimes behind one small protocol (`ghostfill.backends.base.Backend`)."""
