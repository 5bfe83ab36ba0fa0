"""The arguments written after a module's name (`--module "pkg.main --epochs 4 data.csv"`, as ClearML's
clearml-task takes them), read against the module's parser: at creation they are recorded in
hyperparams.Args like `--args`, and at run time the launcher leaves out the words whose values Args now
holds, so an edit of Args in a UI is what runs. The words stay in the entry point, where ClearML's agent
runs them as they are.

Only plain forms are read: an option by its full string (`--epochs 4`, `--epochs=4`, `-e 4`), a switch
(store_true, store_false, store_const, --x/--no-x) and single-value positionals in order. Anything else
(an abbreviation, a list option, a count, a subcommand, `--`) makes the words unreadable as a whole."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from clearml_task.arguments.model import READABLE, UNKNOWN, Option, Parser
from clearml_task.arguments.tokens import is_number
from clearml_task.arguments.values import format_value
from clearml_task.records import record

SWITCHES = ("store_true", "store_false", "store_const", "boolean_optional")


@record(frozen=True)
class Given:
    """One argument among the words: its Args key, its value as Args records it, and the words it took."""

    dest: str
    text: str
    start: int
    stop: int


@record(frozen=True)
class Reading:
    """What the words give, or why they cannot be read: `wrong` when the parser, read whole, refuses them
    (an unknown option, a missing value, one positional too many, a value given twice); otherwise they
    are only beyond the plain forms read here."""

    given: list[Given]
    problem: str = ""
    wrong: bool = False


def read_words(parser: Parser, words: Sequence[str]) -> Reading:
    """The arguments the words give, in order; or, when the words cannot be read as a whole, the first
    word that cannot, and why."""
    found = _read(parser, words)
    if isinstance(found, list):
        return Reading(found)
    problem, wrong = found
    return Reading([], problem, wrong and parser.complete)


def _read(parser: Parser, words: Sequence[str]) -> list[Given] | tuple[str, bool]:
    if parser.kind not in READABLE or parser.subcommands:
        return "the module's command line could not be read", False
    by_string = {s: option for option in parser.options for s in (*option.option_strings, *option.negatives)}
    positionals = [option for option in parser.options if option.positional]
    found: list[Given] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word.startswith("-") and word != "-" and not is_number(word):  # `-` alone is a value (stdin)
            name, eq, attached = word.partition("=") if word.startswith("--") else (word, "", "")
            option = by_string.get(name)
            if option is None:
                return f"{word!r} is not one of its options", not _maybe_shortened(by_string, name)
            if option.action in SWITCHES:
                if eq:
                    return f"{word!r}: a switch takes no value", True
                if option.action == "store_const" and option.const is UNKNOWN:
                    return f"{word!r}: its value could not be read", False
                found.append(Given(option.dest, _switch_value(option, name), i, i + 1))
                i += 1
                continue
            if option.action != "store" or option.many or option.nargs is not None:
                return f"{word!r}: only single-value options are read here", False
            if eq:
                found.append(Given(option.dest, attached, i, i + 1))
                i += 1
                continue
            if i + 1 >= len(words) or (words[i + 1].startswith("-") and not is_number(words[i + 1])):
                return f"{word!r} needs a value", True
            found.append(Given(option.dest, words[i + 1], i, i + 2))
            i += 2
            continue
        if not positionals:
            return f"{word!r}: one positional argument too many", True
        option = positionals.pop(0)
        if option.action != "store" or option.many or option.nargs is not None:
            return f"{word!r}: only single-value positionals are read here", False
        found.append(Given(option.dest, word, i, i + 1))
        i += 1
    dests = [given.dest for given in found]
    repeated = next((dest for dest in dests if dests.count(dest) > 1), None)
    if repeated is not None:
        return f"{repeated} is given twice", True
    return found


def words_left(parser: Parser, words: Sequence[str], recorded: Sequence[str]) -> list[str]:
    """Run time: the words without those whose values Args records (`recorded`: its keys); all of them
    when they cannot be read (a task made elsewhere, an edited entry point)."""
    reading = read_words(parser, words)
    if reading.problem:
        return list(words)
    taken = {i for given in reading.given if given.dest in recorded for i in range(given.start, given.stop)}
    return [word for i, word in enumerate(words) if i not in taken]


def _switch_value(option: Option, name: str) -> str:
    """What a switch given as `name` stores, as Args records it."""
    if option.action == "store_true":
        return "True"
    if option.action == "store_false":
        return "False"
    if option.action == "boolean_optional":
        return "False" if name in option.negatives else "True"
    return format_value(option.const)


def _maybe_shortened(strings: Iterable[str], word: str) -> bool:
    """Whether argparse may read `word` as one of the strings, abbreviated (`--epo`) or with its value
    attached (`-e4`): forms not read here, but not wrong."""
    return any(
        s.startswith(word) or word.startswith(s)
        for s in strings
        if s.startswith("--") == word.startswith("--")
    )
