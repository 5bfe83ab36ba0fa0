"""A script of ClearML's SDK everyday calls, run in ClearML's tools venv against our server (run
locally, or as a task under the launcher): it reports, uploads and stores, then reads everything back
and prints `EVERYDAY <json>` with what it found. Not imported by the tests: copied and run."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from clearml import Model, OutputModel, Task

PROJECT = os.environ.get("EVERYDAY_PROJECT", "everyday")
WEIGHTS = b"weights \x00\x01\x02" * 100
FILE_BYTES = b"artifact file \xff\xfe" * 50


def main() -> None:
    task = Task.init(project_name=PROJECT, task_name="everyday", reuse_last_task_id=False)
    params = task.connect({"lr": 0.1, "epochs": 3})
    config = task.connect_configuration({"layers": [1, 2, 3]}, name="model config")
    logger = task.get_logger()
    for i in range(3):
        logger.report_scalar("loss", "train", value=1.0 / (i + 1), iteration=i)
    logger.report_image("samples", "noise", iteration=0, image=np.full((8, 8, 3), 200, dtype=np.uint8))
    logger.report_table("table", "t", iteration=0, table_plot=[["a", "b"], [1, 2]])
    logger.report_single_value("accuracy", 0.93)
    work = Path(tempfile.mkdtemp())
    (work / "data.bin").write_bytes(FILE_BYTES)
    task.upload_artifact("numbers", artifact_object={"a": 1, "b": [1, 2]}, wait_on_upload=True)
    task.upload_artifact("file", artifact_object=str(work / "data.bin"), wait_on_upload=True)
    (work / "model.bin").write_bytes(WEIGHTS)
    model = OutputModel(task=task, name="everyday model", framework="PyTorch")
    model.update_weights(weights_filename=str(work / "model.bin"), auto_delete_file=False)
    task.flush(wait_for_uploads=True)
    task_id = task.id
    task.close()

    found = Task.get_task(task_id=task_id)
    artifacts = found.artifacts
    scalars = found.get_reported_scalars()
    samples = found.get_debug_samples("samples", "noise") if hasattr(found, "get_debug_samples") else None
    models = found.models["output"]
    out = {
        "params": params,
        "config": config,
        "parameters": found.get_parameters(),
        "configuration": found.get_configuration_object_as_dict("model config"),
        "artifact_numbers": artifacts["numbers"].get(),
        "artifact_file": Path(artifacts["file"].get_local_copy()).read_bytes() == FILE_BYTES,
        "scalars": sorted(scalars.get("loss", {}).get("train", {}).get("y", [])),
        "debug_samples": len(samples or []),
        "model_bytes": Path(models[0].get_local_copy()).read_bytes() == WEIGHTS if models else None,
        "tasks_in_project": [t.id for t in Task.get_tasks(project_name=PROJECT)],
        "task_id": task_id,
        "models_found": [m.id for m in Model.query_models(project_name=PROJECT)],
    }
    print("EVERYDAY " + json.dumps(out, default=str), flush=True)


if __name__ == "__main__":
    sys.exit(main())
