"""Coverage: which destinations and institutions a question names, and which of them the KB does not cover."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from studyabroadgpt.cli import app
from studyabroadgpt.kb.coverage import coverage_table, detect_scope, find_institutions
from studyabroadgpt.kb.store import load_kb

INSTITUTION_FACT = """\
- id: ie.tuition.tcd
  destination: IE
  topic: tuition_costs
  institution: {name: Trinity College Dublin, aliases: [TCD, Trinity College, University of Dublin]}
  statement: Trinity College Dublin publishes its non-EU undergraduate and postgraduate fees on its fees pages.
  source_url: https://www.tcd.ie/academicregistry/fees-and-payments/
  source_title: Fees and Payments - Trinity College Dublin
  as_of: 2025-06-01
  review_after: 2026-06-01
"""


@pytest.fixture(scope="module")
def kb(fixture_kb_path, tmp_path_factory):
    d = tmp_path_factory.mktemp("kbcov")
    (d / "facts.yaml").write_text(fixture_kb_path.read_text())
    (d / "tcd.yaml").write_text(INSTITUTION_FACT)
    return load_kb(d)


@pytest.mark.parametrize("text,covered,uncovered", [
    ("How do I get admission to a university in Bangladesh?", [], ["Bangladesh"]),
    ("What are the requirements for studying in Uzbekistan?", [], ["Uzbekistan"]),
    ("Is Dhaka a good city for international students?", [], ["Dhaka (Bangladesh)"]),
    ("Studying in Italy or Spain, which is cheaper?", [], ["Italy", "Spain"]),  # schema destinations, no entries
    ("How much does it cost to live in Toronto?", ["CA"], []),
    ("Can I study in Turkey?", [], ["Turkey"]),
    ("my turkey sandwich went cold", [], []),
    ("How to write a strong SOP for an MBA", [], []),
    ("Tell us about yourself", [], []),
    ("Which is better for a masters, Sydney or Nairobi?", ["AU"], ["Nairobi (Kenya)"]),
    ("Can I study in São Paulo or Sao Paulo?", [], ["São Paulo (Brazil)"]),
])
def test_destinations(kb, text, covered, uncovered):
    scope = detect_scope(text, kb)
    assert scope.covered == covered and scope.uncovered_destinations == uncovered, scope.to_dict()


@pytest.mark.parametrize("text,covered,origins", [
    ("I am from Bangladesh, can I work in Canada while studying?", ["CA"], ["Bangladesh"]),
    ("I'm a Nigerian student and want to study in the UK", ["GB"], ["Nigeria"]),
    ("moving from India to Australia for a masters", ["AU"], ["India"]),
    ("Should I return to Nepal after my degree in the US?", ["US"], ["Nepal"]),
    ("I'm German, can I work in Canada?", ["CA"], ["Germany"]),
    # named as a country first, then as the student's nationality, next to a covered destination (served)
    ("Nigeria is in the Commonwealth, so as a Nigerian I can study in Ireland without a visa, can't I?", ["IE"],
     ["Nigeria"]),
    ("I'm from Trinidad, can I work in Canada?", ["CA"], ["Trinidad and Tobago"]),
])
def test_origins_are_not_uncovered_destinations(kb, text, covered, origins):
    scope = detect_scope(text, kb)
    assert scope.covered == covered and scope.origins == origins and scope.uncovered == [], scope.to_dict()
    assert not scope.out_of_scope


def test_demonym_university_is_a_destination(kb):
    scope = detect_scope("Is a Bangladeshi university degree recognised in Germany?", kb)
    assert scope.covered == ["DE"] and scope.uncovered_destinations == ["Bangladesh"] and not scope.out_of_scope


@pytest.mark.parametrize("text,names", [
    ("admission requirements for the University of Dhaka", ["University of Dhaka"]),
    ("is monash university good for engineering", ["Monash University"]),
    ("Can I get into MIT with a 3.5 GPA?", ["Massachusetts Institute of Technology"]),
    ("Harvard University or Stanford for a PhD?", ["Harvard University", "Stanford University"]),
    ("which university is best for computer science in Germany", []),
    ("a good university in Canada with low fees", []),
    ("Is a German university better than a Canadian college?", []),
])
def test_find_institutions(text, names):
    assert [n for _, n in find_institutions(text)] == names


def test_institutions_covered_and_not(kb):
    covered = detect_scope("What are the fees at Trinity College Dublin?", kb)
    assert covered.institutions == ["Trinity College Dublin"] and covered.uncovered == []
    alias = detect_scope("TCD fees for non-EU students", kb)
    assert alias.institutions == ["Trinity College Dublin"]
    dhaka = detect_scope("What GPA do I need for the University of Dhaka?", kb)
    assert dhaka.uncovered_institutions == ["University of Dhaka"] and dhaka.out_of_scope
    assert "admissions" in dhaka.where_to_check()[0] and "University of Dhaka" in dhaka.where_to_check()[0]
    assert dhaka.kb_destinations == ["AU", "CA", "DE", "GB", "IE", "US"]  # what the KB can answer instead
    uzb = detect_scope("student visa for Uzbekistan", kb)
    assert "embassy" in uzb.where_to_check()[0] and "Uzbekistan" in uzb.where_to_check()[0]


def test_coverage_table(kb):
    table = coverage_table(kb)
    assert set(table["destinations"]) == {"AU", "CA", "DE", "GB", "IE", "US"}
    assert table["destinations"]["IE"]["facts"] == 2 and "tuition_costs" in table["destinations"]["IE"]["topics"]
    assert table["institutions"] == ["Trinity College Dublin"]
    assert "FR" in table["not_covered"] and "GB" not in table["not_covered"]


def test_kb_coverage_cli(kb, tmp_path):
    runner = CliRunner(env={"COLUMNS": "200"})
    kb_dir = kb.paths[0].parent
    res = runner.invoke(app, ["kb", "coverage", "--kb", str(kb_dir), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["destinations"]["GB"]["facts"] == 7 and "Trinity College Dublin" in data["institutions"]
    res = runner.invoke(app, ["kb", "coverage", "--kb", str(kb_dir), "--question",
                              "Can I study at the University of Dhaka?"])
    assert res.exit_code == 0 and "University of Dhaka" in res.output and "no official information" in res.output


# Served (session 3 reading): "I'm from Lagos" gave a "Not covered" line; these are where the student lives or
# went to school, which names no destination they ask about.
@pytest.mark.parametrize("text,origins", [
    ("I live in Lagos and want to study in the UK.", ["Nigeria"]),
    ("I'm in Lagos right now, how do I apply for a UK student visa?", ["Nigeria"]),
    ("I am a student in Lagos, Nigeria. Can I work in Germany while studying?", ["Nigeria"]),
    ("I grew up in Karachi and want to do a master's in Australia.", ["Pakistan"]),
    ("I'm currently living in Nairobi. How long does a Canadian study permit take?", ["Kenya"]),
    ("My family lives in Accra, can they visit me in Ireland?", ["Ghana"]),
    ("I finished high school in Lahore. Can I apply to university in the Netherlands?", ["Pakistan"]),
])
def test_where_the_student_lives_is_an_origin(text, origins):
    scope = detect_scope(text)  # the shipped KB: these name covered destinations besides the city
    assert scope.uncovered == [] and scope.origins == origins, scope.to_dict()


def test_a_place_asked_about_stays_a_destination(kb):
    assert detect_scope("Can a student in Turkey work part time?", kb).uncovered_destinations == ["Turkey"]
    assert detect_scope("I want to study at the University of Lagos.", kb).uncovered_institutions == \
        ["University of Lagos"]


def test_the_students_own_institution_is_not_asked_about(kb):
    scope = detect_scope("I studied at the University of Lagos. Is my degree recognised in Germany?", kb)
    assert scope.uncovered == [] and scope.covered == ["DE"]


@pytest.mark.parametrize("text", [
    "I want to take a one-year college course in Canada. Do I need a study permit?",   # served: "One-year College"
    "I'm doing a three-year university degree in the UK, can I work?",
    "Is a 1-year college program in Ontario worth it?",                                # was "Year College"
    "I want to attend a sixth form college in England.",
    "Should I pick a foundation college or an international year in the UK?",
])
def test_course_descriptions_are_not_institutions(text):
    assert find_institutions(text) == []
