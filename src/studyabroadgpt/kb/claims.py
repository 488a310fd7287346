"""Finding checkable claims in advising text.

A claim is a span the knowledge base can vouch for or refute: a money amount with its currency and period, a
percentage, a test score, a duration ("20 hours per week", "2 years"), a date, or the name of a visa,
scholarship or programme. Extraction is regular expressions on purpose: it is fast enough to audit thousands of
answers a minute on a laptop, and every decision can be read and argued with.

Numbers that only describe the student's own story ("a 20% increase in revenue within six months") are not
advising claims; durations and percentages count only when their sentence talks about visas, work, fees,
funds, tests and the like (``_DOMAIN_CUES``). Money, scores, dates and names always count.
"""
from __future__ import annotations

import re
from bisect import bisect_left, insort
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from enum import Enum
from typing import Any, Iterator

from .schema import DESTINATIONS

try:
    from enum import StrEnum
except ImportError:  # Python 3.10
    class StrEnum(str, Enum):
        """A str-valued enum that prints and formats as its value (what ``enum.StrEnum`` does from 3.11)."""

        __str__ = str.__str__
        __format__ = str.__format__


class ClaimKind(StrEnum):
    """What a claim states. str-valued, so JSON reports and ``kind == "money"`` comparisons are unchanged."""

    MONEY = "money"
    PERCENTAGE = "percentage"
    SCORE = "score"
    DURATION = "duration"
    DATE = "date"
    ENTITY = "entity"


class ClaimStatus(StrEnum):
    """The audit's verdict on one claim (str-valued, like :class:`ClaimKind`)."""

    SUPPORTED = "supported"
    CONTRADICTED = "contradicted"
    UNSUPPORTED = "unsupported"

# ------------------------------------------------------------------------------------------------- shared bits

NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
WORD_NUMBERS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
    "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16, "eighteen": 18,
    "twenty": 20, "twenty-four": 24, "thirty": 30, "forty": 40, "forty-eight": 48, "sixty": 60, "ninety": 90,
}
_WORDNUM = "|".join(sorted(WORD_NUMBERS, key=len, reverse=True))
MONTHS = {m: i for i, m in enumerate(["january", "february", "march", "april", "may", "june", "july", "august",
                                      "september", "october", "november", "december"], start=1)}
MONTHS.update({m[:3]: i for m, i in list(MONTHS.items())})
MONTHS["sept"] = 9
# The full stop belongs to an abbreviation ("Nov. 3"); after a full name it ends the sentence: "in June and
# November. [3]\n\n1. Read…" was read as the date 1 November.
_MONTH = r"(?:January|February|March|April|May|June|July|August|September|October|November|December|" \
         r"(?:Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept|Sep|Oct|Nov|Dec)\.?)"

PERIODS = {"year": "year", "years": "year", "annum": "year", "annually": "year", "yearly": "year", "yr": "year",
           "month": "month", "months": "month", "monthly": "month", "mo": "month", "week": "week", "weekly": "week",
           "weeks": "week", "fortnight": "fortnight", "day": "day", "daily": "day", "semester": "semester",
           "term": "term", "once": "once"}
_PERIOD_AFTER = re.compile(r"\s*(?:(?:per|a|an|each|every|/)\s*"
                           r"(year|annum|month|week|fortnight|day|semester|term|yr|mo)\b"
                           r"|(annually|monthly|weekly|yearly|daily)\b)", re.IGNORECASE)

# Tests, most specific spelling first; ``canonical_test`` maps every spelling onto one name.
TEST_NAMES = [
    r"IELTS(?:\s+(?:Academic|UKVI|for\s+UKVI|General(?:\s+Training)?))?", r"TOEFL(?:\s+iBT)?",
    r"PTE(?:\s+Academic)?", r"Duolingo(?:\s+English\s+Test)?", r"DET", r"GRE(?:\s+General)?", r"GMAT(?:\s+Focus)?",
    r"MCAT", r"SAT", r"UCAT", r"LSAT", r"ACT", r"TOEIC", r"OET", r"(?:Cambridge\s+)?C1\s+Advanced",
    r"(?:Cambridge\s+)?C2\s+Proficiency", r"TestDaF", r"DSH", r"JLPT", r"TOPIK", r"BMAT", r"GAMSAT",
    r"CELPIP(?:-General)?", r"TEPS",
]
_TEST_RE = re.compile(r"(?<![\w-])(" + "|".join(TEST_NAMES) + r")(?![\w-])")
# Score scales per test: (lowest, highest, step), several where a test reports more than one scale (sections,
# totals, TOEFL iBT's 1-6 bands since 2026). A "TOEFL 6.5" or "IELTS 90" is a test name swapped onto another
# test's number, which the audit can flag without any fact at all.
SCORE_RANGES: dict[str, list[tuple[float, float, float]]] = {
    "IELTS": [(0, 9, 0.5)], "TOEFL": [(0, 120, 1), (1, 6, 0.5)], "PTE": [(10, 90, 1)],
    "DUOLINGO": [(10, 160, 5)], "GRE": [(130, 170, 1), (260, 340, 1), (0, 6, 0.5)], "GMAT": [(200, 805, 5)],
    "MCAT": [(472, 528, 1), (118, 132, 1)], "SAT": [(200, 1600, 10)], "UCAT": [(300, 3600, 10)],
    "LSAT": [(120, 180, 1)], "ACT": [(1, 36, 1)], "TOEIC": [(10, 990, 5)], "OET": [(0, 500, 10)],
    "C1 ADVANCED": [(80, 230, 1)], "C2 PROFICIENCY": [(80, 230, 1)], "TESTDAF": [(3, 5, 1)], "DSH": [(1, 3, 1)],
    "JLPT": [(1, 5, 1)], "TOPIK": [(1, 6, 1)], "CELPIP": [(1, 12, 1)],
    "TEPS": [(0, 600, 1)],  # Seoul National University's English test (new TEPS scale); kr facts cite it
}


def plausible_score(test: str, score: float) -> tuple[bool, str | None]:
    """Is ``score`` a possible score on ``test``'s scale? (True, None) for tests we know no scale of."""
    if test not in SCORE_RANGES:
        return True, None
    scales = SCORE_RANGES[test]
    for lo, hi, step in scales:
        if lo <= score <= hi and abs(score / step - round(score / step)) < 1e-6:
            return True, None
    return False, f"{test} is scored " + " or ".join(f"{lo:g}–{hi:g} in steps of {step:g}"
                                                          for lo, hi, step in scales)


def canonical_test(name: str) -> str:
    n = re.sub(r"\s+", " ", name.strip().upper())
    for key in ("IELTS", "TOEFL", "PTE", "GRE", "GMAT", "DUOLINGO", "UCAT", "CELPIP", "C1 ADVANCED", "C2 PROFICIENCY"):
        if n.startswith(key) or n.endswith(key):
            return key
    return "DUOLINGO" if n == "DET" else n


def parse_number(text: str) -> float:
    t = text.strip().lower()
    if t in WORD_NUMBERS:
        return float(WORD_NUMBERS[t])
    return float(t.replace(",", ""))


# Words that make a duration or percentage an advising claim rather than part of an anecdote.
_DOMAIN_CUES = re.compile(
    r"\b(visa|permit|immigration|work(?:ing|s)?|hours?|job|employ\w*|stay|remain|route|opt|pgwp|extension|valid"
    r"\w*|processing|arriv\w*|enrol\w*|entry|graduat\w*|post-study|insurance|cover|surcharge|funds?|maintenance|"
    r"blocked|deposit|tuition|fees?|cost\w*|scholarship\w*|stipend|tax|acceptance|admission\w*|deadline|apply|"
    r"application|intake|course|programme|program|degree|study|studies|studying|term|semester|holiday|vacation|"
    # "live in the UAE for at least 10 years before applying for permanent residency" (quickstart adapter,
    # session 5) was no claim: neither "residency" nor "applying" was a cue
    r"break|dependant\w*|spouse|partner|biometric\w*|passport|register\w*|registration|residen\w*|citizenship|"
    r"naturali[sz]\w*|applying|applied)(?:s|es)?\b",
    re.IGNORECASE)


_MONEY_CUE = re.compile(r"[£€$]|\b(?:GBP|USD|CAD|AUD|NZD|EUR|SGD)\b")


@dataclass
class Claim:
    """One checkable statement inside an answer; ``status`` is filled in by the audit."""

    text: str
    kind: ClaimKind
    span: tuple[int, int]
    value: dict[str, Any]
    status: ClaimStatus = ClaimStatus.UNSUPPORTED
    fact_id: str | None = None
    expected: str | None = None
    sentence: str = field(default="", repr=False)
    destination: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["span"] = list(self.span)
        d["kind"], d["status"] = str(self.kind), str(self.status)  # plain strings for YAML and pickles alike
        d.pop("sentence")
        return d


# ------------------------------------------------------------------------------------------------- masking

# Linear time matters here: every answer the server gives goes through these patterns. Adjacent quantifiers over
# the same characters (``^\s*\**\s*``, ``\s*`` that crosses lines) backtrack quadratically on a long blank run —
# a newline plus 16k spaces took 25 s — so each run of blanks has exactly one quantifier that can take it.
_SOURCES_HEADING = re.compile(r"^[ \t]*(?:#{1,6}[ \t]*)?(?:\*+[ \t]*)?(?:Sources|References|Sources and further "
                              r"reading)[ \t:*]*$", re.IGNORECASE | re.MULTILINE)
# A domain starts where no word, dot or dash precedes: from "\b" every dot of "a.a.a…" was a new start.
_URL = re.compile(r"https?://\S+|www\.\S+|(?<![\w.-])[\w-]+(?:\.[\w-]+)*\.(?:gov|gov\.uk|govt\.nz|gc\.ca|gov\.au|"
                  r"edu|org|ie|nl|de|ca)\b\S*")
_CITATION = re.compile(r"\[\d+(?:\s*[,–-]\s*\d+)*\]")
# An ISO date after "as of" is a source's stamp, metadata rather than advice ("as of 2025-01-01"); any other
# ISO date is a claim: "The deadline to apply ... through Campus France is 2025-12-31" was served unmarked
# (lead's reading, session 5) while every ISO date was blanked.
_ISO_DATE = re.compile(r"\b(?:19|20)\d\d-[01]\d-[0-3]\d\b")
_ISO_STAMP = re.compile(r"\b(?:as\s+(?:of|at)|updated|checked|retrieved|accessed|review\s+after|last\s+reviewed)"
                        r"[\s:]*(?:on\s+)?(?P<date>(?:19|20)\d\d-[01]\d-[0-3]\d)\b", re.IGNORECASE)


def auditable_text(text: str) -> str:
    """The text with the sources list, URLs, citation markers and ISO "as of" dates blanked out.

    Blanked, not removed: the masked text has the same length, so claim spans index the original.
    """
    masked = text
    m = _SOURCES_HEADING.search(masked)
    if m:
        # The blank lines above the heading, all but the first newline, are blanked with it (as the former
        # "^\\s*" heading pattern did).
        kept = len(masked[:m.start()].rstrip())
        start = masked.find("\n", kept) + 1 if kept else 0
        masked = masked[:start] + " " * (len(masked) - start)
    for pat in (_URL, _CITATION):
        masked = pat.sub(lambda mm: " " * len(mm.group(0)), masked)
    for m in _ISO_STAMP.finditer(masked):
        masked = masked[:m.start("date")] + " " * len(m.group("date")) + masked[m.end("date"):]
    return masked


_SENTENCE_END = re.compile(r"(?<=[.!?\]])\s+(?=[A-Z*#\-\d\[])|\n+")
_SENTENCE_END_ALTS = re.compile(r"(?<=[.!?\]])(\s+)(?=[A-Z*#\-\d\[])|(\n+)")  # the same, telling which part matched


class SentenceIndex:
    """Sentence bounds of one text at any position in O(log n): the breaks are found once.

    Scanning from the start of the text for every claim made the audit quadratic in its length. The bounds are
    exactly those of scanning ``text[:pos]`` for the last break (a break whose look-ahead character lies at or
    after ``pos`` does not count there) and ``text[pos:]`` for the next one.
    """

    def __init__(self, text: str):
        self.text = text
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.lookahead: list[bool] = []  # the break needs the character after it (not a plain run of newlines)
        for m in _SENTENCE_END_ALTS.finditer(text):
            self.starts.append(m.start())
            self.ends.append(m.end())
            self.lookahead.append(m.group(1) is not None)

    def bounds(self, pos: int) -> tuple[int, int]:
        """The sentence (or bullet / line) around ``pos``."""
        j = bisect_left(self.starts, pos) - 1  # the last break that starts before pos
        if j < 0:
            return 0, self.starts[0] if self.starts else len(self.text)
        s, e = self.starts[j], self.ends[j]
        if e < pos or (e == pos and not self.lookahead[j]):
            start = e
        else:
            # The break reaches pos: cut there, only its newlines still end a line.
            nl = self.text.rfind("\n", s, pos)
            start = nl + 1 if nl >= 0 else (self.ends[j - 1] if j > 0 else 0)
        if e > pos:  # pos inside the break: the next newline in it ends the sentence
            nl = self.text.find("\n", pos, e)
            if nl >= 0:
                return start, nl
        return start, self.starts[j + 1] if j + 1 < len(self.starts) else len(self.text)


@lru_cache(maxsize=16)
def sentence_index(text: str) -> SentenceIndex:
    return SentenceIndex(text)


def sentence_bounds(text: str, pos: int) -> tuple[int, int]:
    """The sentence (or bullet / line) around ``pos``."""
    return sentence_index(text).bounds(pos)


class Spans:
    """Non-overlapping [start, end) spans with an O(log n) overlap test (a list scan made extraction quadratic)."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []

    def overlaps(self, start: int, end: int) -> bool:
        i = bisect_left(self.starts, end) - 1  # the last span starting before ``end``: it ends latest of those
        return i >= 0 and self.ends[i] > start

    def add(self, start: int, end: int) -> None:
        insort(self.starts, start)
        insort(self.ends, end)


# ------------------------------------------------------------------------------------------------- extractors

_MONEY_PREFIX = re.compile(
    r"(?<![\w$£€])(?P<cur>US\$|USD\s?\$?|CA\$|C\$|CAD\s?\$?|A\$|AU\$|AUD\s?\$?|NZ\$|NZD\s?\$?|S\$|SGD\s?|£|€|\$|"
    r"GBP\s?|EUR\s?)\s?(?P<num>" + NUM + r")(?:\s?(?P<mult>k\b|K\b|million\b|m\b|bn\b))?")
_MONEY_SUFFIX = re.compile(r"(?<![\w.,])(?P<num>" + NUM + r")\s?(?P<mult>k\b|million\b)?\s?(?P<cur>GBP|USD|CAD|AUD|NZD|"
                           r"EUR|SGD|euros?|pounds?(?: sterling)?|"
                           r"(?:Canadian |Australian |New Zealand |US |Singapore )?"
                           r"dollars?)\b", re.IGNORECASE)
_CURRENCY_CODES = {"£": "GBP", "€": "EUR", "$": "$", "US$": "USD", "CA$": "CAD", "C$": "CAD", "A$": "AUD",
                   "AU$": "AUD", "NZ$": "NZD", "S$": "SGD"}
_WORD_CURRENCY = {"euro": "EUR", "euros": "EUR", "pound": "GBP", "pounds": "GBP", "pound sterling": "GBP",
                  "pounds sterling": "GBP", "dollar": "$", "dollars": "$"}
_DOLLAR_OF = {"USD": "USD", "CAD": "CAD", "AUD": "AUD", "NZD": "NZD", "SGD": "SGD"}


def _currency(raw: str) -> str:
    r = raw.strip()
    if r in _CURRENCY_CODES:
        return _CURRENCY_CODES[r]
    r_low = r.lower()
    if r_low in _WORD_CURRENCY:
        return _WORD_CURRENCY[r_low]
    for prefix, code in (("canadian", "CAD"), ("australian", "AUD"), ("new zealand", "NZD"), ("us", "USD"),
                         ("singapore", "SGD")):
        if r_low.startswith(prefix):
            return code
    return r.replace("$", "").strip().upper()


_MULT = {"k": 1e3, "m": 1e6, "million": 1e6, "bn": 1e9}


def _money(text: str) -> Iterator[tuple[int, int, dict]]:
    for pat in (_MONEY_PREFIX, _MONEY_SUFFIX):
        for m in pat.finditer(text):
            amount = parse_number(m.group("num")) * _MULT.get((m.group("mult") or "").lower(), 1)
            end = m.end()
            period = None
            pm = _PERIOD_AFTER.match(text, end)
            if pm:
                period = PERIODS[(pm.group(1) or pm.group(2)).lower()]
                end = pm.end()
            yield m.start(), end, {"amount": amount, "currency": _currency(m.group("cur")), "period": period}


_PERCENT = re.compile(r"(?<![\w.,])(?P<num>" + NUM + r")\s?(?:%|percent\b|per cent\b)", re.IGNORECASE)
_DURATION = re.compile(
    r"(?<![\w.,£$€-])(?P<num>" + NUM + "|" + _WORDNUM + r")(?:\s|-)(?:(?:full|half|calendar|working|business)\s)?"
    r"(?P<unit>hours?|days?|weeks?|months?|years?)(?![\w-])"
    r"(?:\s*(?:per|a|an|each|every|/|in\s+a|in\s+any)\s*(?P<per>week|fortnight|month|year))?", re.IGNORECASE)
# Day and month sit on one line: a list number on the next line is not a day.
_DATE_DM = re.compile(r"(?<![\w.])(?P<day>[0-3]?\d)(?:st|nd|rd|th)?[^\S\n]+(?:of[^\S\n]+)?(?P<month>" + _MONTH +
                      r")(?:,?\s+(?P<year>(?:19|20)\d\d))?(?!\w)")
_DATE_MD = re.compile(r"(?<!\w)(?P<month>" + _MONTH + r")[^\S\n]+(?P<day>[0-3]?\d)(?:st|nd|rd|th)?(?!\s*(?:%|\d|hours?|"
                      r"days?|weeks?|months?|years?))(?:,?\s+(?P<year>(?:19|20)\d\d))?(?![\w.,]\d)")


def _percentages(text: str) -> Iterator[tuple[int, int, dict]]:
    for m in _PERCENT.finditer(text):
        yield m.start(), m.end(), {"amount": parse_number(m.group("num"))}


def _durations(text: str) -> Iterator[tuple[int, int, dict]]:
    for m in _DURATION.finditer(text):
        unit = m.group("unit").lower().rstrip("s") + "s"
        per = (m.group("per") or "").lower() or None
        yield m.start(), m.end(), {"amount": parse_number(m.group("num")), "unit": unit, "per": per}


def _dates(text: str) -> Iterator[tuple[int, int, dict]]:
    for m in _ISO_DATE.finditer(text):  # "as of" stamps are blanked before extraction (auditable_text)
        year, month, day = (int(x) for x in m.group(0).split("-"))
        if 1 <= month <= 12 and 1 <= day <= 31:
            yield m.start(), m.end(), {"month": month, "day": day, "year": year}
    for pat in (_DATE_DM, _DATE_MD):
        for m in pat.finditer(text):
            day = int(m.group("day"))
            month = MONTHS[m.group("month").lower().rstrip(".")]
            if not 1 <= day <= 31:
                continue
            year = int(m.group("year")) if m.group("year") else None
            yield m.start(), m.end(), {"month": month, "day": day, "year": year}


_SCORE_AFTER = re.compile(r"(?<![\w.,])(" + NUM + r")(?![.,]?\d)(?!\s*(?:%|percent|per\s+cent|hours?|days?|weeks?|"
                          r"months?|years?|[$£€]|(?:old|students|applicants|people|universities|"
                          r"points?\s+(?:higher|lower|more|less))\b))")
_SCORE_THEN_TEST = re.compile(r"(?<![\w.,])(" + NUM + r")\s+(?:overall\s+)?(?:(?:band|score|points?)\s+)?"
                              r"(?:in|on|for)\s+(?:the\s+)?(" + "|".join(TEST_NAMES) + r")(?![\w-])")
_SCORE_STOP = re.compile(r"[;\n]|\.\s|\.$|\)\s*,|,\s+and\b|\b(?:CLB|NCLC|CEFR|CEF)\b|"
                         r"\b(?:and|but|while|whereas)\b(?=\s+(?:a|an|the|most|some|many)\b)")


def _scores(text: str) -> Iterator[tuple[int, int, dict]]:
    """Numbers attached to a test name: 'IELTS 6.5', 'TOEFL iBT score of at least 90 (no section below 20)'."""
    tests = list(_TEST_RE.finditer(text))
    for i, tm in enumerate(tests):
        test = canonical_test(tm.group(1))
        limit = tests[i + 1].start() if i + 1 < len(tests) else len(text)
        stop = _SCORE_STOP.search(text, tm.end(), limit)
        window_end = min(stop.start() if stop else limit, tm.end() + 90)
        first = True
        for nm in _SCORE_AFTER.finditer(text, tm.end(), window_end):
            if _SCORE_THEN_TEST.match(text, nm.start()):
                continue  # "IELTS 6.5 or 90 on the TOEFL": the 90 belongs to the test after it
            score = parse_number(nm.group(1))
            if 1990 <= score <= 2035 and float(score).is_integer() and test not in ("SAT", "UCAT"):
                continue  # a year, not a score
            # the first score carries the test name in its span; later ones ("no band below 5.5") are the number
            yield (tm.start() if first else nm.start()), nm.end(), {"test": test, "score": score}
            first = False
    # "6.5 in IELTS", "a score of 100 on the TOEFL"
    for m in _SCORE_THEN_TEST.finditer(text):
        yield m.start(), m.end(), {"test": canonical_test(m.group(2)), "score": parse_number(m.group(1))}


# ------------------------------------------------------------------------------------------------- named things

ENTITY_HEADS = {
    "scholarship": "scholarship", "scholarships": "scholarship", "fellowship": "scholarship",
    "fellowships": "scholarship", "award": "scholarship", "awards": "scholarship", "grant": "scholarship",
    "grants": "scholarship", "bursary": "scholarship", "bursaries": "scholarship", "studentship": "scholarship",
    "visa": "visa", "visas": "visa", "permit": "visa", "route": "visa", "pass": "visa",
    "programme": "programme", "program": "programme", "scheme": "programme", "initiative": "programme",
}
_HEAD_RE = re.compile(r"\b(Scholarships?|Fellowships?|Awards?|Grants?|Bursary|Bursaries|Studentship|[Vv]isas?|"
                      r"Permit|Route|Programme|Program|Scheme|Initiative|Pass)\b")
# A name is a run of capitalised words (codes and numbers allowed) with "of", "and", "&" or "de" between them.
_CAP_WORD = re.compile(r"^(?:[A-Z][\w’'&+.-]*|\d{3})$")
_INNER_CONNECTORS = {"of", "and", "&", "de"}
_CONNECTORS = {"of", "for", "the", "and", "de", "in", "&", "a", "an"}
_CODE_RE = re.compile(r"(?<![\w-])(Stamp\s+\d[A-Z]?|[Ss]ubclass\s+\d{3}|Tier\s+\d|[FJMH]-\d[AB]?|D-\d{1,2})"
                      r"(?![\w-])")
_PRONOUNS = re.compile(r"\b(?:Your|Our|My|Their|You|We|I|How|Why|What|When|Where|Which)\b")
_LINE_START = re.compile(r"(?:^|[.!?:]\s+|\n)[\s>#*\-+\d.)]*$")

# Words that make a name a category ("Merit Scholarships", "Student Visa") rather than a specific thing.
GENERIC_WORDS = frozenset("""
a an the of for and in de our your their its this these that those such other various many most some all any
merit merit-based need-based university universities college government governmental external internal
international national regional local private public departmental department faculty school partial full
fully funded entrance research academic student students study work working tourist visitor visit general
postgraduate undergraduate graduate doctoral masters master's bachelor's bachelors phd mba msc ms ma bsc ba
degree tuition fee fees funding travel living cost costs early late new
""".split())
_COUNTRY_WORDS = frozenset(
    {w for name in DESTINATIONS.values() for w in name.lower().split()} |
    {"uk", "us", "usa", "u.s.", "u.k.", "british", "american", "canadian", "australian", "german", "irish", "dutch",
     "french", "japanese", "swedish", "danish", "finnish", "norwegian", "singaporean", "korean", "zealand",
     "england", "scotland", "wales", "britain", "holland", "eu", "eea", "schengen"})
_HEAD_WORDS = frozenset(ENTITY_HEADS)
_DEGREE_WORDS = re.compile(r"\b(MBA|MSc|MS|MA|MEng|PhD|BSc|BA|Master'?s?|Bachelor'?s?|Degree|Data|Science|"
                           r"Engineering|Business|Medicine|Law|Computer|Management|Finance|Economics)\b")


_ABBREVIATED_COUNTRIES = {"uk", "us", "usa", "u.s.", "u.k.", "eu", "eea"}


def name_tokens(name: str, level: int = 0) -> frozenset[str]:
    """The words that identify a name, singularised.

    ``level`` 0: distinctive words only — no head word, country or generic adjective ("Chevening").
    ``level`` 1: also full country names, for schemes named after one ("Holland Scholarship", "Australia Awards").
    ``level`` 2: also generic words, for long names made only of them ("International Graduate Work Visa").
    """
    words = re.findall(r"[a-z0-9][a-z0-9'+.-]*", name.lower().replace("’", "'"))
    out = set()
    for w in words:
        w = w.removesuffix("'s").strip("'.")
        if not w or w in _HEAD_WORDS or w in _CONNECTORS:
            continue
        if w in _COUNTRY_WORDS and (level == 0 or w in _ABBREVIATED_COUNTRIES):
            continue
        if w in GENERIC_WORDS and level < 2:
            continue
        if len(w) < 2:
            continue  # "F, M and J visas", "Lester B. Pearson": single letters name nothing on their own
        out.add(w.rstrip("s") if len(w) > 4 and not w.endswith("ss") else w)
    return frozenset(out)


def claim_tokens(name: str, kind: str) -> tuple[frozenset[str], int]:
    """Tokens and level a name is matched at, or (empty, 0) when it is a category rather than a name."""
    tokens = name_tokens(name)
    if tokens:
        return tokens, 0
    if kind == "scholarship":
        tokens = name_tokens(name, 1)
        if tokens:
            return tokens, 1
    full = name_tokens(name, 2)
    if kind in ("visa", "programme") and len(full) >= 3:
        return full, 2
    return frozenset(), 0


def _starts_sentence(text: str, pos: int) -> bool:
    before = text[max(0, pos - 8):pos]
    if re.search(r"(?:^|\s)[A-Z]\.\s+$", before):
        return False  # "Lester B. Pearson": an initial, not the end of a sentence
    return pos == 0 or bool(_LINE_START.search(before))


def _name_run(text: str, head_start: int) -> list[tuple[int, int]]:
    """Spans of the capitalised words leading up to a head word, nearest last."""
    run: list[tuple[int, int]] = []
    for wm in reversed(list(re.finditer(r"\S+", text[max(0, head_start - 100):head_start]))):
        s, e = wm.span()
        s += max(0, head_start - 100)
        e += max(0, head_start - 100)
        word = text[s:e]
        core = word.strip("*_\"“”(")
        if word.rstrip("*_\"”").endswith((".", ":", ",", ";", ")")) and run:
            break  # punctuation ends the name before it
        if core.lower() in _INNER_CONNECTORS and run:
            continue  # "Government of Ireland ...": kept only if a capitalised word comes before it
        if not _CAP_WORD.match(core) or len(run) >= 7:
            break
        run.insert(0, (s + word.index(core[0]), e))
        if _starts_sentence(text, s):
            break  # a sentence or bullet starts here: nothing before belongs to the name
    return run


def _entities(text: str) -> Iterator[tuple[int, int, dict]]:
    seen = Spans()
    for m in _CODE_RE.finditer(text):
        code = re.sub(r"\s+", " ", m.group(1))
        seen.add(m.start(), m.end())
        yield m.start(), m.end(), {"name": code, "type": "visa", "variants": [code], "level": 0}
    for hm in _HEAD_RE.finditer(text):
        head = hm.group(1)
        run = _name_run(text, hm.start())
        if not run:
            continue
        start, end = run[0][0], hm.end()
        if seen.overlaps(start, end):
            continue
        name = re.sub(r"[*_]+", "", text[start:end]).strip()
        kind = ENTITY_HEADS[head.lower()]
        if kind == "programme" and _DEGREE_WORDS.search(name):
            continue  # "the Cambridge MBA Program" is a degree programme, not a named funding or visa scheme
        variants = [name]
        sentence_initial = _starts_sentence(text, start)
        if sentence_initial and len(run) >= 2:
            # "Consider Chevening Scholarships": the capital of a sentence's first word says nothing
            variants.append(re.sub(r"[*_]+", "", text[run[1][0]:end]).strip())
        tokens, level = claim_tokens(variants[-1], kind)
        if not tokens or all(t.isdigit() for t in tokens):
            continue  # a category ("Merit Scholarships", "Student Visa"), not a name
        if _PRONOUNS.search(name):
            continue  # "Demonstrating Your Understanding of the Program" is a title-case heading, not a name
        if len(variants) > 1:
            start = run[1][0]
        seen.add(start, end)
        yield start, end, {"name": variants[-1], "type": kind, "variants": variants, "level": level}


# ------------------------------------------------------------------------------------------------- entry point

# Order matters where spans compete: a date ("23 March 2024") is not an IELTS score that happens to follow "IELTS".
_EXTRACTORS = ((ClaimKind.MONEY, _money), (ClaimKind.DATE, _dates), (ClaimKind.SCORE, _scores),
               (ClaimKind.PERCENTAGE, _percentages), (ClaimKind.DURATION, _durations), (ClaimKind.ENTITY, _entities))


def extract_claims(text: str, skip_numbers: set[float] | None = None) -> list[Claim]:
    """Every checkable claim in ``text``, in reading order.

    ``skip_numbers`` are figures the student gave in the question (their budget, their IELTS): an answer that
    repeats them is not asserting anything about the world.
    """
    masked = auditable_text(text)
    skip_numbers = skip_numbers or set()
    claims: list[Claim] = []
    taken = Spans()
    sentences = SentenceIndex(masked)
    cued: dict[tuple[int, int], bool] = {}       # one look for advising words per sentence, not per claim
    originals: dict[tuple[int, int], str] = {}   # and one copy of each sentence
    for kind, extractor in _EXTRACTORS:
        for start, end, value in extractor(masked):
            if taken.overlaps(start, end):
                continue  # one span, one claim: "£1,483 per month" is money, not also a duration
            number = value.get("amount", value.get("score"))
            if number is not None and number in skip_numbers:
                continue
            bounds = sentences.bounds(start)
            if kind in (ClaimKind.DURATION, ClaimKind.PERCENTAGE):
                if bounds not in cued:
                    sentence = masked[bounds[0]:bounds[1]]
                    cued[bounds] = bool(_DOMAIN_CUES.search(sentence) or _MONEY_CUE.search(sentence))
                if not cued[bounds]:
                    continue
            if kind == ClaimKind.DURATION and value["unit"] == "years" and value["amount"] >= 1900:
                continue
            taken.add(start, end)
            if bounds not in originals:
                originals[bounds] = text[bounds[0]:bounds[1]]
            claims.append(Claim(text=text[start:end], kind=kind, span=(start, end), value=value,
                                sentence=originals[bounds]))
    claims.sort(key=lambda c: c.span)
    return claims


def numbers_in(text: str) -> set[float]:
    """Every figure written in ``text`` (for skipping the student's own numbers)."""
    out = set()
    for m in re.finditer(NUM, text):
        try:
            out.add(parse_number(m.group(0)))
        except ValueError:
            continue
    return out
