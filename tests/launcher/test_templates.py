"""The glue templates' variables: values from tasks are one shell word, defaults, unknown names refused."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from clearml_task.errors import UserError
from launcher import templates


def test_task_values_are_one_shell_word(tmp_path: Path) -> None:
    hostile = "a'b\"c $(touch {0}) `touch {0}`; touch {0}\n#SBATCH --wrap=x".format(tmp_path / "pwned")
    context = templates.Context("q", "qid", "w", {"id": "t", "name": hostile, "project": "p"}, {})
    script = templates.shell_script('printf "%s" ${CLEARML_TASK.name}', context)
    printed = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout
    assert printed == hostile.replace("\n", " ")
    assert not (tmp_path / "pwned").exists()
    assert "\n" not in script


def test_defaults_and_unknown_variables() -> None:
    task = {"id": "t", "hyperparams": {"properties": {"gpus": {"value": "2"}}}}
    context = templates.Context("q", "qid", "w", task, {"CLEARML_AGENT_EXECUTE": "run it"})
    text = "${CLEARML_TASK.hyperparams.properties.gpus.value:1} ${CLEARML_TASK.name:unnamed} "
    text += "${CLEARML_AGENT_EXECUTE}"
    assert templates.shell_script(text, context) == "2 unnamed run it"
    with pytest.raises(templates.MissingValue):
        templates.shell_script("${CLEARML_TASK.name}", context)
    with pytest.raises(UserError, match="unknown variable"):
        templates.check("${CLEARML_TASK.secret}", "job.sh")
