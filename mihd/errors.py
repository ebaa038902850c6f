"""Errors a researcher sees as one line (the CLI prints them and exits 2, never a traceback)."""


class MihdError(Exception):
    """Bad input or an impossible request. The message names the file or argument and what is wrong."""


class CacheCorrupt(MihdError):
    """A cache entry could not be read back intact; callers treat it as a miss."""
