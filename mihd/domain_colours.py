"""Colours of spatial domain maps, shared by the dashboard's terminal map and `mihd export --png`.

Truth domains get palette colours in sorted order of their names. A predicted cluster takes the colour of
the truth domain it overlaps most (greedy by overlap, one cluster per domain), so a good result looks like
the truth beside it; a cluster left without a domain (a split one) takes a colour no domain has.
Pure Python: the dashboard imports it.
"""

from __future__ import annotations

from collections import Counter

PALETTE = ("#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6",
           "#bcf60c", "#fabebe", "#008080", "#e6beff", "#9a6324", "#fffac8", "#800000", "#aaffc3")
UNLABELLED = "#555555"


def truth_colours(truth: list) -> dict:
    """Truth domain -> colour, in sorted order of the domain names."""
    names = sorted({t for t in truth if t is not None})
    return {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(names)}


def match_clusters(labels: list[int], truth: list | None) -> dict[int, str]:
    """Predicted cluster -> the truth domain it overlaps most, taking pairs by overlap while both are free."""
    out: dict[int, str] = {}
    if truth:
        overlap = Counter((int(c), t) for c, t in zip(labels, truth) if t is not None and c is not None and c >= 0)
        used = set()
        for (c, t), _ in overlap.most_common():
            if c not in out and t not in used:
                out[c], _ = t, used.add(t)
    return out


def matched_colours(labels: list[int], truth: list | None, truth_map: dict) -> dict:
    """Predicted cluster -> colour: its matched truth domain's colour, else one no truth domain uses."""
    clusters = sorted({int(c) for c in labels if c is not None and c >= 0})
    out = {c: truth_map[t] for c, t in match_clusters(labels, truth).items()}
    spare = [p for p in PALETTE if p not in truth_map.values()] or list(PALETTE)  # never a domain's colour
    for i, c in enumerate(c for c in clusters if c not in out):
        out[c] = spare[i % len(spare)]
    return out


def map_colours(spots: dict, labels: list[int]) -> tuple[list, list]:
    """(colours of the predicted labels, colours of the truth) per spot, matched as the module says."""
    truth = spots.get("truth")
    tmap = truth_colours(truth or [])
    pmap = matched_colours(labels, truth, tmap)
    pred = [pmap.get(int(c), UNLABELLED) if c is not None and c >= 0 else UNLABELLED for c in labels]
    true = [tmap.get(t, UNLABELLED) for t in truth] if truth else [UNLABELLED] * len(labels)
    return pred, true


def legend(spots: dict, labels: list[int]) -> list[tuple[str, str]]:
    """(name, colour) of what a map of these labels shows: the truth domains, then clusters matched to none,
    then `unlabelled` when some spot is drawn in its grey."""
    truth = spots.get("truth")
    tmap = truth_colours(truth or [])
    pmap = matched_colours(labels, truth, tmap)
    matched = set(match_clusters(labels, truth))
    out = list(tmap.items())
    out += [(f"cluster {c}" + (" (no domain)" if truth else ""), pmap[c]) for c in sorted(pmap) if c not in matched]
    pred, true = map_colours(spots, labels)
    if UNLABELLED in pred or (truth and UNLABELLED in true):
        out.append(("unlabelled", UNLABELLED))
    return out
