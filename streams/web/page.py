"""The one page, from ``static/index.html``: served live, or whole in one file.

The template has three markers. Live, they become links to the package's own static
files and a config naming the view API; in a report, the same files inline and every
scope's view as gzipped JSON, so the file opens offline and asks nothing of any network.
"""

from __future__ import annotations

import gzip
import json
from base64 import b64encode
from html import escape
from pathlib import Path
from typing import Any

STATIC = Path(__file__).parent / "static"
STYLES = ("vendor/uPlot.min.css", "style.css")
SCRIPTS = ("vendor/uPlot.iife.min.js", "app.js")
MARKERS = ("<!--FLOWGAUGE:STYLES-->", "<!--FLOWGAUGE:SCRIPTS-->", "<!--FLOWGAUGE:CONFIG-->")


def live_page(refresh_seconds: float) -> str:
    styles = "\n".join(f'<link rel="stylesheet" href="static/{escape(name)}">' for name in STYLES)
    scripts = "\n".join(f'<script src="static/{escape(name)}"></script>' for name in SCRIPTS)
    config = {"mode": "live", "api": "api/view", "refresh_seconds": refresh_seconds}
    return _filled(styles, scripts, config)


def report_page(views: dict[str, dict[str, Any]]) -> str:
    styles = "\n".join(f"<style>\n{_asset(name)}\n</style>" for name in STYLES)
    scripts = "\n".join(f"<script>\n{_inlinable(name)}\n</script>" for name in SCRIPTS)
    # Gzipped (mtime 0: the same views make the same file), a fifth of the size of the JSON.
    packed = gzip.compress(_json(views).encode(), mtime=0)
    config = {"mode": "static", "encoding": "gzip+base64", "views": b64encode(packed).decode()}
    return _filled(styles, scripts, config)


def _filled(styles: str, scripts: str, config: dict[str, Any]) -> str:
    # "<" as its JSON escape: no text in a record can end the element or open a comment.
    data = _json(config).replace("<", "\\u003c")
    tag = f'<script id="flowgauge-config" type="application/json">{data}</script>'
    page = _asset("index.html")
    for marker, text in zip(MARKERS, (styles, scripts, tag), strict=True):
        if page.count(marker) != 1:
            raise ValueError(f"static/index.html must hold {marker} once")
        page = page.replace(marker, text)
    return page


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def _asset(name: str) -> str:
    return (STATIC / name).read_text(encoding="utf-8")


def _inlinable(name: str) -> str:
    """A script's text, checked that it cannot end the element it is inlined in."""
    text = _asset(name)
    if "</script" in text.lower() or "<!--" in text:
        raise ValueError(f"static/{name} cannot be inlined: it holds </script or <!--")
    return text
