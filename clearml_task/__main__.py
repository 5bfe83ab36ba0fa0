"""The commands' entry points (`clearml-task`, `python -m clearml_task`; `clearml-launcher` goes through
`guarded` too): the command's own modules are imported behind the guard, so that a Ctrl-C at any moment
after that ends the command in one line and exit code 130, never a traceback nor a hang
(clearml_task.interrupts says how)."""

import sys

from clearml_task import interrupts


def guarded(prog: str, module: str) -> int:
    """`module`'s main(), with a Ctrl-C before its own handling begins (imports, parsing the flags) told
    as one line."""
    try:
        interrupts.install()
        command = __import__(module, fromlist=["main"]).main
        return int(command() or 0)
    except KeyboardInterrupt:
        print(f"{prog}: error: interrupted", file=sys.stderr)
        return 130


def main() -> int:
    return guarded("clearml-task", "clearml_task.cli")


if __name__ == "__main__":
    sys.exit(main())
