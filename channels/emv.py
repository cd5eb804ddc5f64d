"""EMV chip data (BER-TLV, as field 55 / ICTransData carries it): parsing and
building, shared by the adapters that send it and the API's validation of
``nfc.emv_data``."""
from __future__ import annotations

#: the application cryptogram (ARQC) a tap must carry
CRYPTOGRAM_TAG = "9F26"


def tlv_parse(hex_data: str) -> list[tuple[str, bytes]]:
    """BER-TLV (EMV) hex → [(TAG, value)]; constructed tags are kept whole."""
    data = bytes.fromhex(hex_data)
    items: list[tuple[str, bytes]] = []
    i = 0
    while i < len(data):
        start = i
        i += 1
        if data[start] & 0x1F == 0x1F:               # multi-byte tag
            while i < len(data) and data[i] & 0x80:
                i += 1
            i += 1
        if i >= len(data):
            raise ValueError("truncated TLV")
        tag = data[start:i].hex().upper()
        length = data[i]
        i += 1
        if length & 0x80:
            n = length & 0x7F
            if n == 0 or n > 2 or i + n > len(data):
                raise ValueError("bad TLV length")
            length = int.from_bytes(data[i:i + n], "big")
            i += n
        if i + length > len(data):
            raise ValueError("truncated TLV value")
        items.append((tag, data[i:i + length]))
        i += length
    return items


def tlv_build(items: list[tuple[str, bytes]]) -> str:
    out = bytearray()
    for tag, value in items:
        out += bytes.fromhex(tag)
        n = len(value)
        out += bytes([n]) if n < 0x80 else (bytes([0x81, n]) if n < 0x100 else bytes([0x82]) + n.to_bytes(2, "big"))
        out += value
    return out.hex().upper()


def is_luhn(digits: str) -> bool:
    """The ISO/IEC 7812 check digit every PAN and network token (DPAN) carries."""
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0
