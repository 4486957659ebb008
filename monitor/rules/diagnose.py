"""Why a rule did not match a document (for `monitor rules eval`'s false negatives): the alternative of the
rule that came closest, and what it was missing — a term list that does not occur, parts that occur but not
in one sentence or not near each other, or an exclusion that held."""

from __future__ import annotations

from monitor.rules.document import Document
from monitor.rules.nodes import AllNode, AnyNode, ExceptNode, LangNode, MinNode, Node, NotNode, TagsNode, TermsNode
from monitor.rules.proximity import NearNode, SentenceNode

MAX_LABEL = 70


def _paths(node: Node) -> list[str]:
    """The clause paths of every term under ``node``."""
    if isinstance(node, TermsNode):
        return [path for path, _ in node.entries]
    children: tuple[Node, ...] = getattr(node, "children", ())
    child = getattr(node, "child", None)
    return [path for sub in (*children, *([child] if child is not None else [])) for path in _paths(sub)]


def _list_name(node: Node) -> str | None:
    """The term list that every term under ``node`` is a direct item of (``$party_fta``), if there is one."""
    paths = [path.split(" ")[0].split("/") for path in _paths(node)]
    names = {parts[-1].split("[")[0] if parts[-1].startswith("$") else None for parts in paths}
    if len(names) == 1 and None not in names:
        return names.pop()
    # a list holding clauses of its own (``$fta`` with an ``all`` for EPA): every path goes through it right
    # after the part they share ("…/$fta 'FTA'", "…/$fta[9]/all[0]/any[0] 'EPA'")
    shared = 0
    while all(len(parts) > shared for parts in paths) and len({parts[shared] for parts in paths}) == 1:
        shared += 1
    after = {parts[shared].split("[")[0] for parts in paths if len(parts) > shared}
    if len(paths) > 1 and all(len(parts) > shared for parts in paths) and len(after) == 1:
        name = after.pop()
        return name if name.startswith("$") else None
    return None


def _list_names(node: TermsNode) -> list[str]:
    """The term lists a list of terms was written with (``[$china, $japan]``), when every term comes from one."""
    names: list[str] = []
    for path, _ in node.entries:
        last = path.split(" ")[0].split("/")[-1]
        if not last.startswith("$"):
            return []
        if last.split("[")[0] not in names:
            names.append(last.split("[")[0])
    return names


def label(node: Node) -> str:
    """A short name of a clause: its term list (``$negotiation``), its first terms, or its operator."""
    if isinstance(node, TermsNode | AnyNode) and (name := _list_name(node)) is not None:
        return name
    if isinstance(node, TermsNode) and (names := _list_names(node)):
        return " | ".join(names)
    if isinstance(node, TermsNode):
        terms = [term.source for _, term in node.entries]
        shown = ", ".join(repr(t) for t in terms[:3]) + (", …" if len(terms) > 3 else "")
        return shown if len(shown) <= MAX_LABEL else shown[:MAX_LABEL] + "…"
    if isinstance(node, ExceptNode | MinNode):
        return label(node.child)
    if isinstance(node, NotNode):
        return f"not {label(node.child)}"
    if isinstance(node, LangNode):
        return f"lang {sorted(node.langs)}"
    if isinstance(node, TagsNode):
        return f"tags {sorted(node.tags)}"
    if isinstance(node, NearNode):
        return f"near({', '.join(label(c) for c in node.children)}; {node.within})"
    if isinstance(node, SentenceNode):
        return f"sentence({', '.join(label(c) for c in node.children)})"
    if isinstance(node, AnyNode):
        names = [label(c) for c in node.children]
        return " | ".join(names[:3]) + (" | …" if len(names) > 3 else "")
    if isinstance(node, AllNode):
        return f"all({', '.join(label(c) for c in node.children)})"
    return type(node).__name__


def _parts(node: Node) -> tuple[Node, ...]:
    if isinstance(node, AllNode | SentenceNode | NearNode):
        return node.children
    return (node,)


def _missing(node: Node, doc: Document) -> tuple[float, int, str]:
    """(parts that hold anywhere in the document, parts, what is missing) for one alternative; parts that all
    occur but not together count as all but half a part (closer than any alternative that lacks one)."""
    parts = _parts(node)
    held = [part.evaluate(doc).held for part in parts]
    absent = [part for part, ok in zip(parts, held, strict=True) if not ok]
    found = sum(ok for part, ok in zip(parts, held, strict=True) if not isinstance(part, NotNode))
    if absent:
        reasons = [f"excluded by {label(p.child)}" if isinstance(p, NotNode) else f"no {label(p)}" for p in absent]
        return found, len(parts), "; ".join(reasons)
    if isinstance(node, SentenceNode):
        return len(parts) - 0.5, len(parts), "all parts occur, but not in one sentence"
    if isinstance(node, NearNode):
        return len(parts) - 0.5, len(parts), f"all parts occur, but not within {node.within} words"
    return len(parts) - 0.5, len(parts), "its parts hold, but not together"


def _alternatives(node: Node) -> list[Node]:
    """The ways a clause can hold: the children of an ``any`` (of nested ones too), else the clause itself."""
    if isinstance(node, AnyNode):
        return [alternative for child in node.children for alternative in _alternatives(child)]
    return [node]


def explain_miss(root: Node, doc: Document) -> str:
    """The rule's alternative that came closest to holding and what it lacked, e.g.
    ``closest: sentence($fta, $negotiation, $party_fta): no $negotiation``."""
    alternatives = _alternatives(root)
    best: tuple[float, float, str, str] | None = None
    for alternative in alternatives:
        held, total, why = _missing(alternative, doc)
        score = (held / total if total else 0.0, held)
        if best is None or score > best[:2]:
            best = (score[0], score[1], label(alternative), why)
    if best is None or best[1] == 0:
        return "none of its terms occurs"
    return f"closest: {best[2]}: {best[3]}"
