"""A print-ready PDF plate for a one-code QR: what a shop puts on its counter.

A6 portrait (105 × 148 mm): the merchant's (and store's) name, "扫码付款 / Scan
to pay", the QR drawn as vector squares (sharp at any printer's resolution,
error correction level M with the quiet zone the standard asks for), the fixed
amount when the code has one, the apps that pay through it, and the code and
its URL in small print. Chinese text uses reportlab's built-in CID font
(STSong-Light), so no font file is needed on the machine that makes it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import segno
from reportlab.lib.pagesizes import A6
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen import canvas

CJK_FONT = "STSong-Light"
QR_SIZE = 72 * mm
QUIET_ZONE = 4   # modules of white around the symbol (ISO/IEC 18004)


def yuan_text(fen: int) -> str:
    """12.34 from 1234 fen, by integer arithmetic."""
    return f"{fen // 100}.{fen % 100:02d}"


def render_plate(out: Path, *, url: str, merchant_name: str, code: str, store_id: str | None = None,
                 amount: int | None = None, apps: Iterable[str] = ()) -> int:
    """Write the plate to ``out``; returns the number of QR modules drawn dark (for checking)."""
    if CJK_FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(CJK_FONT))
    width, height = A6
    c = canvas.Canvas(str(out), pagesize=A6)
    c.setTitle(f"{merchant_name} / {code}")
    c.setAuthor("paycore")
    c.setSubject(url)

    title = merchant_name + (f" / {store_id}" if store_id else "")   # the CID font has no middle dot
    c.setFont(CJK_FONT, 15)
    c.drawCentredString(width / 2, height - 16 * mm, title)
    c.setFont(CJK_FONT, 11)
    c.drawCentredString(width / 2, height - 24 * mm, "扫码付款")
    c.setFont("Helvetica", 9)
    c.drawCentredString(width / 2, height - 29 * mm, "Scan to pay")

    qr = segno.make(url, error="m", micro=False)
    matrix = [list(row) for row in qr.matrix]
    n = len(matrix) + 2 * QUIET_ZONE
    module = QR_SIZE / n
    x0 = (width - QR_SIZE) / 2
    y_top = height - 33 * mm
    c.setFillColorRGB(0, 0, 0)
    dark = 0
    for r, row in enumerate(matrix):
        for col, bit in enumerate(row):
            if bit:
                dark += 1
                c.rect(x0 + (col + QUIET_ZONE) * module, y_top - (r + QUIET_ZONE + 1) * module, module, module,
                       stroke=0, fill=1)
    y = y_top - QR_SIZE - 7 * mm
    if amount is not None:
        c.setFont("Helvetica-Bold", 16)
        c.drawCentredString(width / 2, y, f"CNY {yuan_text(amount)}")
        y -= 7 * mm
    names = [a for a in apps if a]
    if names:
        c.setFont(CJK_FONT, 9)
        c.drawCentredString(width / 2, y, "、".join(names))
        y -= 5 * mm
    c.setFont("Helvetica", 6.5)
    c.drawCentredString(width / 2, 8 * mm, f"{code}   {url}")
    c.showPage()
    c.save()
    return dark
