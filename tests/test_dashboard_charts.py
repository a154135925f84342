"""The dashboard's server-side SVG charts: valid SVG named and described in words (every figure
drawn is in the description), bars in proportion, labels escaped, an empty chart says so."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from integration.web.dashboard import charts

SVG = "{http://www.w3.org/2000/svg}"


def parse(markup: str) -> ET.Element:
    return ET.fromstring(str(markup))


def bar_widths(svg: ET.Element) -> list[float]:
    return [float(rect.get("width")) for rect in svg.iter(f"{SVG}rect")]


def test_horizontal_bars_are_named_described_and_in_proportion():
    svg = parse(charts.horizontal_bars("acceptance", "Acceptance by band", [
        charts.Bar("hot", 0.8, "80.0 %"), charts.Bar("warm", 0.4, "40.0 %"), charts.Bar("cold", 0, "0.0 %")],
        maximum=1.0))
    assert svg.get("role") == "img" and svg.get("aria-labelledby") == "acceptance-title acceptance-desc"
    assert svg.find(f"{SVG}title").text == "Acceptance by band"
    assert svg.find(f"{SVG}desc").text == "hot: 80.0 %; warm: 40.0 %; cold: 0.0 %"
    hot, warm, cold = bar_widths(svg)
    assert hot == pytest.approx(2 * warm) and cold == 0
    assert [text.text for text in svg.iter(f"{SVG}text")][:2] == ["hot", "80.0 %"]


def test_the_funnel_centres_each_stage_on_the_widest():
    svg = parse(charts.funnel("f", "Funnel", [charts.Bar("new", 200, "200"), charts.Bar("mql", 50, "50"),
                                              charts.Bar("won", 0, "0")]))
    rects = list(svg.iter(f"{SVG}rect"))
    widths = [float(r.get("width")) for r in rects]
    centres = [float(r.get("x")) + w / 2 for r, w in zip(rects, widths, strict=True)]
    assert widths[0] == pytest.approx(4 * widths[1]) and widths[2] == 0
    assert centres[0] == pytest.approx(centres[1], abs=0.1)  # drawn to a tenth of a pixel


def test_time_in_stage_draws_the_median_bar_and_the_p90_mark_on_one_scale():
    svg = parse(charts.time_in_stage("t", "Time", [charts.SpanBar("mql → accepted", 2.0, 8.0),
                                                   charts.SpanBar("accepted → sql", None, None)]))
    assert svg.find(f"{SVG}desc").text == "mql → accepted: median 2.0 d, p90 8.0 d"  # the empty row is left out
    median, p90 = list(svg.iter(f"{SVG}rect"))[:2]
    start = float(median.get("x"))
    assert float(p90.get("x")) + 2 - start == pytest.approx(4 * float(median.get("width")))


def test_labels_are_escaped():
    markup = str(charts.horizontal_bars("x", "<b>title</b>", [charts.Bar("<script>alert(1)</script>", 1, "1")]))
    assert "<script>" not in markup and "&lt;script&gt;" in markup
    assert parse(markup).find(f"{SVG}title").text == "<b>title</b>"


@pytest.mark.parametrize("draw", [lambda: charts.horizontal_bars("e", "Empty", []),
                                  lambda: charts.funnel("e", "Empty", [charts.Bar("new", 0, "0")]),
                                  lambda: charts.time_in_stage("e", "Empty", [charts.SpanBar("a", None, None)])])
def test_an_empty_chart_says_so(draw):
    svg = parse(draw())
    assert svg.find(f"{SVG}desc").text == "No data for these filters."
    assert not list(svg.iter(f"{SVG}rect"))


def test_long_labels_get_room_and_an_ellipsis_the_description_keeps_them_whole():
    long = "campaign: " + "spring-webinar-series-" * 3
    svg = parse(charts.horizontal_bars("l", "Touched", [charts.Bar(long, 5, "5"), charts.Bar("form: x", 2, "2")]))
    label = next(svg.iter(f"{SVG}text")).text
    assert label.endswith("…") and len(label) == charts.LONGEST_LABEL and long.startswith(label[:-1])
    assert svg.find(f"{SVG}desc").text == f"{long}: 5; form: x: 2"
    assert float(next(svg.iter(f"{SVG}rect")).get("x")) > 300  # the bars start after the widest label
