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


def test_place_words_are_where_words_only():
    """kb.geo.place_words is the one set the gate's topic check and slots' scheme anchoring both use."""
    from studyabroadgpt.kb.geo import place_words
    from studyabroadgpt.kb.slots import anchored_subject
    from studyabroadgpt.serve.checks import _place_words

    words = place_words()
    # names, codes, cities, demonyms and the UAE's short names all only say where
    assert {"australia", "zealand", "gb", "melbourne", "dubai", "uae", "australian", "kiwi"} <= words
    assert not {"visa", "scholarship", "work", "hours", "university"} & words
    assert _place_words() == words | {"university", "universities"}

    class Entity:
        def __init__(self, name):
            self.name, self.aliases = name, []

    class Fact:
        def __init__(self, name, topic):
            self.entities, self.topic = [Entity(name)], topic

    facts = [Fact("Chinese student visa", "student_visa")]
    # a scheme name that is only a place word ("Chinese" student visa) anchors nothing; a real scheme name does
    assert anchored_subject("Chinese universities need 12 years of school.", facts) is None
    assert anchored_subject("The Chevening award pays tuition.", [Fact("Chevening Scholarship", "scholarships")]) \
        == "scholarship"
