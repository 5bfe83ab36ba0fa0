"""events.*: add_batch (json-lines) and get_task_log's paging in both directions."""

from __future__ import annotations

import hashlib
import uuid

import pytest

from clearml_task.api import Client
from clearml_task.errors import APICallError
from testing.servers import api_error


def log_events(task_id: str, stamps: list[int]) -> list[dict]:
    return [
        {"type": "log", "task": task_id, "msg": f"line {i}", "timestamp": ts, "level": "info"}
        for i, ts in enumerate(stamps)
    ]


def test_add_batch_counts_and_explains_rejects(client: Client) -> None:
    task_id = client.create_task({"name": "events", "type": "training"})
    batch = [
        *log_events(task_id, [1, 2]),
        {"type": "log", "task": uuid.uuid4().hex, "msg": "unknown task"},
        {"task": task_id, "msg": "no type"},
        {"type": "bogus", "task": task_id},
    ]
    result = client.call("events.add_batch", batch)
    assert (result["added"], result["errors"]) == (2, 3)
    assert len(result["errors_info"]) == 3


def test_add_batch_with_nothing_valid_fails(client: Client) -> None:
    with pytest.raises(APICallError) as e:
        client.call("events.add_batch", [{"type": "log", "task": uuid.uuid4().hex, "msg": "x"}])
    assert api_error(e) == (400, 131)


def test_missing_timestamp_and_worker_are_filled(client: Client) -> None:
    task_id = client.create_task({"name": "events", "type": "training"})
    client.call("events.add_batch", [{"type": "log", "task": task_id, "msg": "hello"}])
    (event,) = client.task_log(task_id)
    assert (
        event["timestamp"] > 1_600_000_000_000 and event["worker"] == "<unknown>" and event["level"] == "info"
    )


def test_get_task_log_newest_first_by_default(client: Client) -> None:
    task_id = client.create_task({"name": "events", "type": "training"})
    client.call("events.add_batch", log_events(task_id, [10, 20, 30, 40]))
    got = client.call("events.get_task_log", {"task": task_id, "batch_size": 2})
    assert [e["msg"] for e in got["events"]] == ["line 3", "line 2"]
    assert (got["returned"], got["total"]) == (2, 4)
    earlier = client.call("events.get_task_log", {"task": task_id, "batch_size": 2, "from_timestamp": 30})
    assert [e["msg"] for e in earlier["events"]] == ["line 1", "line 0"]


def test_get_task_log_forward_paging_loses_nothing_on_equal_timestamps(client: Client) -> None:
    task_id = client.create_task({"name": "events", "type": "training"})
    stamps = [5, 5, 5, 6, 7, 7, 8]
    client.call("events.add_batch", log_events(task_id, stamps))
    first = client.call("events.get_task_log", {"task": task_id, "batch_size": 2, "navigate_earlier": False})
    assert [e["msg"] for e in first["events"]] == ["line 0", "line 1", "line 2"]  # the whole timestamp 5
    assert [e["msg"] for e in client.task_log(task_id, batch_size=2)] == [
        f"line {i}" for i in range(len(stamps))
    ]


def test_metric_events_move_last_iteration(client: Client) -> None:
    task_id = client.create_task({"name": "metrics", "type": "training"})
    client.call(
        "events.add_batch",
        [
            {
                "type": "training_stats_scalar",
                "task": task_id,
                "metric": "loss",
                "variant": "train",
                "iter": i,
                "value": 1.0 / (i + 1),
            }
            for i in range(4)
        ],
    )
    assert client.get_task(task_id)["last_iteration"] == 3


def test_unknown_task_log_is_400_101(client: Client) -> None:
    with pytest.raises(APICallError) as e:
        client.call("events.get_task_log", {"task": uuid.uuid4().hex})
    assert api_error(e) == (400, 101)


def test_scalars_are_readable_per_metric_and_variant(client: Client) -> None:
    task_id = client.create_task({"name": "scalars", "type": "training"})
    events = [
        {
            "type": "training_stats_scalar",
            "task": task_id,
            "metric": "loss",
            "variant": variant,
            "iter": i,
            "value": value,
        }
        for variant, values in (("train", [3.0, 2.0, 1.0]), ("val", [4.0, 3.5, 3.0]))
        for i, value in enumerate(values)
    ]
    events.append(
        {
            "type": "training_stats_scalar",
            "task": task_id,
            "metric": "loss",
            "variant": "train",
            "iter": 2,
            "value": 0.5,
        }
    )  # a second report of iteration 2: the last one counts
    client.call("events.add_batch", events)
    metrics = client.call("events.get_scalar_metrics_and_variants", {"task": task_id})["metrics"]
    assert metrics == {"loss": {"train": {"name": "train"}, "val": {"name": "val"}}}
    series = client.call("events.scalar_metrics_iter_histogram", {"task": task_id})
    assert series["loss"]["train"]["x"] == [0, 1, 2] and series["loss"]["train"]["y"] == [3.0, 2.0, 0.5]
    assert series["loss"]["val"]["y"] == [4.0, 3.5, 3.0]


def test_scalar_histogram_by_time(client: Client) -> None:
    task_id = client.create_task({"name": "scalars by time", "type": "training"})
    events = [
        {"type": "training_stats_scalar", "task": task_id, "metric": "loss", "variant": "train", "iter": i,
         "value": 1.0 / (i + 1), "timestamp": 1_000 + 10 * i}
        for i in range(3)
    ]  # fmt: skip
    client.call("events.add_batch", events)
    by_time = client.call("events.scalar_metrics_iter_histogram", {"task": task_id, "key": "timestamp"})
    assert by_time["loss"]["train"]["x"] == [1_000, 1_010, 1_020]
    by_iter = client.call("events.scalar_metrics_iter_histogram", {"task": task_id})
    assert by_iter["loss"]["train"]["x"] == [0, 1, 2]
    with pytest.raises(APICallError) as e:
        client.call("events.scalar_metrics_iter_histogram", {"task": task_id, "key": "nope"})
    assert api_error(e) == (400, 12)


def test_get_task_events_by_type_and_order(client: Client) -> None:
    task_id = client.create_task({"name": "plots and images", "type": "training"})
    client.call("events.add_batch", [
        *log_events(task_id, [1]),
        {"type": "plot", "task": task_id, "metric": "m", "variant": "a", "iter": 1, "plot_str": "{}",
         "timestamp": 5},
        {"type": "plot", "task": task_id, "metric": "m", "variant": "b", "iter": 2, "plot_str": "{}",
         "timestamp": 6},
        {"type": "training_debug_image", "task": task_id, "metric": "s", "variant": "x", "iter": 1,
         "url": "http://files/x.png", "timestamp": 7},
    ])  # fmt: skip
    plots = client.call("events.get_task_events", {"task": task_id, "event_type": "plot"})
    assert [e["variant"] for e in plots["events"]] == ["a", "b"] and plots["total"] == 2
    newest = client.call("events.get_task_events", {"task": task_id, "event_type": "plot", "order": "desc",
                                                    "batch_size": 1})  # fmt: skip
    assert [e["variant"] for e in newest["events"]] == ["b"] and newest["returned"] == 1
    everything = client.call("events.get_task_events", {"task": task_id})
    assert [e["type"] for e in everything["events"]] == [
        "plot",
        "plot",
        "training_debug_image",
    ]  # not the log
    with pytest.raises(APICallError) as e:
        client.call("events.get_task_events", {"task": task_id, "event_type": "bogus"})
    assert api_error(e) == (400, 12)


def scalar(task_id: str, metric: str, variant: str, iteration: int, value: float, **extra: object) -> dict:
    return {"type": "training_stats_scalar", "task": task_id, "metric": metric, "variant": variant,
            "iter": iteration, "value": value, **extra}  # fmt: skip


def md5(name: str) -> str:
    return hashlib.md5(name.encode()).hexdigest()


def test_scalar_events_keep_the_tasks_last_metrics(client: Client) -> None:
    """ClearML's SDK reads last_metrics (Task.get_last_scalar_metrics): {md5(metric): {md5(variant):
    {metric, variant, value, min/max/first values and their iterations, count, mean}}}, over every batch."""
    task_id = client.create_task({"name": "last metrics", "type": "training"})
    assert client.get_task(task_id)["last_metrics"] == {}
    client.call(
        "events.add_batch", [scalar(task_id, "loss", "train", i, v) for i, v in enumerate([3.0, 1.0, 2.0])]
    )
    client.call("events.add_batch", [
        scalar(task_id, "loss", "train", 4, 5.0), scalar(task_id, "loss", "train", 3, 0.5),
        scalar(task_id, "acc", "val", 3, 0.75),
        {"type": "log", "task": task_id, "msg": "a log line moves no metric"},
    ])  # fmt: skip
    metrics = client.get_task(task_id)["last_metrics"]
    assert set(metrics) == {md5("loss"), md5("acc")} and set(metrics[md5("loss")]) == {md5("train")}
    assert metrics[md5("loss")][md5("train")] == {
        "metric": "loss", "variant": "train", "value": 5.0,  # the latest iteration's, not the last sent
        "min_value": 0.5, "min_value_iteration": 3, "max_value": 5.0, "max_value_iteration": 4,
        "first_value": 3.0, "first_value_iteration": 0, "count": 5, "mean_value": pytest.approx(2.3),
    }  # fmt: skip
    assert metrics[md5("acc")][md5("val")]["value"] == 0.75
    listed = client.call("tasks.get_all", {"id": [task_id], "only_fields": ["last_metrics"]})["tasks"]
    assert listed[0]["last_metrics"] == metrics
    client.call("events.add_batch", [{"type": "log", "task": task_id, "msg": "only a log"}])
    assert client.get_task(task_id)["last_metrics"] == metrics


def test_reset_clears_last_metrics(client: Client) -> None:
    task_id = client.create_task({"name": "reset metrics", "type": "training"})
    client.call("events.add_batch", [scalar(task_id, "loss", "train", 7, 1.0)])
    assert client.get_task(task_id)["last_metrics"]
    client.call("tasks.reset", {"task": task_id})
    task = client.get_task(task_id)
    assert (task["last_metrics"], task["last_iteration"]) == ({}, 0)


def test_get_task_events_scrolls_past_one_batch(client: Client) -> None:
    """What the SDK's get_all_reported_scalars does: batches of 1000 by scroll_id until a short one."""
    task_id = client.create_task({"name": "many scalars", "type": "training"})
    events = [scalar(task_id, "loss", "train", i, float(i), timestamp=1_000 + i // 3) for i in range(2500)]
    for start in range(0, len(events), 500):
        client.call("events.add_batch", events[start : start + 500])
    seen, scroll_id, sizes = [], None, []
    while True:
        got = client.call("events.get_task_events", {"task": task_id, "event_type": "training_stats_scalar",
                                                     "batch_size": 1000, "scroll_id": scroll_id})  # fmt: skip
        assert got["total"] == 2500 and got["returned"] == len(got["events"])
        seen += [e["iter"] for e in got["events"]]
        sizes.append(got["returned"])
        if got["returned"] < 1000:
            break
        scroll_id = got["scroll_id"]
    assert sizes == [1000, 1000, 500] and seen == list(range(2500))
    newest = client.call("events.get_task_events", {"task": task_id, "event_type": "training_stats_scalar",
                                                    "order": "desc", "batch_size": 2000})  # fmt: skip
    rest = client.call("events.get_task_events", {"task": task_id, "scroll_id": newest["scroll_id"]})
    assert [e["iter"] for e in newest["events"] + rest["events"]] == list(reversed(range(2500)))
    end = client.call("events.get_task_events", {"task": task_id, "scroll_id": rest["scroll_id"]})
    assert end["returned"] == 0 and end["events"] == []


@pytest.mark.parametrize(
    "scroll_id",
    ["nonsense", "all~asc~1~", "bogus~asc~1~2", "all~up~1~2", "all~asc~1~99999999999999999999999",
     "all~asc~x~1", "log~asc~" + "9" * 40 + "~1", "\u00e9~asc~1~1"],
)  # fmt: skip
def test_get_task_events_unknown_scroll_id_is_400(client: Client, scroll_id: str) -> None:
    task_id = client.create_task({"name": "scroll", "type": "training"})
    with pytest.raises(APICallError) as e:
        client.call("events.get_task_events", {"task": task_id, "scroll_id": scroll_id})
    assert api_error(e) == (400, 12)


def test_get_task_plots_iters_are_per_plot(client: Client) -> None:
    """get_reported_plots asks for iters=1: the last iteration of every plot, not the task's last plot."""
    task_id = client.create_task({"name": "plots", "type": "training"})
    plot = {"type": "plot", "task": task_id, "plot_str": "{}"}
    client.call("events.add_batch", [
        {**plot, "metric": "confusion", "variant": "train", "iter": 1, "timestamp": 1},
        {**plot, "metric": "confusion", "variant": "train", "iter": 2, "timestamp": 2},
        {**plot, "metric": "roc", "variant": "val", "iter": 1, "timestamp": 3},
        {**plot, "metric": "table", "variant": "summary", "iter": 0, "timestamp": 4},
        {**plot, "metric": "confusion", "variant": "train", "iter": 5, "timestamp": 5},
    ])  # fmt: skip
    last = client.call("events.get_task_plots", {"task": task_id, "iters": 1})["plots"]
    assert [(e["metric"], e["iter"]) for e in last] == [("roc", 1), ("table", 0), ("confusion", 5)]
    two = client.call("events.get_task_plots", {"task": task_id, "iters": 2})["plots"]
    assert [(e["metric"], e["iter"]) for e in two] == [
        ("confusion", 2),
        ("roc", 1),
        ("table", 0),
        ("confusion", 5),
    ]


def test_a_models_events_are_stored_read_with_model_events_and_deleted_with_it(client: Client) -> None:
    """OutputModel.report_scalar sends `model_event: true` with the model's id as `task`: it was refused
    ("Invalid task id", the values lost). Stored under the model and read with `model_events`; a task's
    events in the same batch are as before, and an unknown model is refused by name."""
    task_id = client.create_task({"name": "model events", "type": "training"})
    model_id = client.call("models.create", {"name": "reported model", "uri": "file:///tmp/w.bin"})["id"]
    scalar = {"type": "training_stats_scalar", "metric": "loss", "variant": "val", "iter": 3, "value": 0.25}
    result = client.call("events.add_batch", [
        {**scalar, "task": model_id, "model_event": True},
        {**scalar, "task": task_id, "model_event": False, "value": 0.5},
        {**scalar, "task": uuid.uuid4().hex, "model_event": True},
    ])  # fmt: skip
    assert (result["added"], result["errors"]) == (2, 1)
    assert any("Invalid model id" in reason for reason in result["errors_info"])
    read = client.call("events.scalar_metrics_iter_histogram", {"task": model_id, "model_events": True})
    assert read["loss"]["val"]["y"] == [0.25]
    mine = client.call("events.scalar_metrics_iter_histogram", {"task": task_id})
    assert mine["loss"]["val"]["y"] == [0.5]
    with pytest.raises(APICallError) as e:  # a model's id is no task's
        client.call("events.scalar_metrics_iter_histogram", {"task": model_id})
    assert api_error(e) == (400, 101)
    stored = client.call("events.get_task_events", {"task": model_id, "model_events": True})
    assert [event["value"] for event in stored["events"]] == [0.25] and "model_event" not in stored["events"][
        0
    ]
    client.call("models.delete", {"model": model_id})
    with pytest.raises(APICallError) as e:
        client.call("events.scalar_metrics_iter_histogram", {"task": model_id, "model_events": True})
    assert api_error(e) == (400, 201)
