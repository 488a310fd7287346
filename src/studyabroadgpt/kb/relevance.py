"""Calibrated relevance: the probability that a retrieved entry answers the query, and the threshold below which
the answer path does not use it.

Reciprocal-rank fusion orders entries well but its scores mean nothing on their own — the top hit for "how do I
apply to a university in Uzbekistan" has a fused score much like the top hit for a question the KB answers. So
every hit gets a ``relevance`` in [0, 1] from a logistic regression over a few features of the (query, entry)
pair (dense cosine, its gap to the best cosine, normalised BM25, rank, whether the entry's destination matches the
one the query names, whether the query names only places or institutions the KB does not cover), fitted on the
labelled query set ``tests/kb/queries.yaml`` (``sagpt kb calibrate``). In each of 5 cross-validation folds the
threshold is chosen to maximise (share of relevant top-5 entries kept) − (share of uncovered questions that still
get an entry); the shipped threshold is the median of the fold thresholds, which held up on unseen queries better
than the one tuned to all rows (measured: 0.45 on all rows kept 0.88 of relevant hits; the fold median 0.15 kept
0.93 held out). ``benchmarks/bench_retrieval.py`` reports held-out figures, not only training-set ones.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..utils import atomic_write_json

if TYPE_CHECKING:
    from .search import Retriever

log = logging.getLogger(__name__)

CALIBRATION_PATH = Path(__file__).resolve().parent / "calibration.json"
CANDIDATES = 10  # entries scored per query when fitting: the top of the ranking is where decisions are made
FEATURES = ("cosine", "cosine_gap", "bm25_rel", "bm25_log", "inv_rank", "dense_inv_rank", "bm25_inv_rank", "top1",
            "dest_match", "dest_any", "dest_mismatch", "dest_none", "out_of_scope", "out_of_scope_any",
            "uncovered_named", "guidance", "subject_match", "subject_mismatch", "specific_match", "subject_coverage",
            "guidance_vs_rule")

_OOS, _ANY = FEATURES.index("out_of_scope"), FEATURES.index("dest_any")


@dataclass
class QueryContext:
    """What is known about a query before its hits are scored."""

    dense: np.ndarray                 # cosine of every entry
    sparse: np.ndarray                # BM25 of every entry
    covered: list[str]                # covered destinations the query names (not as origin)
    out_of_scope: bool                # names only places/institutions the KB does not cover
    uncovered_named: bool             # names at least one uncovered place or institution
    asked: frozenset = frozenset()    # what the question asks about (``asked_subjects``), kb.slots' vocabulary
    top_cosine: float = field(init=False)
    top_bm25: float = field(init=False)
    dense_rank: np.ndarray = field(init=False, repr=False)   # 1-based rank of every entry by cosine
    bm25_rank: np.ndarray = field(init=False, repr=False)    # 1-based rank by BM25 (ties share the order)

    def __post_init__(self) -> None:
        self.top_cosine = float(self.dense.max()) if self.dense.size else 0.0
        self.top_bm25 = float(self.sparse.max()) if self.sparse.size else 0.0
        self.dense_rank = _ranks(self.dense)
        self.bm25_rank = _ranks(self.sparse)


def _ranks(scores: np.ndarray) -> np.ndarray:
    ranks = np.empty(len(scores), dtype=np.int64)
    ranks[np.argsort(-scores, kind="stable")] = np.arange(1, len(scores) + 1)
    return ranks


def is_specific(ctx: QueryContext, destination: str, kind: str, subjects: frozenset) -> bool:
    """A fact of the destination the question names, on the subject it asks about: the rule itself."""
    return kind != "guidance" and bool(ctx.covered) and destination in ctx.covered and bool(ctx.asked & subjects)


def features(ctx: QueryContext, index: int, rank: int, destination: str, kind: str,
             subjects: frozenset = frozenset(), rule_in_pool: bool = False) -> list[float]:
    """The feature vector of one hit (``rank`` is 1-based, in the fused ranking; ``subjects``: what the entry is
    about, ``entry_subjects``; ``rule_in_pool``: a candidate of the same query :func:`is_specific`)."""
    cos = float(ctx.dense[index])
    bm = float(ctx.sparse[index])
    named = bool(ctx.covered)
    match = named and destination in ctx.covered
    any_dest = destination == "any"
    on_subject = bool(ctx.asked & subjects)
    return [cos, ctx.top_cosine - cos, bm / ctx.top_bm25 if ctx.top_bm25 > 0 else 0.0, float(np.log1p(bm)),
            1.0 / rank, 1.0 / float(ctx.dense_rank[index]), (1.0 / float(ctx.bm25_rank[index])) if bm > 0 else 0.0,
            float(rank == 1), float(match), float(any_dest), float(named and not match and not any_dest),
            float(not named and not any_dest), float(ctx.out_of_scope), float(ctx.out_of_scope and any_dest),
            float(ctx.uncovered_named), float(kind == "guidance"),
            float(on_subject), float(bool(ctx.asked) and bool(subjects) and not on_subject),
            # the rule itself: this destination's fact on the point asked, over advice that shares the words
            float(is_specific(ctx, destination, kind, subjects)),
            len(ctx.asked & subjects) / len(ctx.asked) if ctx.asked else 0.0,
            # advice ranked against the rule it is about ("Bringing family" guidance vs the UK dependants rule)
            float(kind == "guidance" and rule_in_pool and (on_subject or not subjects))]


# ------------------------------------------------------------------------------------------------ subjects
# What a question asks about, in kb.slots' subject vocabulary (work_hours, funds, dependants, apply_timing...),
# so a fact whose values fill that slot can be preferred over one that only shares words. kb.slots reads the
# words around a *figure* in an answer; these cues read how students *ask* ("how early can I apply", "can my
# wife come"), which its cues do not cover (measured: "How early can I apply for my Canadian study permit?"
# named no slots subject, and the funds rule ranked first).
_INTERNSHIP = (r"\binternships?\b|\bintern(?:ing)?\b|\bwork\s+placements?\b|\bplacement\s+(?:year|semester)\b|"
               r"\bco-?op\b|\bpracticum\b|\bsandwich\s+(?:year|course|degree)\b|\bwork\s+terms?\b|\bstage\s+en\b|"
               r"\bpraktikum\b|\bstages?\b(?=\s+(?:in|en)\s+(?:france|entreprise))")
_CHANGE_PROVIDER = (r"\b(?:change|changes|changing|switch|switches|switching|transfer|transfers|transferring|move|moving)"
                    r"\s+(?:to\s+)?(?:an?other\s+|a\s+(?:new|different)\s+|my\s+|the\s+)?(?:universit(?:y|ies)|colleges?|"
                    r"schools?|institutions?|providers?|courses?|programmes?|programs?|majors?|dli)\b")
_ASK_CUES: list[tuple[str, str]] = [
    ("dependants", r"\b(?:wife|husband|spouses?|partners?|fianc[ée]e?|girlfriend|boyfriend|children|child|kids?|sons?|"
                   r"daughters?|family|dependants?|dependents?|f-2|parents|mother|father|mom|mum|dad)\b"),
    ("apply_timing", r"\bhow\s+(?:early|soon|far\s+in\s+advance|long\s+before|many\s+(?:months|weeks|days)\s+before)\b|"
                     r"\bwhen\s+(?:can|should|do|must|could|is)\s+(?:i|we|you)?\s*(?:apply|submit|lodge|file|the\s+earliest)\b|"
                     r"\bprocessing\s+times?\b|\bhow\s+long\s+(?:does|will|do|did)\b[^?]{0,40}\b(?:take|process\w*|decide)\b|"
                     r"\bdecision\b|\bin\s+advance\b|\bearliest\b|\bbefore\s+(?:my|the)\s+(?:course|program(?:me)?|classes)\b"),
    ("deadline", r"\bdeadlines?\b|\bclos(?:e|es|ing)\s+dates?\b|\blast\s+date\b|\bby\s+when\b|\bapplication\s+round\b"),
    ("arrival", r"\bwhen\s+can\s+i\s+(?:fly|travel|arrive|enter|land)\b|\barriv\w*\b|\benter\s+the\b|\bfly\b"),
    ("post_study", r"\bpost[- ]?(?:study|graduation)\b|\bgraduate\s+(?:visa|route)\b|\bpgwp\b|\bopt\b|\b485\b|"
                   r"\bstamp\s+1g\b|\bafter\s+(?:i\s+)?(?:graduat\w*|finish\w*)\b|\bafter\s+(?:my|the|a)\s+(?:degree|studies|course|program\w*|"
                   # "Can I stay in Australia after my master's to work?" read as work hours and got the
                   # during-study work-rights fact (lead's reading, session 5)
                   r"master'?s|bachelor'?s|ph\.?d|doctorate|mba)\b|"
                   r"\bjob[- ]search\b|\borientation\s+year\b|\bstay\s+(?:on\s+)?(?:and|to)\s+work\b"),
    # "part-time" before a programme is how one studies, not a job: "Can I do a part-time master's in the UK?" was
    # composed from the part-time jobs guidance (lead's reading, session 5).
    ("work_hours", r"\bwork(?:ing)?\b(?!\s+(?:experience|placements?|terms?))|\bjobs?\b|\bpart[- ]time\b(?!\s+"
                   r"(?:master|bachelor|degree|ph\.?d|doctora|mba|course|programme|program|stud|enrol|basis\s+stud))|"
                   r"\bhours\b|\bearn\b|\bemploy\w*"),
    # Work that is part of the programme: "Can I do an internship in France as a student?" was composed from the
    # post-graduation APS permit fact, and would otherwise be read as the student's own work hours.
    ("internship", _INTERNSHIP),
    # Opening an everyday account, not the funds the visa asks to see: "How do I open a bank account in Singapore
    # as a student?" got "no official fact on the money you must show" (lead's reading, session 5).
    ("banking", r"\bopen\w*\s+(?:up\s+)?(?:a|an|my)\s+(?:\w+\s+)?(?:bank\s+)?accounts?\b|\bbank(?:ing)?\s+"
                r"(?:account\s+)?(?:as\s+a\s+student|for\s+(?:international\s+)?students)\b|\bstudent\s+bank\s+accounts?\b"),
    # Moving to another university or course: "Can I change universities after arriving in the UK on a student
    # visa?" was read as arrival ("no official fact on when you can arrive").
    ("change_provider", _CHANGE_PROVIDER),
    ("funds", r"\bfunds?\b|\bbank\b|\bmoney\b|\bsavings\b|\bfinancial\b|\bblocked\s+account\b|\bsperrkonto\b|\bgic\b|"
              r"\bproof\s+of\s+(?:funds|finance|income)\b|\bmaintenance\b|\bhow\s+much\b[^?]{0,30}\b(?:show|have|account)\b"),
    ("visa_fee", r"\b(?:visa|application|permit|sevis|biometrics?)\s+(?:fee|charge|cost)s?\b|\bfees?\s+for\s+(?:the|a|my)\s+"
                 r"(?:\w+\s+)?(?:visa|permit)\b|\bhow\s+much\s+(?:is|does|do)\s+(?:the|a|my)\s+(?:\w+\s+)?(?:visa|permit)\b"),
    ("health", r"\bhealth\b|\binsurance\b|\bihs\b|\boshc\b|\bnhs\b|\bsurcharge\b|\bmedical\b|\bdoctors?\b"),
    ("tuition", r"\btuition\b|\bcourse\s+fees?\b|\b(?:expensive|cheap|cheaper|cheapest|affordable)\b|\bsemester\s+(?:fee|contribution)\b|\bfree\s+(?:education|university|study)\b|"
                r"\bcost\s+to\s+study\b|\buniversity\s+fees?\b"),
    ("living_costs", r"\bliving\s+costs?\b|\bcost\s+of\s+living\b|\bcouncil\s+tax\b|\bbudget\b|"
                     # "Is the Netherlands expensive for students?" named no subject and got the health-insurance
                     # rule first; "Which is cheaper, Germany or Poland?"
                     r"\b(?:expensive|cheap|cheaper|cheapest|affordable|afford)\b"),
    ("accommodation", r"\baccommodation\b|\bhousing\b|\brent\w*\b|\blandlord\b|\bdeposit\b|\bdorms?\b|\bhalls\b"),
    ("english", r"\bielts\b|\btoefl\b|\bpte\b|\bduolingo\b|\benglish\b|\blanguage\s+(?:test|requirement)s?\b|\bcefr\b"),
    # The language programmes are taught in (served: "You cannot study in Japan without speaking Japanese", "all
    # Dutch universities teach only in Dutch?" got an invented answer, no check and no honest "no fact on it").
    ("language", r"\b(?:speak(?:ing)?|know(?:ing)?|learn(?:ing)?|without)\s+(?:any\s+)?(?:japanese|french|german|korean|"
                 r"chinese|mandarin|dutch|swedish|danish|finnish|norwegian|italian|spanish|polish|the\s+(?:local\s+)?"
                 r"language)\b|\btaught\s+in\b|\b[\w]+-taught\b|\blanguage\s+of\s+(?:instruction|teaching)\b|"
                 r"\bteach(?:es|ing)?\s+(?:only\s+)?in\b|\b(?:study|studying|programmes?|programs?|courses?|degrees?)\s+"
                 r"in\s+english\b"),
    ("admissions_test", r"\bgre\b|\bgmat\b|\bsat\b|\bucat\b|\bbmat\b|\bmcat\b|\blsat\b|\bgamsat\b|\bentrance\s+exams?\b"),
    ("scholarship", r"\bscholarships?\b|\bbursar\w*\b|\bstipend\b|\bfellowships?\b|\bfully[- ]funded\b|\bfunding\b|\bgrants?\b"),
    ("registration", r"\bregist\w*\b|\bpolice\b|\banmeldung\b|\bbrp\b|\bevisa\b|\bresidence\s+card\b|\bcollect\b"),
    ("credentials", r"\bequivalen\w*\b|\brecogni[sz]\w*\b|\benic\b|\bnaric\b|\bwes\b|\bcredentials?\b|\bevaluat\w*\b"),
    # Settling for good: "How many years do I need to live in the UAE before I can get permanent residency?" named
    # no subject of its own (served, lead's reading at d1ae96f: the student-visa fact composed, or the model's
    # "12 years (unverified)"); no UAE fact is on it, and the answer must say so.
    ("permanent_residence", r"\bpermanent(?:ly)?\s+resid\w*\b|\bcitizenship\b|\bnaturali[sz]\w*\b|\bpr\b|"
                            r"\bgreen\s+card\b|\bindefinite\s+leave\b|\bilr\b|\bsettlement\b|\bsettle\s+(?:down\s+)?"
                            r"(?:permanently|for\s+good)\b|\bimmigrate\b|\bbecome\s+an?\s+\w+\s+citizen\b"),
    # What the student visa asks of the studies themselves: "What happens to my student visa in Canada if I fail
    # some courses?" named no subject and was answered with the study permit's entry rules (lead's reading).
    ("study_progress", r"\bfail(?:s|ed|ing)?\s+(?:\w+\s+){0,2}(?:courses?|class(?:es)?|modules?|subjects?|exams?|"
                       r"semesters?|units?|years?|papers?|credits?)\b|\b(?:study|academic|course|satisfactory)\s+"
                       r"(?:progress|probation|standing|performance)\b|\bdrop(?:ping)?\s+out\b|\bwithdraw\w*\s+from\s+"
                       r"(?:my|the|a)\s+(?:course|program\w*|university|studies)\b|\bpart[- ]time\s+(?:student|studies|"
                       r"study|enrol\w*)\b|\bleave\s+of\s+absence\b|\btake\s+a\s+(?:break|semester\s+off)\b|"
                       r"\b(?:bad|low|poor)\s+grades\b|\brepeat\s+(?:a|the)\s+(?:year|semester|course)\b|"
                       r"\bpart[- ]time\s+(?:master'?s|bachelor'?s|degrees?|ph\.?d|doctorate|mba|courses?|programmes?|"
                       r"programs?)\b|\bstudy(?:ing)?\s+part[- ]time\b"),
]
_ASK_RES = [(s, re.compile(p, re.IGNORECASE)) for s, p in _ASK_CUES]
# The visa itself is what most questions are *through* ("... on my study permit"): it is the subject asked only
# when nothing more specific is.
_CARRIER = ("visa_rule", re.compile(r"\bvisas?\b|\bpermits?\b|\bcas\b|\bi-20\b|\bds-160\b|\bstamp\s+2\b|"
                                    r"\bsubclass\b|\bstudent\s+pass\b|\bmvv\b|\bresidence\s+permit\b", re.IGNORECASE))

_BRINGING = re.compile(r"\b(?:bring|brings|bringing|come\s+with|comes\s+with|join|joins|joining|accompany\w*|with\s+me|"
                       r"with\s+us|dependants?|dependents?|f-2|spouses?|wife|husband|partners?|fianc[ée]e?|girlfriend|"
                       r"boyfriend|family\s+(?:visa|members?|permit)|my\s+family)\b", re.IGNORECASE)
_PARTNER_WORKS = re.compile(r"\b(?:can|could|may|will)\s+(?:she|he|they|my\s+(?:wife|husband|partner|spouse))\s+"
                            r"(?:also\s+)?(?:work|get\s+a\s+job)\b|\b(?:she|he)\s+(?:can|could|may)\s+(?:also\s+)?work\b",
                            re.IGNORECASE)
_STUDENT_WORKS = re.compile(r"\b(?:can|could|may)\s+i\s+(?:also\s+)?work\b|\bi\s+(?:want|need|plan)\s+to\s+work\b",
                            re.IGNORECASE)

# Guidance topics (kb.schema.GUIDANCE_TOPICS) in the same vocabulary; a topic not here has no subject.
_GUIDANCE_SUBJECTS = {
    "family_planning": {"dependants"}, "part_time_jobs": {"work_hours"}, "scholarship_search": {"scholarship"},
    "test_preparation": {"english", "admissions_test"}, "budgeting": {"living_costs", "funds"},
    "banking": {"banking", "funds"}, "transferring": {"change_provider"}, "accommodation_search": {"accommodation"}, "credential_evaluation": {"credentials"},
    "health_registration": {"health", "registration"}, "arrival_checklist": {"arrival", "registration"},
    "visa_interview": {"visa_rule"}, "careers": {"post_study"}, "internships": {"internship", "work_hours"},
    "pre_departure": {"arrival"}, "taxes": {"work_hours"}, "deferral": {"apply_timing"},
    "phd_applications": {"deadline"}, "application_strategy": {"deadline"}, "language_support": {"language"},
}
# Facts on the language programmes are taught in ("German-taught degree programmes ... while English-taught
# programmes set their own IELTS requirement").
_TAUGHT = re.compile(r"\b\w+-taught\b|\btaught\s+in\b", re.IGNORECASE)
# Facts on a route to permanent residence or citizenship ("can qualify a graduate for permanent residence
# through the Canadian Experience Class"), not ones that only name the status ("holders of a permanent
# residence permit" study free in Denmark: a tuition rule).
_SETTLES = re.compile(r"\b(?:for|to|towards|apply\w*\s+for|get|obtain|become)\s+(?:a\s+)?(?:permanent\s+residen\w*|"
                      r"citizenship|naturali[sz]ation)\b(?!\s+(?:permit|status)\s+holders)", re.IGNORECASE)
# Facts on what the visa asks of the studies: enrolment kept up and progress made ("earn less than 50% of the
# credits", "proof of study progress", "actively pursue their programme").
_PROGRESS = re.compile(r"\bstudy\s+progress\b|\bprogress\s+in\s+(?:their|your)\s+studies\b|\bactively\s+pursue\b|"
                       r"\bremain\s+enrolled\b|\bcredits\s+for\s+their\s+academic\s+year\b", re.IGNORECASE)


# The language of teaching asked about in its own right, not as a programme's qualifier ("English-taught").
_LANGUAGE_ASKED = re.compile(r"\b(?:speak(?:ing)?|know(?:ing)?|learn(?:ing)?|without)\s+(?:any\s+)?\w+\b|"
                             r"\blanguage\s+of\s+(?:instruction|teaching)\b|\bteach(?:es|ing)?\s+(?:only\s+)?in\b|"
                             r"\b(?:are|is)\s+(?:there\s+)?(?:any\s+)?\w*\s*(?:programmes?|programs?|courses?|degrees?)\s+"
                             r"(?:taught\s+)?in\s+english\b", re.IGNORECASE)
_ENGLISH_TEST = re.compile(r"\bielts\b|\btoefl\b|\bpte\b|\bduolingo\b|\benglish\s+(?:test|requirement|level|score)s?\b",
                           re.IGNORECASE)


# A time clause ("after arriving", "once I arrive", "when I land") is when the question's point applies, not the
# point itself; what is left must still ask about arrival for it to be the subject.
_ARRIVAL_WHEN = re.compile(r"\b(?:after|once|when|before|since|upon|on)\s+(?:i\s+|we\s+|you\s+)?(?:have\s+)?"
                           r"(?:arriv\w*|land\w*|get\s+there|enter\w*|fly\s+in)\b", re.IGNORECASE)
_ARRIVAL_ASKED = re.compile(dict(_ASK_CUES)["arrival"], re.IGNORECASE)
_FUNDS_ASKED = re.compile(r"\bfunds?\b|\bproof\b|\bshow\b|\bmaintenance\b|\bblocked\b|\bsperrkonto\b|\bgic\b|"
                          r"\bfinancial\s+(?:requirement|evidence|proof)s?\b|\bhow\s+much\b", re.IGNORECASE)
# Entries on work that is part of the programme, or on moving to another university or course.
_INTERNSHIP_RE = re.compile(_INTERNSHIP, re.IGNORECASE)
_CHANGE_PROVIDER_RE = re.compile(_CHANGE_PROVIDER + r"|\bnew\s+(?:cas|i-20|school)\b|\bchange\s+of\s+(?:provider|"
                                 r"institution|course|school)\b", re.IGNORECASE)


def asked_subjects(text: str) -> frozenset:
    """The subjects a question asks about ("can my wife come" → dependants; "how early can I apply for my study
    permit" → apply_timing; "which visa do I need" → visa_rule)."""
    text = text.replace("’", "'")
    found = {s for s, rx in _ASK_RES if rx.search(text)}
    if "dependants" in found and not _BRINGING.search(text):
        # "My daughter is 16. Can she do a summer school in the US?" and "My son wants to do his bachelor's"
        # ask about the child's own studies (served: "no official fact on bringing a partner or children").
        found.discard("dependants")
    if "dependants" in found and "work_hours" in found and _PARTNER_WORKS.search(text) \
            and not _STUDENT_WORKS.search(text):
        # "Can my wife come with me to Singapore, and can she work?": the partner's work is a dependant rule;
        # the student's own work-hours fact was served as "From the official source".
        found.discard("work_hours")
    if "post_study" in found and not re.search(r"\bpart[- ]time\b|\bwhile\s+(?:i\s+)?(?:study|studying)\b|"
                                               r"\bduring\b", text, re.IGNORECASE):
        found.discard("work_hours")  # "stay and work after my degree" asks about post-study work, not hours
    if "language" in found and found - {"language", "english"} and not _LANGUAGE_ASKED.search(text):
        # "How much is tuition for an English-taught master's in China?" asks about tuition; "English-taught" only
        # says which programme (the no-fact answer read "no official fact on tuition fees or English-language
        # requirements or the language of instruction").
        found -= {"language", "english"} if not _ENGLISH_TEST.search(text) else {"language"}
    if "arrival" in found and len(found) > 1 and not _ARRIVAL_ASKED.search(_ARRIVAL_WHEN.sub(" ", text)):
        # "after arriving in the UK" says when another point applies ("Can I change universities after arriving"),
        # while "What should I do after I arrive?" still asks about arrival.
        found.discard("arrival")
    if "banking" in found and re.search(r"\bblocked\b|\bsperrkonto\b|\bgic\b", text, re.IGNORECASE):
        found.discard("banking")  # Germany's blocked account and Canada's GIC are the visa's proof of funds
    elif "banking" in found and not _FUNDS_ASKED.search(text):
        found.discard("funds")  # "open a bank account" is not the visa's proof of funds
    if not found and _CARRIER[1].search(text):
        found.add(_CARRIER[0])
    return frozenset(found)


def entry_subjects(entry) -> frozenset:
    """The subjects an entry's figures and rule fill: each value's slot (``kb.slots.fact_value_slot``) and its
    topic's (guidance: its topic's, where it has one)."""
    from . import slots
    from .store import describe_value

    out: set[str] = set()
    if entry.kind == "guidance":
        out |= _GUIDANCE_SUBJECTS.get(entry.topic, set())
        topic = slots._TOPIC_SUBJECT.get(entry.topic)  # guidance may carry a fact topic ("dependants")
    else:
        for v in entry.values:
            subject = slots.fact_value_slot(entry, describe_value(v))[0].subject
            if subject:
                out.add(subject)
        topic = slots._TOPIC_SUBJECT.get(entry.topic)
    if topic:
        out.add(topic)
    statement = getattr(entry, "statement", "") or ""
    if _TAUGHT.search(statement):
        out.add("language")
    if _SETTLES.search(statement):
        out.add("permanent_residence")
    if _PROGRESS.search(statement) or any(str(getattr(v, "key", "")).startswith("visa.study_progress")
                                          for v in getattr(entry, "values", []) or []):
        out.add("study_progress")
    if _INTERNSHIP_RE.search(statement):
        out.add("internship")
    if _CHANGE_PROVIDER_RE.search(statement):
        out.add("change_provider")
    if "deadline" in out or "apply_timing" in out:
        out |= {"apply_timing", "deadline"}  # "the deadline" and "when to apply" are one question to a student
    return frozenset(out)


# The kind of programme a text is about: a degree (bachelor's, master's, doctorate) or a non-degree / language /
# foundation programme. "How much is tuition for an English-taught master's in China?" was answered with the
# Tsinghua non-degree Chinese Language Program's fee as if it were master's tuition (lead's reading, d1ae96f).
_NON_DEGREE = re.compile(r"\bnon-degree\b|\blanguage\s+(?:course|school|program(?:me)?|centre|center)s?\b|"
                         r"\bfoundation\s+(?:year|course|program(?:me)?)s?\b|\belicos\b|\bbelow\s+degree\b|"
                         r"\b(?:d-4|language)\s+students?\b", re.IGNORECASE)
_DEGREE = re.compile(r"\bmaster'?s\b|\bbachelor'?s\b|\bundergraduates?\b|\bpostgraduates?\b|\bdoctora\w*\b|"
                     r"\bph\.?d\b|\bmba\b|\bmsc\b|\bd-2\b|\bgraduate\s+(?:admission|study|students?|programmes?|"
                     r"programs?)\b|(?<!non-)(?<!below\s)\bdegrees?\b", re.IGNORECASE)
# The words before a statement's first comma, at most this many: what the fact is about ("Tsinghua University's
# non-degree Chinese Language Program"), not a programme it mentions on the way ("at most 3 years may be on
# English language or other non-degree programmes", of a limit on every student's permission).
_LEAD_WORDS = 15


def programme_kinds(text: str) -> frozenset:
    """{"degree", "non_degree"}: the kinds of programme ``text`` names (both for a rule on each, none when it
    names no kind)."""
    text = text.replace("’", "'")
    return frozenset({k for k, rx in (("degree", _DEGREE), ("non_degree", _NON_DEGREE)) if rx.search(text)})


def other_programme(question: str, entry) -> bool:
    """Whether ``entry`` is only about a kind of programme the question does not ask about (a non-degree
    language programme's fee for a master's question, a master's rule for a language-school question)."""
    asked = programme_kinds(question)
    if not asked:
        return False
    lead = re.split(r"[,;:]", getattr(entry, "statement", "") or "", maxsplit=1)[0]
    about = programme_kinds(" ".join(lead.split()[:_LEAD_WORDS]))
    return bool(about) and not asked & about


def gate(ctx: QueryContext, destination: str, relevance: float) -> float:
    """The one rule the model is not left to learn: a question that names only places or institutions the KB does
    not cover gets no country-specific entry as relevant (the UCAT ANZ rule for a question about a Bangladeshi
    university). Destination-neutral guidance keeps its calibrated relevance ("how to write an SOP for MIT")."""
    return 0.0 if ctx.out_of_scope and destination != "any" else relevance


@dataclass
class Calibration:
    """A fitted logistic model over :data:`FEATURES` and the threshold chosen for it."""

    coef: list[float]
    intercept: float
    threshold: float
    meta: dict = field(default_factory=dict)

    def relevance(self, x: Sequence[float] | np.ndarray) -> float:
        if x[_OOS] and not x[_ANY]:  # the rule of :func:`gate`, applied wherever a relevance is computed
            return 0.0
        z = float(np.dot(self.coef, x) + self.intercept)
        return float(1.0 / (1.0 + np.exp(-np.clip(z, -50, 50))))

    def to_dict(self) -> dict:
        return {"features": list(FEATURES), "coef": [round(c, 6) for c in self.coef],
                "intercept": round(self.intercept, 6), "threshold": round(self.threshold, 4), **self.meta}

    @classmethod
    def from_dict(cls, d: dict) -> "Calibration":
        if list(d.get("features", [])) != list(FEATURES):
            raise ValueError(f"calibration features {d.get('features')} do not match this version {FEATURES}")
        meta = {k: v for k, v in d.items() if k not in ("features", "coef", "intercept", "threshold")}
        return cls([float(c) for c in d["coef"]], float(d["intercept"]), float(d["threshold"]), meta)

    def save(self, path: str | Path = CALIBRATION_PATH) -> Path:
        return atomic_write_json(path, self.to_dict())


def load_calibration(path: str | Path = CALIBRATION_PATH) -> Calibration | None:
    """The shipped calibration, or None (with a warning) when it is missing or does not fit this code."""
    try:
        return Calibration.from_dict(json.loads(Path(path).read_text()))
    except FileNotFoundError:
        log.warning("no retrieval calibration at %s: relevance falls back to rank-only", path)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("unusable retrieval calibration at %s (%s): relevance falls back to rank-only", path, exc)
    return None


# ------------------------------------------------------------------------------------------------ fitting


@dataclass
class LabelledQuery:
    query: str
    relevant: set[str]
    destination: str | None = None
    kind: str = "fact"          # what the query is about: fact | guidance | uncovered (for reporting)


def load_queries(path: str | Path) -> list[LabelledQuery]:
    """The labelled set: a YAML list of {query, relevant: [ids], destination?, kind?}; relevant [] = nothing."""
    import yaml

    rows = yaml.safe_load(Path(path).read_text()) or []
    out = []
    for i, r in enumerate(rows, start=1):
        if not isinstance(r, dict) or not isinstance(r.get("query"), str) or not isinstance(r.get("relevant"), list):
            raise ValueError(f"{path}: item {i}: needs a query string and a relevant list")
        kind = r.get("kind") or ("uncovered" if not r["relevant"] else
                                 "guidance" if all(x.startswith("guide.") for x in r["relevant"]) else "fact")
        out.append(LabelledQuery(r["query"], set(r["relevant"]), r.get("destination"), kind))
    return out


def candidate_rows(retriever: "Retriever", queries: list[LabelledQuery], k: int = CANDIDATES):
    """(features, label, query index, rank) for the top-``k`` hits of every query, with one batched encoder call."""
    hits_per_query = retriever.search_many([q.query for q in queries], k=k, destinations=[q.destination for q in queries],
                                           with_features=True, rerank=False)
    X, y, qi, ranks = [], [], [], []
    for n, (q, hits) in enumerate(zip(queries, hits_per_query)):
        for rank, h in enumerate(hits, start=1):
            X.append(h.features)
            y.append(int(h.fact.id in q.relevant))
            qi.append(n)
            ranks.append(rank)
    return np.asarray(X, dtype=np.float64), np.asarray(y), np.asarray(qi), np.asarray(ranks)


def fit(X: np.ndarray, y: np.ndarray, qi: np.ndarray, ranks: np.ndarray, queries: list[LabelledQuery],
        ) -> Calibration:
    """Logistic regression (scikit-learn) plus the threshold that best separates kept relevant hits from false
    retrievals on the same rows."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1.0, max_iter=2000)
    model.fit(X, y)
    cal = Calibration([float(c) for c in model.coef_[0]], float(model.intercept_[0]), 0.5)
    probs = np.array([cal.relevance(x) for x in X])
    cal.threshold = choose_threshold(probs, y, qi, ranks, queries)
    return cal


def choose_threshold(probs: np.ndarray, y: np.ndarray, qi: np.ndarray, ranks: np.ndarray,
                     queries: list[LabelledQuery]) -> float:
    best, best_t = -np.inf, 0.5
    for t in np.round(np.arange(0.02, 0.9, 0.01), 2):
        m = metrics_at(probs, y, qi, ranks, queries, float(t))
        score = m["kept_recall_at_5"] - m["false_retrieval_rate"]
        if score > best + 1e-9:
            best, best_t = score, float(t)
    return best_t


def metrics_at(probs: np.ndarray, y: np.ndarray, qi: np.ndarray, ranks: np.ndarray,
               queries: list[LabelledQuery], threshold: float) -> dict:
    """recall@5 (no threshold), kept recall@5 (relevant top-5 hits at or above the threshold) and the
    false-retrieval rate (uncovered questions with any top-5 hit at or above it)."""
    top5 = ranks <= 5
    recall, kept, covered_n = [], [], 0
    uncovered_false, uncovered_n = 0, 0
    for n, q in enumerate(queries):
        rows = (qi == n) & top5
        if q.relevant:
            covered_n += 1
            found = y[rows].sum()
            recall.append(min(1.0, found / len(q.relevant)))
            kept.append(min(1.0, y[rows & (probs >= threshold)].sum() / len(q.relevant)))
        else:
            uncovered_n += 1
            uncovered_false += int((probs[rows] >= threshold).any())
    return {"threshold": threshold, "queries": len(queries), "covered_queries": covered_n,
            "uncovered_queries": uncovered_n,
            "recall_at_5": float(np.mean(recall)) if recall else 0.0,
            "kept_recall_at_5": float(np.mean(kept)) if kept else 0.0,
            "false_retrieval_rate": uncovered_false / uncovered_n if uncovered_n else 0.0}


def cross_validate(X, y, qi, ranks, queries: list[LabelledQuery], folds: int = 5, seed: int = 0) -> dict:
    """Held-out figures: fit on 4/5 of the queries, measure on the rest, pool the held-out rows."""
    rng = np.random.default_rng(seed)
    fold_of = rng.permutation(len(queries)) % folds
    probs = np.zeros(len(y))
    thresholds = []
    for f in range(folds):
        train_q = np.where(fold_of != f)[0]
        train = np.isin(qi, train_q)
        remap = {old: new for new, old in enumerate(train_q)}
        cal = fit(X[train], y[train], np.array([remap[i] for i in qi[train]]), ranks[train],
                  [queries[i] for i in train_q])
        test = ~train
        probs[test] = [cal.relevance(x) for x in X[test]]
        thresholds.append(cal.threshold)
    t = float(np.median(thresholds))
    out = metrics_at(probs, y, qi, ranks, queries, t)
    out["fold_thresholds"] = thresholds
    out["hits"] = rerank_hits(probs, y, qi, ranks, queries)
    out["by_kind"] = {kind: _by_kind(probs, y, qi, ranks, queries, t, kind)
                      for kind in sorted({q.kind for q in queries})}
    return out


def rerank_hits(probs: np.ndarray, y: np.ndarray, qi: np.ndarray, ranks: np.ndarray,
                queries: list[LabelledQuery]) -> dict:
    """hit@1 / hit@3 of the fused order and of the candidates re-ordered by ``probs`` (what ``search`` serves),
    over the queries with relevant entries, overall and by query kind. With held-out ``probs`` these are
    held-out figures."""
    out: dict = {}
    per: dict[str, list[tuple[int, int, int, int]]] = {}
    for n, q in enumerate(queries):
        if not q.relevant:
            continue
        rows = np.where(qi == n)[0]
        fused = rows[np.argsort(ranks[rows], kind="stable")]
        ranked = fused[np.argsort(-probs[fused], kind="stable")]
        row = (int(y[fused[:1]].sum() > 0), int(y[fused[:3]].sum() > 0), int(y[ranked[:1]].sum() > 0),
               int(y[ranked[:3]].sum() > 0))
        per.setdefault("all", []).append(row)
        per.setdefault(q.kind, []).append(row)
    for kind, rows in per.items():
        a = np.asarray(rows, dtype=float)
        out[kind] = {"queries": len(rows), "fused_hit_at_1": a[:, 0].mean(), "fused_hit_at_3": a[:, 1].mean(),
                     "hit_at_1": a[:, 2].mean(), "hit_at_3": a[:, 3].mean()}
    return out


def _by_kind(probs, y, qi, ranks, queries, t, kind) -> dict:
    idx = [n for n, q in enumerate(queries) if q.kind == kind]
    remap = {old: new for new, old in enumerate(idx)}
    rows = np.isin(qi, idx)
    return metrics_at(probs[rows], y[rows], np.array([remap[i] for i in qi[rows]]), ranks[rows],
                      [queries[i] for i in idx], t)


def hit_rates(retriever: "Retriever", queries: list[LabelledQuery], kinds: Sequence[str] | None = None) -> dict:
    """hit@1 / hit@3 of the final ranking (what the answer path numbers [1], [2], ...) and served hit@1 (the
    first hit at or above the threshold is a relevant one), over the queries that have relevant entries;
    ``kinds`` restricts to those query kinds. Also, for queries with nothing relevant, the share that still get
    a hit served."""
    chosen = [q for q in queries if kinds is None or q.kind in kinds]
    hits = retriever.search_many([q.query for q in chosen], k=5, destinations=[q.destination for q in chosen])
    h1 = h3 = served = n = false_served = empty_n = 0
    misses = []
    for q, hs in zip(chosen, hits):
        ids = [h.fact.id for h in hs]
        kept = [h.fact.id for h in hs if h.relevance >= retriever.threshold]
        if not q.relevant:
            empty_n += 1
            false_served += int(bool(kept))
            continue
        n += 1
        h1 += int(bool(ids[:1]) and ids[0] in q.relevant)
        h3 += int(bool(set(ids[:3]) & q.relevant))
        served += int(bool(kept) and kept[0] in q.relevant)
        if not (ids[:1] and ids[0] in q.relevant):
            misses.append({"query": q.query, "want": sorted(q.relevant), "got": ids[:3]})
    return {"queries": n, "hit_at_1": h1 / n if n else 0.0, "hit_at_3": h3 / n if n else 0.0,
            "served_hit_at_1": served / n if n else 0.0, "unanswered_queries": empty_n,
            "unanswered_served": false_served / empty_n if empty_n else 0.0, "misses": misses}
