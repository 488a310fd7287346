"""Which destination a piece of text is about.

Retrieval uses it to rank a mentioned country's facts first, the audit to decide which country's facts a
claim must agree with, and synthesis to tag conversations. Names, demonyms, big student cities and visa
names all count: "Stamp 2" is as clear a signal for Ireland as the word "Ireland".
"""
from __future__ import annotations

import re
from functools import lru_cache

from .schema import DESTINATIONS

# Lower-case cues per ISO code. Multi-word cues are matched as phrases on word boundaries.
CUES: dict[str, tuple[str, ...]] = {
    "GB": ("uk", "u.k.", "united kingdom", "britain", "great britain", "british", "england", "english university",
           "scotland", "scottish", "wales", "welsh", "northern ireland", "london", "manchester", "edinburgh",
           "glasgow", "birmingham", "oxford", "cambridge", "leeds", "bristol", "ukvi", "gov.uk", "graduate route",
           "tier 4", "immigration health surcharge", "ihs", "nhs", "cas", "chevening", "ucas", "uk visa"),
    "US": ("us", "u.s.", "usa", "u.s.a.", "united states", "america", "american", "new york", "boston",
           "california", "los angeles", "chicago", "san francisco", "texas", "mit", "stanford", "harvard",
           "f-1", "f1", "j-1", "i-20", "sevis", "opt", "stem opt", "cpt", "uscis", "fulbright", "fafsa"),
    "CA": ("canada", "canadian", "toronto", "vancouver", "montreal", "ottawa", "quebec", "calgary", "ontario",
           "british columbia", "study permit", "pgwp", "post-graduation work permit", "ircc", "dli", "gic",
           "caq"),
    "AU": ("australia", "australian", "sydney", "melbourne", "brisbane", "perth", "adelaide", "canberra",
           "subclass 500", "subclass 485", "oshc", "coe", "home affairs", "temporary graduate visa",
           "australia awards"),
    "DE": ("germany", "german", "berlin", "munich", "hamburg", "frankfurt", "cologne", "heidelberg",
           "blocked account", "sperrkonto", "daad", "anmeldung", "aps", "uni-assist", "studienkolleg",
           "bafög"),
    "IE": ("ireland", "irish", "dublin", "cork", "galway", "limerick", "stamp 2", "stamp 1g", "irp",
           "gnib", "third level graduate programme"),
    "NL": ("netherlands", "dutch", "holland", "amsterdam", "rotterdam", "utrecht", "the hague", "leiden",
           "delft", "eindhoven", "groningen", "nuffic", "ind", "orientation year", "zoekjaar",
           "holland scholarship"),
    "NZ": ("new zealand", "kiwi", "auckland", "wellington", "christchurch", "otago", "dunedin",
           "immigration new zealand", "post-study work visa nz", "manaaki", "aotearoa"),
    "FR": ("france", "french", "paris", "lyon", "campus france", "titre de séjour", "vls-ts"),
    "JP": ("japan", "japanese", "tokyo", "osaka", "kyoto", "mext", "jlpt", "certificate of eligibility"),
    "SE": ("sweden", "swedish", "stockholm", "gothenburg", "uppsala", "lund", "migrationsverket"),
    "DK": ("denmark", "danish", "copenhagen", "aarhus"),
    "FI": ("finland", "finnish", "helsinki", "migri"),
    "NO": ("norway", "norwegian", "oslo", "udi"),
    "SG": ("singapore", "singaporean", "student's pass", "ica singapore", "nus", "ntu"),
    "KR": ("south korea", "korea", "korean", "seoul", "busan", "d-2 visa", "gks"),
    "MY": ("malaysia", "malaysian", "kuala lumpur", "penang", "johor bahru", "emgs", "education malaysia",
           "study in malaysia"),
    "CN": ("china", "chinese mainland", "mainland china", "beijing", "shanghai", "guangzhou", "shenzhen",
           "wuhan", "hangzhou", "nanjing", "x1 visa", "x2 visa", "chinese government scholarship", "tsinghua",
           "peking university", "fudan", "study in china"),
    "AE": ("uae", "u.a.e.", "united arab emirates", "emirates", "dubai", "abu dhabi", "sharjah", "emirati",
           "golden visa"),
    "HK": ("hong kong", "hku"),
    "IT": ("italy", "italian", "rome", "milan", "bologna", "turin", "florence", "padua"),
    "ES": ("spain", "spanish university", "madrid", "barcelona", "valencia", "seville", "salamanca"),
    "CH": ("switzerland", "swiss", "zurich", "geneva", "lausanne", "eth zurich", "epfl", "basel"),
    "AT": ("austria", "austrian", "vienna", "innsbruck", "graz"),
    "BE": ("belgium", "belgian", "brussels", "leuven", "ghent", "antwerp"),
    "PL": ("poland", "warsaw", "krakow", "kraków", "wroclaw", "Polish"),
}

# Cues that are ordinary English words or too ambiguous in running text unless written in upper case
# ("us" the pronoun, "ind", "cas"...). They only count when the text has them in capitals.
# ("BRP" is left out on purpose: it is the UK's residence permit card and the Dutch population register.)
_CASE_SENSITIVE = {"us", "opt", "cpt", "cas", "ind", "coe", "irp", "dli", "gic", "ihs", "nhs", "aps", "udi",
                   "mit", "caq", "nus", "ntu", "gks", "emgs", "hku", "Polish"}


@lru_cache(maxsize=1)
def _matchers() -> tuple[re.Pattern, re.Pattern, dict[str, str]]:
    """Two alternations (case-insensitive cues, upper-case-only cues) and a cue → ISO code map.

    One regex pass per text instead of one per cue: the audit calls this for every claim.
    """
    to_code: dict[str, str] = {}
    loose, strict = [], []
    for code, cues in CUES.items():
        for cue in (*cues, DESTINATIONS[code].lower()):
            key = (cue if cue[:1].isupper() else cue.upper()) if cue in _CASE_SENSITIVE else cue.lower()
            to_code.setdefault(key, code)
            (strict if cue in _CASE_SENSITIVE else loose).append(re.escape(key))

    def alternation(xs: list[str]) -> str:
        return "|".join(sorted(set(xs), key=len, reverse=True))  # longest first: "new york" before "york"

    loose_re = re.compile(r"(?<![\w-])(?:" + alternation(loose) + r")(?![\w-])", re.IGNORECASE)
    strict_re = re.compile(r"(?<![\w-])(?:" + alternation(strict) + r")(?![\w-])")
    return loose_re, strict_re, to_code


def destination_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, ISO code) of every destination cue in ``text``, in reading order."""
    loose_re, strict_re, to_code = _matchers()
    found = [(m.start(), m.end(), to_code.get(" ".join(m.group(0).lower().split()))) for m in loose_re.finditer(text)]
    found += [(m.start(), m.end(), to_code.get(m.group(0))) for m in strict_re.finditer(text)]
    return sorted((start, end, code) for start, end, code in found if code is not None)


def destination_mentions(text: str) -> list[tuple[int, str]]:
    """(position, ISO code) of every destination cue in ``text``, in reading order."""
    return [(start, code) for start, _, code in destination_spans(text)]


# A place named as where the student comes from ("I'm from Ghana", "Indian students", "return to Nepal") is not
# the destination the question is about: "I'm a German student, can I work in Canada?" asks about Canada.
_ORIGIN_BEFORE = re.compile(
    r"(?:\bfrom|\bi'?m(?: an?)?|\bi am(?: an?)?|\bas an?|\bcitizens? of|\bnationals? of|\bborn in|"
    r"\bback home (?:in|to)|\breturn(?:ing)? (?:home )?to|\bgo(?:ing)? back to|\bmov(?:e|ing) back to|"
    r"\bhome country,?|\bmy country,?|\bpassport from)\s+(?:the\s+)?$", re.IGNORECASE)
# "Canadian students" are from Canada, but "a UK Student visa" / "the UK Graduate route" are the destination's own
# routes: with "Student" read as an origin cue, "How many hours can I work on a UK Student visa?" named no
# destination, and a Canadian fact cited for it was no longer off topic.
_ROUTE_AFTER = r"(?!\s+(?:visas?|permits?|routes?|pass(?:es)?|subclass)\b)"
_ORIGIN_AFTER = re.compile(r"^\s*(?:citizens?|nationals?|nationality|passports?(?: holders?)?|(?:students?|applicants?|"
                           r"graduates?)\b" + _ROUTE_AFTER + r"|high school|secondary school)\b", re.IGNORECASE)


def is_origin_mention(text: str, start: int, end: int) -> bool:
    """Whether the place named at ``text[start:end]`` is the student's origin rather than a destination."""
    return bool(_ORIGIN_BEFORE.search(text[max(0, start - 40):start]) or _ORIGIN_AFTER.match(text[end:end + 30]))


def detect_destinations(text: str, exclude_origins: bool = False) -> list[str]:
    """ISO codes mentioned in ``text``, most-mentioned first (ties: first mention first).

    ``exclude_origins`` drops places named as the student's origin ("I'm from Germany", "Canadian students").
    """
    counts: dict[str, int] = {}
    first: dict[str, int] = {}
    mentions = [(a, code) for a, b, code in destination_spans(text)
                if not (exclude_origins and is_origin_mention(text, a, b))]
    for pos, code in mentions:
        counts[code] = counts.get(code, 0) + 1
        first.setdefault(code, pos)
    return sorted(counts, key=lambda c: (-counts[c], first[c]))


def detect_destination(text: str) -> str | None:
    """The single destination ``text`` is about, or None when it names none."""
    found = detect_destinations(text)
    return found[0] if found else None


def normalise_destination(value: str | None) -> str | None:
    """Accept an ISO code ("gb"), a name ("United Kingdom") or a cue ("UK") and return the ISO code."""
    if value is None or not value.strip():
        return None
    v = value.strip()
    if v.upper() in DESTINATIONS:
        return v.upper()
    if v.upper() == "UK":
        return "GB"
    found = detect_destinations(v)
    if not found:
        raise ValueError(f"unknown destination {value!r}; use an ISO code from {sorted(DESTINATIONS)}")
    return found[0]


# Student cities with their country, for "a city in the wrong country" (the big ones the geo cues know).
CITIES = {
    "london": "GB", "manchester": "GB", "edinburgh": "GB", "glasgow": "GB", "birmingham": "GB", "leeds": "GB",
    "bristol": "GB", "new york": "US", "boston": "US", "los angeles": "US", "chicago": "US",
    "san francisco": "US", "toronto": "CA", "vancouver": "CA", "montreal": "CA", "ottawa": "CA",
    "calgary": "CA", "sydney": "AU", "melbourne": "AU", "brisbane": "AU", "perth": "AU", "adelaide": "AU",
    "canberra": "AU", "berlin": "DE", "munich": "DE", "hamburg": "DE", "frankfurt": "DE", "cologne": "DE",
    "heidelberg": "DE", "dublin": "IE", "cork": "IE", "galway": "IE", "limerick": "IE", "amsterdam": "NL",
    "rotterdam": "NL", "utrecht": "NL", "leiden": "NL", "delft": "NL", "eindhoven": "NL", "groningen": "NL",
    "auckland": "NZ", "wellington": "NZ", "christchurch": "NZ", "dunedin": "NZ", "paris": "FR", "lyon": "FR",
}


# Demonyms of the destinations (and the UK's nations): "Australian" says where as much as "Australia" does.
_DEMONYMS = ("british american canadian australian german irish dutch french japanese swedish danish finnish "
             "norwegian singaporean korean kiwi english scottish welsh emirati malaysian chinese italian spanish "
             "swiss austrian belgian polish").split()


@lru_cache(maxsize=1)
def place_words() -> frozenset[str]:
    """Lower-case words that only say *where*: destination names and ISO codes, their demonyms, the student
    cities of ``CITIES`` and the UAE's cities and short names (its facts' aliases are "Dubai student visa",
    "UAE student visa"). Sharing one is not sharing a topic, and a scheme name that is only these once its
    generic words are gone names no scheme."""
    words = {w for city in CITIES for w in city.split()}
    words |= {w for name in DESTINATIONS.values() for w in name.lower().split()} | {c.lower() for c in DESTINATIONS}
    return frozenset(words | set(_DEMONYMS) | {"uae", "uk", "us", "usa", "britain", "england", "dubai", "abu",
                                               "dhabi", "sharjah"})

