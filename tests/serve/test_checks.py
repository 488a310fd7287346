"""The answer checks (serve/checks.py) on text shaped like what the small model really wrote."""
from __future__ import annotations

import pytest

from studyabroadgpt.kb.store import load_kb
from studyabroadgpt.serve import checks


@pytest.fixture(scope="module")
def kb():
    return load_kb()


LOOPING = """Here are some tips:
1. Join clubs and societies at your university.
2. Join clubs and societies at your university.
3. Join clubs and societies at your university.
4. Join clubs and societies at your university.
Good luck!"""


def test_repeated_list_items_are_a_loop_and_are_cut_to_one():
    loops = checks.find_loops(LOOPING)
    assert len(loops) == 1 and loops[0].count == 4 and loops[0].kind == "unit"
    text, found = checks.cut_loops(LOOPING)
    assert found == loops
    assert text == "Here are some tips:\n1. Join clubs and societies at your university.\nGood luck!"
    assert checks.find_loops(text) == []


def test_long_sentence_repeated_twice_is_a_loop_but_short_repeats_are_not():
    long = "You should contact the international office of your university for more help. "
    assert checks.find_loops(long * 2)
    assert checks.find_loops("Yes.\nYes.\nYes.") == []          # a filler under MIN_UNIT_CHARS
    assert checks.find_loops("**Tips**\n- a\n\n**Tips**\n- b") == []


def test_phrase_loop_inside_a_sentence_is_cut():
    text = "The visa and the visa and the visa and the visa is what you need."
    assert [lp.kind for lp in checks.find_loops(text)] == ["phrase"]
    assert checks.cut_loops(text)[0] == "The visa and the visa is what you need."


def test_clean_answer_has_no_loop_and_is_unchanged():
    text = ("At degree level you can work 20 hours a week in term time [1].\n- Plan your budget.\n"
            "- Keep your documents.")
    assert checks.find_loops(text) == [] and checks.cut_loops(text) == (text, [])


def test_invented_urls_are_found_and_removed_but_kb_sources_kept(kb):
    text = ("Check the New Zealand rules at www.denei.govt.nz. The official page is https://www.gov.uk/student-visa, "
            "see also gov.uk and [the guide](https://studyabroad-guide.example.com/uk).")
    found = [f.url for f in checks.foreign_urls(text, kb)]
    assert found == ["www.denei.govt.nz", "https://studyabroad-guide.example.com/uk"]
    cleaned, changes = checks.remove_foreign_urls(text, kb)
    assert "denei" not in cleaned and "example.com" not in cleaned
    assert "https://www.gov.uk/student-visa" in cleaned and "gov.uk" in cleaned and "the guide" in cleaned
    assert {c["claim"] for c in changes} == set(found) and all(c["action"] == "removed_url" for c in changes)
    assert checks.foreign_urls("IELTS 6.5 and a GRE of 1.000", kb) == []


def test_invented_path_on_an_official_host_is_foreign(kb):
    assert [f.url for f in checks.foreign_urls("See https://www.gov.uk/free-visa-for-students", kb)] == \
        ["https://www.gov.uk/free-visa-for-students"]


def test_invented_organisations_are_flagged_real_ones_are_not(kb):
    text = ("You can study through the MIT Open University. The Canadian Council of Scholarships funds you. "
            "The New Zealand Department of Education and Standards Authority (DENI) sets the rules. "
            "Chevening Scholarships and the British Council are real. Contact University of Toronto. "
            "UK Visas and Immigration decides. Ask the International Office.")
    names = [f.name for f in checks.unverified_entities(text, "", kb)]
    assert names == ["MIT Open University", "Canadian Council of Scholarships",
                     "New Zealand Department of Education and Standards Authority (DENI)"]


def test_a_name_from_the_question_is_not_unverified(kb):
    q = "What are the admission requirements for the University of Dhaka?"
    assert checks.unverified_entities("The University of Dhaka sets its own rules.", q, kb) == []
    assert [f.name for f in checks.unverified_entities("The University of Dhaka sets its own rules.", "", kb)] \
        == ["University of Dhaka"]


def test_marking_appends_unverified_with_a_reason(kb):
    text, changes = checks.mark_unverified_entities("Apply to the Canadian Council of Scholarships today.", "", kb)
    assert text == "Apply to the Canadian Council of Scholarships (unverified) today."
    assert changes == [{"action": "marked_unverified", "claim": "Canadian Council of Scholarships",
                        "kind": "named_entity",
                        "reason": "named body or scheme not in the knowledge base or the question"}]
    assert checks.assess(text, "", kb).unverified_entities == []  # marked names are not "left unmarked"


def test_unknown_test_acronym_is_flagged(kb):
    assert [f.name for f in checks.unverified_entities("Take the IELTS test or the QXET exam.", "", kb)] == ["QXET"]


def test_off_topic_sources(kb):
    by = {f.id: f for f in kb.facts}
    q = "What documents do I need for an MBA application in the US?"
    off = checks.off_topic_sources(q, [by["de.credentials.aps"], by["us.student-visa.i20-sevis"]])
    assert [f.id for f in off] == ["de.credentials.aps"]                      # another country
    off = checks.off_topic_sources("How do I make friends at university?", [by["gb.funds.monthly"]])
    assert [f.id for f in off] == ["gb.funds.monthly"]                        # nothing in common


def test_says_no_information():
    assert checks.says_no_information("Our knowledge base has no official information on studying in "
                                      "Uzbekistan. Check the embassy of Uzbekistan.")
    assert not checks.says_no_information("You need a visa. Check the embassy.")      # no admission of a gap
    assert not checks.says_no_information("I don't have information on that.")       # no official pointer


def test_prompt_set_is_well_formed_and_covers_every_category():
    from studyabroadgpt.eval.prompts import CATEGORIES, load_real_style, messages_of

    rows = load_real_style()
    assert len(rows) >= 80 and len({r["id"] for r in rows}) == len(rows)
    assert {r["category"] for r in rows} == set(CATEGORIES)
    follow = [r for r in rows if r["category"] == "follow_up"]
    assert follow and all(messages_of(r)[-1]["content"] == r["prompt"] for r in follow)
    kb_ids = {f.id for f in load_kb().facts}
    for r in rows:
        for fid in r.get("checks", {}).get("expect_facts", []):
            assert fid in kb_ids, f"{r['id']}: unknown fact {fid}"
    assert sum(bool(r.get("checks", {}).get("out_of_scope")) for r in rows) >= 10


# --------------------------------------------------------------------------------------------- nonsense
# Raw SmolLM2-135M answers from the real-style set (runs/bench_answers, rp 1.15 + 4-gram ban over the prompt).
F1_CHAIN = ("The official document required by the USF-US is a FASB-D-A-C-E-I-M-L-Y-N-S-T-Z-X-W-H-J-K-R-U-G-O-P-Q-"
            "Y-Y-Z-Y-YONA-TO-ME-AL-SO-THESIS-AND-THE-OTHER-ONE-OF-TWELLS-INVALIDITY-BY-DEATH-OR-NOTIFYING-SUCH-"
            "ANTIABLAYS-ONLY-FOR-TRADE-AT-NOVELTY-WHEN-HEARED-PROBLEM-COUNTERSTAG-CONTAINS-SE")
COUNTRY_DUMP = ("1. **Research**: Before you leave, research different countries where you might consider studying "
                "abroad. This could include countries such as Australia, Canada, Germany, Japan, South Africa, Spain, "
                "UK, USA, India, China, Mexico, Singapore, Korea, Brazil, India, Bangladesh, Sri Lanka, Indonesia, "
                "Malaysia, Philippines, Thailand, Vietnam, Chile, Argentina, Peru, Colombia, Venezuela, Ecuador, "
                "Bolivia, Cuba, Jamaica, Barbados, Dominican Republic, Haiti, Nicaragua, Panama, Costa Rica, El "
                "Salvador, Guat")
# Real answers that read fine (same run): they must pass.
GOOD_SOP = ("Writing a strong statement can be challenging but there are some tips to help make it effective. "
            "Here are some key points to keep in mind when crafting one:\n\n1. **Be authentic**: Authenticity "
            "matters. You're writing about yourself, which means being true to yourself.\n\n2. **Focus on your "
            "passion**: The best way to present yourself authentically is to tell stories that showcase your "
            "passions and experiences.")
GOOD_FRIENDS = ("1. **Attend cultural events**: These include festivals, concerts, sporting matches, and other "
                "celebrations where people celebrate their differences. This helps break down barriers between "
                "cultures.\n\n2. **Join clubs and organizations**: Many international students have chosen to pursue "
                "various interests outside of academics, e.g. part-time work, state-of-the-art labs and "
                "volunteering; see https://www.gov.uk/student-visa/work-and-study-after-graduation-ends-here-now.")


def test_letter_chains_are_degenerate():
    found = checks.find_degenerate(F1_CHAIN)
    assert [d.kind for d in found] == ["letter_chain"]
    assert found[0].sample.startswith("FASB-D-A-C-E") and "parts joined by hyphens" in found[0].reason


def test_runaway_country_list_is_degenerate():
    found = checks.find_degenerate(COUNTRY_DUMP)
    assert [d.kind for d in found] == ["runaway_list"] and "items in one sentence" in found[0].reason


def test_character_runs_long_tokens_and_non_words_are_degenerate():
    assert {d.kind for d in checks.find_degenerate("You need a visa!!!!!!!! Yesssssssss.")} == {"char_run"}
    assert [d.kind for d in checks.find_degenerate("Apply via " + "studentvisaapplicationportalform" * 2)] == \
        ["long_token"]
    garbage = " ".join(["xkcdfgh qwrtp zzxv brrmph"] * 4 + ["the visa is needed for study"] * 2)
    assert [d.kind for d in checks.find_degenerate(garbage)] == ["non_words"]


def test_real_good_answers_are_not_degenerate():
    # hyphenated words of up to four parts, a URL and a short list are ordinary advice
    assert checks.find_degenerate(GOOD_SOP) == []
    assert checks.find_degenerate(GOOD_FRIENDS) == []
    assert checks.find_degenerate("Apply to Germany, France, Sweden, Finland or Denmark: all have low fees.") == []


def test_an_acronym_spelled_out_before_it_is_not_an_invented_body(kb):
    # the real SmolLM2 answer had "**Statement of Purpose (SOP)**" marked "(SOP (unverified))"
    assert checks.unverified_entities("**Statement of Purpose (SOP)**",
                                      "How do I write a strong statement of purpose for an MBA?", kb) == []
    assert checks.unverified_entities("Write a Statement of Purpose (SOP) first.", "Statement help", kb) == []
    found = checks.unverified_entities("Apply to the Bangladesh National Education Board (BNEB) first.", "q", kb)
    assert [f.name for f in found] == ["Bangladesh National Education Board (BNEB)"]
    assert [f.name for f in checks.unverified_entities("Ask the office (QXZ) about it.", "q", kb)] == ["QXZ"]


def test_a_name_the_student_typed_is_theirs(kb):
    # our own out-of-scope answer said "Harvard University" to "I got 1.000 on the GRE, is that enough for Harvard?"
    q = "I got 1.000 on the GRE, is that enough for Harvard?"
    assert checks.unverified_entities("I don't have official information on Harvard University.", q, kb) == []
    assert [f.name for f in checks.unverified_entities("Ask the Harvard Council of Grants.", "Is it hard?", kb)] \
        == ["Harvard Council of Grants"]


def test_a_copied_fact_list_is_degenerate():
    # served by SmolLM2 to "Do I need health insurance as a student in Germany, and what kind?"
    echo = ("The official facts are:\n[1] (Germany, health cover, as of 2025-03-29) Students in Germany need health "
            "insurance to enrol at a university and get their residence permit; this is not only for students but "
            "also all the citizens. Source: Study in Germany - DAAD.")
    assert [d.kind for d in checks.find_degenerate(echo)] == ["prompt_echo"]
    assert checks.find_degenerate("Students in Germany need health insurance to enrol [1] (see the DAAD page).") == []
    # the quickstart adapter dropped the "[n]" (and reversed the rule it copied)
    bare = (" (United Kingdom, work rights, as of 2025-12-31) Students working at degree level with a higher "
            "education provider may be self-employed. Source: Student visa - GOV.UK.")
    assert [d.kind for d in checks.find_degenerate(bare)] == ["prompt_echo"]


# ------------------------------------------------------------------------------------------------- issue 10, stop 19

def test_names_built_of_generic_or_coined_words_are_flagged(kb):
    # served by SmolLM2 (default, auto, 120 tokens) to Germany "is there no tuition at all?" and to "IELTS or
    # Duolingo for Australia" — all passed the distinctive-word test before
    q = "I heard public universities in Germany are free. Is there no tuition at all?"
    served = {
        "You can get a tuition reimbursement program called the Bachelor of Science.": "Bachelor of Science",
        "Germany runs the BacheloSense initiative for foreign students.": "BacheloSense initiative",
        'The German government has implemented a policy called the "Einzinkelung für die Welt" (Free Access).':
            "Einzinkelung für die Welt",
        "IzliBollang is a highly-rated online language learning platform.": "IzliBollang",
        "Apply for the International Student Scholarship at your university.": "International Student Scholarship",
    }
    for text, name in served.items():
        assert [f.name for f in checks.unverified_entities(text, q, kb)] == [name], text


def test_generic_units_brands_categories_and_headings_are_not_invented_names(kb):
    clean = ("Ask the International Office or Student Services. Update your LinkedIn profile and watch YouTube "
             "videos. Government Scholarships are available in many countries.\n\n### Merit Scholarship\n"
             "**Need-Based Grant:** ask the financial aid office. The DAAD scholarship programme and the Chevening "
             "Scholarship are real. Contact McDonald House. A city called Munich. The Erasmus+ programme helps.")
    assert checks.unverified_entities(clean, "How do I fund my master's?", kb) == []
    # a coined name the student typed is theirs
    assert checks.unverified_entities("The BacheloSense initiative pays fees.", "What is the BacheloSense "
                                      "initiative?", kb) == []


def test_no_kb_statement_is_ever_flagged(kb):
    flagged = []
    for e in checks.kb_entries(kb):
        texts = [e.statement, getattr(e, "title", "") or "", *(getattr(e, "steps", []) or []),
                 *(getattr(e, "watch_out", []) or [])]
        flagged += [(e.id, f.name) for t in texts for f in checks.unverified_entities(t, "", kb)]
    assert flagged == []
    assert len(checks.kb_entries(kb)) > 400


def test_unsupported_rule_and_rule_change_sentences(kb):
    from studyabroadgpt.serve.gate import sentences

    f1 = kb.by_id["us.work.on-campus"]
    raw = ('The United States does not have a visa that allows students to work 40 hours per week on an F-1 visa. '
           'The US Department of Education has changed the definition of a "visa" from a student\'s academic '
           'status. Check the university\'s international office page for the latest rules. You should ask '
           'your DSO before you take a job.')
    found = checks.unsupported_rules(raw, [f1], sentences(raw))
    assert [(f.kind, f.sentence[:38]) for f in found] == [("rule_change", "The US Department of Education has cha")]
    assert "no retrieved official fact supports" in found[0].reason
    # a rule sentence the fact supports stays, and so does advice
    ok = f"{f1.statement} Make sure you keep your I-20 safe; it is required at the border."
    assert checks.unsupported_rules(ok, [f1], sentences(ok)) == []
