"""The parser class of every `mihd` command line. Its own module, so that a command which reads another
command's arguments (`mihd launch -- run ...`) builds that command's parser without importing the CLI's entry."""

from __future__ import annotations

import argparse

from .common import one_line


class Parser(argparse.ArgumentParser):
    """An argparse parser whose complaint is one line naming the command and the argument (`-h` shows usage)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {one_line(message.removeprefix('argument '))}\n")
