"""Spatial index over branches: nearest branch within a radius, branches in a bounding box.

A two-level lat/lon grid prefilters, then geopy measures the few candidates.

Why a hand-written grid and not a library: the whole prefilter is a dict from cell to branches
plus a loop over neighbouring cells (wrapping at ±180°). Geohash packages (pygeohash,
python-geohash) only encode; neighbour search and antimeridian wrap would still be ours. R-tree
packages need a native library and answer planar queries, so the radius and the wrap would be
ours too; a KD-tree (scipy) is a large dependency with Euclidean distances on degrees.

Distance: geopy's ``great_circle``, not ``geodesic``. Measured here: geodesic ~150 µs a call,
great_circle ~6 µs. The spherical error is at most ~0.5 % (2 m at 400 m), far below GPS error
and the margins the locator uses, so picking the nearest branch never depends on it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from geopy.distance import great_circle

from bot.geo.registry import Branch

_M_PER_DEG_LAT = 111_320.0
_EARTH_M = 6_371_009.0  # mean radius, as geopy's great_circle uses
FINE_CELL_DEG = 0.01  # ~1.1 km of latitude: a 400 m radius touches at most 3 x 3 cells
MEDIUM_CELL_DEG = 0.1  # ~11 km: city-sized radii (25 km) touch ~6 x 9 cells
COARSE_CELL_DEG = 1.0  # bounding boxes and anything bigger


def valid_point(lat: float, lon: float) -> bool:
    """Finite, within range, and not (0, 0) — the default a broken client sends."""
    return (
        math.isfinite(lat)
        and math.isfinite(lon)
        and -90.0 <= lat <= 90.0
        and -180.0 <= lon <= 180.0
        and not (lat == 0.0 and lon == 0.0)
    )


def valid_bbox(bbox: tuple[float, float, float, float] | None, max_width_deg: float = 180) -> bool:
    """(west, south, east, north) in range with south <= north. West > east crosses the
    antimeridian; a box wider than ``max_width_deg`` is a swapped (malformed) one."""
    if bbox is None or len(bbox) != 4:
        return False
    west, south, east, north = bbox
    if not all(math.isfinite(v) for v in bbox):
        return False
    if not (-90 <= south <= north <= 90 and -180 <= west <= 180 and -180 <= east <= 180):
        return False
    return bbox_width_deg(bbox) <= max_width_deg


def bbox_width_deg(bbox: tuple[float, float, float, float]) -> float:
    west, _, east, _ = bbox
    return east - west if west <= east else 360.0 - (west - east)


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (geopy)."""
    return float(great_circle((lat1, lon1), (lat2, lon2)).meters)


def rough_distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Equirectangular approximation: within 0.1 % up to ~50 km away (not across the poles),
    ~20x cheaper than geopy. Used only for "same city" regions, never to pick a branch."""
    dlon = (lon2 - lon1 + 180.0) % 360.0 - 180.0
    x = math.radians(dlon) * math.cos(math.radians((lat1 + lat2) / 2))
    return _EARTH_M * math.hypot(x, math.radians(lat2 - lat1))


@dataclass(frozen=True, slots=True)
class Nearby:
    """A branch and its distance from the query point, in metres."""

    branch: Branch
    distance_m: float


class _Grid:
    """Branches bucketed by (lat, lon) cell of ``cell`` degrees."""

    def __init__(self, branches: Iterable[Branch], cell: float) -> None:
        self.cell = cell
        self.n_lon = round(360 / cell)
        self.cells: dict[tuple[int, int], list[Branch]] = defaultdict(list)
        for b in branches:
            self.cells[self.key(b.lat, b.lon)].append(b)

    def key(self, lat: float, lon: float) -> tuple[int, int]:
        return math.floor(lat / self.cell), math.floor(lon / self.cell) % self.n_lon

    def rows(self, south: float, north: float) -> range:
        return range(math.floor(south / self.cell), math.floor(north / self.cell) + 1)

    def cols(self, west: float, east: float) -> Iterator[int]:
        """Column indexes from west to east, wrapping at the antimeridian if west > east."""
        first = math.floor(west / self.cell)
        width = east - west if west <= east else 360 - (west - east)
        count = min(math.floor((west + width) / self.cell) - first + 1, self.n_lon)
        for i in range(count):
            yield (first + i) % self.n_lon

    def scan(self, south: float, north: float, west: float, east: float) -> Iterator[Branch]:
        rows = self.rows(south, north)
        cols = list(self.cols(west, east))
        if len(rows) * len(cols) > len(self.cells):  # near a pole or huge box: fewer to scan all
            colset = set(cols)
            for (row, col), bucket in self.cells.items():
                if row in rows and col in colset:
                    yield from bucket
            return
        for row in rows:
            for col in cols:
                found = self.cells.get((row, col))
                if found:
                    yield from found


class SpatialIndex:
    """Built once from the registry; queries do not allocate more than their answers."""

    def __init__(self, branches: Iterable[Branch]) -> None:
        self.branches = tuple(branches)
        self._fine = _Grid(self.branches, FINE_CELL_DEG)
        self._medium = _Grid(self.branches, MEDIUM_CELL_DEG)
        self._coarse = _Grid(self.branches, COARSE_CELL_DEG)

    def within(
        self, lat: float, lon: float, radius_m: float, *, rough: bool = False
    ) -> list[Nearby]:
        """Branches within ``radius_m`` of the point, nearest first. Invalid point: none.

        ``rough``: measure with :func:`rough_distance_m` (city-sized regions)."""
        if not valid_point(lat, lon) or radius_m < 0:
            return []
        dlat = radius_m / _M_PER_DEG_LAT
        cos_lat = math.cos(math.radians(lat))
        # Longitude degrees shrink with cos(lat); near a pole the circle spans every longitude.
        dlon = 180.0 if cos_lat < 1e-6 else min(dlat / cos_lat, 180.0)
        south, north = max(lat - dlat, -90.0), min(lat + dlat, 90.0)
        if dlon >= 180.0:
            west, east = -180.0, 180.0 - 1e-9
        else:
            west, east = _wrap(lon - dlon), _wrap(lon + dlon)
        if radius_m <= 2_000:
            grid = self._fine
        elif radius_m <= 60_000:
            grid = self._medium
        else:
            grid = self._coarse
        found = []
        for b in grid.scan(south, north, west, east):
            if abs(b.lat - lat) > dlat or abs(_wrap(b.lon - lon)) > dlon:  # cheap reject first
                continue
            d = (rough_distance_m if rough else distance_m)(lat, lon, b.lat, b.lon)
            if d <= radius_m:
                found.append(Nearby(b, d))
        found.sort(key=lambda n: (n.distance_m, n.branch.id))
        return found

    def nearest(self, lat: float, lon: float, radius_m: float) -> Nearby | None:
        """The nearest branch within ``radius_m``, or None."""
        hits = self.within(lat, lon, radius_m)
        return hits[0] if hits else None

    def in_bbox(
        self, bbox: tuple[float, float, float, float], margin_m: float = 0.0
    ) -> list[Branch]:
        """Branches inside (west, south, east, north), widened by ``margin_m``; west > east
        crosses the antimeridian. An invalid box contains nothing."""
        if not valid_bbox(bbox, max_width_deg=360):
            return []
        west, south, east, north = bbox
        if margin_m:
            dlat = margin_m / _M_PER_DEG_LAT
            mid = math.radians(max(abs(south), abs(north)))
            dlon = min(dlat / max(math.cos(mid), 1e-6), 180.0)
            south, north = max(south - dlat, -90.0), min(north + dlat, 90.0)
            if bbox_width_deg(bbox) + 2 * dlon >= 360:
                west, east = -180.0, 180.0
            else:
                west, east = _wrap(west - dlon), _wrap(east + dlon)
        crosses = west > east
        out = []
        for b in self._coarse.scan(south, north, west, east):
            if not south <= b.lat <= north:
                continue
            inside = (b.lon >= west or b.lon <= east) if crosses else west <= b.lon <= east
            if inside:
                out.append(b)
        return out


def _wrap(lon: float) -> float:
    """Longitude into [-180, 180)."""
    return (lon + 180.0) % 360.0 - 180.0
