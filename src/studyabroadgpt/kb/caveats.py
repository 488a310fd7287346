"""Caveat and policy checks: does an answer touch rules that change, and does it send the student to the source?

A policy-sensitive answer (visas, work rights, funds, health cover…) that never points to the official source
is a failure mode of the published StudyAbroadGPT training data; the audit reports it next to the claims.
"""
from __future__ import annotations

import re

_CAVEAT = re.compile(
    r"official\s+(?:\w+\s+){0,2}(?:website|site|source|page|guidance|information|portal)|"
    r"(?:government|immigration)\s+(?:website|site|page|guidance)|"
    r"\bcheck\s+(?:the\s+)?(?:latest|current|official|up-to-date|with|directly)|"
    r"\b(?:verify|confirm)\s+(?:\w+\s+){0,3}(?:with|on|at|against|before)\b|"
    r"\bdouble-check|\bsubject\s+to\s+change|"
    r"\b(?:rules|requirements|fees|figures|amounts|policies|thresholds|limits|conditions)\s+(?:\w+\s+){0,2}"
    r"(?:can|may|might|often|do|does|could)\s+change|"
    r"\b(?:regulated|registered|licensed|qualified)\s+(?:immigration\s+)?(?:adviser|advisor|consultant|lawyer)|"
    r"\binternational\s+(?:student\s+)?(?:office|advis\w+|support)|"
    r"gov\.uk|canada\.ca|homeaffairs\.gov\.au|uscis\.gov|travel\.state\.gov|studyinthestates|irishimmigration\.ie|"
    r"ind\.nl|immigration\.govt\.nz|make-it-in-germany|auswaertiges-amt",
    re.IGNORECASE)

_POLICY = re.compile(
    r"\b(?:visas?|study\s+permit|residence\s+permit|work\s+permit|immigration|(?:F|J|M)-1|Stamp\s+\d|subclass\s+\d+|"
    r"graduate\s+route|post-study\s+work|PGWP|OPT|CPT|work(?:ing)?\s+(?:rights|hours|limit|while\s+studying)|"
    r"hours\s+(?:per|a)\s+(?:week|fortnight)|part-time\s+(?:work|job)|health\s+(?:insurance|cover|surcharge)|"
    r"IHS|OSHC|proof\s+of\s+(?:funds|finances|financial)|financial\s+requirement|maintenance\s+funds|"
    r"blocked\s+account|bank\s+statements?|dependants?|dependents?|spouse|biometric|BRP|eVisa|registration\s+with|"
    r"Anmeldung|IRP)\b", re.IGNORECASE)


def has_caveat(text: str) -> bool:
    """Does the answer point the student to the official source or advise checking it?"""
    return bool(_CAVEAT.search(text))


def is_policy_sensitive(text: str) -> bool:
    """Does the text touch rules that change without notice (visas, work rights, funds, health cover…)?"""
    return bool(_POLICY.search(text))


__all__ = ["has_caveat", "is_policy_sensitive"]
