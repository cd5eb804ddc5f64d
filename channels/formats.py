"""Document formats several providers share: CSV text and plain XML.

XML is parsed with the standard library after refusing any DTD or entity
declaration outright (no entity expansion, no external references).
"""
from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from typing import Any, Iterable


def csv_text(header: Iterable[str], rows: Iterable[Iterable[Any]], *, lineterminator: str = "\n") -> str:
    """A CSV document: the header line, then one line per row."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator=lineterminator)
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def xml_root(xml: str | bytes, root_tag: str) -> ET.Element:
    """The root element of a document that must be ``<root_tag>``; ValueError on
    anything else (not XML, another root, a DTD or entity declaration)."""
    text = xml.decode("utf-8") if isinstance(xml, bytes) else xml
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise ValueError("DTDs are not accepted")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise ValueError(f"not XML: {e}") from None
    if root.tag != root_tag:
        raise ValueError(f"root element is <{root.tag}>, not <{root_tag}>")
    return root
