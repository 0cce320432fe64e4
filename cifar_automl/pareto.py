"""Pareto fronts of (accuracy, costs...): accuracy is maximised, every cost minimised.

Non-dominated sorting and crowding distance as in NSGA-II (Deb et al., 2002), the 2-D hypervolume a
front covers, and the choice of K models spread along a front. Used by the multi-objective pruner
(`search.moasha`), `retrain --pareto` and the Pareto benchmark.
"""

from __future__ import annotations

from typing import Sequence

Point = Sequence[float]  # (accuracy, cost, ...)


def dominates(a: Point, b: Point) -> bool:
    """`a` is at least as good as `b` everywhere (higher accuracy, lower costs) and better somewhere."""
    at_least = a[0] >= b[0] and all(x <= y for x, y in zip(a[1:], b[1:]))
    better = a[0] > b[0] or any(x < y for x, y in zip(a[1:], b[1:]))
    return at_least and better


def fronts(points: Sequence[Point]) -> list[list[int]]:
    """Indices of `points` by non-dominated front: the first front dominates nobody's reach, and so on."""
    n = len(points)
    dominated_by = [[j for j in range(n) if dominates(points[i], points[j])] for i in range(n)]
    count = [sum(dominates(points[j], points[i]) for j in range(n)) for i in range(n)]
    out, current = [], [i for i in range(n) if count[i] == 0]
    while current:
        out.append(current)
        following = []
        for i in current:
            for j in dominated_by[i]:
                count[j] -= 1
                if count[j] == 0:
                    following.append(j)
        current = sorted(following)
    return out


def crowding(points: Sequence[Point], front: Sequence[int]) -> dict[int, float]:
    """Crowding distance of each point of one front: the ends of every objective are infinitely far,
    the others the sum over objectives of their neighbours' normalised gap."""
    distance = {i: 0.0 for i in front}
    if len(front) <= 2:
        return {i: float("inf") for i in front}
    for k in range(len(points[front[0]])):
        ordered = sorted(front, key=lambda i: points[i][k])
        low, high = points[ordered[0]][k], points[ordered[-1]][k]
        distance[ordered[0]] = distance[ordered[-1]] = float("inf")
        if high == low:
            continue
        for left, mid, right in zip(ordered, ordered[1:], ordered[2:]):
            distance[mid] += (points[right][k] - points[left][k]) / (high - low)
    return distance


def ranking(points: Sequence[Point]) -> list[int]:
    """All indices, best first: by front, then by crowding distance (larger first) inside a front."""
    order = []
    for front in fronts(points):
        dist = crowding(points, front)
        order += sorted(front, key=lambda i: -dist[i])
    return order


def hypervolume_2d(points: Sequence[tuple[float, float]], ref_cost: float, ref_accuracy: float = 0.0) -> float:
    """Area that (accuracy, cost) points dominate inside the box from (ref_accuracy, ref_cost):
    accuracy above ref_accuracy, cost below ref_cost."""
    inside = sorted((c, a) for a, c in points if c < ref_cost and a > ref_accuracy)
    area, best = 0.0, ref_accuracy
    for (cost, acc), nxt in zip(inside, [c for c, _ in inside[1:]] + [ref_cost]):
        best = max(best, acc)
        area += (nxt - cost) * (best - ref_accuracy)
    return area


def spread(front: Sequence[Point], k: int) -> list[int]:
    """`k` indices of a front's points spread evenly along its first cost (both ends included)."""
    ordered = sorted(range(len(front)), key=lambda i: front[i][1])
    if k >= len(ordered):
        return ordered
    if k == 1:
        return [max(ordered, key=lambda i: front[i][0])]
    picks = [ordered[round(j * (len(ordered) - 1) / (k - 1))] for j in range(k)]
    return list(dict.fromkeys(picks))
