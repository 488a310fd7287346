"""Template scaffolding left in an answer: "Clear statement:" labels and "[University Name]" placeholders."""
from __future__ import annotations

import re

# One quantifier per run of blanks: "^[ \t]*(?:[-*][ \t]*)?\**[ \t]*" split a long blank line between its three
# blank-eaters in every possible way before failing (16k spaces: minutes).
_SCAFFOLD_LABELS = re.compile(
    r"^[ \t]*(?:[-*#][ \t]*|#{2,6}[ \t]*)?(?:\*+[ \t]*)?(Clear statement|Reasoning explanation|Supporting evidence|"
    r"Specific example|"
    r"Practical implication|Acknowledge the question|Preview(?: \d+(?:-\d+)?)? key points|Because of|"
    r"This leads to|Cause|Effect|Building on (?:our|the) previous discussion|Introduction|Main Content|"
    r"Conclusion and next steps|Key takeaway|Call to action)[ \t]*:?\**[ \t]*:?", re.IGNORECASE | re.MULTILINE)
_PLACEHOLDER = re.compile(r"\[(?!\d)(?:[A-Z][\w' ]{2,40}|insert[^\]]{0,40}|your [^\]]{1,40}|TBD|XX+)\](?!\()|"
                          r"\{\{?\s*[a-z_]{2,30}\s*\}?\}|<(?:insert|your|university|name)[^>]{0,30}>|\bXX+\b")
# ("[Title](url)" is a markdown link, not a placeholder.)
# Labels that are scaffolding only when they open a line as a bolded label, not as a normal heading.
_LABEL_ONLY_AS_LABEL = {"introduction", "main content"}


def find_scaffolding(text: str) -> list[str]:
    """Template labels and unfilled placeholders left in an answer, as they appear."""
    found: list[str] = []
    for m in _SCAFFOLD_LABELS.finditer(text):
        label = m.group(1)
        eol = text.find("\n", m.end())
        line = text[m.start():eol if eol >= 0 else len(text)]
        if label.lower() in _LABEL_ONLY_AS_LABEL and not re.search(r"#\s*" + re.escape(label) + r"\s*$", line):
            continue
        if label.lower().startswith("building on") and "**" not in line:
            continue
        found.append(label)
    found += [m.group(0) for m in _PLACEHOLDER.finditer(text)]
    return found


__all__ = ["find_scaffolding"]
