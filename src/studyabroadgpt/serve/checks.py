"""Checks on what a student would read, shared by the answer path, the eval metrics and the benchmarks.

Pure functions over text and the knowledge base (no model): each failure mode that an expert reader found in
real answers has one check here, and the answer path, ``sagpt eval`` and ``benchmarks/bench_answers.py`` all
call the same one, so the number a report prints is the thing the server guards against.

* ``find_loops`` / ``cut_loops`` — degenerate repetition (the same line, sentence, list item or phrase again
  and again: half of the small model's answers did this);
* ``foreign_urls`` / ``remove_foreign_urls`` — a URL that is not one of the knowledge base's source URLs (a
  made-up government address is the most harmful thing an advisor can print);
* ``unverified_entities`` — a named organisation, agency, university, programme, scholarship or test that
  neither the knowledge base nor the student's question contains ("MIT Open University", "Canadian Council
  of Scholarships");
* ``off_topic_sources`` — a cited fact that is not about what the student asked (another country, nothing in
  common with the question, a retrieval score under the calibrated threshold);
* ``says_no_information`` — does the answer say plainly that it has no official information, and send the
  student to an official source (what an out-of-scope question must get).
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any, Iterable

# ------------------------------------------------------------------------------------------------- loops

_BULLET = re.compile(r"^\s*(?:[-*+•]|\d{1,3}[.)]|[a-z][.)]|#{1,6})\s*")
# Sentence ends and line breaks; not the "2." that numbers a list item.
_UNIT_SPLIT = re.compile(r"(?<=[.!?])(?<!^\d\.)(?<!^\d\d\.)(?<!^\s\d\.)(?<!^\s\s\d\.)[ \t]+|\n+", re.MULTILINE)
_WORD = re.compile(r"[\w'’]+")
# A unit shorter than this is a heading or a filler ("Yes.", "**Tips**") that may repeat legitimately.
MIN_UNIT_CHARS = 16
# Repeated this many times a unit is a loop whatever its length; long units (a whole sentence copied) count
# from their second appearance: no advice needs the same 60-character sentence twice.
LOOP_REPEATS, LONG_UNIT_CHARS = 3, 60
# A phrase of >= PHRASE_WORDS words repeated back to back >= PHRASE_REPEATS times ("and the visa and the visa
# and the visa") is a loop inside one sentence.
PHRASE_WORDS, PHRASE_REPEATS = 3, 3


@dataclass
class Loop:
    unit: str          # the repeated text, as first written
    count: int         # how many times it appears
    kind: str          # "unit" (line / sentence / list item) | "phrase" (back-to-back words inside a line)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _norm_unit(unit: str) -> str:
    """A unit's identity: list markers, markdown emphasis, citations, case and spacing do not count."""
    u = _BULLET.sub("", unit)
    u = re.sub(r"\[\d+\]|[*_`>#]", "", u)
    return re.sub(r"\s+", " ", u).strip(" .,:;!?-").lower()


def _units(text: str) -> list[tuple[int, int, str]]:
    """(start, end, normalised) of every line / sentence / list item."""
    out, pos = [], 0
    for m in _UNIT_SPLIT.finditer(text + "\n"):
        start, end = pos, m.start()
        pos = m.end()
        raw = text[start:end]
        if raw.strip():
            out.append((start, end, _norm_unit(raw)))
    return out


def _phrase_runs(text: str) -> list[tuple[int, int, str, int]]:
    """(start, end, phrase, repeats) of words repeated back to back inside one line (the span to cut keeps
    the first copy)."""
    out, pos = [], 0
    for line in text.split("\n"):
        out += [(s + pos, e + pos, p, r) for s, e, p, r in _line_phrase_runs(line)]
        pos += len(line) + 1
    return out


def _line_phrase_runs(text: str) -> list[tuple[int, int, str, int]]:
    words = list(_WORD.finditer(text))
    low = [w.group(0).lower() for w in words]
    runs, i = [], 0
    while i < len(low):
        found = None
        for n in range(PHRASE_WORDS, min(12, (len(low) - i) // PHRASE_REPEATS) + 1):
            reps = 1
            while low[i + reps * n:i + (reps + 1) * n] == low[i:i + n]:
                reps += 1
            if reps >= PHRASE_REPEATS:
                found = (n, reps)
                break
        if found:
            n, reps = found
            phrase = text[words[i].start():words[i + n - 1].end()]
            runs.append((words[i + n].start(), words[i + reps * n - 1].end(), phrase, reps))
            i += reps * n
        else:
            i += 1
    return runs


# One quantifier per run of blanks ("^\s*\**\s*" backtracked quadratically: 12,000 spaces took 23 s per call).
_SOURCES = re.compile(r"^[ \t]*(?:#{1,6}[ \t]*)?(?:\*+[ \t]*)?(?:Sources|References)[ \t:*]*$", re.IGNORECASE | re.MULTILINE)


def find_loops(text: str) -> list[Loop]:
    """Repetition loops in ``text``: repeated units and back-to-back repeated phrases. A sources list at the
    end is not advice (two facts from one page are two identical lines there)."""
    m = _SOURCES.search(text)
    if m:
        kept = len(text[:m.start()].rstrip())  # blank lines above the heading go with it, as before
        text = text[:text.find("\n", kept) + 1 if kept else 0]
    counts = Counter(u for _, _, u in _units(text) if len(u) >= MIN_UNIT_CHARS)
    first: dict[str, str] = {}
    for s, e, u in _units(text):
        first.setdefault(u, text[s:e].strip())
    loops = [Loop(first[u], n, "unit") for u, n in counts.items()
             if n >= LOOP_REPEATS or (n >= 2 and len(u) >= LONG_UNIT_CHARS)]
    loops += [Loop(p, r, "phrase") for _, _, p, r in _phrase_runs(text)]
    return loops


def cut_loops(text: str) -> tuple[str, list[Loop]]:
    """``text`` with every repeated unit kept once (its first appearance) and repeated phrases said once.

    Any exact repeat of a unit of MIN_UNIT_CHARS or more goes, not only those counted as a loop: a repeated
    sentence never adds information, and cutting it costs nothing.
    """
    loops = find_loops(text)
    if not loops:
        return text, []
    seen: set[str] = set()
    drop: list[tuple[int, int]] = []
    for s, e, u in _units(text):
        if len(u) >= MIN_UNIT_CHARS and u in seen:
            drop.append((s, e))
        seen.add(u)
    drop += [(s, e) for s, e, _, _ in _phrase_runs(text)]
    merged: list[list[int]] = []
    for s, e in sorted(drop):
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    out = text
    for s, e in reversed(merged):
        # Take the whitespace before a dropped unit with it, so no empty bullets or blank runs are left behind.
        while s > 0 and out[s - 1] in " \t":
            s -= 1
        rest = out[e:]
        if s == 0 or out[s - 1] == "\n":
            rest = rest.lstrip(" \t")
        if s > 0 and out[s - 1] == "\n" and (not rest or rest[0] == "\n"):
            s -= 1
        out = out[:s] + rest
    out = re.sub(r"\n{3,}", "\n\n", out)
    return out.strip(), loops


# ------------------------------------------------------------------------------------------------- nonsense

# What SmolLM2-135M wrote when decoding pushed it off its likely path (runs/bench_decoding, real-style set):
# "a FASB-D-A-C-E-I-M-L-Y-N-S-T-Z-X-W-H-J-K-R-U-G-O-P-Q-Y-Y-Z-Y-YONA-TO-ME-AL-SO-THESIS-AND-THE-OTHER-...", and
# lists of thirty-odd countries that run to max_tokens. Real advice has hyphenated words of two to four parts
# ("state-of-the-art", "part-time"), lists of a handful of items and no word of 40 letters.
_HYPHEN_CHAIN = re.compile(r"(?<![\w-])(?:[A-Za-z0-9'’]+-){5,}[A-Za-z0-9'’]*")
_CHAR_RUN = re.compile(r"([^\s\d\-=_*#.~|])\1{5,}")
_LONG_TOKEN = re.compile(r"(?<!\S)[^\s]{40,}")
# A list item of up to three words: "Costa Rica", "the Dominican Republic".
_ITEM = re.compile(r"^\s*(?:and\s+|or\s+)?[\w'’.&()-]+(?:\s+[\w'’.&()-]+){0,2}\s*$")
RUNAWAY_ITEMS = 15
# serve/grounding.facts_block writes "[n] (Country, topic, as of YYYY-MM-DD) statement Source: title."
# (the "[n]" is sometimes dropped: "(United Kingdom, work rights, as of 2025-12-31) Students ...")
_PROMPT_ECHO = re.compile(r"(?:\[\d{1,2}\]\s*)?\([^()\n]{2,60},\s*[a-z][a-z ]{2,40},\s*as of \d{4}-\d\d-\d\d\)")
NON_WORD_SHARE, MIN_WORDS = 0.2, 25


@dataclass
class Degenerate:
    kind: str          # letter_chain | char_run | long_token | runaway_list | prompt_echo | non_words
    sample: str        # the offending text, shortened
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _short(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[:n - 1] + "…"


def _non_word(w: str) -> bool:
    """A word no language the answers are written in has: no vowel in a long lower-case word, or five
    consonants in a row ("xkcdfgh"). Acronyms (all capitals) and words with digits are left alone."""
    if w.isupper() or any(c.isdigit() for c in w) or len(w) < 4:
        return False
    low = w.lower()
    return not re.search(r"[aeiouy]", low) or bool(re.search(r"[bcdfghjklmnpqrstvwxz]{5,}", low))


def find_degenerate(text: str) -> list[Degenerate]:
    """Signs that ``text`` is not language a student can use: chains of letters joined by hyphens, one
    character over and over, "words" of 40+ characters (URLs aside), a comma list of RUNAWAY_ITEMS+ short
    items, or a high share of non-words. Repetition loops are ``find_loops``'s concern."""
    found: list[Degenerate] = []
    masked = URL_RE.sub(" ", text)
    for m in _HYPHEN_CHAIN.finditer(masked):
        found.append(Degenerate("letter_chain", _short(m.group(0)), f"{m.group(0).count('-') + 1} parts joined by "
                                "hyphens"))
    for m in _CHAR_RUN.finditer(masked):
        found.append(Degenerate("char_run", _short(m.group(0)), f"{m.group(1)!r} {len(m.group(0))} times in a row"))
    for m in _LONG_TOKEN.finditer(masked):
        if not _HYPHEN_CHAIN.search(m.group(0)):
            found.append(Degenerate("long_token", _short(m.group(0)), f"a {len(m.group(0))}-character word"))
    for sentence in re.split(r"(?<=[.!?:])\s+|\n+", masked):
        items = sentence.split(",")
        if len(items) >= RUNAWAY_ITEMS:
            short = sum(bool(_ITEM.match(i)) for i in items[1:-1])
            if short >= RUNAWAY_ITEMS - 2:
                found.append(Degenerate("runaway_list", _short(sentence.strip()), f"a list of {len(items)} items "
                                        "in one sentence"))
    m = _PROMPT_ECHO.search(text)
    if m:  # the grounding prompt's own fact lines copied out ("[1] (Germany, health cover, as of 2025-03-29) …")
        found.append(Degenerate("prompt_echo", _short(m.group(0)), "the model copied its instructions' fact list"))
    words = re.findall(r"[A-Za-z]+", masked)
    if len(words) >= MIN_WORDS:
        bad = [w for w in words if _non_word(w)]
        if len(bad) / len(words) >= NON_WORD_SHARE:
            found.append(Degenerate("non_words", _short(" ".join(bad[:8])), f"{len(bad)} of {len(words)} words are "
                                    "not words"))
    return found


# ------------------------------------------------------------------------------------------------- KB vocabulary


def kb_entries(kb: Any) -> list[Any]:
    """Facts and guidance entries of ``kb`` (guidance is optional: older KBs have facts only)."""
    return list(getattr(kb, "facts", [])) + list(getattr(kb, "guidance", []) or [])


@dataclass
class _Vocab:
    urls: set[str]
    hosts: set[str]
    phrases: list[tuple[str, ...]]
    names: list[frozenset[str]]
    acronyms: set[str]
    # Every run of up to MAX_NAME_WORDS words of every KB text, and the names by word: a name lookup is then
    # a set lookup, not a scan of the whole KB (the scan cost ~90 ms an answer once guidance was added).
    ngrams: set[tuple[str, ...]] = field(default_factory=set)
    names_by_word: dict[str, list[frozenset[str]]] = field(default_factory=dict)


MAX_NAME_WORDS = 10


def _ngrams(words: tuple[str, ...]) -> set[tuple[str, ...]]:
    return {words[i:i + n] for n in range(1, MAX_NAME_WORDS + 1) for i in range(len(words) - n + 1)}


_VOCAB: dict[int, tuple[Any, _Vocab]] = {}


def _norm_url(url: str) -> str:
    u = re.sub(r"^(?:https?://)?(?:www\.)?", "", url.strip().lower())
    u = u.split("#", 1)[0]
    return u.rstrip("/.,;:)")


def _name_words(text: str) -> tuple[str, ...]:
    """Words of a name, singularised, with "the" and "'s" dropped: the unit names are matched in."""
    out = []
    for w in re.findall(r"[a-z0-9][a-z0-9&+'’.-]*", text.lower()):
        w = w.replace("’", "'").removesuffix("'s").strip("'.-")
        if not w or w == "the":
            continue
        out.append(w[:-1] if len(w) > 4 and w.endswith("s") and not w.endswith("ss") else w)
    return tuple(out)


def vocab(kb: Any) -> _Vocab:
    cached = _VOCAB.get(id(kb))
    if cached is not None and cached[0] is kb:
        return cached[1]
    urls, hosts, phrases, names, acronyms = set(), set(), [], [], set()
    for e in kb_entries(kb):
        url = str(getattr(e, "source_url", "") or "")
        if url:
            urls.add(_norm_url(url))
            hosts.add(_norm_url(url).split("/", 1)[0])
        texts = [getattr(e, "statement", ""), getattr(e, "source_title", ""), getattr(e, "title", "") or "",
                 " ".join(getattr(e, "steps", []) or []), " ".join(getattr(e, "watch_out", []) or [])]
        for ent in getattr(e, "entities", []) or []:
            for n in [ent.name, *ent.aliases]:
                texts.append(n)
                names.append(frozenset(_name_words(n)))
        for t in texts:
            if t:
                phrases.append(_name_words(t))
                acronyms.update(re.findall(r"\b[A-Z][A-Z0-9]{1,7}\b", t))
    v = _Vocab(urls, hosts, phrases, [n for n in names if n], acronyms)
    for ph in phrases:
        v.ngrams |= _ngrams(ph)
    for n in v.names:
        for w in n:
            v.names_by_word.setdefault(w, []).append(n)
    _VOCAB[id(kb)] = (kb, v)
    return v


# ------------------------------------------------------------------------------------------------- URLs

URL_RE = re.compile(
    r"https?://[^\s<>()\[\]\"']+|www\.[^\s<>()\[\]\"']+|"
    r"\b[a-z0-9][\w-]*(?:\.[\w-]+)*\.(?:gov\.uk|ac\.uk|org\.uk|co\.uk|govt\.nz|ac\.nz|gov\.au|edu\.au|gc\.ca|"
    r"gov|edu|org|com|net|info|io|ie|nl|de|ca|au|nz|uk|us|fr|jp|se|dk|fi|no|sg|kr|in|bd|uz|pk|ng)\b"
    r"(?:/[^\s<>()\[\]\"']*)?", re.IGNORECASE)
_MD_LINK = re.compile(r"\[([^\]\n]{1,200})\]\(([^)\s]+)\)")


@dataclass
class UrlFinding:
    url: str
    span: tuple[int, int]
    reason: str = "not a source URL of the knowledge base"


def _url_known(url: str, v: _Vocab) -> bool:
    n = _norm_url(url)
    if n in v.urls:
        return True
    # A bare host ("gov.uk", "canada.ca") names the official site a KB source lives on: pointing there is
    # the advice we want. A path on that host the KB does not hold may be invented, so it is not accepted.
    return "/" not in n and n in v.hosts


def foreign_urls(text: str, kb: Any) -> list[UrlFinding]:
    """URLs (and bare web addresses) in ``text`` that are not source URLs of ``kb``."""
    v = vocab(kb)
    found = []
    for m in URL_RE.finditer(text):
        url = m.group(0).rstrip(".,;:!?*_")
        if "@" in text[max(0, m.start() - 1):m.start()]:
            continue  # the domain of an e-mail address is handled as part of it below
        if re.fullmatch(r"[\d.]+", url) or not re.search(r"[a-z]", url, re.IGNORECASE):
            continue  # "6.5", "1.000": numbers, not addresses
        if not _url_known(url, v):
            found.append(UrlFinding(url, (m.start(), m.start() + len(url))))
    return found


def remove_foreign_urls(text: str, kb: Any) -> tuple[str, list[dict[str, Any]]]:
    """``text`` without URLs that are not KB source URLs; a markdown link keeps its words, loses its target."""
    v = vocab(kb)
    changes: list[dict[str, Any]] = []

    def link(m: re.Match) -> str:
        if _url_known(m.group(2), v):
            return m.group(0)
        changes.append({"action": "removed_url", "claim": m.group(2), "reason": "not a source URL of the "
                        "knowledge base"})
        return m.group(1)

    text = _MD_LINK.sub(link, text)
    for f in sorted(foreign_urls(text, kb), key=lambda f: f.span[0], reverse=True):
        s, e = f.span
        # "(www.denei.govt.nz)" and "at www.x.org." lose the address and the brackets or "at" around it.
        if s > 0 and text[s - 1] in "(<" and e < len(text) and text[e] in ")>":
            s, e = s - 1, e + 1
        before = text[:s]
        m = re.search(r"\s(?:at|on|via|visit|see|from)\s*(?:their\s+website\s*)?:?\s*$", before, re.IGNORECASE)
        if m and not re.search(r"\w", text[e:e + 1]):
            before = before[:m.start()]
        text = before.rstrip(" \t") + text[e:]
        changes.append({"action": "removed_url", "claim": f.url, "reason": f.reason})
    text = re.sub(r"[ \t]+([.,;:])", r"\1", text)
    text = re.sub(r"\(\s*\)", "", text)
    return text, changes


# ------------------------------------------------------------------------------------------------- named things

# Words that make a capitalised run the name of an organisation, institution, scheme or test.
ORG_HEADS = frozenset("""
university universities college institute institution council department ministry agency authority commission
board foundation office service services bureau centre center association trust fund academy school embassy
consulate scholarship scholarships fellowship fellowships award awards grant grants bursary bursaries programme
program scheme initiative test exam examination certificate federation society organisation organization act
""".split())
# Capitalised words that say nothing about which body is meant ("International Office", "Graduate School").
GENERIC = frozenset("""
a an the of for and in de on at to our your their its this these that those such other various many most some
all any each every international national regional local private public state federal government official
student students study graduate postgraduate undergraduate doctoral research academic career careers admission
admissions application applications office service services support centre center department faculty school
college university universities institute council board agency authority commission ministry foundation
programme program scheme initiative scholarship scholarships fellowship fellowships award awards grant grants
bursary bursaries fund test exam examination certificate trust association society merit need-based merit-based
top leading best good great major new first main key financial aid funding english language housing
accommodation health welfare wellbeing counselling counseling writing learning library computer science
business engineering medicine law arts education master's masters bachelor's bachelors phd mba msc degree
course courses entrance exchange global world
""".split())
_SENT_START_WORDS = frozenset("""
contact visit check apply consider see look try ask use join attend email reach explore research find read
review talk speak also many most some each every if when while for in at on with by from as after before
then finally first second third next however additionally moreover furthermore both either you your we our
they their it this these those there here what which who how why where yes no note remember make get take
""".split())
_CAP = re.compile(r"^(?:[A-Z][\w’'&.+-]*|[A-Z]{2,}\w*)$")
_INNER = {"of", "for", "and", "&", "de", "the", "in", "on"}
_ACRONYM_IN_PARENS = re.compile(r"\(\s*([A-Z][A-Z0-9&]{1,9})\s*\)")
_TEST_CUE = re.compile(r"\b([A-Z][A-Z0-9]{1,7})\s+(?:test|exam|examination|score|certificate)s?\b")


@dataclass
class EntityFinding:
    name: str
    span: tuple[int, int]
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "span": list(self.span), "reason": self.reason}


def _runs(text: str) -> Iterable[tuple[int, int, list[tuple[int, int, str]]]]:
    """Runs of capitalised words (joined by of / for / and / &), as (start, end, [(s, e, word)])."""
    words = [(m.start(), m.end(), m.group(0)) for m in re.finditer(r"[^\s,;:!?()\[\]\"“”]+", text)]
    run: list[tuple[int, int, str]] = []

    def flush():
        while run and run[-1][2].lower() in _INNER:
            run.pop()
        if run:
            yield run[0][0], run[-1][1], list(run)
        run.clear()

    prev_end, ended = 0, False
    for s, e, w in words:
        core = w.strip("*_'’.")
        gap = text[prev_end:s]
        broken = bool(run) and (re.search(r"[,;:!?()\[\]\"“”\n]", gap) or ended)
        if broken:
            yield from flush()
        if core and (_CAP.match(core) or (run and core.lower() in _INNER)):
            run.append((s, s + len(w.rstrip("*_.,")), core))
        else:
            yield from flush()
        # "University. Also": a full stop ends the name (an initial such as "B." is too short to matter here)
        ended = w.rstrip("*_'’").endswith(".") and len(core) > 2
        prev_end = e
    yield from flush()


def _at_sentence_start(text: str, pos: int) -> bool:
    before = text[:pos].rstrip(" \t*_#>-+•")
    # A list number ("2. Contact ...") starts an item; "pays 300. Contact ..." ends a sentence with a figure.
    before = re.sub(r"(?:^|(?<=\n))[ \t]*\d{1,3}[.)]$", "", before).rstrip()
    return not before or before[-1] in ".!?:\n"


def _known_name(words: tuple[str, ...], v: _Vocab, question_words: tuple[str, ...]) -> bool:
    distinctive = [w for w in words if w not in GENERIC]
    if not distinctive:
        return True  # "the International Office": a kind of body, not a specific one
    if set(distinctive) <= set(question_words):
        return True  # "Harvard University" for a question about "Harvard": the student's own name for it
    if words in v.ngrams or words in _ngrams(question_words) or len(words) > MAX_NAME_WORDS:
        return words in v.ngrams or words in _ngrams(question_words) or \
            any(" ".join(words) in " ".join(p) for p in v.phrases)
    mention = frozenset(words)
    candidates = v.names_by_word.get(next(iter(mention)), []) if mention else []
    return any(mention <= known and 2 * len(mention) >= len(known) for known in candidates)


def _has_head(run: list[tuple[int, int, str]]) -> bool:
    return any(w.lower() in ORG_HEADS or w.lower().rstrip("s") in ORG_HEADS for _, _, w in run)


def _unknown_parts(run: list[tuple[int, int, str]], text: str, v: _Vocab,
                   qwords: tuple[str, ...]) -> list[tuple[int, int]]:
    """Spans of the run's unknown names. "Chevening Scholarships and the British Council" is two known names;
    "Department of Education and Standards Authority" one unknown one: a run is split at "and" / "&" only
    when some part of it is a known name."""
    if _known_name(_name_words(text[run[0][0]:run[-1][1]]), v, qwords):
        if _scheme_of_generic_words(run, text, v, qwords):
            return [(run[0][0], run[-1][1])]
        return []
    parts, cur = [], []
    for w in run:
        if w[2].lower() in ("and", "&"):
            parts.append(cur)
            cur = []
        else:
            cur.append(w)
    parts.append(cur)
    parts = [[w for w in p if w[2].lower() != "the"] or p for p in parts]
    parts = [p for p in parts if p]
    known = [_known_name(_name_words(text[p[0][0]:p[-1][1]]), v, qwords) for p in parts]
    if len(parts) < 2 or not any(known):
        return [(run[0][0], run[-1][1])]
    return [(p[0][0], p[-1][1]) for p, k in zip(parts, known) if not k and _has_head(p)]


def unverified_entities(text: str, question: str, kb: Any) -> list[EntityFinding]:
    """Named organisations, institutions, schemes and tests in ``text`` that neither ``kb`` nor ``question``
    contains. A name counts as known when its words appear together in a KB statement, title, entity name or
    alias, or in the question (the student may name their own university)."""
    from ..kb.claims import auditable_text

    v = vocab(kb)
    masked = auditable_text(text)
    qwords = _name_words(question)
    q_acr = set(re.findall(r"\b[A-Z][A-Z0-9]{1,9}\b", question))
    found: list[EntityFinding] = []
    for start, end, run in _runs(masked):
        lowered = [w.lower().rstrip("s") if len(w) > 4 else w.lower() for _, _, w in run]
        if not any(w.lower() in ORG_HEADS or w.lower().rstrip("s") in ORG_HEADS for _, _, w in run):
            continue
        # A sentence's first word is capitalised whatever it is ("Contact University of Toronto").
        while run and _at_sentence_start(masked, run[0][0]) and run[0][2].lower() in _SENT_START_WORDS:
            run = run[1:]
        while run and run[0][2].lower() in _INNER:
            run = run[1:]
        if len(run) < 2 or not lowered:
            continue
        for start, end in _unknown_parts(run, text, v, qwords):
            acr = _ACRONYM_IN_PARENS.match(masked, end + 1) if masked[end:end + 1] == " " else None
            if acr:  # "… Standards Authority (DENI)": the acronym is part of the name
                end = acr.end()
            found.append(EntityFinding(text[start:end], (start, end), "named body or scheme not in the "
                                                                       "knowledge base or the question"))
    taken = [f.span for f in found]
    for span, reason in _coined_names(masked, text, v, qwords):
        if not any(s < span[1] and span[0] < e for s, e in taken):
            found.append(EntityFinding(text[span[0]:span[1]], span, reason))
            taken.append(span)
    for rx in (_ACRONYM_IN_PARENS, _TEST_CUE):
        for m in rx.finditer(masked):
            acr = m.group(1)
            if acr in v.acronyms or acr in q_acr or any(s <= m.start(1) <= e for s, e in taken):
                continue
            if rx is _ACRONYM_IN_PARENS and _abbreviates(masked[:m.start()], acr):
                continue  # "Statement of Purpose (SOP)": the words before it are what it stands for
            found.append(EntityFinding(acr, m.span(1), "acronym of a body or test not in the knowledge base "
                                                       "or the question"))
            taken.append(m.span(1))
    return sorted(found, key=lambda f: f.span[0])


# Names built of generic words pass the distinctive-word test above ("Bachelor of Science", "International
# Student Fund"), and a coined word before a lower-case programme noun is no capitalised run at all ("the
# BacheloSense initiative"): SmolLM2 served both to "is there no tuition at all?" for Germany. A name is what
# the text *says* is a name: introduced by "called / named / known as", a capitalised span headed by a
# scheme noun, a coined word before a programme noun, or a CamelCase blend that is no dictionary word.
SCHEME_HEADS = frozenset("""
initiative programme program scheme scholarship grant fund council agency authority department foundation
fellowship board office award bursary trust
""".split())
# Kinds of unit every university has ("the International Office", "Student Services"): made of generic words
# they name the student's own university's office, which is the advice we want, not an invented body.
_UNIT_HEADS = frozenset("office department service services centre center school faculty college".split())
_CALLED = re.compile(r"(?P<before>(?:\b[\w-]+\s+){1,3})(?:called|named|known\s+as|dubbed|titled)\s+"
                     r"(?:the\s+|a\s+|an\s+)?(?:[\"“‘](?P<quoted>[A-Z][^\"”’\n]{1,60})[\"”’]|(?P<name>[A-Z][\w'’&+.-]*(?:\s+(?:of|for|and|&|the|de|in|on|"
                     r"[A-Z][\w'’&+.-]*))*))")
_KINDS_NAMED = ORG_HEADS | {"organisation", "organization", "body", "plan", "route", "visa", "permit", "policy",
                            "rule", "law", "system", "platform", "portal", "website", "site", "app"}
_BEFORE_HEAD = re.compile(r"\b(?:[Tt]he|[Aa]n?|[Ii]ts|[Tt]heir|[Oo]ur|[Tt]his)\s+(?P<name>(?:[A-Z][\w'’&+-]*\s+){1,3})"
                          r"(?P<head>" + "|".join(sorted(SCHEME_HEADS, key=len, reverse=True)) + r")s?\b")
_CAMEL = re.compile(r"(?<![\w'’-])(?P<tok>[A-Z][a-z]{2,}(?:[A-Z][a-z]+)+)(?![\w'’-])")
_NAME_PREFIX = re.compile(r"^(?:Mc|Mac|De|Di|Da|La|Le|Van|Von|Du)[A-Z]")


@lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    """A dictionary of English words (pyspellchecker's word list, 160k words with their inflections)."""
    import gzip
    import json
    from importlib.resources import files

    data = (files("spellchecker") / "resources" / "en.json.gz").read_bytes()
    return frozenset(json.loads(gzip.decompress(data)))


def _dictionary_word(word: str) -> bool:
    w = word.lower().strip("'’.")
    return w in english_words() or w.removesuffix("'s") in english_words()


def _coined(word: str, v: _Vocab, qwords: tuple[str, ...]) -> bool:
    """A capitalised word no dictionary, place list, KB text or question has ("BacheloSense", "Studiva")."""
    w = word.strip("*_'’.")
    if not w or w.isupper() or any(c.isdigit() for c in w) or _NAME_PREFIX.match(w):
        return False
    low = _name_words(w)
    if not low or low[0] in qwords or (low[0],) in v.ngrams or low[0] in _place_words():
        return False
    parts = re.findall(r"[A-Z][a-z]+", w)
    if len(parts) >= 2:  # CamelCase: a compound of words ("LinkedIn", "PayPal") is a brand, a blend is coined
        return not all(_dictionary_word(p) for p in parts) and not _dictionary_word(w)
    return not _dictionary_word(w)


def _in_kb_or_question(phrase: str, v: _Vocab, qwords: tuple[str, ...]) -> bool:
    words = _name_words(phrase)
    if not words:
        return True
    return words in v.ngrams or words in _ngrams(qwords) or set(words) <= set(qwords)


def _heading_line(text: str, start: int, end: int) -> bool:
    """A markdown heading or a bold label line ("### Government Scholarships", "**Merit Scholarship:**"):
    headings are title case whatever they say."""
    a = text.rfind("\n", 0, start) + 1
    b = text.find("\n", end)
    line = text[a:b if b >= 0 else len(text)].strip()
    return bool(re.match(r"#{1,6}\s", line) or re.fullmatch(r"(?:[-*+•]\s+|\d{1,2}[.)]\s+)?\*\*[^*]+\*\*:?.{0,2}",
                                                               line) or line.endswith(":"))


def _coined_names(masked: str, text: str, v: _Vocab, qwords: tuple[str, ...]) -> list[tuple[tuple[int, int], str]]:
    out: list[tuple[tuple[int, int], str]] = []
    for m in _CALLED.finditer(masked):
        nouns = [w.lower() for w in m.group("before").split()]
        noun = next((w for w in reversed(nouns) if w in _KINDS_NAMED or w.rstrip("s") in _KINDS_NAMED), None)
        if noun is None:
            continue  # "a city called Munich": not a body or scheme
        key = "quoted" if m.group("quoted") else "name"
        name = m.group(key).strip()
        while name and name.split()[-1].lower() in _INNER:
            name = name.rsplit(None, 1)[0] if " " in name else ""
        s = m.start(key)
        if name and not _in_kb_or_question(name, v, qwords):
            out.append(((s, s + len(name.rstrip(".,"))), f"a {noun} the answer names "
                                                           "that is not in the knowledge base or the question"))
    for m in _BEFORE_HEAD.finditer(masked):
        words = m.group("name").split()
        if any(_coined(w, v, qwords) for w in words):
            s, e = m.start("name"), m.end("head")
            out.append(((s, e), f"a coined name for a {m.group('head')} not in the knowledge base or the question"))
    for m in _CAMEL.finditer(masked):
        if _coined(m.group("tok"), v, qwords):
            out.append((m.span("tok"), "a coined word (no dictionary word, not in the knowledge base or the question)"))
    return out


def _scheme_of_generic_words(run: list[tuple[int, int, str]], text: str, v: _Vocab, qwords: tuple[str, ...]) -> bool:
    """A capitalised span of generic words headed by a singular scheme noun ("the International Student
    Scholarship", "Tuition Reimbursement Fund") that the KB and the question never write: a specific scheme
    the answer asserts exists. Plural heads ("Government Scholarships") name a kind, units ("International
    Office") the student's own university's."""
    head = run[-1][2].strip("*_'’.,").lower()
    if head not in SCHEME_HEADS or head in _UNIT_HEADS or len(run) < 2:
        return False
    if _heading_line(text, run[0][0], run[-1][1]):
        return False
    return not _in_kb_or_question(text[run[0][0]:run[-1][1]], v, qwords)


def _abbreviates(before: str, acr: str) -> bool:
    """Whether ``acr`` is the initials of the words right before it (with or without of / and / the / for)."""
    words = re.findall(r"[A-Za-z][\w'’-]*", before)[-(len(acr) + 4):]
    for k in range(1, len(words) + 1):
        tail = words[-k:]
        if "".join(w[0] for w in tail).upper() == acr.upper():
            return True
        if "".join(w[0] for w in tail if w.lower() not in _INNER).upper() == acr.upper():
            return True
    return False


UNVERIFIED_MARK = " (unverified)"


def mark_unverified_entities(text: str, question: str, kb: Any) -> tuple[str, list[dict[str, Any]]]:
    """Mark every unverified name "(unverified)" in place; one change per name with its reason."""
    changes = []
    for f in sorted(unverified_entities(text, question, kb), key=lambda f: f.span[0], reverse=True):
        s, e = f.span
        if text[e:e + len(UNVERIFIED_MARK)] == UNVERIFIED_MARK:
            continue
        text = text[:e] + UNVERIFIED_MARK + text[e:]
        changes.append({"action": "marked_unverified", "claim": f.name, "kind": "named_entity",
                        "reason": f.reason})
    changes.reverse()
    return text, changes


# ------------------------------------------------------------------------------------------------- topic

_STOP = frozenset("""
i me my we you your a an the and or but if of to in on at for from with by about as is are was were be been
do does did can could should would will shall may might must have has had what which who how when where why
this that these those it its there here any some all more most much many also just not no yes so than then
get got go going want need know tell please help study studying student students international abroad
""".split())


def _content_words(text: str) -> set[str]:
    from ..kb.search import tokenize

    return {w for w in tokenize(text) if w not in _STOP and len(w) > 2}


@lru_cache(maxsize=1)
def _place_words() -> frozenset[str]:
    """kb.geo's place words and "university": a question and a fact that share only where (or "university")
    share no topic."""
    from ..kb.geo import place_words

    return place_words() | {"university", "universities"}


def off_topic_sources(question: str, sources: list[Any], threshold: float | None = None,
                      context: str = "") -> list[Any]:
    """The sources (``Source``-like with ``.fact``, or facts) that are not about the question.

    Off topic: about another destination than the one(s) the question names; scored under the retriever's
    calibrated ``threshold`` (when the source carries a ``relevance``); or sharing no content word with the
    question once destination names are set aside ("an MBA documents question" and the APS India rule).
    ``context`` (the earlier user turns of a follow-up such as "And for Canada?") lends its words, and its
    destinations only when the question names none: the follow-up's country is the one asked about.
    """
    from ..kb.geo import detect_destinations

    # origins excluded (retrieval helper): "I'm from the United States. Which Commonwealth Scholarship…" asks about
    # the UK, and with the US read as the destination every UK fact was off topic (compose had nothing)
    named = (set(detect_destinations(question, exclude_origins=True))
             or set(detect_destinations(context, exclude_origins=True)))
    qwords = _content_words(question) | _content_words(context)
    country_words = _place_words()
    out = []
    for s in sources:
        fact = getattr(s, "fact", s)
        dest = getattr(fact, "destination", None)
        if named and dest not in (None, "any") and dest not in named:
            out.append(s)
            continue
        rel = getattr(s, "relevance", None)
        if threshold is not None and rel is not None and rel < threshold:
            out.append(s)
            continue
        if not (qwords - country_words) & (_content_words(fact.search_text()) - country_words):
            out.append(s)
    return out


def answer_off_topic(question: str, answer: str) -> str | None:
    """Why ``answer`` is not about ``question`` (None when it is): it names only destinations other than the
    one(s) the question asks about, or shares no content word with a question that has several."""
    from ..kb.geo import destination_mentions, detect_destinations
    from ..kb.schema import DESTINATIONS

    asked = set(detect_destinations(question, exclude_origins=True))
    mentions = [code for _, code in destination_mentions(answer)]
    said = set(mentions)
    # mostly about other places (served: "What is the cheapest city in Ireland?" answered about Dubai and
    # Singapore, Ireland named once in passing)
    if asked and said and (not asked & said or
                           sum(c not in asked for c in mentions) > 2 * sum(c in asked for c in mentions)):
        return (f"it is about {', '.join(DESTINATIONS.get(c, c) for c in sorted(said - asked))}, not "
                f"{', '.join(DESTINATIONS.get(c, c) for c in sorted(asked))}")
    qwords = _content_words(question)
    if len(qwords) >= 3 and not qwords & _content_words(answer):
        return "it shares no content word with the question"
    return None


def off_destination_sentences(answer: str, question: str, bounds: list[tuple[int, int]],
                              context: str = "") -> list[tuple[tuple[int, int], list[str]]]:
    """The sentences (bounds, with the destinations they name) that are about destinations the question does not
    name: filler a student reads as a rule of the country they asked about. Served (lead's reading, d1ae96f): "How
    many hours can I work per week on a student visa in New Zealand?" went on, after the corrected rule, about
    the "Christmas holiday in Australia, Canada". A question that names no destination has none to stray from; a
    sentence that also names one asked about (a comparison) is kept; a place the question names as the student's
    origin counts as named."""
    from ..kb.geo import destination_spans, detect_destinations

    asked = set(detect_destinations(question, exclude_origins=True)) or set(
        detect_destinations(context, exclude_origins=True))
    if not asked:
        return []
    named = asked | set(detect_destinations(question)) | set(detect_destinations(context))
    out = []
    for a, b in bounds:
        sentence = answer[a:b]
        urls = [m.span() for m in _URLISH.finditer(sentence)]
        # A place inside a web address or at the head of a proper name ("the Canadian Council of Scholarships",
        # "www.denei.govt.nz") is the name's: the URL and unverified-name checks judge those, and mark them.
        said = {code for x, y, code in destination_spans(sentence)
                if not any(u <= x < v for u, v in urls) and not _NAME_GOES_ON.match(sentence, y)}
        if said and not said & named:
            out.append(((a, b), sorted(said)))
    return out


_URLISH = re.compile(r"https?://\S+|www\.\S+|\b[\w-]+(?:\.[\w-]+)*\.(?:gov|govt|gc|edu|ac|org|com|net)(?:\.[a-z]{2})?\b\S*")
_NAME_GOES_ON = re.compile(r"[ \t]+(?:of[ \t]+)?[A-Z][a-z]")


# ------------------------------------------------------------------------------------------------- rules

# What SmolLM2 wrote in policy answers under a correct, cited fact (the lead's reading, stop 18, and our own
# served run): "The US Department of Education has changed the definition of F-1 visas", "The German
# government has implemented a policy called ... This policy was introduced by Chancellor Angela Merkel's
# government in 2013", "the minimum amount of funds required ... varies depending on your nationality". A
# student reads each as an official rule. A rule *change* our sources would have to state; an obligation,
# permission or exemption we can at least compare with the retrieved facts' words.
_RULE_CHANGE = re.compile(
    r"\b(?:has|have|had)\s+(?:now\s+|recently\s+|just\s+|also\s+)?(?:been\s+)?(?:changed|introduced|implemented|"
    r"launched|abolished|scrapped|removed|extended|increased|reduced|raised|lowered|updated|announced|redefined|"
    r"replaced|relaxed|tightened|banned|suspended|made\s+it\s+clear|decided|approved|passed|adopted|waived)\b|"
    r"\b(?:was|were)\s+(?:recently\s+)?(?:introduced|implemented|launched|abolished|scrapped|changed|passed|"
    r"adopted|announced|extended|replaced)\b|\b(?:was|were)\s+(?:set|capped|raised|lowered)\s+(?:at|to|by|in)\b|"
    r"\bnew\s+(?:rules?|laws?|polic(?:y|ies)|regulations?|requirements?|"
    r"legislation)\b|\bno\s+longer\b|\bhas\s+(?:stopped|ended)\b", re.IGNORECASE)
_RULE_ASSERT = re.compile(
    r"\b(?:must|required|requires?|requirements?|mandatory|compulsory|obliged|prohibited|forbidden|illegal|"
    r"not\s+(?:allowed|permitted|eligible|entitled)|(?:is|are)\s+(?:allowed|permitted|eligible|entitled|exempt)|"
    r"allows?|permits?\s+(?:you|students|holders)|entitles?|exempts?|applies\s+(?:only\s+)?to|regardless\s+of|"
    r"varies\s+(?:depending|by|according)|depends\s+on\s+your\s+(?:nationality|country|citizenship)|"
    r"polic(?:y|ies)|laws?|legal(?:ly)?|regulations?|legislation|government\s+(?:has|says|requires|allows)|"
    # an obligation or a ban in plain words (served, UK dependants: "You will need an agreement between parents
    # and tutor that explains who looks after them"; Japan: "You cannot study in Japan without speaking Japanese")
    r"(?:will|'ll|would)\s+(?:also\s+)?need\s+(?:an?|the|your|to)|"
    r"(?:you|students?|applicants?)\s+(?:also\s+)?(?:need|have)\s+to\s+(?:have|show|provide|submit|get|obtain|sign|"
    r"present|prove|pay|pass|speak|be)|can(?:not|'t|\s+not)\s+(?:study|work|bring|apply|stay|enter|get|be|use|"
    r"switch|extend)|"
    # a consequence for the student's visa ("If you fail a course, your student visa will be cancelled", adapter)
    r"(?:will|would|could|can|may|might)\s+(?:be\s+)?(?:cancell?ed|revoked|refused|terminated|curtailed|deported)|"
    r"(?:lose|losing)\s+(?:your|their|the)\s+(?:student\s+)?(?:visa|permit|status))\b",
    re.IGNORECASE)
# Advice, not a rule: "Check the university's page", "You should contact the international office", "It's a
# good idea to apply early", "Make sure you keep copies".
_ADVICE = re.compile(
    r"^(?:[-*+•]\s+|\d{1,2}[.)]\s+)?(?:\*\*[^*]{0,40}\*\*:?\s*)?(?:(?:always|also|then|first|finally|so)\s+)?"
    r"(?:check|contact|visit|confirm|ask|consider|make\s+sure|be\s+sure|talk|speak|look|read|review|keep|plan|"
    r"prepare|start|research|reach\s+out|email|call|note|remember|don't\s+forget|try|use|find|explore|search|"
    r"double-check|verify|see|compare|book|save|budget|join|get\s+in\s+touch)\b|"
    r"\b(?:you\s+(?:should|may\s+want\s+to|might\s+want\s+to|can\s+(?:check|ask|contact|find|visit|look))|"
    r"we\s+recommend|i\s+recommend|it'?s\s+(?:a\s+good\s+idea|best|wise|worth|important|essential)\s+to|"
    r"(?:rules?|requirements?)\s+(?:and\s+\w+\s+)?(?:can\s+|may\s+)?change)\b",
    re.IGNORECASE)
RULE_SUPPORT_SHARE = 0.5


@dataclass
class RuleFinding:
    span: tuple[int, int]
    sentence: str
    kind: str          # "rule_change" (dropped) | "rule" (marked unverified)
    reason: str


def _support(sentence: str, facts: list[Any]) -> tuple[float, Any]:
    """The share of the sentence's content words (places aside) that the best-matching fact also uses."""
    words = _content_words(sentence) - _place_words()
    best, best_fact = 0.0, None
    if not words:
        return 1.0, None
    for f in facts:
        fw = _content_words(f.search_text() if hasattr(f, "search_text") else str(f))
        share = len(words & fw) / len(words)
        if share > best:
            best, best_fact = share, f
    return best, best_fact


def unsupported_rules(text: str, facts: list[Any], bounds: list[tuple[int, int]]) -> list[RuleFinding]:
    """Sentences (``bounds`` of ``text``) that state a rule or a rule change in the model's own words and that
    no retrieved fact supports: a rule change whenever no fact shares at least RULE_SUPPORT_SHARE of its
    words, an obligation / permission / exemption likewise. Advice sentences, questions, headings, sentences
    already marked "(unverified)" and sentences citing a fact they match are left alone."""
    from ..kb.slots import PARTNER_WORDS

    out: list[RuleFinding] = []
    for a, b in bounds:
        sentence = text[a:b]
        body = sentence.strip()
        if len(body) < 20 or body.endswith("?") or "(unverified)" in body or body.startswith(("#", ">")):
            continue
        change = _RULE_CHANGE.search(body)
        if not change and not _RULE_ASSERT.search(body):
            continue
        if not change and _ADVICE.search(body):
            continue
        # A rule about the student's partner or family is supported only by a fact about them: "No, your wife
        # cannot work on a UK student visa" shared 3 of its 4 words with the student-work fact (lead's reading).
        pool = [f for f in facts if PARTNER_WORDS.search(getattr(f, "statement", str(f)))] \
            if PARTNER_WORDS.search(body) else facts
        share, fact = _support(re.sub(r"\[\d{1,2}\]", " ", body), pool)
        if share >= RULE_SUPPORT_SHARE:
            continue
        kind = "rule_change" if change else "rule"
        what = "a rule change" if change else "a rule"
        reason = (f"states {what} no retrieved official fact supports "
                  f"({share:.0%} of its words in the closest fact{' ' + fact.id if fact is not None else ''})")
        out.append(RuleFinding((a, b), body, kind, reason))
    return out


# "OPT can be extended to any length of time" was served unmarked under the cited 12-month OPT and 24-month
# STEM extension facts. A stay, visa or permit with no end is never an official rule the KB states: where a
# retrieved fact gives the length, the sentence goes; where none does, it is marked.
_UNBOUNDED = re.compile(
    r"\b(?:(?:for\s+)?any\s+length\s+of\s+time|(?:for\s+)?any\s+length|indefinitely|forever|for\s+as\s+long\s+as\s+"
    r"you\s+(?:like|want|wish)|(?:with\s+)?no\s+(?:time\s+)?limit(?:\s+on\s+how\s+long)?|without\s+(?:any\s+|a\s+)?"
    r"(?:time\s+)?limit|an?\s+unlimited\s+(?:number\s+of\s+times|period|time|duration)|unlimited\s+(?:extensions?|"
    r"renewals?|times))(?![\w-])", re.IGNORECASE)
# What the unbounded thing is: a stay, a visa, a permit or post-study work, not working hours ("no limit on
# hours during the holidays" is a real rule in several destinations).
_STAY_WORDS = re.compile(r"\b(?:visas?|permits?|stay|remain|extend\w*|extension|renew\w*|(?-i:OPT)|(?-i:PGWP)|"
                         r"(?-i:STEM)|graduate\s+route|post[- ]study|job[- ]seek\w*|residence)\b", re.IGNORECASE)
_HOURS = re.compile(r"\bhours?\b|\bfull[- ]time\b|\bpart[- ]time\b", re.IGNORECASE)
_STAY_TOPICS = {"post_study_work", "student_visa"}


@dataclass
class SpecificFinding:
    span: tuple[int, int]          # the sentence (unbounded) or the date phrase (undated)
    sentence: str
    kind: str                      # "unbounded_duration" | "undated_deadline"
    reason: str
    fact_id: str | None = None     # the retrieved fact that gives the length (unbounded only)
    phrase: str = ""


def unbounded_durations(text: str, facts: list[Any], bounds: list[tuple[int, int]],
                        destination: str | None = None) -> list[SpecificFinding]:
    """Sentences that give a stay, visa, permit or post-study work no end ("can be extended to any length of
    time"), with the retrieved fact that states its length when there is one (same destination, a post-study
    or visa fact with a duration in months or years, the most words in common)."""
    out = []
    for a, b in bounds:
        sentence = text[a:b]
        m = _UNBOUNDED.search(sentence)
        if not m or not _STAY_WORDS.search(sentence) or _HOURS.search(sentence):
            continue
        if "(unverified)" in sentence or sentence.strip().endswith("?"):
            continue
        best, best_n = None, 0
        words = _content_words(sentence) - _place_words()
        for f in facts:
            if getattr(f, "topic", None) not in _STAY_TOPICS:
                continue
            if destination and getattr(f, "destination", None) not in (destination, "any"):
                continue
            if not any(v.kind == "duration" and (v.unit or "") in ("months", "years") for v in getattr(f, "values", [])):
                continue
            n = len(words & _content_words(f.search_text()))
            if n > best_n:
                best, best_n = f, n
        reason = (f"gives no time limit, but the official fact {best.id} states one" if best is not None
                  else "gives no time limit, and no retrieved official fact says so")
        out.append(SpecificFinding((a, b), sentence.strip(), "unbounded_duration", reason,
                                   best.id if best is not None else None, m.group(0)))
    return out


_MONTH_NAMES = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
                "november", "december")
# A deadline or a dated change with a year or a month and no day ("submit your application by the end of 2025",
# "the rule changed in March 2023"): the audit checks day-and-month dates; these it cannot see.
_UNDATED = re.compile(
    r"\b(?:by|before|until|till|no\s+later\s+than|starting(?:\s+(?:in|from))?|from|since|after|in|as\s+of|during|"
    r"deadline\s+(?:is|of))\s+(?:the\s+)?(?:(?:end|start|beginning|middle)\s+of\s+)?(?:(?:early|mid|late)[- ])?"
    r"(?:(?P<month>" + "|".join(m.capitalize() for m in _MONTH_NAMES) + r")\s+)?(?:of\s+)?(?P<year>20\d\d)\b"
    r"(?![-/]\d)")


def undated_deadlines(text: str, facts: list[Any], bounds: list[tuple[int, int]],
                      question: str = "") -> list[SpecificFinding]:
    """Year (and month) deadlines and dated changes that no retrieved fact and not the student's question
    states: "by the end of 2025" in an answer whose facts never give 2025."""
    fact_text = " ".join(getattr(f, "statement", str(f)) for f in facts)
    years = set(re.findall(r"\b20\d\d\b", fact_text + " " + question))
    for f in facts:
        for v in getattr(f, "values", []) or []:
            if getattr(v, "date", None):
                years.add(str(v.date)[:4])
    low = (fact_text + " " + question).lower()
    out = []
    for a, b in bounds:
        sentence = text[a:b]
        for m in _UNDATED.finditer(sentence):
            year, month = m.group("year"), (m.group("month") or "").lower()
            if year in years and (not month or month in low):
                continue
            after = sentence[m.end():m.end() + len(" (unverified)")]
            if after.startswith(" (unverified)"):
                continue
            out.append(SpecificFinding((a + m.start(), a + m.end()), sentence.strip(), "undated_deadline",
                                       f"the date “{m.group(0)}”: no retrieved official fact gives it",
                                       phrase=m.group(0)))
    return out


# Talk about the prompt served as advice (lead's reading, 2026-12-02): "The official facts you provided are
# correct.", "The official facts above are based on the fact about the Netherlands as a place for study", and,
# cited, "The official facts state that the D-10 (job seeking) visa is only granted when a student wants to
# leave their home country ... [1]", which fact 1 does not say. The student provided no facts and sees none
# "above"; a sentence about them is the prompt's scaffolding. One that attributes a claim to the official
# facts stays only if a fact it cites says it.
_PROMPT_TALK = re.compile(
    r"\b(?:facts?|sources?|information|data)\s+(?:that\s+)?(?:you(?:'ve|\s+have)?\s+(?:provided|given|gave|shared|listed|"
    r"supplied)|(?:listed\s+|given\s+|provided\s+|shown\s+)?above|(?:you\s+)?provided\s+(?:to\s+me|here)|"
    r"in\s+(?:the|your)\s+(?:prompt|instructions|context))\b|\b(?:based\s+on|according\s+to)\s+the\s+(?:facts?|"
    r"information)\s+(?:you|above|provided)\b", re.IGNORECASE)
_FACTS_SAY = re.compile(r"\b(?:the\s+)?official\s+(?:facts?|sources?)\s+(?:clearly\s+)?(?:state|states|say|says|"
                        r"show|shows|mention|mentions|indicate|indicates|confirm|confirms|suggest|suggests)\b",
                        re.IGNORECASE)
FACTS_SAY_SUPPORT = 0.6
_PROMPT_LEAD_IN = re.compile(
    r"(?:based\s+on|according\s+to|as\s+per|from|given)\s+(?:the\s+)?(?:official\s+)?(?:facts?|information|sources?|"
    r"data)\s+(?:that\s+)?(?:you(?:'ve|\s+have)?\s+(?:provided|given|gave|shared|listed)|(?:listed\s+|given\s+|provided\s+)?"
    r"above|provided(?:\s+above)?)\s*,\s*", re.IGNORECASE)


# "The official facts are that ..." (Netherlands health insurance, lead's reading, session 5) is the prompt's
# own heading ("The official facts are:") read back: none of the lead-in forms above had "are that", and
# _FACTS_SAY knows only "state"/"say"-like verbs, so it stood. The lead-in goes when the rest is what the facts
# say, and the sentence goes when it is not.
# (Also "The official facts say that ..." at a sentence's start, quickstart adapter on New Zealand: a lead-in like
# the others, where what follows is what the facts say.)
_FACTS_ARE = re.compile(r"(?:[-*+•]\s+|\d{1,2}[.)]\s+)?(?P<lead>(?:\*\*)?(?:the\s+)?(?:official\s+)?(?:facts?|sources?)\s+"
                        r"(?:(?:provided|given|above|here)\s+)?(?:are|is|say|says|state|states|show|shows|indicate|"
                        r"indicates|confirm|confirms)\s*(?:that\b|:)\s*(?:\*\*)?\s*)", re.IGNORECASE)
# The instructions read back as advice ("You are a StudyAbroad Assistant. Your role is to assist the user in
# planning their trip", quickstart adapter, session 5): the student is "you", never "the user".
_ROLE_ECHO = re.compile(r"\bYou\s+are\s+(?:a|an)\s+(?:[\w-]+\s+){0,3}(?:assistant|advis[eo]r|chatbot|AI|language\s+model)\b|"
                        r"\b(?:your|my)\s+role\s+is\s+to\b|\b(?:assist|help|answer|advise)\s+the\s+user\b|"
                        r"\bthe\s+user'?s\s+question\b", re.IGNORECASE)


def _said_by_facts(said: str, body: str, facts_by_number: dict[int, Any]) -> tuple[float, Any]:
    """The support the facts a sentence cites (uncited: every retrieved fact) give to what it says they say."""
    cited = [facts_by_number[int(n)] for n in re.findall(r"\[(\d{1,2})\]", body) if int(n) in facts_by_number]
    return _support(re.sub(r"\[\d{1,2}\]", " ", said), cited or list(facts_by_number.values()))


def prompt_talk(text: str, facts_by_number: dict[int, Any], bounds: list[tuple[int, int]]) -> list[RuleFinding]:
    """Sentences that talk about the prompt's facts rather than to the student, and sentences that say "the
    official facts state X" where no fact they cite (or, uncited, no retrieved fact) has FACTS_SAY_SUPPORT of
    X's words."""
    out = []
    for a, b in bounds:
        body = text[a:b].strip()
        if not body:
            continue
        lead = _PROMPT_LEAD_IN.match(text, a + len(text[a:b]) - len(text[a:b].lstrip()))
        if lead and b - lead.end() > 15:
            # "Based on the facts above, you need €615 per month": the lead-in goes, the claim is checked as any
            out.append(RuleFinding(lead.span(), body, "prompt_lead_in", "talks about the prompt's facts, not to the "
                                   "student"))
            continue
        if _PROMPT_TALK.search(body) or _ROLE_ECHO.search(body):
            out.append(RuleFinding((a, b), body, "prompt_talk", "talks about the prompt's facts, not to the student"))
            continue
        start = a + len(text[a:b]) - len(text[a:b].lstrip())
        are = _FACTS_ARE.match(text, start)
        if are and b - are.end() > 15:
            share, fact = _said_by_facts(text[are.end():b], body, facts_by_number)
            if share >= FACTS_SAY_SUPPORT:
                out.append(RuleFinding(are.span("lead"), body, "prompt_lead_in", "talks about the prompt's facts, "
                                       "not to the student"))
                continue
            out.append(RuleFinding((a, b), body, "misattributed", f"attributes to the official facts what they do not "
                                   f"say ({share:.0%} of its words in{' ' + fact.id if fact is not None else ' any retrieved fact'})"))
            continue
        m = _FACTS_SAY.search(body)
        if m:
            share, fact = _said_by_facts(body[m.end():], body, facts_by_number)
            if share < FACTS_SAY_SUPPORT:
                out.append(RuleFinding((a, b), body, "misattributed",
                                       f"attributes to the official facts what they do not say ({share:.0%} of its "
                                       f"words in{' ' + fact.id if fact is not None else ' any retrieved fact'})"))
    return out


# "The cheapest city in Ireland for students is Dublin, which has the highest rents in Ireland" (lead's reading
# G6): a ranking no retrieved fact makes, stated as fact. Marked "(unverified)" unless a fact shares most of
# its words.
_SUPERLATIVE = re.compile(
    r"\b(?:the|is|are)\s+(?:single\s+)?(?:cheapest|most\s+affordable|least\s+expensive|most\s+expensive|best|safest|"
    r"easiest|hardest|fastest|top|most\s+popular|largest|biggest|most\s+suitable|best[- ]suited|ideal)\b(?:\s+[\w'-]+){0,4}?\s+(?:is|are|in|for|to|of)\b",
    re.IGNORECASE)


# "The cost of studying in Germany is significantly cheaper than in Poland" (lead's reading, session 5): a
# comparison is a ranking of two, and needs a fact on each side. ("It is better to apply early than to wait" is
# advice, not a comparison of places.)
_COMPARATIVE = re.compile(
    r"\b(?:cheaper|costlier|pricier|more\s+(?:affordable|expensive|costly|difficult|competitive|popular)|less\s+"
    r"(?:expensive|affordable|costly|competitive|difficult)|better(?!\s+to\b)|worse|easier(?!\s+to\b)|harder|"
    r"safer(?!\s+to\b)|lower|higher)\b"
    r"[^.;!?]{0,80}?\b(?:than|compared\s+(?:to|with))\b", re.IGNORECASE)


def unsupported_superlatives(text: str, facts: list[Any], bounds: list[tuple[int, int]],
                             kb: Any = None) -> list[RuleFinding]:
    """Sentences ranking or comparing places or options ("the cheapest city in Ireland is Dublin", "Germany is
    cheaper than Poland") that no retrieved fact supports (under RULE_SUPPORT_SHARE of their words in the
    closest fact): kind "superlative" / "comparison". One that ranks or compares a destination ``kb`` has no
    facts on is "uncovered_comparison" whatever the word share: nothing official backs its other side."""
    from ..kb.coverage import detect_scope

    out = []
    for a, b in bounds:
        body = text[a:b].strip()
        ranked, compared = _SUPERLATIVE.search(body), _COMPARATIVE.search(body)
        if not (ranked or compared) or body.endswith("?") or "(unverified)" in body or _ADVICE.search(body):
            continue
        what = "a ranking" if ranked else "a comparison"
        uncovered = detect_scope(body, kb).uncovered_destinations if kb is not None else []
        if uncovered:
            out.append(RuleFinding((a, b), body, "uncovered_comparison", f"{what} with {' and '.join(uncovered)}, "
                                   f"on which the knowledge base has no official information"))
            continue
        share, fact = _support(re.sub(r"\[\d{1,2}\]", " ", body), facts)
        if share < RULE_SUPPORT_SHARE:
            out.append(RuleFinding((a, b), body, "superlative" if ranked else "comparison",
                                   f"{what} no retrieved official fact makes ({share:.0%} of its words in the "
                                   f"closest fact)"))
    return out


# ------------------------------------------------------------------------------------------------- honesty

_NO_INFO = re.compile(
    r"\b(?:(?:do|does)\s+not|don't|doesn't|have\s+no|has\s+no|holds?\s+no|contains?\s+no|without|no)\s+"
    r"(?:\w+\s+){0,3}(?:official\s+|verified\s+|reliable\s+|specific\s+|sourced\s+)?"
    r"(?:information|facts?|details|data|sources?)\b"
    r"|\b(?:can(?:no|')t|cannot|unable\s+to)\s+(?:confirm|verify|give\s+you\s+(?:official|reliable|specific))"
    r"|\bnot\s+covered\s+(?:by|in)\b|\boutside\s+(?:what|the\s+scope)", re.IGNORECASE)
_POINTER = re.compile(
    r"\b(?:admissions?\s+(?:and\s+[\w-]+\s+)?(?:pages?|office|website)|official\s+(?:websites?|sites?|sources?|pages?)|"
    r"embassy|consulate|"
    r"ministry|government\s+(?:website|site|page)|immigration\s+(?:authority|department|website)|"
    r"international\s+(?:office|student\s+office)|university'?s?\s+(?:own\s+)?(?:website|page|office))\b",
    re.IGNORECASE)


def says_no_information(text: str) -> bool:
    """The answer says it has no official information on the question AND points to an official source."""
    return bool(_NO_INFO.search(text)) and bool(_POINTER.search(text))


# ------------------------------------------------------------------------------------------------- all together


@dataclass
class Assessment:
    loops: list[Loop] = field(default_factory=list)
    foreign_urls: list[str] = field(default_factory=list)
    unverified_entities: list[str] = field(default_factory=list)   # left unmarked in the text
    off_topic_citations: list[str] = field(default_factory=list)   # ids of cited off-topic facts
    says_no_information: bool = False

    @property
    def looping(self) -> bool:
        return bool(self.loops)

    def to_dict(self) -> dict[str, Any]:
        return {"looping": self.looping, "loops": [lp.to_dict() for lp in self.loops],
                "foreign_urls": self.foreign_urls, "unverified_entities": self.unverified_entities,
                "off_topic_citations": self.off_topic_citations, "says_no_information": self.says_no_information}


def assess(answer: str, question: str, kb: Any, cited_sources: list[Any] | None = None,
           threshold: float | None = None) -> Assessment:
    """Every check on one answer as a student reads it. Names already marked "(unverified)" do not count as
    left unmarked; ``cited_sources`` are the sources the answer cites (for off-topic citations)."""
    ents = [f.name for f in unverified_entities(answer, question, kb)
            if answer[f.span[1]:f.span[1] + len(UNVERIFIED_MARK) + 12].find("(unverified)") < 0]
    off = off_topic_sources(question, cited_sources or [], threshold)
    return Assessment(loops=find_loops(answer), foreign_urls=[f.url for f in foreign_urls(answer, kb)],
                      unverified_entities=ents,
                      off_topic_citations=[getattr(getattr(s, "fact", s), "id", "?") for s in off],
                      says_no_information=says_no_information(answer))


__all__ = ["Loop", "find_loops", "cut_loops", "Degenerate", "find_degenerate", "foreign_urls", "remove_foreign_urls", "unverified_entities",
           "mark_unverified_entities", "off_topic_sources", "answer_off_topic", "says_no_information", "assess", "Assessment",
           "kb_entries", "UrlFinding", "EntityFinding", "RuleFinding", "unsupported_rules", "english_words",
           "SpecificFinding", "unbounded_durations", "undated_deadlines", "prompt_talk",
           "unsupported_superlatives"]
