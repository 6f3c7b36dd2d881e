"""Run reports: files, non-empty plots, self-contained HTML, numbers equal to the JSON's."""

import base64
import html.parser
import io
import json

import numpy as np
import pytest
from limemu.cli import main
from limemu.model import physics
from limemu.report import fmt
from matplotlib.image import imread

PLOTS = ("progress", "energy", "schedules", "map")


class Page(html.parser.HTMLParser):
    """Collects the keyed table cells, the images and every external reference of a page."""

    def __init__(self):
        super().__init__()
        self.cells, self.images, self.external, self.tags = {}, {}, [], set()
        self._key = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.add(tag)
        for name in ("src", "href"):
            if name in attrs and not attrs[name].startswith("data:"):
                self.external.append(attrs[name])
        if tag == "img":
            self.images[attrs["data-file"]] = attrs["src"]
        if tag == "td" and "data-key" in attrs:
            self._key = attrs["data-key"]

    def handle_data(self, data):
        if self._key is not None:
            self.cells[self._key] = data
            self._key = None


def png_pixels(data):
    image = imread(io.BytesIO(data), format="png")
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 300
    return image


@pytest.fixture(scope="module")
def traced_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    out = folder / "run.json"
    assert main(["run", "--workload", "maxcut", "--cells", "14", "--steps", "600", "--seed",
                 "2", "--barrier", "linear:2,9", "--trace-every", "20", "--json", str(out),
                 "--quiet"]) == 0
    assert main(["report", str(out)]) == 0
    return out


def test_report_files_exist_and_plots_are_not_empty(traced_run):
    folder = traced_run.parent
    page_path = folder / "run.report.html"
    assert page_path.is_file()
    page = Page()
    page.feed(page_path.read_text())
    assert sorted(page.images) == sorted(f"{name}.png" for name in PLOTS)
    for name in PLOTS:
        data = (folder / "run.report" / f"{name}.png").read_bytes()
        # the page embeds exactly the PNG written beside it
        assert page.images[f"{name}.png"] == "data:image/png;base64," + base64.b64encode(
            data).decode()
        pixels = png_pixels(data)[..., :3]
        drawn = np.any(pixels < 0.9, axis=2).mean()         # share of non-white pixels
        assert 0.02 < drawn < 0.9, (name, drawn)
        assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20, name   # lines, colours


def test_report_is_self_contained(traced_run):
    page = Page()
    page.feed((traced_run.parent / "run.report.html").read_text())
    assert page.external == []
    assert not page.tags & {"script", "link", "iframe", "object"}


def test_numbers_in_the_report_equal_the_json(traced_run):
    result = json.loads(traced_run.read_text())
    page = Page()
    page.feed((traced_run.parent / "run.report.html").read_text())
    cells = page.cells
    energy = result["energy"]
    for key in ("heat_net_u", "heat_abs_u", "barrier_work_u", "anneal_work_u",
                "landauer_bound_u", "speed_bound_u", "heat_abs_J", "barrier_work_J",
                "landauer_bound_J", "speed_bound_J", "ratio_to_landauer",
                "ratio_to_speed_bound", "coupling_error_u", "clausius_bound_u",
                "ratio_to_clausius"):
        assert cells[key] == fmt(energy[key]), key
    assert cells["heat_net_J"] == fmt(energy["heat_J"])
    for name, value in result["counters"].items():
        assert cells[f"counters.{name}"] == str(value), name
    assert cells["cut"] == str(result["cut"]) and cells["loss"] == fmt(result["loss"])
    # the cost models, from the same numbers
    u_J = physics.landauer_unit_J(300.0)
    assert cells["model_ideal_lim_u"] == fmt(energy["heat_net_u"])
    assert cells["model_lim_consolidation_u"] == fmt(energy["heat_net_u"] +
                                                     energy["barrier_work_u"])
    assert float(cells["model_lim_consolidation_u"]) > float(cells["model_ideal_lim_u"])
    conventional = result["counters"]["evaluations"] * 1e-11
    assert cells["model_conventional_J"] == fmt(conventional)
    assert cells["model_conventional_u"] == fmt(conventional / u_J)
    # time to solution: the exact optimum of this 14-node graph is reached in the trace
    assert cells["solution.reference"] == fmt(float(result["reference"]["optimum"]))
    assert int(cells["solution.time_to_solution_steps"]) % 20 == 0


def test_report_temperature_and_target_options(traced_run, tmp_path):
    out = tmp_path / "cold.html"
    assert main(["report", str(traced_run), "--out", str(out), "--temperature", "77",
                 "--cut-fraction", "0.5", "--j-per-op", "2e-12"]) == 0
    page = Page()
    page.feed(out.read_text())
    result = json.loads(traced_run.read_text())
    u_J = physics.landauer_unit_J(77.0)
    assert page.cells["heat_abs_J"] == fmt(result["energy"]["heat_abs_u"] * u_J)
    assert page.cells["model_conventional_J"] == fmt(result["counters"]["evaluations"] * 2e-12)
    assert page.cells["solution.cut_fraction"] == fmt(0.5)
    assert (tmp_path / "cold" / "map.png").is_file()


def test_report_of_an_untraced_run(tmp_path, capsys):
    out = tmp_path / "plain.json"
    assert main(["run", "--workload", "twoparam", "--steps", "500", "--json", str(out),
                 "--quiet"]) == 0
    assert main(["report", str(out)]) == 0
    text = (tmp_path / "plain.report.html").read_text()
    page = Page()
    page.feed(text)
    assert sorted(page.images) == ["map.png", "schedules.png"]
    assert "--trace-every" in text
    png_pixels((tmp_path / "plain.report" / "map.png").read_bytes())


def test_report_of_something_else_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"a": 1}')
    assert main(["report", str(bad)]) == 2
    assert "not a limemu run result" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing.json")]) == 2
