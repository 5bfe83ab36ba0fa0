"""`clearml-launcher` and `python -m launcher` (see clearml_task.__main__ for the guard)."""

import sys

from clearml_task.__main__ import guarded


def main() -> int:
    return guarded("clearml-launcher", "launcher.cli")


if __name__ == "__main__":
    sys.exit(main())
