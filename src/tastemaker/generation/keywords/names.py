"""Person names written in lower case ("brad pitt"), which no capitalisation rule can see.

PMG's poster prompt says "Character names should be excluded" (Shen et al., WWW
2024, arXiv 2404.08677). :mod:`.echo` spots capitalised names; a model that writes
its whole list in lower case hides them. A short phrase that starts with a common
given name is taken for a person's name. The list leaves out given names that are
also ordinary words (rose, hope, grace, summer, dawn, mark, will, jack, ray, joy,
lily, iris, amber, ruby, angel, faith, hunter, max,
gene, jean, woody, carol, christian, matt, tommy, ted), so "rose garden" and "dark
forest" stay keywords; a name such as "rose byrne" passes: it is a heuristic.
"""

from __future__ import annotations

from tastemaker.generation.keywords.parsing import keyword_key

MAX_NAME_WORDS = 3

_NAMES = """
    aaron adam adrian al alan albert alex alexander alfred alice amanda amy andrew
    angela angelina ann anna anne anthony arnold audrey barbara ben benedict bette betty
    brad brian bruce bryan carl caroline catherine cate charles charlie charlotte chris
    christina christine christopher clint colin daniel danny david debra denzel diana
    diane dustin ed edward elizabeth ellen emily emma eric ethan francis gary george
    gerard greg gregory gwyneth halle harrison harry heath helen henry hugh humphrey ian
    jackie james jane janet jason jeff jennifer jeremy jessica jim jodie joe john johnny
    jon jonathan joseph judi julia julie julianne justin kate katharine katherine keanu
    keira kevin kirsten kurt laura lauren leonardo liam linda lisa louis lucy margaret
    maria marilyn martin mary matthew meg mel meryl michael michelle mickey mike morgan
    natalie nicholas nicolas nicole oliver orlando paul peter philip quentin rachel
    ralph reese richard ridley robert robin roger ron russell ryan sam samuel sandra
    sarah scarlett sean sigourney simon sophia stanley stephen steve steven susan
    sylvester terry thomas tim timothy tom tony uma val victoria vincent viola walt
    walter wes whoopi william winona
"""
GIVEN_NAMES = frozenset(_NAMES.split())


def is_person_name(keyword: str) -> bool:
    """Whether ``keyword`` reads as a person's name whatever its case: two or three words
    of letters, the first a common given name ("brad pitt", "Tom Hanks")."""
    words = keyword_key(keyword).split()
    return (
        2 <= len(words) <= MAX_NAME_WORDS
        and words[0] in GIVEN_NAMES
        and all(w.isalpha() for w in words)
    )
