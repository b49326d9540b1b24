"""Segments: groups of citizens with similar service use across units (k-means), and how stable they are.

A person's profile is, per service, the share of their quarters in the panel with it. k-means runs on
the profiles of persons who used at least one service besides school enrolment (everyone else is one
obvious group: "no services", reported with its size). k is chosen by silhouette on a sample; the
stability is the mean adjusted Rand index between the segmentation and segmentations fitted on
bootstrap resamples (1 = the same segments every time). A profile is a few shares of a few quarters, so
many persons have the same one: k-means fits the distinct profiles weighted by how many persons have
each (the same objective as fitting every person; at 1,000,000 citizens some 50,000 rows instead of
950,000), and a bootstrap resample is a multinomial draw of those weights. Each segment is described
in Swedish from its centroid: the services it uses far more than the population, and its most common
age group. Only sizes and centroid shares leave the zone, never a person's segment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score

from pipelines.discovery.findings import Finding, forvaltning_or_total
from pipelines.discovery.panel import AGE_GROUP_LABELS, Panel

K_RANGE = range(3, 9)
BOOTSTRAPS = 10
SAMPLE = 5_000  # persons for choosing k (silhouette is quadratic)
SEED = 20_261_123
METHOD = (
    "k-medelvärdesklustring (scikit-learn) av personers andel kvartal med varje insats; k valt med "
    f"silhouette; stabilitet = medelvärdet av justerat Rand-index mot {BOOTSTRAPS} bootstrapomgångar."
)
EXCLUDED = ("school",)  # nearly every child has it: it would split by age, not by service use


def profiles(panel: Panel) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(persons x services share of quarters, each person's most common age group, service names)."""
    names = [i.name for i in panel.indicators if i.name not in EXCLUDED]
    quarters = np.bincount(panel.person, minlength=panel.persons).astype(float)
    columns = [
        np.bincount(panel.person, weights=panel.flag(n), minlength=panel.persons) / quarters for n in names
    ]
    shares = np.column_stack(columns) if columns else np.zeros((panel.persons, 0))  # nothing shared yet
    age = np.zeros(panel.persons, dtype=np.int64)
    age[panel.person] = panel.age_group  # the latest quarter's age group (rows are in key order)
    return shares, age, names


def analyse(panel: Panel) -> list[Finding]:
    shares, age, names = profiles(panel)
    users = shares.sum(axis=1) > 0
    x = shares[users]
    if len(x) < 50:
        return []
    rng = np.random.default_rng(SEED)
    people = Distinct.of(x)
    k = min(choose_k(x, rng), len(people.rows))  # no more segments than there are distinct profiles
    model = KMeans(n_clusters=k, n_init=4, random_state=SEED).fit(people.rows, sample_weight=people.count)
    labels = people.of_persons(model.labels_)
    stability = bootstrap_stability(people, model.labels_, k, rng)
    population_mean = shares.mean(axis=0)
    out = [_none_segment(panel, int((~users).sum()), stability)]
    order = np.argsort(-np.bincount(labels, minlength=k))
    for rank, c in enumerate(order, start=1):
        members = labels == c
        out.append(
            _segment(
                panel, rank, model.cluster_centers_[c], population_mean, names, age[users][members], stability
            )
        )
    return out


@dataclass(frozen=True)
class Distinct:
    """The distinct profiles (``rows``), how many persons have each (``count``) and each person's row."""

    rows: np.ndarray
    count: np.ndarray
    person_row: np.ndarray

    @classmethod
    def of(cls, x: np.ndarray) -> Distinct:
        whole = np.ascontiguousarray(x)
        # one opaque value per person's profile: np.unique over rows (axis=0) is ten times slower
        as_bytes = whole.view(np.dtype((np.void, whole.dtype.itemsize * whole.shape[1]))).ravel()
        _, first, person_row, count = np.unique(
            as_bytes, return_index=True, return_inverse=True, return_counts=True
        )
        return cls(whole[first], count, person_row)

    def of_persons(self, row_labels: np.ndarray) -> np.ndarray:
        return row_labels[self.person_row]


def choose_k(x: np.ndarray, rng: np.random.Generator) -> int:
    """The k with the best silhouette on a sample."""
    sample = x[rng.choice(len(x), size=min(SAMPLE, len(x)), replace=False)]
    best, best_score = K_RANGE[0], -1.0
    for k in K_RANGE:
        if k >= len(np.unique(sample, axis=0)):
            break
        labels = KMeans(n_clusters=k, n_init=2, random_state=SEED).fit_predict(sample)
        score = silhouette_score(sample, labels)
        if score > best_score:
            best, best_score = k, score
    return best


def bootstrap_stability(people: Distinct, labels: np.ndarray, k: int, rng: np.random.Generator) -> float:
    """Mean adjusted Rand index between the segmentation (``labels`` of the distinct profiles) and k-means
    refitted on bootstrap resamples of the persons (each distinct profile drawn as often as a resample
    would draw its persons), over every person."""
    persons, scores = int(people.count.sum()), []
    for _ in range(BOOTSTRAPS):
        drawn = rng.multinomial(persons, people.count / persons)
        seen = drawn > 0
        refit = KMeans(n_clusters=min(k, int(seen.sum())), n_init=2, random_state=int(rng.integers(1 << 31)))
        refit.fit(people.rows[seen], sample_weight=drawn[seen])
        scores.append(adjusted_rand(labels, refit.predict(people.rows), people.count))
    return float(np.mean(scores))


def adjusted_rand(first: np.ndarray, second: np.ndarray, count: np.ndarray) -> float:
    """scikit-learn's ``adjusted_rand_score`` of two labelings of persons, given per distinct profile
    (``count`` persons each): its pair counts from the contingency table every person would give, without
    sorting every person's labels (ten bootstraps' scores over every person were half the segments' time)."""
    table = np.zeros((first.max() + 1, second.max() + 1), dtype=np.int64)
    np.add.at(table, (first, second), count)
    n, squares = int(table.sum()), int((table**2).sum())
    both = squares - n  # pairs together in both
    only_second = int((table.sum(axis=0) ** 2).sum()) - squares
    only_first = int((table.sum(axis=1) ** 2).sum()) - squares
    neither = n**2 - only_second - only_first - squares
    if only_first == 0 and only_second == 0:
        return 1.0
    return (
        2.0
        * (both * neither - only_first * only_second)
        / ((both + only_first) * (only_first + neither) + (both + only_second) * (only_second + neither))
    )


def describe(centre: np.ndarray, population_mean: np.ndarray, names: list[str], panel: Panel) -> str:
    """The services the segment uses in at least 10 % of its quarters and at least twice as often as all."""
    labels = {i.name: i.label for i in panel.indicators}
    rows = [
        (centre[j], centre[j] / population_mean[j] if population_mean[j] > 0 else float("inf"), names[j])
        for j in np.argsort(-centre)
        if centre[j] >= 0.10 and (population_mean[j] == 0 or centre[j] >= 2 * population_mean[j])
    ]
    if not rows:
        common = [names[j] for j in np.argsort(-centre)[:2] if centre[j] > 0]
        return "Enstaka kontakter: " + ", ".join(
            f"{labels[n]} ({100 * centre[names.index(n)]:.0f} %)" for n in common
        )
    return "; ".join(
        f"{labels[n]} {100 * c:.0f} % av kvartalen ({r:.0f} × alla)".replace(".", ",") for c, r, n in rows
    )


def shares_text(centre: np.ndarray, names: list[str], panel: Panel) -> str:
    """A segment's centre as a reader sees it: per service, the share of the segment's quarters with it."""
    labels = {i.name: i.label for i in panel.indicators}
    shares = (f"{labels[n]} {100 * max(c, 0.0):.0f} %" for n, c in zip(names, centre, strict=True))
    return "Andel kvartal: " + ", ".join(shares)


def _segment(
    panel: Panel,
    rank: int,
    centre: np.ndarray,
    population_mean: np.ndarray,
    names: list[str],
    ages: np.ndarray,
    stability: float,
) -> Finding:
    age = AGE_GROUP_LABELS[int(np.bincount(ages).argmax())] if len(ages) else "okänd"
    text = describe(centre, population_mean, names, panel)
    return Finding(
        finding_id=f"segment:{rank}",
        kind="segment",
        title=f"Segment {rank}: {text.split(';')[0]}",
        description=f"{text}. Vanligaste åldersgrupp: {age}.",
        forvaltning=forvaltning_or_total(None),
        measure="stabilitet (justerat Rand-index)",
        effect=stability,
        reported=True,
        n_a=len(ages),
        n_population=panel.persons,
        about_persons=True,
        detail=shares_text(centre, names, panel),
        method=METHOD,
        data_version=panel.data_version,
    )


def _none_segment(panel: Panel, size: int, stability: float) -> Finding:
    return Finding(
        finding_id="segment:0",
        kind="segment",
        title="Segment 0: inga insatser utöver skolan",
        description="Personer utan någon av de delade insatserna under perioden (utöver inskrivning i skolan).",
        forvaltning=forvaltning_or_total(None),
        measure="stabilitet (justerat Rand-index)",
        effect=stability,
        reported=True,
        n_a=size,
        n_population=panel.persons,
        about_persons=True,
        method=METHOD,
        data_version=panel.data_version,
    )
