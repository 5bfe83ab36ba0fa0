"""Reading a script's command line from its source with libcst, never by running it. One reader per
library (argparse_reader, click, typer, hydra), each `read(index) -> Parser | None` over the module's
SourceIndex; of the libraries the module imports, the first whose reader finds a parser wins, in the
order of READERS. What is read is remembered by content (read_parser_cached), so a script launched again
is read without importing libcst."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clearml_task.arguments.model import NotStorable, Parser, all_levels, parser_from_json, parser_to_json

if TYPE_CHECKING:
    from clearml_task.arguments.readers.source_index import SourceIndex

READERS = ("hydra", "click", "typer", "argparse")  # the libraries, in the order their readers are tried


def read_parser_file(script: Path | None) -> Parser:
    """The parser of a script file (the launcher's reproduced entry point); an empty Parser, whose Args
    pass as the first cut, when there is no file or it cannot be read."""
    parser = Parser()
    if script is not None:
        try:
            parser = read_parser_cached(script.read_text(encoding="utf-8"), script.name)
        except (OSError, UnicodeDecodeError) as e:
            parser = Parser(problems=[f"{script.name}: {e}"])
    return parser


def read_parser_cached(source: str, filename: str = "") -> Parser:
    """read_parser, remembered by content (clearml_task/cache.py): launching the same script again, with
    whatever --args, reads its parser without importing libcst."""
    from clearml_task import cache

    read: list[Parser] = []

    def compute() -> dict[str, Any]:
        read.append(read_parser(source, filename))
        try:
            return {"parser": parser_to_json(read[0])}
        except NotStorable:
            return {}  # a value only the parse gives: read again next time

    found = cache.memoized("parser", _code_files(), (filename, source), compute)
    if read:
        return read[0]
    try:
        return parser_from_json(found["parser"])
    except Exception:  # not this code's data (a damaged or planted entry): read the script again
        return read_parser(source, filename)


def _code_files() -> list[Path]:
    """The sources what is read depends on: the model, the values and every reader."""
    here = Path(__file__).parent
    readers = sorted(name for name in os.listdir(here) if name.endswith(".py"))
    return [here.parent / "model.py", here.parent / "values.py", *(here / name for name in readers)]


def read_parser(source: str, filename: str = "") -> Parser:
    """The command line a script's source defines, read with libcst without running it."""
    import libcst as cst

    from clearml_task.arguments.readers.source_index import SourceIndex

    try:
        module = cst.parse_module(source)
    except cst.ParserSyntaxError as e:
        return Parser(filename=filename, problems=[f"cannot parse it: {e.message} (line {e.raw_line})"])
    try:
        return _read(SourceIndex(module, filename))
    except RecursionError:
        return Parser(filename=filename, problems=["too deeply nested to read"])


def _read(index: SourceIndex) -> Parser:
    """The parser of the first library in READERS that the module imports and whose reader finds one."""
    from clearml_task.arguments.readers import argparse_reader, click, hydra, typer

    readers = {
        "hydra": hydra.read,
        "click": click.read,
        "typer": typer.read,
        "argparse": argparse_reader.read,
    }
    for library in READERS:
        parser = readers[library](index) if index.imports(library) else None
        if parser is not None:
            parser.filename = index.filename
            parser.problems = index.problems + parser.problems
            for sub in all_levels(parser):
                sub.filename, sub.complete = index.filename, parser.complete
            if library == "argparse":
                parser.sdk_binds_args, parser.sdk_unbound = _sdk_binding(index)
            return parser
    return Parser(filename=index.filename, problems=index.problems)


def _sdk_binding(index: SourceIndex) -> tuple[bool, list[str]]:
    """Whether a call of clearml's Task.init leaves auto_connect_arg_parser on, and the dests a literal
    dict there leaves out (`{"verbose": False}`)."""
    for call in index.calls:
        qualified = index.qualified(call.func) or ""
        if qualified.startswith("clearml.") and qualified.endswith("Task.init"):
            switch = index.keyword(call, "auto_connect_arg_parser")
            value = None if switch is None else index.literal(switch)
            if value is not False:
                unbound = [str(k) for k, v in value.items() if v is False] if isinstance(value, dict) else []
                return True, unbound
    return False, []
