import pytest

from repro import chapters
from repro.params import COMMON, Param, ParameterError, parse_parameters_cell, validate


def test_defaults_are_filled_and_typed():
    out = validate("x", COMMON, {"scale": "smoke", "seed": "3"})
    assert out == {"scale": "smoke", "device": "auto", "seed": 3}


@pytest.mark.parametrize("values, fragment", [
    ({"scael": "smoke"}, "has no parameter 'scael'; it accepts: scale, device, seed"),
    ({"scale": "huge"}, "it accepts one of 'smoke', 'default', 'full'"),
    ({"device": "tpu"}, "it accepts one of 'auto', 'cpu', 'cuda'"),
    ({"seed": "one"}, "it accepts int >= 0"),
    ({"seed": -1}, "it accepts int >= 0"),
    ({"seed": 1.5}, "(float); it accepts int"),
    ({"seed": True}, "(bool); it accepts int"),
])
def test_bad_parameters_fail_in_one_line_listing_what_is_accepted(values, fragment):
    with pytest.raises(ParameterError) as err:
        validate("demo", COMMON, values)
    message = str(err.value)
    assert fragment in message and "\n" not in message and message.startswith("chapter 'demo'")


def test_float_parameter_accepts_int():
    spec = (Param("rate", float, 0.1, minimum=0.0),)
    assert validate("x", spec, {"rate": 1}) == {"rate": 1.0}


def test_parse_parameters_cell_reads_typed_literals_only():
    assert parse_parameters_cell('scale = "smoke"\nseed = 2\nrate: float = 0.5') == {
        "scale": "smoke", "seed": 2, "rate": 0.5}
    with pytest.raises(ValueError):
        parse_parameters_cell("import os\nseed = 1")


def test_registry_lists_the_ten_chapters_in_handbook_order():
    assert [c.slug for c in chapters.CHAPTERS] == [
        "ademvl", "jioc", "torchgt", "acme", "tdpor", "partseg", "wsol", "mas", "fha_kitchens", "sylvie"]
    assert chapters.get("10").slug == chapters.get("10_sylvie").slug == "sylvie"
    with pytest.raises(chapters.UnknownChapterError, match="known chapters"):
        chapters.get("nope")
