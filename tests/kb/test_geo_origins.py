"""Origin vs destination: a destination's own route named after it ("a UK Student visa") is the destination."""
import pytest

from studyabroadgpt.kb.geo import detect_destinations


@pytest.mark.parametrize("text,expected", [
    # the CI failure: with "Student" read as an origin cue this named no destination at all
    ("How many hours can I work per week on a UK Student visa during my master's?", ["GB"]),
    ("Can I stay on the UK Graduate route after my degree?", ["GB"]),
    ("What are the Australian student visa rules for work?", ["AU"]),
    # real origins stay origins
    ("Canadian students: do we need a visa for Ireland?", ["IE"]),
    ("As a Ghanaian, do I need a visa for Ireland?", ["IE"]),
    ("Indian students in Germany need an APS certificate?", ["DE"]),
    ("Do UK applicants need a study permit for Canada?", ["CA"]),
])
def test_routes_named_after_a_country_are_destinations(text, expected):
    assert detect_destinations(text, exclude_origins=True) == expected
