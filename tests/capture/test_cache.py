"""The content-addressed cache: a hit skips the work, a change of input or of the computing code misses."""

from __future__ import annotations

import base64
import json
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

from clearml_task import cache, inject
from testing.repos import make_repo


def test_hit_miss_and_damage(tmp_path: Path) -> None:
    calls: list[str] = []

    def compute(tag: str) -> dict[str, str]:
        calls.append(tag)
        return {"value": tag}

    assert cache.memoized("t", inject, ("a",), lambda: compute("a")) == {"value": "a"}
    assert cache.memoized("t", inject, ("a",), lambda: compute("again")) == {"value": "a"}
    assert cache.memoized("t", inject, ("b",), lambda: compute("b")) == {"value": "b"}
    assert calls == ["a", "b"]
    for entry in (Path(tmp_path) / "clearml-task-home" / "cache" / "t").rglob("*.json"):
        entry.write_text("{damaged")
    assert cache.memoized("t", inject, ("a",), lambda: compute("fresh")) == {"value": "fresh"}


def test_the_code_is_part_of_the_key() -> None:
    from clearml_task import document

    assert cache.memoized("k", inject, ("x",), lambda: {"by": "inject"}) == {"by": "inject"}
    assert cache.memoized("k", document, ("x",), lambda: {"by": "document"}) == {"by": "document"}


def test_a_second_launch_of_the_same_script_does_not_parse_it_again(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    probe = textwrap.dedent(f"""
        import sys
        from clearml_task.request import Request
        from clearml_task.submit import prepare
        request = Request(project="proj", name="cache", folder={str(repo.work)!r}, script="train.py")
        prepared = prepare(request)
        assert "from clearml import Task" in prepared.source.patch
        print("libcst" in sys.modules)
    """)
    runs = [subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True) for _ in range(2)]
    assert [r.stdout.strip() for r in runs] == ["True", "False"], [r.stderr for r in runs]


def test_a_cached_parser_is_the_parser() -> None:
    from clearml_task import arguments

    source = (
        "import argparse, os\n"
        "p = argparse.ArgumentParser()\n"
        "p.add_argument('--epochs', type=int, default=3)\n"
        "p.add_argument('--home', default=os.environ['HOME'])\n"
        "p.add_argument('--fast', action='store_true')\n"
    )
    direct = arguments.read_parser(source, "train.py")
    first = arguments.read_parser_cached(source, "train.py")
    again = arguments.read_parser_cached(source, "train.py")  # from the cache file this time
    assert direct == first == again
    home = next(o for o in again.options if o.dest == "home")
    assert home.default is arguments.UNKNOWN  # still the one UNKNOWN after a round trip


def test_parsers_are_kept_as_json_data_with_every_literal_they_hold() -> None:
    """The JSON form gives back the same parser: values JSON has no type for (tuples, sets, bytes, inf,
    dicts with other keys) and UNKNOWN included, in subcommands too."""
    from clearml_task.arguments.model import UNKNOWN, Option, Parser, parser_from_json, parser_to_json

    odd = {1: (2.5, float("inf")), "b": {b"\xff\x00", frozenset({3})}, "c": [None, True, 1 + 2j]}
    sub = Parser(kind="argparse", options=[Option("depth", ["--depth"], default=(1, 2), choices=UNKNOWN)])
    parser = Parser(
        kind="argparse",
        options=[Option("lr", ["--lr"], type="float", default=float("-inf"), const=odd, nargs="+")],
        subcommands={"train": sub},
        aliases={"t": "train"},
        problems=["one"],
    )
    data = json.loads(json.dumps(parser_to_json(parser)))  # through text, as the cache keeps it
    again = parser_from_json(data)
    assert again == parser
    assert again.subcommands["train"].options[0].choices is UNKNOWN
    assert type(again.options[0].const[1]) is tuple and type(again.options[0].const["b"]) is set


def test_a_planted_cache_entry_is_never_run_and_the_script_is_read_again(tmp_path: Path) -> None:
    """An entry someone else wrote (a pickle that would run code when loaded, as the cache once kept, or
    data of the wrong shape) is not trusted: the parser is read from the source again."""
    from clearml_task import arguments

    source = (
        "import argparse\np = argparse.ArgumentParser()\np.add_argument('--epochs', type=int, default=3)\n"
    )
    expected = arguments.read_parser(source, "train.py")
    assert arguments.read_parser_cached(source, "train.py") == expected
    (entry,) = (Path(tmp_path) / "clearml-task-home" / "cache" / "parser").rglob("*.json")
    marker = tmp_path / "ran"
    payload = pickle.dumps(_Planted(str(marker)))
    for planted in (
        {"pickle": base64.b64encode(payload).decode()},
        {"parser": {"parser": {"kind": "argparse", "run": "os.system"}}},
        {"parser": {"exec": "print(1)"}},
        {"parser": [1, 2]},
    ):
        entry.write_text(json.dumps(planted))
        assert arguments.read_parser_cached(source, "train.py") == expected
    assert not marker.exists()


class _Planted:
    """Unpickling this would create the marker file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (Path.write_text, (Path(self.path), "ran"))  # type: ignore[return-value]


def test_planted_parser_entries_of_every_wrong_shape_are_read_again_never_a_traceback(tmp_path: Path) -> None:
    """Data that loads but is not a parser (fields of the wrong type at any level, values JSON cannot hold
    back, nesting deeper than the reader goes) makes the script be read again."""
    from clearml_task import arguments

    source = "import argparse\np = argparse.ArgumentParser()\np.add_argument('--lr', type=float)\n"
    expected = arguments.read_parser(source, "train.py")
    assert arguments.read_parser_cached(source, "train.py") == expected
    (entry,) = (Path(tmp_path) / "clearml-task-home" / "cache" / "parser").rglob("*.json")
    good = json.loads(entry.read_text())["parser"]
    option = good["parser"]["options"][0]["option"]
    wrong: list[object] = [
        {"bytes": 5},
        {"parser": {**good["parser"], "options": 5}},
        {"parser": {**good["parser"], "options": ["str"]}},
        {"parser": {**good["parser"], "options": [good]}},
        {"parser": {**good["parser"], "subcommands": {"dict": [["a", 1]]}}},
        {"parser": {**good["parser"], "subcommands": [1]}},
        {"parser": {**good["parser"], "options": [{"option": {**option, "option_strings": [1]}}]}},
        {"parser": {**good["parser"], "options": [{"option": {**option, "dest": 5}}]}},
        {"parser": {**good["parser"], "aliases": {"dict": [[1, "x"]]}}},
    ]
    deep = '{"parser": ' + "[" * 700 + json.dumps(good) + "]" * 700 + "}"  # json reads it; _loaded recurses
    for planted in [*(json.dumps({"parser": value}) for value in wrong), deep]:
        entry.write_text(planted)
        assert arguments.read_parser_cached(source, "train.py") == expected
    entry.write_text("[" * 100_000 + "]" * 100_000)  # past json's own nesting limit
    assert arguments.read_parser_cached(source, "train.py") == expected


def test_a_default_json_cannot_write_is_read_each_time_not_a_traceback() -> None:
    from clearml_task import arguments

    huge = "0x" + "f" * 4000  # 16,000 bits: Python reads it, json will not write it
    source = (
        f"import argparse\np = argparse.ArgumentParser()\np.add_argument('--d', type=int, default={huge})\n"
    )
    first = arguments.read_parser_cached(source, "train.py")
    assert first.options[0].default == int("f" * 4000, 16)
    assert arguments.read_parser_cached(source, "train.py") == first


def test_the_stored_form_checks_every_field_of_the_records() -> None:
    """A field added to Option or Parser is type-checked when read back from the cache, never let through."""
    from clearml_task.arguments import model

    assert set(model._OPTION_FIELDS) == {f.name for f in model.Option.__record_fields__}  # type: ignore[attr-defined]
    assert set(model._PARSER_FIELDS) == {f.name for f in model.Parser.__record_fields__}  # type: ignore[attr-defined]
