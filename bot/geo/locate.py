"""``locate(post) -> Location``: which branch a post is about, how sure, and why.

Precision over recall: a wrong branch pages the wrong manager, so when the evidence does not
single out one branch the post is unroutable (``branch_id`` None) and the evidence says why.

Evidence, strongest first:

1. **Exact coordinates** (invalid or out-of-range ones are ignored): the branches within
   ``radius_m``. The nearest is picked unless another is within ``margin_m`` of its distance.
   Coordinates alone route (confidence 0.90).
2. **Place tag**: a neighbourhood-sized bounding box (diagonal ≤ ``neighbourhood_km``) holding
   exactly one branch picks it (0.70); a bigger box only narrows to the branches inside it.
   Malformed boxes are ignored.
3. **Text**: branch names and aliases (tier 1, 0.85), streets and landmarks (tier 2, 0.75),
   areas (tier 3, 0.65); +0.05 with a cue ("the Angel branch"), −0.05 when only a spelling
   variant matched ("Picadilly", "camden-town"). Several phrases must agree
   (their branches intersect). A city named in the text ("Piccadilly, Manchester") narrows.
   A street, landmark or area routes only if the post talks about a branch (queue, counter,
   ATM, …) or other evidence agrees: "stuck on Euston Road" is not a complaint about a branch.
   A common word ("Sale", "Angel", "Victoria") counts only with a cue ("Sale branch", "queue
   at Angel") or a classifier span labelled as a place; an alias written "X branch" ("John
   Lewis branch") counts only as "X branch", since bare "John Lewis" is a shop.
4. **Profile location**, geocoded: narrows text candidates to those within ``region_km`` of the
   place (−0.10); never picks a branch by itself. Geocoder failures are "no evidence".

Conflicts (the documented rule):

* coordinates within ``radius_m`` of branch A, text names only other branches → unroutable:
  two specific signals disagree;
* a city in the text that none of the named branches is in → unroutable;
* text names branches that share no branch ("from Camden to Brixton") → unroutable, unless
  exactly one reading survives when only branch names/aliases count (−0.10);
* coordinates or a place tag in another city than the branch the text *names* (name or
  alias) → the text wins with lower confidence (−0.25 coordinates, −0.15 place): the author
  is elsewhere, the subject is the named branch;
* coordinates, a place tag or the profile location in another city than a branch suggested
  only by a street, landmark or area → unroutable: street names recur ("Regent Street" is a
  street of the Eccles branch, and the famous one is in London);
* a profile location elsewhere than a named branch is not consulted: people move.

A post about the app or online banking that says nothing about a branch is not routed by
where its author stands (coordinates, place tag): the app's outage is nobody's branch. A result
below ``min_confidence`` is unroutable too.

A :class:`Locator` keeps small memo tables; use one per process (or thread).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.geo.gazetteer import Gazetteer, Mention
from bot.geo.geocoder import ProfileGeocoder
from bot.geo.index import SpatialIndex, bbox_width_deg, distance_m, valid_bbox, valid_point
from bot.geo.model import Evidence, Location
from bot.geo.registry import Registry
from bot.models import Post, Span

TIER_CONFIDENCE = {1: 0.85, 2: 0.75, 3: 0.65}
TIER_WORDS = {1: "names", 2: "is a street or landmark of", 3: "is an area served by"}
COORDINATES_CONFIDENCE = 0.90
CORROBORATED_CONFIDENCE = 0.95
PLACE_CONFIDENCE = 0.70
CUE_BONUS = 0.05
PENALTY = {
    "names-only": 0.10,
    "variant": 0.05,
    "tier": 0.05,
    "profile": 0.10,
    "coordinates-elsewhere": 0.25,
    "place-elsewhere": 0.15,
}
#: Classifier span labels that mark a place, confirming a common-word mention ("Angel").
LOCATION_LABELS = ("location", "geo", "gpe", "loc", "fac")


@dataclass(frozen=True, slots=True)
class LocatorOptions:
    """Tuning, from the ``geo`` settings section."""

    radius_m: float = 400.0
    margin_m: float = 75.0
    region_km: float = 25.0
    neighbourhood_km: float = 3.0
    bbox_margin_m: float = 150.0
    min_confidence: float = 0.5
    city_aliases: Mapping[str, Sequence[str]] = field(default_factory=dict)


class Locator:
    """Built once from the registry and a geocoder; :meth:`locate` is then per post."""

    def __init__(
        self,
        registry: Registry,
        geocoder: ProfileGeocoder | Any | None = None,
        options: LocatorOptions | None = None,
    ) -> None:
        self.registry = registry
        self.options = options or LocatorOptions()
        self.index = SpatialIndex(registry)
        self.gazetteer = Gazetteer(registry, self.options.city_aliases)
        if geocoder is None or isinstance(geocoder, ProfileGeocoder):
            self.geocoder = geocoder
        else:
            self.geocoder = ProfileGeocoder(geocoder)
        self._near: dict[tuple[float, float, float], frozenset[str]] = {}
        self._described: dict[str, str] = {}
        self._cities: dict[str, frozenset[str]] = {}
        for b in registry:
            key = b.city.casefold()
            self._cities[key] = self._cities.get(key, frozenset()) | {b.id}

    def locate(self, post: Post, classification_spans: Sequence[Span] = ()) -> Location:
        """The branch ``post`` is about, or None with the reasons it is unroutable."""
        return _Case(self, post, classification_spans).decide()

    def locate_many(
        self, posts: Iterable[Post], spans: Iterable[Sequence[Span]] | None = None
    ) -> list[Location]:
        """:meth:`locate` for a batch; ``spans`` (if given) pairs with ``posts``."""
        posts = list(posts)
        span_lists = list(spans) if spans is not None else [()] * len(posts)
        return [self.locate(p, s) for p, s in zip(posts, span_lists, strict=True)]

    def describe(self, m: Mention) -> str:
        """What a phrase names, in words; worked out once per phrase."""
        text = self._described.get(m.key)
        if text is None:
            tier = m.best_tier
            named = m.at_tier(tier)
            others = set(m.branches) - named
            text = f"{TIER_WORDS[tier]} {_ids(named)}" + (
                f" (and is a street, landmark or area of {_ids(others)})" if others else ""
            )
            self._described[m.key] = text
        return text

    def city_branches(self, city: str) -> frozenset[str]:
        return self._cities.get(city.casefold(), frozenset())

    def near(self, lat: float, lon: float, km: float) -> frozenset[str]:
        """Branches within ``km`` of the point: a city-sized region, measured roughly.

        Memoised (bounded): geocoded profile places repeat ("London" thousands of times)."""
        key = (round(lat, 4), round(lon, 4), km)
        hit = self._near.get(key)
        if hit is None:
            found = self.index.within(lat, lon, km * 1000, rough=True)
            hit = frozenset(n.branch.id for n in found)
            if len(self._near) >= 4096:
                self._near.clear()
            self._near[key] = hit
        return hit


def locate(post: Post, classification_spans: Sequence[Span] = (), *, locator: Locator) -> Location:
    """Module-level form of :meth:`Locator.locate`."""
    return locator.locate(post, classification_spans)


def _ids(ids: Collection[str]) -> str:
    """ "a, b and c", or the first five and how many more."""
    if len(ids) > 6:
        return ", ".join(sorted(ids)[:5]) + f" and {len(ids) - 5} more"
    s = sorted(ids)
    return ", ".join(s[:-1]) + (" and " if len(s) > 1 else "") + s[-1] if s else "none"


class _Case:
    """The evidence about one post and the decision; lives for one :meth:`Locator.locate`."""

    def __init__(self, loc: Locator, post: Post, spans: Sequence[Span]) -> None:
        self.loc = loc
        self.opt = loc.options
        self.post = post
        self.spans = [s for s in spans if s.label.casefold().startswith(LOCATION_LABELS)]
        self.evidence: list[Evidence] = []
        self.penalty = 0.0
        # coordinates
        self.coord_within: frozenset[str] = frozenset()  # within radius_m
        self.coord_pick: frozenset[str] = frozenset()  # the nearest (or near-ties)
        self._coord_point: tuple[float, float] | None = None  # valid coordinates, no branch near
        # place tag
        self.place_pick: frozenset[str] | None = None  # neighbourhood box: branches inside
        self.place_region: frozenset[str] | None = None
        self.branch_context = False
        self.digital = False  # about the app / online banking, nothing about a branch

    # -- evidence ------------------------------------------------------------------------------

    def note(
        self,
        kind: str,
        summary: str,
        ids: Iterable[str] = (),
        strength: float = 0.0,
        span: Span | None = None,
    ) -> None:
        ordered = ids if isinstance(ids, tuple) else tuple(sorted(ids))  # tuples come sorted
        self.evidence.append(Evidence(kind, summary, ordered, span, strength))

    def read_coordinates(self) -> None:
        coords = self.post.coordinates
        if coords is None:
            return
        lat, lon = coords
        if not valid_point(lat, lon):
            self.note("ignored", f"coordinates {lat}, {lon} are out of range or (0, 0)")
            return
        hits = self.loc.index.within(lat, lon, self.opt.radius_m)
        where = f"coordinates {lat:.5f}, {lon:.5f}"
        if not hits:
            self._coord_point = (lat, lon)
            self.note(
                "coordinates", f"{where}: no branch within {self.opt.radius_m:.0f} m", (), 0.3
            )
            return
        self.coord_within = frozenset(h.branch.id for h in hits)
        first = hits[0].distance_m
        self.coord_pick = frozenset(
            h.branch.id for h in hits if h.distance_m - first <= self.opt.margin_m
        )
        detail = "; ".join(f"{h.branch.id} {h.distance_m:.0f} m" for h in hits[:4])
        self.note("coordinates", f"{where}: {detail}", self.coord_within, COORDINATES_CONFIDENCE)

    def read_place(self) -> None:
        place = self.post.place
        if place is None:
            return
        label = place.full_name or place.name
        if place.bbox is not None:
            if not valid_bbox(place.bbox):
                self.note("ignored", f"place {label!r}: malformed bounding box {place.bbox}")
                return
            west, south, _, north = place.bbox
            width = bbox_width_deg(place.bbox)
            east_end = (west + width + 180.0) % 360.0 - 180.0
            diagonal_km = distance_m(south, west, north, east_end) / 1000
            inside = frozenset(
                b.id for b in self.loc.index.in_bbox(place.bbox, self.opt.bbox_margin_m)
            )
            if diagonal_km <= self.opt.neighbourhood_km:
                self.place_pick = inside
                mid_lat = (south + north) / 2
                mid_lon = (west + width / 2 + 180.0) % 360.0 - 180.0
                self.place_region = self.loc.near(mid_lat, mid_lon, self.opt.region_km)
            else:
                self.place_region = inside
            self.note(
                "place",
                f"place {label!r} ({diagonal_km:.1f} km across) holds "
                f"{len(inside)} branch{'es' if len(inside) != 1 else ''}"
                + (f": {_ids(inside)}" if 0 < len(inside) <= 6 else ""),
                inside if len(inside) <= 6 else (),
                PLACE_CONFIDENCE if self.place_pick and len(self.place_pick) == 1 else 0.3,
            )
            return
        cities = {c for m in self.loc.gazetteer.find(label).mentions for c in m.cities}
        if cities:
            self.place_region = frozenset().union(*(self.loc.city_branches(c) for c in cities))
            self.note("place", f"place {label!r} is in {', '.join(sorted(cities))}", (), 0.3)

    def read_text(self) -> tuple[list[Mention], set[str]]:
        found = self.loc.gazetteer.find(self.post.text)
        self.branch_context = found.branch_context
        self.digital = found.digital and not found.branch_context
        mentions: list[Mention] = []
        cities: set[str] = set()
        for m in found.mentions:
            if m.weak and not (
                m.cued or (m.capitalised and m.after_preposition) or self._confirmed(m)
            ):
                self.note(
                    "ignored",
                    f"{m.span.text!r} is also an ordinary word; nothing marks it as a place",
                    m.branches,
                    span=m.span,
                )
                continue
            if m.meaning.cue_only and not m.cued:
                self.note(
                    "ignored",
                    f"{m.span.text!r} names a branch only as 'the {m.span.text} branch'",
                    m.meaning.ids,
                    span=m.span,
                )
                continue
            if m.branches:
                mentions.append(m)
                summary = f"{m.span.text!r} {self.loc.describe(m)}"
                tier = m.best_tier
                self.note("text", summary, m.meaning.ids, TIER_CONFIDENCE[tier], m.span)
            elif m.cities:
                cities.update(m.cities)
                self.note("city", f"text names {', '.join(m.cities)}", (), 0.5, m.span)
        return mentions, cities

    @property
    def coord_region(self) -> frozenset[str] | None:
        """Branches within ``region_km`` of coordinates that are near no branch; computed only
        when a decision needs it."""
        if self._coord_point is None:
            return None
        return self.loc.near(*self._coord_point, self.opt.region_km)

    def _confirmed(self, m: Mention) -> bool:
        return any(s.start <= m.span.start and m.span.end <= s.end for s in self.spans)

    # -- decision -------------------------------------------------------------------------------

    def decide(self) -> Location:
        self.read_coordinates()
        self.read_place()
        mentions, cities = self.read_text()
        city_set = (
            frozenset().union(*(self.loc.city_branches(c) for c in cities)) if cities else None
        )
        if mentions:
            return self.from_text(mentions, city_set, cities)
        return self.without_text(city_set, cities)

    def without_text(self, city_set: frozenset[str] | None, cities: set[str]) -> Location:
        if self.digital and (self.coord_pick or self.place_pick):
            return self.unroutable(
                "ambiguous",
                "the post is about the app or online banking; where the author stands does not "
                "make it a branch's problem",
                self.coord_pick | (self.place_pick or frozenset()),
            )
        if self.coord_pick:
            pick = self.coord_pick & city_set if city_set is not None else self.coord_pick
            if city_set is not None and not pick:
                return self.unroutable(
                    "conflict",
                    f"coordinates are at {_ids(self.coord_pick)} but the text names "
                    f"{', '.join(sorted(cities))}",
                    self.coord_pick,
                )
            if len(pick) == 1:
                return self.routed(next(iter(pick)), COORDINATES_CONFIDENCE)
            return self.unroutable(
                "ambiguous",
                f"coordinates are about as close to {_ids(pick)} (within "
                f"{self.opt.margin_m:.0f} m of each other's distance); nothing else tells "
                "them apart",
                pick,
            )
        if self.place_pick is not None and len(self.place_pick) == 1:
            (bid,) = self.place_pick
            if city_set is not None and bid not in city_set:
                return self.unroutable(
                    "conflict",
                    f"the place tag holds only {bid} but the text names "
                    f"{', '.join(sorted(cities))}",
                    self.place_pick,
                )
            return self.routed(bid, PLACE_CONFIDENCE)
        if self.place_pick:
            return self.unroutable(
                "ambiguous",
                f"the place tag holds {_ids(self.place_pick)}; no branch named in the text",
                self.place_pick,
            )
        narrowed = city_set or self.coord_region or self.place_region
        if narrowed:
            return self.unroutable(
                "ambiguous",
                f"evidence narrows to {len(narrowed)} branches ({_ids(narrowed)}) but names none",
                narrowed,
            )
        if self.post.author.location.strip():
            self.note(
                "profile",
                f"profile location {self.post.author.location!r} not used: it only narrows "
                "branches named elsewhere and never picks one by itself",
            )
        return self.unroutable("none", "no branch, street, place or coordinates in the post")

    def from_text(
        self, mentions: list[Mention], city_set: frozenset[str] | None, cities: set[str]
    ) -> Location:
        sets = [m.meaning.all for m in mentions]
        cands = frozenset.intersection(*sets)
        if not cands:
            named = [m.at_tier(1) for m in mentions if m.best_tier == 1]
            cands = frozenset.intersection(*named) if named else frozenset()
            if not cands:
                listing = "; ".join(f"{m.span.text!r}: {_ids(m.branches)}" for m in mentions)
                return self.unroutable(
                    "conflict",
                    f"the text names places of different branches ({listing})",
                    frozenset().union(*sets),
                )
            self.penalty += PENALTY["names-only"]
            self.note(
                "conflict", "phrases disagree; the branch names win over streets and areas", cands
            )
        corroborated = False
        # Coordinates within radius_m are specific: they must agree with the text.
        if self.coord_within:
            agree = cands & self.coord_within
            if not agree:
                return self.unroutable(
                    "conflict",
                    f"coordinates are at {_ids(self.coord_pick)} but the text names {_ids(cands)}",
                    cands | self.coord_pick,
                )
            cands, corroborated = agree, True
            if len(cands) > 1:
                cands = (cands & self.coord_pick) or cands
        if city_set is not None:
            inside = cands & city_set
            if not inside:
                return self.unroutable(
                    "conflict",
                    f"the text names {_ids(cands)} and {', '.join(sorted(cities))}, "
                    "which do not go together",
                    cands,
                )
            cands = inside
        cands = self.narrow(cands, self.coord_region, "coordinates")
        cands = self.narrow(cands, self.place_pick or self.place_region, "place tag")

        def tier_of(b: str) -> int:
            return min(m.branches[b] for m in mentions if b in m.branches)

        if len(cands) > 1:
            # The candidates at the best tier any phrase gives them (set operations: a common
            # street name can mean hundreds of branches).
            for t in (1, 2, 3):
                top = cands & frozenset().union(*(m.at_tier(t) for m in mentions))
                if top:
                    break
            if len(top) == 1 and top != cands:
                self.penalty += PENALTY["tier"]
                self.note(
                    "text",
                    f"{_ids(top)} is named; {_ids(cands - top)} only has it as a street or area",
                    top,
                    0.4,
                )
                cands = top
        if len(cands) > 1:
            cands = self.narrow_by_profile(cands)
        if len(cands) != 1:
            phrase = " + ".join(repr(m.span.text) for m in mentions)
            return self.unroutable(
                "ambiguous",
                f"{phrase} matches {_ids(cands)}; no other evidence tells them apart",
                cands,
            )
        (bid,) = cands
        best_tier = tier_of(bid)
        corroborated = corroborated or bid in (self.place_pick or ())
        cued = any(m.cued and bid in m.branches for m in mentions)
        if best_tier > 1 and not (self.branch_context or cued or corroborated):
            return self.unroutable(
                "ambiguous",
                f"{bid} is only suggested by a street, landmark or area, and nothing in "
                "the post says it is about a branch",
                cands,
            )
        elsewhere = self.elsewhere(bid, with_profile=best_tier > 1)
        if elsewhere and best_tier > 1:
            return self.unroutable(
                "conflict",
                f"{bid} is only suggested by a street, landmark or area, and the "
                f"{' and '.join(elsewhere)} say{'s' if len(elsewhere) == 1 else ''} the author "
                "is elsewhere: the same street names recur in other cities",
                cands,
            )
        for what in elsewhere:
            self.penalty += PENALTY[f"{what.split()[0]}-elsewhere"]
            self.note(
                "conflict",
                f"the {what} point{'' if what.endswith('s') else 's'} elsewhere than {bid}; the "
                "branch is named, so the text wins, with less confidence",
                (bid,),
            )
        confidence = TIER_CONFIDENCE[best_tier] + (CUE_BONUS if cued else 0.0)
        if not any(m.exact and bid in m.branches for m in mentions):
            confidence -= PENALTY["variant"]  # matched only after normalising: "Picadilly"
        if corroborated:  # coordinates at the branch, or a neighbourhood place tag holding it
            confidence = max(confidence + 0.05, CORROBORATED_CONFIDENCE if self.coord_within else 0)
        return self.routed(bid, confidence - self.penalty)

    def narrow(
        self, cands: frozenset[str], region: frozenset[str] | None, what: str
    ) -> frozenset[str]:
        """Use a regional hint to choose among several candidates (never to veto)."""
        if not region or len(cands) < 2:
            return cands
        inside = cands & region
        if inside and inside != cands:
            self.note("text", f"the {what} narrows {_ids(cands)} to {_ids(inside)}", inside, 0.4)
            return inside
        return cands

    def elsewhere(self, bid: str, *, with_profile: bool) -> list[str]:
        """The regional evidence that puts the author away from ``bid``: "coordinates",
        "place tag", and (only if asked: it may cost a geocoder call) "profile location"."""
        out = []
        region = self.coord_region
        if region is not None and bid not in region:
            out.append("coordinates")
        if self.place_region is not None and bid not in self.place_region:
            out.append("place tag")
        if with_profile:
            found = self.profile()
            if found is not None and bid not in self.loc.near(
                found.lat, found.lon, self.opt.region_km
            ):
                out.append("profile location")
        return out

    def narrow_by_profile(self, cands: frozenset[str]) -> frozenset[str]:
        found = self.profile()
        if found is None:
            return cands
        near = self.loc.near(found.lat, found.lon, self.opt.region_km) & cands
        if near and near != cands:
            self.penalty += PENALTY["profile"]
            self.note(
                "profile",
                f"profile location {found.query!r} ({found.address}) narrows {_ids(cands)} "
                f"to {_ids(near)}",
                near,
                0.2,
            )
            return near
        self.note(
            "profile",
            f"profile location {found.query!r} ({found.address}) does not tell {_ids(cands)} apart",
            (),
            0.1,
        )
        return cands

    def profile(self) -> Any:
        text = self.post.author.location
        if not text.strip() or self.loc.geocoder is None:
            return None
        found, reason = self.loc.geocoder.resolve(text)
        if found is None:
            self.note("profile", f"profile location {text!r}: {reason}")
            return None
        if found.coarse:
            self.note(
                "profile", f"profile location {text!r} is {found.address}: too coarse to narrow"
            )
            return None
        return found

    # -- results ----------------------------------------------------------------------------------

    def routed(self, bid: str, confidence: float) -> Location:
        confidence = round(min(max(confidence, 0.0), 1.0), 2)
        if confidence < self.opt.min_confidence:
            return self.unroutable(
                "ambiguous",
                f"{bid} is the best reading but confidence {confidence:.2f} is below "
                f"{self.opt.min_confidence:.2f}",
                frozenset({bid}),
            )
        return Location(bid, confidence, self.ordered(), ())

    def unroutable(self, kind: str, why: str, cands: frozenset[str] = frozenset()) -> Location:
        self.evidence.insert(0, Evidence(kind, why, tuple(sorted(cands)), None, 1.0))
        return Location(None, 0.0, self.ordered(), tuple(sorted(cands)))

    def ordered(self) -> tuple[Evidence, ...]:
        return tuple(sorted(self.evidence, key=lambda e: -e.strength))
