"""Guidance entries: the second entry kind, how files declare it, and what it shares with facts."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from studyabroadgpt.kb.schema import ANY, GUIDANCE_TOPICS, Fact, Guidance, KBError
from studyabroadgpt.kb.store import check_kb, load_kb

from .helpers import GOOD_FACT, write_kb_file

FIXTURES = Path(__file__).parent / "fixtures"
SHARED = ("id", "kind", "destination", "country", "topic", "statement", "source_url", "source_title", "as_of",
          "review_after", "policy_sensitive", "values", "entities")


def test_fixture_guidance_loads_as_guidance():
    kb = load_kb(FIXTURES / "guidance")
    assert kb.facts == [] and [g.id for g in kb.guidance] == ["any.personal-statement.structure",
                                                             "gb.accommodation.scams"]
    ps = kb.by_id["any.personal-statement.structure"]
    assert isinstance(ps, Guidance) and ps.kind == "guidance" and ps.destination == ANY
    assert ps.country == "any destination" and ps.values == [] and not ps.policy_sensitive
    assert str(ps.as_of) == "2025-06-01"  # from the file's defaults
    assert "admissions tutors" in ps.search_text() and "similarity checks" in ps.search_text()
    assert kb.destinations == ["GB"]  # 'any' is not a destination the KB covers


def test_facts_and_guidance_share_what_the_answer_path_reads(fixture_kb_path):
    kb = load_kb(FIXTURES)  # the whole fixtures directory: facts.yaml and guidance/advice.yaml
    assert len(kb.facts) == 22 and len(kb.guidance) == 2 and len(kb.entries) == 24
    fact, guide = kb.facts[0], kb.guidance[1]
    for entry in (fact, guide):
        for attr in SHARED:
            assert getattr(entry, attr) is not None, attr
        assert isinstance(entry.search_text(), str)
    assert {fact.kind, guide.kind} == {"fact", "guidance"}
    assert kb.guidance_for("GB") == kb.guidance  # GB's own entries and the destination-neutral ones
    assert kb.guidance_for("CA") == [kb.guidance[0]]


ENTRY = """\
- id: any.cv.format
  {kind}destination: any
  topic: cv_resume
  title: Formatting an academic CV
  statement: An academic CV lists education, research, publications and skills, most recent first, in two pages or so.
  steps: [List your degrees with dates and grades, most recent first.]
  source_url: https://www.ucas.com/undergraduate/applying-to-university/writing-your-personal-statement
  source_title: UCAS
  as_of: 2025-06-01
  review_after: 2026-06-01
"""


def test_kind_from_field_directory_or_list_key(tmp_path):
    # an explicit kind field wins anywhere
    assert load_kb(write_kb_file(tmp_path, "a/x.yaml", ENTRY.format(kind="kind: guidance\n  "))).guidance
    # a file in a directory named guidance
    assert load_kb(write_kb_file(tmp_path, "b/guidance/x.yaml", ENTRY.format(kind=""))).guidance
    # a 'guidance:' list
    body = textwrap.indent(ENTRY.format(kind=""), "  ")
    assert load_kb(write_kb_file(tmp_path, "c/x.yaml", "guidance:\n" + body)).guidance
    # elsewhere an entry without kind is a fact, and this one is not a valid fact: the error says why
    with pytest.raises(KBError, match=r"x.yaml:1 item 1 \(any.cv.format\): (destination|title|topic)"):
        load_kb(write_kb_file(tmp_path, "d/x.yaml", ENTRY.format(kind="")))
    with pytest.raises(KBError, match="unknown entry kind 'advice'"):
        load_kb(write_kb_file(tmp_path, "e/x.yaml", ENTRY.format(kind="kind: advice\n  ")))


@pytest.mark.parametrize("change,field,needle", [
    (("topic: cv_resume", "topic: gossip"), "topic", "unknown guidance topic"),
    (("destination: any", "destination: XX"), "destination", "unknown destination"),
    (("  steps: [List your degrees with dates and grades, most recent first.]\n", ""), "<entry>",
     "at least one of steps or watch_out"),
    (("  title: Formatting an academic CV\n", "  title: Formatting an academic CV\n  audience: [retirees]\n"),
     "audience", "unknown audience"),
    (("  title: Formatting an academic CV\n", "  title: Formatting an academic CV\n  verifed: yes\n"),
     "verifed", "unknown field"),
    (("https://", "http://"), "source_url", "https"),
])
def test_guidance_schema_errors(tmp_path, change, field, needle):
    path = write_kb_file(tmp_path, "guidance/x.yaml", ENTRY.format(kind="").replace(*change))
    _, issues = check_kb(path)
    assert any(i.field == field and needle in i.message and i.line == 1 for i in issues), [str(i) for i in issues]


def test_verification_record(tmp_path):
    verified = ENTRY.format(kind="").replace(
        "  as_of: 2025-06-01\n",
        "  as_of: 2025-06-01\n  verification: {status: verified, checked_on: 2025-07-01, method: stored_copy, "
        "excerpt: 'Your CV should list your education first'}\n")
    kb = load_kb(write_kb_file(tmp_path, "guidance/v.yaml", verified))
    assert kb.guidance[0].verification.method == "stored_copy" and kb.guidance[0].is_verified
    _, issues = check_kb(write_kb_file(tmp_path, "guidance/w.yaml", verified.replace("stored_copy", "guessed")))
    assert any(i.field == "verification.method" for i in issues)
    _, issues = check_kb(write_kb_file(tmp_path, "guidance/f.yaml", verified.replace("2025-07-01", "2099-01-01")))
    assert any(i.field == "verification.checked_on" and "future" in i.message for i in issues)
    no_excerpt = verified.replace(", excerpt: 'Your CV should list your education first'", "")
    _, issues = check_kb(write_kb_file(tmp_path, "guidance/e.yaml", no_excerpt))
    assert any(i.field == "verification" and "excerpt" in i.message for i in issues)
    unverified = no_excerpt.replace("status: verified", "status: unverified, note: no stored copy found")
    kb = load_kb(write_kb_file(tmp_path, "guidance/u.yaml", unverified))
    assert kb.guidance[0].verification is not None and not kb.guidance[0].is_verified
    _, issues = check_kb(write_kb_file(tmp_path, "guidance/m.yaml", unverified.replace("unverified", "mismatch")))
    assert [i.field for i in issues] == ["verification.status"]


def test_verified_excerpt_must_hold_the_figures(tmp_path):
    fact = GOOD_FACT + '  verification: {status: verified, checked_on: 2025-06-02, excerpt: "%s"}\n'
    good_excerpt = fact % "you can work up to 20 hours per week during term time"
    _, good = check_kb(write_kb_file(tmp_path, "g.yaml", good_excerpt))
    assert good == []
    _, bad = check_kb(write_kb_file(tmp_path, "b.yaml", fact % "you can work part-time during term time"))
    assert [(i.field, i.severity) for i in bad] == [("verification.excerpt", "warning")]


def test_guidance_topics_are_many_and_distinct_from_fact_topics():
    from studyabroadgpt.kb.schema import TOPICS

    assert len(GUIDANCE_TOPICS) >= 30 and not set(GUIDANCE_TOPICS) & set(TOPICS)
    assert Fact.model_fields["kind"].default == "fact" and Guidance.model_fields["kind"].default == "guidance"


# Hosts of the official and institutional pages guidance may cite: government portals, immigration and tax
# authorities, universities, test makers, recognition bodies. A new host must be added here on purpose, after a
# person checked that the page exists and is official — this is what keeps invented URLs out.
OFFICIAL_HOSTS = {
    "www.gov.uk", "educationusa.state.gov", "studyinthestates.dhs.gov", "www.canada.ca", "www.studyaustralia.gov.au",
    "www.ucas.com", "www.study-in-germany.de", "www.ox.ac.uk", "www.merton.ox.ac.uk", "www.make-it-in-germany.com",
    "www.educanada.ca", "www.ukcisa.org.uk", "www.studyinjapan.go.jp", "www.postgraduate.study.cam.ac.uk",
    "www.nhs.uk", "www.daad.de", "www.campusfrance.org", "immi.homeaffairs.gov.au", "www.citizensinformation.ie",
    "travel.state.gov", "capd.mit.edu", "www.qaa.ac.uk", "www.nuffic.nl", "www.immigration.govt.nz",
    "www.ica.gov.sg", "www.hbs.edu", "www.fairwork.gov.au", "www.enic-naric.net", "www.campuschina.org",
    "www.ato.gov.au", "u.ae", "studyinsweden.se", "reportfraud.ftc.gov", "owl.purdue.edu", "ind.nl",
    "educationmalaysia.gov.my", "www1.essex.ac.uk", "www.wes.org", "www.uscis.gov", "www.uni-assist.de",
    "www.turing-scheme.org.uk", "www.tenancy.govt.nz", "www.studyinkorea.go.kr", "www.studyinfinland.fi",
    "www.studierendenwerke.de", "www.studenthealth.qmul.ac.uk", "www.ssa.gov", "www.skatteverket.se",
    "www.scamwatch.gov.au", "www.reading.ac.uk", "www.nyidanmark.dk", "www.ncl.ac.uk", "www.mom.gov.sg",
    "www.moj.go.jp", "www.irs.gov", "www.irishimmigration.ie", "www.ird.govt.nz", "www.ielts.org",
    "www.hikorea.go.kr", "www.government.nl", "www.ets.org", "www.enic.org.uk", "www.employment.govt.nz",
    "www.educationinireland.com", "www.commonapp.org", "www.caf.fr", "www.antifraudcentre-centreantifraude.ca",
    "www.actionfraud.police.uk", "studyindenmark.dk", "headspace.org.au", "erasmus-plus.ec.europa.eu",
    "englishtest.duolingo.com", "dvv.fi", "988lifeline.org",
}


def test_shipped_guidance_covers_what_students_ask():
    from studyabroadgpt.kb.store import DEFAULT_GUIDANCE_DIR

    kb = load_kb(DEFAULT_GUIDANCE_DIR)
    guidance = kb.guidance
    topics = {g.topic for g in guidance}
    assert len(guidance) >= 200 and len(topics) >= 30
    assert all(g.id.startswith("guide.") for g in guidance)  # citations tell guidance from facts by id as well
    hosts = {g.source_url.host for g in guidance}
    assert hosts <= OFFICIAL_HOSTS, f"unreviewed source hosts: {sorted(hosts - OFFICIAL_HOSTS)}"
    by = {(g.topic, g.destination) for g in guidance}
    # the kinds of real questions issue 12 names, each with at least one entry
    for need in [("personal_statement", "any"), ("culture_shock", "AU"), ("culture_shock", "CA"),
                 ("making_friends", "any"), ("clubs_societies", "any"), ("language_support", "any"),
                 ("research_assistantships", "US"), ("choosing_programme", "any"), ("budgeting", "GB"),
                 ("academic_writing", "any"), ("academic_integrity", "any"), ("mental_health", "any"),
                 ("phd_applications", "any"), ("visa_interview", "US"), ("scams_safety", "any")]:
        assert need in by, need
    assert any(g.topic == "personal_statement" and "mba" in g.audience for g in guidance)
    assert any(g.topic == "choosing_programme" and "computer science" in g.title.lower() for g in guidance)
    assert sum(g.destination != "any" for g in guidance) >= 100  # most advice is tied to a destination
