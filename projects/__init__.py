"""The portfolio's projects, one package each, all standing on the shared core in `shared/`."""
