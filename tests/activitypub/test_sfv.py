"""The structured-field subset: parse and serialise round trips, and refusals."""

from __future__ import annotations

from decimal import Decimal

import pytest

from activitypub.sfv import (
    InnerList,
    Item,
    SfvError,
    Token,
    parse_dictionary,
    parse_item,
    serialize_dictionary,
)


def test_dictionary_round_trip() -> None:
    text = (
        'sig1=("@method" "@query-param";name="Pet");created=1;keyid="k\\"q";alg=tok, '
        "flag, b=:AQID:, n=-5, d=1.5, t=?0"
    )
    parsed = parse_dictionary(text)
    sig1 = parsed["sig1"]
    assert isinstance(sig1, InnerList)
    assert sig1.items == [Item("@method"), Item("@query-param", {"name": "Pet"})]
    assert sig1.params == {"created": 1, "keyid": 'k"q', "alg": Token("tok")}
    assert parsed["flag"] == Item(True)
    assert parsed["b"] == Item(b"\x01\x02\x03")
    assert parsed["n"] == Item(-5) and parsed["d"] == Item(Decimal("1.5"))
    assert parsed["t"] == Item(False)
    assert serialize_dictionary(parsed) == text
    assert parse_item('"x";a=1') == Item("x", {"a": 1})


@pytest.mark.parametrize(
    "text",
    [
        "A=1",
        "a=1,",
        "a=1 b=2",
        'a="unterminated',
        "a=:AQ",
        "a=:A!Q=:",
        "a=(1 2",
        "a=(1;x=)",
        "a=?2",
        "a=1234567890123456",
        'a="\\n"',
        "a=1, a=2",
        "a=1;p;p",
        "a=é",
    ],
)
def test_refusals(text: str) -> None:
    with pytest.raises(SfvError):
        parse_dictionary(text)
