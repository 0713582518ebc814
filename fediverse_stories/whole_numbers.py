"""Whole numbers typed by people and peers (page numbers, ids): read without surprises.

`str.isdigit` admits "²" and "٣", which `int` refuses or reads unexpectedly, and `int` refuses
strings of more than 4,300 digits; a database key refuses anything past 64 bits. One rule here.
"""

from __future__ import annotations

import re

_DIGITS = re.compile(r"[0-9]{1,18}")
LARGEST_KEY = 2**62  # any id a database key of ours can hold, with room to spare


def whole_number(text: str, *, most: int = LARGEST_KEY) -> int | None:
    """The number `text` writes in ASCII digits, if it is from 1 to `most`; else None."""
    if not _DIGITS.fullmatch(text):
        return None
    number = int(text)
    return number if 1 <= number <= most else None
