"""``leadloop rules compare --html FILE``: the backtest as one self-contained HTML file.

Charts are inline SVG drawn here from the report's numbers (no script, no CDN, no fonts to
fetch), so the file opens anywhere and can be mailed as it is.
"""

from __future__ import annotations

from html import escape
from typing import Any

from integration.lab.backtest import BANDS, TARGETS

LIVE_COLOUR, CANDIDATE_COLOUR = "#7a8591", "#2f6fde"
STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:60em;color:#1d2329}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:2em}
table{border-collapse:collapse}td,th{padding:.25em .6em;border-bottom:1px solid #dde;text-align:right}
th:first-child,td:first-child{text-align:left}.key span{display:inline-block;width:1em;height:1em;margin:0 .3em}
"""


def render_html(data: dict[str, Any]) -> str:
    """The whole page for the report's JSON data (``Backtest.to_dict()``)."""
    live, candidate = data["live"], data["candidate"]
    timing = data["won_timing"]
    parts = [f"<!doctype html><html lang=en><meta charset=utf-8><title>leadloop rules compare</title>"
             f"<style>{STYLE}</style><body>",
             f"<h1>Rules {escape(live['rules'])} (live) vs {escape(candidate['rules'])} (candidate)</h1>",
             f"<p>{data['leads']} leads replayed event by event up to {escape(data['window']['until'])}. "
             f"Outcomes known: {data['outcomes']['won']} won, {data['outcomes']['accepted']} accepted, "
             f"{data['outcomes']['lost']} lost, {data['outcomes']['rejected']} rejected.</p>",
             "<p class=key><span style='background:" + LIVE_COLOUR + "'></span>live"
             "<span style='background:" + CANDIDATE_COLOUR + "'></span>candidate</p>",
             "<h2>MQLs and the won leads they hand off</h2>",
             _bars([("MQLs", live["mqls"], candidate["mqls"]),
                    ("won, handed off", live["handed_off"]["won"], candidate["handed_off"]["won"]),
                    ("accepted, handed off", live["handed_off"]["accepted"], candidate["handed_off"]["accepted"])]),
             f"<p>MQLs per won deal: live {_text(live['mqls_per_won_deal'])}, "
             f"candidate {_text(candidate['mqls_per_won_deal'])}. "]
    if timing["both"]:
        parts.append(f"Of the {timing['both']} won leads both hand off, the candidate is "
                     f"{timing['earlier']} times earlier and {timing['later']} times later; "
                     f"median {_text(timing['median_days_earlier'])} days earlier.")
    parts.append("</p>")
    for target in TARGETS:
        parts.append(f"<h2>Precision per band against {target}</h2>")
        parts.append(_bars([(band, _share(live["by_band"][target][band]["precision"]),
                             _share(candidate["by_band"][target][band]["precision"])) for band in (*BANDS, "mql")],
                           unit="%"))
        parts.append(_rates_table(live["by_band"][target], candidate["by_band"][target]))
    parts.append("<h2>Bands at the end of the window</h2><p>Rows: the band under the live rules; columns: "
                 "under the candidate.</p>" + _matrix(data["band_matrix"]))
    for title, entries in (("Newly MQL under the candidate", data["added"]),
                           ("No longer MQL under the candidate", data["removed"])):
        if entries:
            rows = "".join(f"<tr><td>{escape(e['lead'])}</td><td>{escape(e['outcome'] or '')}</td>"
                           f"<td>{escape(e['at'][:16])}</td><td style='text-align:left'>"
                           f"{escape('; '.join(e['reasons']))}</td></tr>" for e in entries)
            parts.append(f"<h2>{title} ({len(entries)})</h2><table><tr><th>lead</th><th>outcome</th>"
                         f"<th>MQL at</th><th>reasons</th></tr>{rows}</table>")
    parts.append("</body></html>")
    return "".join(parts)


def _share(value: float | None) -> float:
    return 0.0 if value is None else round(value * 100, 1)


def _text(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _bars(rows: list[tuple[str, float, float]], unit: str = "") -> str:
    """Grouped horizontal bars: one pair (live, candidate) per row."""
    top = max([max(a, b) for _, a, b in rows] + [1])
    width, label, bar = 520, 150, 14
    height = len(rows) * (2 * bar + 12) + 4
    shapes = []
    for index, (name, old, new) in enumerate(rows):
        y = index * (2 * bar + 12)
        shapes.append(f"<text x=0 y={y + bar + 4} font-size=12>{escape(name)}</text>")
        for offset, value, colour in ((0, old, LIVE_COLOUR), (bar, new, CANDIDATE_COLOUR)):
            length = (width - label - 60) * value / top
            shapes.append(f"<rect x={label} y={y + offset} width={length:.1f} height={bar - 2} fill='{colour}'/>"
                          f"<text x={label + length + 4:.1f} y={y + offset + bar - 4} font-size=11>"
                          f"{value:g}{unit}</text>")
    return f"<svg width={width} height={height} role=img xmlns='http://www.w3.org/2000/svg'>{''.join(shapes)}</svg>"


def _matrix(matrix: dict[str, dict[str, int]]) -> str:
    """The band migration matrix as shaded cells (rows live, columns candidate)."""
    cell, left, head = 64, 70, 22
    top = max([n for row in matrix.values() for n in row.values()] + [1])
    shapes = [f"<text x={left + i * cell + 8} y=15 font-size=12>{band}</text>" for i, band in enumerate(BANDS)]
    for r, old in enumerate(BANDS):
        shapes.append(f"<text x=0 y={head + r * cell + cell // 2 + 4} font-size=12>live {old}</text>")
        for c, new in enumerate(BANDS):
            count = matrix[old][new]
            shade = 0.08 + 0.8 * count / top if count else 0.03
            shapes.append(f"<rect x={left + c * cell} y={head + r * cell} width={cell - 2} height={cell - 2} "
                          f"fill='{CANDIDATE_COLOUR}' fill-opacity={shade:.2f}/>"
                          f"<text x={left + c * cell + 8} y={head + r * cell + cell // 2 + 4} "
                          f"font-size=13>{count}</text>")
    size = left + len(BANDS) * cell
    return (f"<svg width={size} height={head + len(BANDS) * cell} role=img "
            f"xmlns='http://www.w3.org/2000/svg'>{''.join(shapes)}</svg>")


def _rates_table(old: dict[str, Any], new: dict[str, Any]) -> str:
    head = ("<table><tr><th>band</th><th>live leads</th><th>precision</th><th>recall</th><th>lift</th>"
            "<th>candidate leads</th><th>precision</th><th>recall</th><th>lift</th></tr>")
    rows = []
    for band in (*BANDS, "mql"):
        cells = [band.upper() if band == "mql" else band]
        for side in (old[band], new[band]):
            cells += [str(side["leads"]), _pct(side["precision"]), _pct(side["recall"]), _text(side["lift"])]
        rows.append("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>")
    return head + "".join(rows) + "</table>"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"
