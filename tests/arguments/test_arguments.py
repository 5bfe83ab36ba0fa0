"""clearml_task.arguments: parsers read statically from the fixture scripts (fixtures/repos/args/),
`--args` checked and recorded in hyperparams.Args, and the command line built back from Args proven by
running each script with it: every script prints what its own parser gave it, as JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from clearml_task.arguments import (
    UNKNOWN,
    Parser,
    check_and_record,
    check_hydra_overrides,
    command_line,
    counted_dests,
    merge_overrides,
    parse_overrides,
    read_parser,
    read_parser_file,
)
from clearml_task.errors import UserError
from clearml_task.inject import inject_task_init
from clearml_task.requirements import directory_reader
from launcher.execute import entry_file
from testing.repos import FIXTURES

ARGS = FIXTURES / "args"


def parser_of(name: str) -> Parser:
    return read_parser((ARGS / name).read_text(), name)


def run(cwd: Path, script: str, args: list[str], *, module: bool = False) -> Any:
    """Runs a fixture script with `args`; what it printed last, as JSON."""
    target = ["-m", script] if module else [str(ARGS / script)]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(ARGS)}
    result = subprocess.run(
        [sys.executable, *target, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"{script} {args}: {result.stderr}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def create(script: str, *pairs: str) -> tuple[Parser, dict[str, dict[str, str]], list[str]]:
    """What clearml-task does at creation, and the launcher at run time."""
    parser = parser_of(script)
    section = check_and_record(parser, parse_overrides(list(pairs)))
    return parser, section, command_line(section, parser).argv


def usage_error(script: str, *pairs: str) -> UserError:
    with pytest.raises(UserError) as caught:
        check_and_record(parser_of(script), parse_overrides(list(pairs)))
    assert caught.value.exit_code == 2
    return caught.value


def values(section: dict[str, dict[str, str]]) -> dict[str, str]:
    return {key: entry["value"] for key, entry in section.items()}


# ------------------------------------------------------------------------------------------ --args
def test_pairs_keep_equals_signs_and_empty_values_and_the_last_repeat_wins() -> None:
    pairs = ["expr=a=b", "empty=", "lr=0.1", "lr=0.2", "--dashed=x"]
    assert parse_overrides(pairs) == {"expr": "a=b", "empty": "", "lr": "0.2", "dashed": "x"}


@pytest.mark.parametrize("pair", ["epochs", "=3"])
def test_a_pair_without_a_key_and_value_is_a_usage_error_naming_it(pair: str) -> None:
    with pytest.raises(UserError) as caught:
        parse_overrides(["lr=0.1", pair])
    assert caught.value.exit_code == 2
    assert repr(pair) in caught.value.message


# --------------------------------------------------------------------------------- reading argparse
def test_every_argparse_feature_is_read_as_written() -> None:
    parser = parser_of("features.py")
    assert (parser.kind, parser.complete, parser.problems) == ("argparse", True, [])
    options = {option.dest: option for option in parser.options}
    assert options["lr"].option_strings == ["--lr", "--learning-rate"]
    assert (options["epochs"].type, options["epochs"].default, options["epochs"].help) == (
        "int", 5, "passes over the data",
    )  # fmt: skip
    assert options["cache"].option_strings == ["--no-cache"]
    assert (options["cache"].action, options["cache"].default) == ("store_false", True)
    assert (options["verbose"].action, options["verbose"].default) == ("count", 0)
    assert (options["tag"].action, options["tag"].default) == ("append", None)
    assert (options["layers"].nargs, options["layers"].default) == ("+", [3, 4])  # a module constant
    assert (options["size"].nargs, options["extra"].nargs) == (2, "*")
    assert (options["amp"].action, options["amp"].negatives) == ("boolean_optional", ["--no-amp"])
    assert (options["augment"].type, options["augment"].type_name) == ("bool", "str2bool")
    assert (options["shuffle"].type, options["shuffle"].type_name) == ("bool", "<lambda>")
    assert (options["mode"].action, options["mode"].const) == ("store_const", "debug")
    assert (options["data_dir"].type, options["data_dir"].type_name) == ("unknown", "Path")
    assert options["home"].default is UNKNOWN  # os.environ.get(...): never guessed
    assert options["threshold"].default == 0.5  # a string default goes through the type, as in argparse
    assert options["optimizer"].choices == ["adam", "sgd"]
    assert options["depth"].choices == [18, 34, 50]
    assert options["cpu"].exclusive == options["gpu"].exclusive is not None
    assert options["seed"].exclusive is None


def test_import_aliases_classes_and_unreadable_options() -> None:
    source = (
        "import argparse as ap\n"
        "import os\n"
        "from argparse import ArgumentParser as AP, BooleanOptionalAction\n"
        "class Cli:\n"
        "    def __init__(self):\n"
        "        self.parser = AP(prefix_chars='-+')\n"
        "        self.parser.add_argument('++plus', type=int, default=os.cpu_count())\n"
        "        self.parser.add_argument('--keep', action=BooleanOptionalAction)\n"
        "        self.parser.add_argument('--custom', action=MyAction, default='x')\n"
        "        self.parser.add_argument('--opaque', **OPTIONS)\n"
        "        self.parser.add_argument('--weird', type=lambda s: s.upper(), default=ap.SUPPRESS)\n"
        "        self.parser.parse_args()\n"
    )
    parser = read_parser(source, "cli.py")
    options = {option.dest: option for option in parser.options}
    assert parser.kind == "argparse" and parser.complete
    assert (options["plus"].option_strings, options["plus"].default) == (["++plus"], UNKNOWN)
    assert (options["keep"].action, options["keep"].default) == ("boolean_optional", None)
    assert (options["custom"].action, options["opaque"].action, options["opaque"].default) == (
        "custom", "custom", UNKNOWN,
    )  # fmt: skip
    assert (options["weird"].type, options["weird"].default) == ("unknown", None)
    with pytest.raises(UserError) as caught:
        check_and_record(parser, {"custom": "y"})
    error = caught.value
    assert "--custom" in error.message and "cannot pass" in error.message


def test_a_file_that_does_not_parse_has_no_parser() -> None:
    parser = read_parser("def broken(:\n", "broken.py")
    assert parser.kind == "none" and parser.problems


# --------------------------------------------------------------------------------- recording Args
def test_every_option_is_recorded_in_the_forms_the_clearml_sdk_records() -> None:
    section = check_and_record(parser_of("features.py"), {})
    assert section["epochs"] == {
        "section": "Args", "name": "epochs", "value": "5", "type": "int",
        "description": "passes over the data",
    }  # fmt: skip
    assert values(section) == {  # "home" has no readable default: it is recorded only when given
        "epochs": "5", "lr": "0.1", "name": "run", "optimizer": "adam", "seed": "", "verbose": "0",
        "fast": "False", "cache": "True", "tag": "", "layers": "[3, 4]", "extra": "[]", "size": "[32, 32]",
        "amp": "True", "augment": "False", "shuffle": "True", "mode": "normal", "data_dir": "data",
        "threshold": "0.5", "depth": "18", "cpu": "False", "gpu": "",
    }  # fmt: skip
    types = {key: entry["type"] for key, entry in section.items()}
    assert (types["fast"], types["layers"], types["augment"], types["data_dir"], types["tag"]) == (
        "bool", "int", "str2bool", "Path", "list",
    )  # fmt: skip


def test_given_values_are_recorded_normalised() -> None:
    _, section, _ = create(
        "features.py", "fast=TRUE", "cache=0", "layers=[5,6]", "tag=a", "verbose=2", "seed=None", "home=/h"
    )
    recorded = values(section)
    assert (recorded["fast"], recorded["cache"], recorded["layers"], recorded["tag"]) == (
        "True", "False", "[5, 6]", "['a']",
    )  # fmt: skip
    assert (recorded["verbose"], recorded["seed"], recorded["home"]) == ("2", "", "/h")


def test_defaults_reach_the_script_as_its_own_defaults(tmp_path: Path) -> None:
    _, _, args = create("features.py")
    assert args == []
    printed = run(tmp_path, "features.py", args)
    assert printed["layers"] == [3, 4] and printed["threshold"] == 0.5 and printed["cache"] is True


def test_every_argparse_action_round_trips_through_the_script(tmp_path: Path) -> None:
    _, section, args = create(
        "features.py",
        "epochs=7", "learning-rate=0.01", "name=-dashed", "optimizer=sgd", "seed=3", "verbose=2", "fast=true",
        "cache=false", "tag=[a, b]", "layers=[1, 2, 3]", "extra=[]", "size=[64, 48]", "amp=False",
        "augment=yes", "shuffle=false", "mode=debug", "data-dir=/tmp/x", "home=/custom", "threshold=0.25",
        "depth=50", "gpu=1",
    )  # fmt: skip
    assert values(section)["lr"] == "0.01"  # spelled as its option string, recorded by its dest
    assert args == [  # extra=[] is its default: not passed
        "--epochs", "7", "--lr", "0.01", "--name=-dashed", "--optimizer", "sgd", "--seed", "3", "-v", "-v",
        "--fast", "--no-cache", "--tag", "a", "--tag", "b", "--layers", "1", "2", "3", "--size", "64", "48",
        "--no-amp", "--augment", "true", "--shuffle", "false", "--mode", "--data-dir", "/tmp/x",
        "--home", "/custom", "--threshold", "0.25", "--depth", "50", "--gpu", "1",
    ]  # fmt: skip
    printed = run(tmp_path, "features.py", args)
    assert printed == {
        "epochs": 7, "lr": 0.01, "name": "-dashed", "optimizer": "sgd", "seed": 3, "verbose": 2, "fast": True,
        "cache": False, "tag": ["a", "b"], "layers": [1, 2, 3], "extra": [], "size": [64, 48], "amp": False,
        "augment": True, "shuffle": False, "mode": "debug", "data_dir": "/tmp/x", "home": "/custom",
        "threshold": 0.25, "depth": 50, "cpu": False, "gpu": 1,
    }  # fmt: skip


def test_args_a_clearml_sdk_recorded_pass_only_what_was_edited() -> None:
    """A task made by ClearML's own tools: no metadata, the SDK's value forms, edited in a UI."""
    parser = parser_of("features.py")
    recorded = {  # data_dir has type Path: its value is compared with the default as text
        "epochs": "5", "lr": "0.1", "seed": "", "fast": "False", "cache": "True", "tag": "",
        "layers": "[3, 4]", "amp": "True", "augment": "False", "mode": "normal", "verbose": "0", "gpu": "",
        "home": "/root", "data_dir": "data", "shuffle": "True", "threshold": "0.5",
    }  # fmt: skip
    section = {key: {"section": "Args", "name": key, "value": value} for key, value in recorded.items()}
    assert command_line(section, parser).argv == ["--home", "/root"]
    section["fast"]["value"], section["layers"]["value"], section["amp"]["value"] = "true", "[5]", "false"
    assert command_line(section, parser).argv == ["--fast", "--layers", "5", "--no-amp", "--home", "/root"]


def test_a_value_edited_wrongly_in_a_ui_reaches_the_script_which_reports_it() -> None:
    parser = parser_of("features.py")
    section = {"epochs": {"name": "epochs", "value": "ten"}, "depth": {"name": "depth", "value": ""}}
    assert command_line(section, parser).argv == [
        "--epochs",
        "ten",
    ]  # argparse says what is wrong, in the log
    result = command_line({**section, "nothing": {"name": "nothing", "value": "1"}}, parser)
    assert result.ignored == ["nothing"]


# ----------------------------------------------------------------------------------------- errors
def test_an_unknown_key_names_the_close_matches_and_the_known_ones() -> None:
    error = usage_error("features.py", "epoch=3")
    assert "features.py has no argument 'epoch'" in error.message
    assert "did you mean epochs" in error.message
    assert "optimizer" in error.hint and "data_dir" in error.hint


@pytest.mark.parametrize(
    ("pair", "fragments"),
    [
        ("epochs=ten", ["--epochs takes an integer, not 'ten'"]),
        ("lr=fast", ["--lr/--learning-rate takes a number"]),
        ("optimizer=rmsprop", ["--optimizer takes one of adam, sgd, not 'rmsprop'"]),
        ("depth=20", ["--depth takes one of 18, 34, 50"]),
        ("fast=maybe", ["--fast takes true or false"]),
        ("size=[1]", ["--size takes 2 values"]),
        ("layers=[]", ["--layers takes at least one value"]),
        ("mode=fast", ["--mode is a switch: 'debug' when given"]),
        ("verbose=-1", ["counts how often"]),
    ],
)
def test_a_value_the_option_does_not_take_names_the_option_the_value_and_what_it_takes(
    pair: str, fragments: list[str]
) -> None:
    error = usage_error("features.py", pair)
    assert error.message.startswith(f"--args {pair}: ")
    for fragment in fragments:
        assert fragment in error.message
    assert "features.py defines" in error.hint


def test_options_of_a_mutually_exclusive_group_exclude_each_other() -> None:
    error = usage_error("features.py", "cpu=true", "gpu=0")
    assert "cpu and gpu" in error.message and "mutually exclusive" in error.message
    check_and_record(parser_of("features.py"), {"cpu": "false", "gpu": "0"})


# --------------------------------------------------------------- parents, helpers, positionals
def test_parents_helper_functions_set_defaults_and_positionals(tmp_path: Path) -> None:
    parser = parser_of("parents.py")
    assert parser.complete
    assert [option.dest for option in parser.options] == [
        "config",
        "seed",
        "debug",
        "input",
        "outputs",
        "level",
    ]
    assert values(check_and_record(parser, {"input": "x"}))["seed"] == "42"  # set_defaults wins
    error = usage_error("parents.py", "seed=1")
    assert "parents.py needs input" in error.message and "--args input=VALUE" in error.hint
    assert "takes one of 1, 2, 3" in usage_error("parents.py", "input=x", "level=4").message
    _, _, args = create("parents.py", "input=data.csv", "outputs=[a.txt, b.txt]", "debug=1", "level=3")
    assert run(tmp_path, "parents.py", args) == {
        "config": "config.yaml", "seed": 42, "debug": True, "input": "data.csv",
        "outputs": ["a.txt", "b.txt"], "level": 3,
    }  # fmt: skip
    _, _, args = create("parents.py", "input=data.csv", "config=other.yaml", "seed=7")
    assert run(tmp_path, "parents.py", args)["outputs"] == ["out.txt"]


# -------------------------------------------------------------------------------------- subparsers
def test_subcommand_options_are_addressed_with_the_subcommand(tmp_path: Path) -> None:
    _, section, args = create("subcommands.py", "train.lr=0.5", "train.dataset=mnist", "verbose=true")
    assert list(section) == [
        "verbose", "command", "train.lr", "train.epochs", "train.dataset", "evaluate.lr", "evaluate.split",
    ]  # fmt: skip
    assert values(section)["command"] == "train"  # implied by the keys given
    assert args == ["--verbose", "train", "--lr", "0.5", "mnist"]
    assert run(tmp_path, "subcommands.py", args) == {
        "verbose": True, "command": "train", "lr": 0.5, "epochs": 3, "dataset": "mnist",
    }  # fmt: skip
    _, section, args = create("subcommands.py", "command=evaluate", "split=test")  # only evaluate has split
    assert values(section)["evaluate.split"] == "test"
    assert run(tmp_path, "subcommands.py", args) == {
        "verbose": False,
        "command": "evaluate",
        "lr": 0.0,
        "split": "test",
    }
    _, _, args = create("subcommands.py", "command=fit", "train.dataset=cifar")  # an alias
    assert run(tmp_path, "subcommands.py", args)["dataset"] == "cifar"


def test_subcommand_mistakes_are_usage_errors() -> None:
    assert "write one of evaluate.lr, train.lr" in usage_error("subcommands.py", "lr=1").hint
    assert (
        "runs subcommand evaluate" in usage_error("subcommands.py", "command=evaluate", "train.lr=1").message
    )
    assert "a run uses one" in usage_error("subcommands.py", "train.lr=1", "evaluate.split=test").message
    assert "has no subcommand 'predict'" in usage_error("subcommands.py", "command=predict").message
    assert "needs a subcommand" in usage_error("subcommands.py", "verbose=true").message
    draft = check_and_record(parser_of("subcommands.py"), {}, require=False)  # edited before it runs
    assert values(draft)["command"] == "" and values(draft)["train.dataset"] == ""


def test_subcommand_args_recorded_by_the_clearml_sdk_use_plain_dests() -> None:
    recorded = {
        "verbose": "False",
        "command": "train",
        "lr": "0.2",
        "epochs": "3",
        "dataset": "x",
        "split": "val",
    }
    section = {key: {"name": key, "value": value} for key, value in recorded.items()}
    assert command_line(section, parser_of("subcommands.py")).argv == ["train", "--lr", "0.2", "x"]


# ----------------------------------------------------------------------------- unreadable parsers
def test_a_parser_not_read_completely_accepts_keys_it_cannot_check(tmp_path: Path) -> None:
    parser, section, args = create("loop.py", "epochs=2", "alpha=0.5")
    assert not parser.complete and "line 9" in parser.problems[0]
    assert command_line(section, parser).problems == parser.problems
    assert section["alpha"]["type"] == "str" and values(section)["epochs"] == "2"
    assert run(tmp_path, "loop.py", args) == {"epochs": 2, "alpha": 0.5, "beta": 0.0}
    assert "epochs takes an integer" in usage_error("loop.py", "epochs=x").message


def test_a_script_without_a_parser_gets_the_pairs_as_they_are(tmp_path: Path) -> None:
    parser, section, args = create("plain.py", "lr=0.1", "fast=true", "layers=[1, 2]")
    assert parser.kind == "none"
    assert section["lr"] == {"section": "Args", "name": "lr", "value": "0.1", "type": "str"}
    assert args == command_line(section, Parser()).argv == ["--lr", "0.1", "--fast", "--layers", "1", "2"]
    assert run(tmp_path, "plain.py", args) == args


# ---------------------------------------------------------------------------- hydra, click, typer
def test_hydra_overrides_are_key_value(tmp_path: Path) -> None:
    pytest.importorskip("hydra")
    parser, section, args = create("hydra_app.py", "db.port=6000", "layers=[3,4]")
    assert parser.kind == "hydra" and values(section) == {"db.port": "6000", "layers": "[3,4]"}
    assert args == ["db.port=6000", "layers=[3,4]"]
    assert run(tmp_path, "hydra_app.py", args) == {
        "db": {"host": "localhost", "port": 6000},
        "layers": [3, 4],
    }


def test_hydra_overrides_are_checked_against_the_config_and_its_defaults_list(tmp_path: Path) -> None:
    """Keys the primary config or a simple defaults-list entry has pass; a typo is refused naming the close
    matches; Hydra's `+key` adds, `~key` deletes and `hydra.*` keys pass; an unreadable config checks
    nothing."""
    root = tmp_path / "repo"
    (root / "app" / "conf" / "model").mkdir(parents=True)
    (root / "app" / "conf" / "config.yaml").write_text(
        "defaults:\n  - base\n  - model: resnet\n  - optional optimizer: ???\n  - _self_\nseed: 1\n"
    )
    (root / "app" / "conf" / "base.yaml").write_text("data:\n  path: /data\n  sizes: [1, 2]\n")
    (root / "app" / "conf" / "model" / "resnet.yaml").write_text("depth: 18\nwidth: 64\n")
    app = (ARGS / "hydra_app.py").read_text()
    parser = read_parser(app, "train.py")
    assert parser.hydra_config == {"config_path": "conf", "config_name": "config"}
    read = directory_reader(root)
    fine = ["seed=2", "model.depth=50", "model=vit", "data.path=/x", "data.sizes.0=3", "optimizer.lr=0.1",
            "+extra=1", "++seed=3", "~data=", "hydra.run.dir=.", "config_name=other"]  # fmt: skip
    check_hydra_overrides(parser, parse_overrides(fine), read, "app/train.py")
    with pytest.raises(UserError) as caught:
        check_hydra_overrides(parser, parse_overrides(["model.dpth=5"]), read, "app/train.py")
    assert caught.value.message == (
        "--args model.dpth: the Hydra config of train.py (app/conf/config.yaml) has no key 'model.dpth'; "
        "did you mean model.depth or model.width?"
    )
    assert "+model.dpth=VALUE" in caught.value.hint and caught.value.exit_code == 2
    check_hydra_overrides(parser, parse_overrides(["model.dpth=5"]), read, "elsewhere/train.py")  # no config


def test_hydra_options_and_overrides_the_clearml_sdk_recorded_in_args() -> None:
    """The SDK records Hydra's own argparse options in Args: they are options, not overrides."""
    recorded = {
        "overrides": "['db.port=7000', '+extra=1']", "help": "False", "hydra_help": "False", "cfg": "",
        "resolve": "False", "package": "", "run": "False", "multirun": "False", "shell_completion": "False",
        "config_path": "", "config_name": "", "config_dir": "", "experimental_rerun": "", "info": "",
    }  # fmt: skip
    section = {key: {"name": key, "value": value} for key, value in recorded.items()}
    assert command_line(section, parser_of("hydra_app.py")).argv == ["db.port=7000", "+extra=1"]
    section = {
        key: {"name": key, "value": value} for key, value in {"config_name": "other", "db.port": "1"}.items()
    }
    assert command_line(section, parser_of("hydra_app.py")).argv == ["--config-name", "other", "db.port=1"]


def test_click_options_flags_and_arguments(tmp_path: Path) -> None:
    pytest.importorskip("click")
    parser, section, args = create(
        "click_app.py", "dataset=mnist", "extra=[a, b]", "lr=0.5", "optimizer=sgd", "fast=true", "debug=yes",
        "tags=[x, y]", "verbose=3",
    )  # fmt: skip
    assert parser.kind == "click" and section["lr"]["description"] == "learning rate"
    assert run(tmp_path, "click_app.py", args) == {
        "epochs": 5, "lr": 0.5, "optimizer": "sgd", "fast": True, "debug": True, "tags": ["x", "y"],
        "verbose": 3, "dataset": "mnist", "extra": ["a", "b"],
    }  # fmt: skip
    assert (
        "--optimizer takes one of adam, sgd"
        in usage_error("click_app.py", "dataset=x", "optimizer=rms").message
    )
    assert "click_app.py needs dataset" in usage_error("click_app.py", "lr=1").message


def test_a_click_group_runs_the_chosen_command(tmp_path: Path) -> None:
    pytest.importorskip("click")
    parser, _, args = create("click_group.py", "verbose=true", "command=eval", "split=test")
    assert list(parser.subcommands) == ["train", "eval"]
    assert args == ["--verbose", "eval", "--split", "test"]
    result = subprocess.run(
        [sys.executable, str(ARGS / "click_group.py"), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert [json.loads(line) for line in result.stdout.splitlines()] == [
        {"verbose": True}, {"command": "eval", "split": "test"},
    ]  # fmt: skip


def test_click_group_args_the_clearml_sdk_recorded() -> None:
    recorded = [
        ("cli", "False", "click.Command"), ("train", "False", "click.Command"),
        ("eval", "True", "click.Command"), ("cli/verbose", "True", "BOOL"), ("train/lr", "0.1", "FLOAT"),
        ("eval/split", "test", "STRING"),
    ]  # fmt: skip
    section = {name: {"name": name, "value": value, "type": kind} for name, value, kind in recorded}
    assert command_line(section, parser_of("click_group.py")).argv == ["--verbose", "eval", "--split", "test"]


def test_typer_parameters_become_options(tmp_path: Path) -> None:
    pytest.importorskip("typer")
    parser, section, args = create(
        "typer_app.py", "dataset=mnist", "lr=0.5", "fast=true", "tags=[a, b]", "run_name=first", "epochs=2"
    )
    assert parser.kind == "typer" and [o.dest for o in parser.options][:2] == ["dataset", "epochs"]
    assert "--run-name" in args and "--fast" in args and section["lr"]["description"] == "learning rate"
    assert run(tmp_path, "typer_app.py", args) == {
        "dataset": "mnist", "epochs": 2, "lr": 0.5, "fast": True, "tags": ["a", "b"], "run_name": "first",
    }  # fmt: skip


def test_typer_commands_annotated_parameters_and_enums(tmp_path: Path) -> None:
    pytest.importorskip("typer")
    script = tmp_path / "app.py"
    script.write_text(
        "import json\n"
        "from enum import Enum\n"
        "from typing import Annotated\n"
        "import typer\n"
        "app = typer.Typer()\n"
        "class Color(str, Enum):\n"
        "    red = 'red'\n"
        "    blue = 'blue'\n"
        "@app.command()\n"
        "def train(data: str, color: Color = Color.red,\n"
        "          lr: Annotated[float, typer.Option('--learning-rate', '-l')] = 0.1):\n"
        "    print(json.dumps({'data': data, 'color': color.value, 'lr': lr}))\n"
        "@app.command('eval-model')\n"
        "def evaluate(split: str = 'val'):\n"
        "    print(json.dumps({'split': split}))\n"
        "if __name__ == '__main__':\n"
        "    app()\n"
    )
    parser = read_parser(script.read_text(), "app.py")
    assert list(parser.subcommands) == ["train", "eval-model"] and parser.subcommand_required
    section = check_and_record(parser, {"data": "d", "color": "blue", "learning-rate": "0.5"})
    assert (section["train.color"]["value"], section["command"]["value"]) == ("blue", "train")
    args = command_line(section, parser).argv
    assert args == ["train", "--color", "blue", "--learning-rate", "0.5", "d"]
    result = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, check=True)
    assert json.loads(result.stdout) == {"data": "d", "color": "blue", "lr": 0.5}
    with pytest.raises(UserError, match="takes one of red, blue"):
        check_and_record(parser, {"color": "x"})


def test_an_argument_given_under_two_of_its_names_is_refused() -> None:
    """`num-epochs=3 n=4` name one option: the last silently won, where `lr=1 lr=2` is refused."""
    parser = read_parser(
        "import argparse\np = argparse.ArgumentParser()\n"
        "p.add_argument('--num-epochs', '-n', dest='epochs', type=int, default=1)\np.parse_args()\n",
        "aliases.py",
    )
    with pytest.raises(UserError, match="--args gives 'epochs' twice, as 'num-epochs' and as 'n'") as caught:
        check_and_record(parser, {"num-epochs": "3", "n": "4"})
    assert caught.value.exit_code == 2
    assert values(check_and_record(parser, {"n": "4"}))["epochs"] == "4"


# ---------------------------------------------------------------------------------------- run time
def test_the_launcher_reads_the_parser_from_the_reproduced_entry_point(tmp_path: Path) -> None:
    module = entry_file(ARGS, ARGS, "-m pkg.main")
    assert module == ARGS / "pkg" / "main.py"
    section = {"steps": {"name": "steps", "value": "3"}}
    line = command_line(section, read_parser_file(module))
    assert (line.kind, line.argv) == ("argparse", ["--steps", "3"])
    assert run(tmp_path, "pkg.main", line.argv, module=True) == {"steps": 3}
    assert entry_file(ARGS, ARGS, "missing.py") is None and entry_file(ARGS, ARGS, "run.sh") is None
    assert command_line({"fast": {"name": "fast", "value": "true"}}, read_parser_file(None)).argv == [
        "--fast"
    ]  # the first cut


def test_a_clone_gets_overrides_merged_and_new_keys_named() -> None:
    base = {"lr": {"section": "Args", "name": "lr", "value": "0.1", "type": "float", "description": "rate"}}
    merged, new = merge_overrides(base, {"lr": "0.2", "lrr": "3"})
    assert merged["lr"] == {**base["lr"], "value": "0.2"} and base["lr"]["value"] == "0.1"
    assert new == ["lrr"] and merged["lrr"]["type"] == "str"


def test_what_accumulates_is_left_to_the_clearml_sdk_when_the_script_calls_task_init() -> None:
    """With Task.init the SDK sets the options' defaults from Args before argparse parses the command line:
    an append or count option passed there too would count twice."""
    injected = (
        'if __name__ == "__main__":\n    try:\n        from clearml import Task\n    except ImportError:\n'
        "        pass\n    else:\n        Task.init({})\n"
    )
    source = (ARGS / "features.py").read_text()
    section = {
        key: {"name": key, "value": value}
        for key, value in {"tag": "['a']", "verbose": "2", "epochs": "7"}.items()
    }
    bound = read_parser(injected.format("") + source, "features.py")
    line = command_line(section, bound)
    assert bound.sdk_binds_args and line.argv == ["--epochs", "7"]
    assert line.problems == ["set by the clearml SDK (Task.init), not on the command line: verbose, tag"]
    unbound = read_parser(injected.format("auto_connect_arg_parser=False") + source, "features.py")
    assert not unbound.sdk_binds_args
    assert command_line(section, unbound).argv == ["--epochs", "7", "-v", "-v", "--tag", "a"]


def test_a_count_the_sdk_is_told_to_leave_alone_is_passed_on_the_command_line() -> None:
    """The clearml SDK reads a count back from Args as a list ([2]); the injected Task.init leaves count
    options out of its binding, so the command line gives them."""
    source = (ARGS / "features.py").read_text()
    assert counted_dests(read_parser(source, "features.py")) == ["verbose"]
    injected = inject_task_init(source, "features.py", ["verbose"]).text
    assert injected is not None and "Task.init(auto_connect_arg_parser={'verbose': False})" in injected
    parser = read_parser(injected, "features.py")
    assert parser.sdk_binds_args and parser.sdk_unbound == ["verbose"]
    section = {
        key: {"name": key, "value": value}
        for key, value in {"tag": "['a']", "verbose": "2", "epochs": "7"}.items()
    }
    line = command_line(section, parser)
    assert line.argv == ["--epochs", "7", "-v", "-v"]
    assert line.problems == ["set by the clearml SDK (Task.init), not on the command line: tag"]


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (["--password", "p", "--lr", "0.1"], ["--password", "***", "--lr", "0.1"]),
        (["--api-token=t", "--passes", "3"], ["--api-token=***", "--passes", "3"]),
        (
            ["db.password=x", "aws_secret_access_key=y", "tokenizer=bert"],
            ["db.password=***", "aws_secret_access_key=***", "tokenizer=bert"],
        ),
        (["--use-auth", "--lr", "0.1"], ["--use-auth", "--lr", "0.1"]),  # a flag: the next word is no value
        (["--secret", "-5", "--keyboard", "k"], ["--secret", "***", "--keyboard", "k"]),  # -5 is a value
        (
            ["pad_token_id=3", "--max_token_length", "9", "--bos-token", "<s>"],
            ["pad_token_id=3", "--max_token_length", "9", "--bos-token", "<s>"],
        ),
        (
            ["--secretKey", "a", "--sessionToken", "b", "--dbpassword", "c"],
            ["--secretKey", "***", "--sessionToken", "***", "--dbpassword", "***"],
        ),
    ],
)
def test_secret_named_values_are_masked_where_shown(argv: list[str], shown: list[str]) -> None:
    from clearml_task.arguments.masking import masked

    assert masked(argv) == shown


WORDS_PARSER = """import argparse
p = argparse.ArgumentParser()
p.add_argument("-l", "--lr", type=float, default=0.1)
p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=True)
p.add_argument("--mode", action="store_const", const="fast", default="slow")
p.add_argument("--tag", action="append")
p.add_argument("data")
p.parse_args()
"""


@pytest.mark.parametrize(
    ("words", "given", "problem", "wrong"),
    [
        (
            "-l -0.5 --no-amp --mode d.csv",
            {"lr": "-0.5", "amp": "False", "mode": "fast", "data": "d.csv"},
            "",
            False,
        ),
        ("--lr=2 --amp d.csv", {"lr": "2", "amp": "True", "data": "d.csv"}, "", False),
        ("--tag a d.csv", {}, "'--tag': only single-value options are read here", False),
        ("-l3 d.csv", {}, "'-l3' is not one of its options", False),  # argparse reads it: not wrong
        ("--l 3 d.csv", {}, "'--l' is not one of its options", False),  # an abbreviation of --lr
        ("--rate 3 d.csv", {}, "'--rate' is not one of its options", True),
        ("-l --amp", {}, "'-l' needs a value", True),
    ],
)
def test_words_after_a_modules_name_are_read_in_plain_forms_only(
    words: str, given: dict[str, str], problem: str, wrong: bool
) -> None:
    from clearml_task.arguments.inline import read_words, words_left

    parser = read_parser(WORDS_PARSER, "run.py")
    reading = read_words(parser, words.split())
    assert {g.dest: g.text for g in reading.given} == given
    assert (reading.problem, reading.wrong) == (problem, wrong)
    if not problem:  # what Args holds leaves the command line; the rest stays
        assert words_left(parser, words.split(), ["lr", "data"]) == [
            w for w in words.split() if w not in ("-l", "-0.5", "--lr=2", "d.csv")
        ]
    else:
        assert words_left(parser, words.split(), list(given)) == words.split()


def test_a_one_or_more_option_left_at_its_empty_default_is_not_passed() -> None:
    """`nargs="+", default=[]` recorded as `[]`: nothing goes on the command line (a bare `--items` went,
    and the script's parser refused it); an edit to `[]` of an option whose default is not empty cannot be
    given on a command line and is said so."""
    parser = read_parser(
        "import argparse\np = argparse.ArgumentParser()\np.add_argument('--items', nargs='+', default=[])\n"
        "p.add_argument('--two', nargs='+', default=['a'])\np.parse_args()\n",
        "main.py",
    )
    args = check_and_record(parser, {})
    assert (args["items"]["value"], command_line(args, parser).argv) == ("[]", [])
    args["two"]["value"] = "[]"
    with pytest.raises(UserError, match="--two takes at least one value"):
        command_line(args, parser)


def test_a_lone_dash_after_a_modules_name_is_a_value() -> None:
    """`-` is argparse's stdin convention, a positional value, never an option (it was refused)."""
    from clearml_task.arguments.inline import read_words

    parser = read_parser(
        "import argparse\np = argparse.ArgumentParser()\np.add_argument('--epochs', type=int)\n"
        "p.add_argument('data')\np.parse_args()\n",
        "main.py",
    )
    reading = read_words(parser, ["-", "--epochs", "3"])
    assert reading.problem == "" and {g.dest: g.text for g in reading.given} == {"data": "-", "epochs": "3"}
