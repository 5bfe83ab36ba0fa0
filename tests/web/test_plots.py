"""The Plots tab in Chromium: plotly figures drawn only where uPlot draws them as plotly would (the others
shown as their JSON), with the figure's axis titles, and only the newest plot of each metric and variant."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from testing import browser
from tests.web.conftest import PROJECT, Site

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

expect = browser.playwright_api().expect
pytestmark = pytest.mark.browser


def task_with_plots(site: Site, name: str, plots: list[tuple[str, str, int, dict[str, Any]]]) -> str:
    """A task with these plot events (metric, variant, iteration, plotly figure); returns its Plots tab."""
    client = site.client()
    project = client.project_id(PROJECT, create=False)
    task = client.call("tasks.create", {"name": name, "type": "training", "project": project})["id"]
    events = [
        {"task": task, "type": "plot", "metric": metric, "variant": variant, "iter": iteration,
         "timestamp": 1_700_000_000_000 + i, "plot_str": json.dumps(figure)}
        for i, (metric, variant, iteration, figure) in enumerate(plots)
    ]  # fmt: skip
    client.call("events.add_batch", {"requests": events})
    return f"{site.url}/projects/{project}/tasks/{task}/plots"


def figure(page: Page, title: str) -> Locator:
    return page.locator("#plots figure.chart", has=page.get_by_text(title))


def test_plots_draw_only_what_uplot_draws_as_plotly_would(site: Site, page: Page, shot: Any) -> None:
    heatmap = {
        "data": [{"type": "heatmap", "x": [0, 1, 2], "y": [0, 1, 2], "z": [[5, 0, 0], [0, 7, 1], [2, 0, 9]]}]
    }
    repeated_x = {"data": [{"type": "scatter", "x": [1, 1, 2, 2], "y": [0, 10, 0, 10]}]}
    markers = {
        "data": [{"type": "scatter", "mode": "markers", "x": [3, 1, 2], "y": [5, 6, 7], "name": "dots"}]
    }
    titled = {
        "data": [{"type": "scatter", "mode": "lines", "x": [0, 1, 2], "y": [1, 4, 9], "name": "curve"}],
        "layout": {"xaxis": {"title": {"text": "recall"}}, "yaxis": {"title": "precision"}},
    }
    url = task_with_plots(site, "plot shapes", [
        ("shapes", "heatmap", 1, heatmap), ("shapes", "repeated x", 1, repeated_x),
        ("shapes", "markers", 1, markers), ("shapes", "titled", 1, titled),
    ])  # fmt: skip
    page.goto(url)
    expect(page.locator("#plots figure.chart")).to_have_count(4)
    # A heatmap, and a line going back on its x values, are not drawn: their JSON is shown, z values and all.
    for title, shown in (("shapes / heatmap", '"z"'), ("shapes / repeated x", "10")):
        expect(figure(page, title).locator("pre")).to_contain_text(shown)
        expect(figure(page, title).locator("canvas")).to_have_count(0)
    expect(figure(page, "shapes / heatmap").locator("pre")).to_contain_text("heatmap")
    # Markers only are drawn as markers, never joined into a line.
    dots = figure(page, "shapes / markers")
    expect(dots.locator("canvas")).to_have_count(1)
    expect(dots).to_have_attribute("data-modes", "markers")
    # The x axis is named by the figure's layout, not "iteration".
    curve = figure(page, "shapes / titled")
    expect(curve.locator("canvas")).to_have_count(1)
    expect(curve).to_have_attribute("data-modes", "lines")
    expect(curve.locator(".u-legend")).to_contain_text("recall")
    expect(page.locator("#plots .u-legend", has_text="iteration")).to_have_count(0)
    shot(page, "plot-shapes")


def test_plots_show_the_newest_plot_of_each_metric_and_variant(site: Site, page: Page, shot: Any) -> None:
    line = {"data": [{"x": [0, 1], "y": [0, 1]}]}
    reports = [("loss", "curve", i, line) for i in range(300)] + [("roc", "val", i, line) for i in (0, 5)]
    page.goto(task_with_plots(site, "many plots", reports))
    charts = page.locator("#plots figure.chart")
    expect(charts).to_have_count(2)
    expect(charts.nth(0)).to_contain_text("loss / curve (iteration 299, the newest of 300 iterations)")
    expect(charts.nth(1)).to_contain_text("roc / val (iteration 5, the newest of 2 iterations)")
    shot(page, "plots-newest")


def test_a_plot_that_is_no_figure_is_shown_as_it_is_and_the_others_still_drawn(
    site: Site, page: Page, shot: Any
) -> None:
    """A plot_str of `null` made the script fail, and the tab showed nothing at all; text that is not JSON
    was shown as {}; a reversed y axis was drawn the normal way up."""
    client = site.client()
    project = client.project_id(PROJECT, create=False)
    task = client.call("tasks.create", {"name": "odd plots", "type": "training", "project": project})["id"]
    good = {"data": [{"type": "scatter", "mode": "lines", "x": [0, 1, 2], "y": [1, 4, 9]}]}
    reversed_y = {**good, "layout": {"yaxis": {"autorange": "reversed"}}}
    texts = [("a", "null", "null"), ("b", "good", json.dumps(good)), ("c", "not json", "not json{"),
             ("d", "list", "[1, 2]"), ("e", "reversed", json.dumps(reversed_y))]  # fmt: skip
    events = [
        {"task": task, "type": "plot", "metric": metric, "variant": variant, "iter": 1,
         "timestamp": 1_700_000_000_000 + i, "plot_str": text}
        for i, (metric, variant, text) in enumerate(texts)
    ]  # fmt: skip
    client.call("events.add_batch", {"requests": events})
    page.goto(f"{site.url}/projects/{project}/tasks/{task}/plots")
    expect(page.locator("#plots figure.chart")).to_have_count(5)
    expect(figure(page, "b / good").locator("canvas")).to_have_count(1)
    for title, shown in (("a / null", "null"), ("c / not json", "not json{"), ("d / list", "2"),
                         ("e / reversed", "reversed")):  # fmt: skip
        expect(figure(page, title).locator("pre")).to_contain_text(shown)
        expect(figure(page, title).locator("canvas")).to_have_count(0)
    shot(page, "plots-odd")
