"""Geolocation: registry, spatial index, gazetteer, geocoders, the locator and its targets."""

from __future__ import annotations

import math
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner
from geopy.distance import great_circle
from geopy.exc import GeocoderServiceError, GeocoderTimedOut
from geopy.extra.rate_limiter import RateLimiter
from geopy.geocoders.base import Geocoder
from geopy.location import Location as GeopyLocation
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.backoff import NoBackoff
from redis.retry import Retry

from bot.config import DEFAULT_CITY_ALIASES, GeoSettings
from bot.errors import ConfigError, UnknownBranchError
from bot.geo.bench import bench_locate, synthetic_registry
from bot.geo.commands import branches
from bot.geo.evaluate import evaluate_locator
from bot.geo.gazetteer import Gazetteer
from bot.geo.geocoder import (
    CachedGeocoder,
    OfflineGeocoder,
    ProfileGeocoder,
    online_geocoder,
)
from bot.geo.index import SpatialIndex, valid_bbox
from bot.geo.locate import Locator, LocatorOptions, locate
from bot.geo.registry import (
    Branch,
    BranchDataError,
    Registry,
    import_csv,
    load_registry,
    write_registry,
)
from bot.geo.settings import build_locator
from bot.models import Author, Place, Post, Span

ROOT = Path(__file__).resolve().parent.parent
BRANCHES = ROOT / "config" / "branches.yaml"
LABELLED = ROOT / "tests" / "data" / "geo_posts.jsonl"


def make_post(
    text: str = "@NorthbankHelp queue again",
    *,
    coordinates: tuple[float, float] | None = None,
    place: Place | None = None,
    profile: str = "",
) -> Post:
    return Post(
        "1",
        "x",
        Author("42", "ann", "Ann", profile),
        text,
        datetime(2026, 11, 22, 9, 0, tzinfo=UTC),
        coordinates=coordinates,
        place=place,
    )


def branch(bid: str, name: str, city: str, lat: float, lon: float, **kw: Any) -> Branch:
    return Branch(id=bid, name=name, city=city, lat=lat, lon=lon, timezone="Europe/London", **kw)


@pytest.fixture(scope="module")
def offline() -> OfflineGeocoder:
    return OfflineGeocoder()


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry(BRANCHES)


@pytest.fixture(scope="module")
def locator(registry: Registry, offline: OfflineGeocoder) -> Locator:
    return Locator(registry, offline, LocatorOptions(city_aliases=DEFAULT_CITY_ALIASES))


def at(reg: Registry, bid: str, north_m: float = 0, east_m: float = 0) -> tuple[float, float]:
    b = reg.get(bid)
    return (
        b.lat + north_m / 111_320,
        b.lon + east_m / (111_320 * math.cos(math.radians(b.lat))),
    )


# ---- registry ---------------------------------------------------------------------------------


def test_sample_registry_loads_with_unique_ids_and_lookup(registry: Registry) -> None:
    assert len(registry) >= 44
    assert set(registry.cities()) == {"London", "Manchester"}
    assert registry.get("ldn-camden").name == "Camden Town"
    assert "mcr-sale" in registry
    with pytest.raises(UnknownBranchError):
        registry.get("ldn-nowhere")


def test_invalid_yaml_reports_every_problem_with_file_branch_and_key(tmp_path: Path) -> None:
    path = tmp_path / "branches.yaml"
    path.write_text(
        textwrap.dedent(
            """
            branches:
              - {id: ok-1, name: One, city: London, lat: 51.5, lon: -0.1, timezone: Europe/London}
              - {id: bad-2, name: Two, city: London, lat: 95, lon: -0.1, timezone: Mars/Base}
              - {id: ok-1, name: Dup, city: London, lat: 51.5, lon: -0.1, timezone: UTC}
              - {id: BAD ID, name: "", city: London, lat: x, lon: -0.1, timezone: UTC, colour: red}
            """
        ),
        encoding="utf-8",
    )
    with pytest.raises(BranchDataError) as err:
        load_registry(path)
    e = err.value
    assert isinstance(e, ConfigError) and e.source == str(path)
    wheres = [p.where for p in e.problems]
    assert "branches[1] (bad-2).lat" in wheres
    assert "branches[1] (bad-2).timezone" in wheres
    assert "branches[2] (ok-1).id" in wheres
    assert {"branches[3] (BAD ID).id", "branches[3] (BAD ID).name"} <= set(wheres)
    assert "branches[3] (BAD ID).colour" in wheres
    assert "branches[3] (BAD ID).lat" in wheres
    assert str(path) in str(e) and "duplicate id" in str(e) and "between -90 and 90" in str(e)


CSV_HEADER = (
    "id,name,aliases,address,city,areas,streets,landmarks,lat,lon,timezone,opening_hours,"
    "manager,backups,region,tags\n"
)
HOURS = (
    ";".join(f"{d}=09:00-17:00" for d in ("mon", "tue", "wed", "thu", "fri"))
    + ";sat=closed;sun=closed"
)


def csv_row(bid: str, lat: str = "53.41", lon: str = "-2.15", **kw: str) -> str:
    cells = {
        "id": bid,
        "name": f"Branch {bid}",
        "aliases": "The Old One;Old Branch",
        "address": '"1 High Street, Town"',
        "city": "Manchester",
        "areas": "Centre",
        "streets": "High Street;Low Street",
        "landmarks": "Clock Tower",
        "lat": lat,
        "lon": lon,
        "timezone": "Europe/London",
        "opening_hours": HOURS,
        "manager": "p-1",
        "backups": "p-2;p-3",
        "region": "north",
        "tags": "atm;counter",
        **kw,
    }
    return ",".join(cells.values()) + "\n"


def test_csv_import_builds_a_registry_with_lists_hours_and_vacancies(tmp_path: Path) -> None:
    path = tmp_path / "b.csv"
    path.write_text(CSV_HEADER + csv_row("a-1") + csv_row("a-2", manager=""), encoding="utf-8")
    reg = import_csv(path)
    a1, a2 = reg.get("a-1"), reg.get("a-2")
    assert a1.aliases == ("The Old One", "Old Branch") and a1.backups == ("p-2", "p-3")
    assert a1.address == "1 High Street, Town" and a1.hours("sat") == "closed"
    assert a2.manager is None


def test_csv_import_reports_all_problems_by_line_and_column_and_imports_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "b.csv"
    path.write_text(
        CSV_HEADER
        + csv_row("good-1")
        + csv_row("bad-lat", lat="91.5")
        + csv_row("bad-tz", timezone="Europe/Nowhere", opening_hours="mon=17:00-09:00;tue=9-5")
        + csv_row("good-1")
        + "short,row\n"
        + csv_row("", lon="east"),
        encoding="utf-8",
    )
    with pytest.raises(BranchDataError) as err:
        import_csv(path)
    found = {(p.where, p.problem.split(" (")[0]) for p in err.value.problems}
    wheres = [p.where for p in err.value.problems]
    assert "line 3, column lat" in wheres
    assert "line 4, column timezone" in wheres
    assert "line 4, column opening_hours.mon" in wheres
    assert "line 4, column opening_hours" in wheres  # wed..sun missing, one problem
    assert ("line 5, column id", "duplicate id 'good-1'") in found
    assert any(w == "line 6" for w in wheres)  # wrong field count
    assert {"line 7, column id", "line 7, column lon"} <= set(wheres)
    assert len(err.value.problems) == 9
    assert str(err.value).startswith(f"{path}: 9 problems:")


def test_csv_header_problems_are_reported_before_rows(tmp_path: Path) -> None:
    path = tmp_path / "b.csv"
    path.write_text("id,name,lattitude,lon\nx,y,1,2\n", encoding="utf-8")
    with pytest.raises(BranchDataError) as err:
        import_csv(path)
    problems = [str(p) for p in err.value.problems]
    assert "line 1, column 3: unknown column 'lattitude' (misspelt?)" in problems
    assert "line 1: missing column 'lat'" in problems
    assert "line 1: missing column 'city'" in problems


def test_cli_import_writes_merges_and_never_half_imports(tmp_path: Path) -> None:
    out = tmp_path / "branches.yaml"
    write_registry(Registry((branch("keep-1", "Keep", "London", 51.5, -0.1),)), out)
    good = tmp_path / "good.csv"
    good.write_text(CSV_HEADER + csv_row("new-1") + csv_row("new-2"), encoding="utf-8")
    bad = tmp_path / "bad.csv"
    bad.write_text(CSV_HEADER + csv_row("new-3") + csv_row("new-4", lat="north"), encoding="utf-8")
    runner = CliRunner()

    result = runner.invoke(branches, ["import", str(good), "--out", str(out), "--merge"])
    assert result.exit_code == 0, result.output
    assert load_registry(out).ids == ("keep-1", "new-1", "new-2")

    before = out.read_bytes()
    result = runner.invoke(branches, ["import", str(bad), "--out", str(out), "--merge"])
    assert result.exit_code == 2
    assert "line 3, column lat" in result.output
    assert out.read_bytes() == before  # nothing written, nothing half-imported

    result = runner.invoke(branches, ["import", str(good), "--out", str(out)])
    assert result.exit_code == 0
    assert load_registry(out).ids == ("new-1", "new-2")  # replace without --merge

    listed = runner.invoke(branches, ["list", "--file", str(out), "--json"])
    assert listed.exit_code == 0 and listed.output.count('"id"') == 2


def test_cli_list_shows_the_sample_registry(tmp_path: Path) -> None:
    result = CliRunner().invoke(branches, ["list", "--file", str(BRANCHES), "--city", "Manchester"])
    assert result.exit_code == 0, result.output
    assert "mcr-deansgate" in result.output and "vacant" in result.output


# ---- spatial index ----------------------------------------------------------------------------


def test_nearest_branch_within_radius_and_none_beyond(registry: Registry) -> None:
    index = SpatialIndex(registry)
    near = index.nearest(*at(registry, "ldn-putney", 120, 0), radius_m=400)
    assert near is not None and near.branch.id == "ldn-putney"
    assert 110 < near.distance_m < 130
    assert index.nearest(*at(registry, "ldn-putney", 900, 0), radius_m=400) is None


@pytest.mark.parametrize("point", [(95.0, 0.0), (0.0, 181.0), (float("nan"), 1.0), (0.0, 0.0)])
def test_invalid_points_find_nothing(registry: Registry, point: tuple[float, float]) -> None:
    assert SpatialIndex(registry).within(*point, 10_000_000) == []


def test_bbox_crossing_the_antimeridian() -> None:
    reg = Registry(
        (
            branch("fiji", "Suva", "Suva", -18.14, 178.44),
            branch("samoa", "Apia", "Apia", -13.83, -171.76),
            branch("nz", "Auckland", "Auckland", -36.85, 174.76),
            branch("ldn", "London", "London", 51.5, -0.12),
        )
    )
    index = SpatialIndex(reg)
    across = {b.id for b in index.in_bbox((170.0, -20.0, -170.0, -10.0))}
    assert across == {"fiji", "samoa"}
    assert {b.id for b in index.in_bbox((-170.0, -20.0, 170.0, -10.0))} == set()  # not crossing
    assert index.nearest(-18.14, -179.99, 200_000) is not None  # wraps for radius queries too
    assert valid_bbox((170.0, -20.0, -170.0, -10.0))
    assert not valid_bbox((0.33, 51.28, -0.51, 51.69))  # a swapped London box: 359° wide


lat_st = st.floats(-85, 85)
lon_st = st.floats(-180, 180)


@settings(max_examples=60, deadline=None)
@given(lat=lat_st, lon=lon_st, radius=st.floats(50, 50_000))
def test_index_radius_query_matches_brute_force(lat: float, lon: float, radius: float) -> None:
    reg = _world()
    found = {n.branch.id for n in SpatialIndex(reg).within(lat, lon, radius)}
    brute = {
        b.id
        for b in reg
        if great_circle((lat, lon), (b.lat, b.lon)).meters <= radius and (lat, lon) != (0.0, 0.0)
    }
    assert found == brute


@settings(max_examples=60, deadline=None)
@given(west=lon_st, east=lon_st, south=st.floats(-89, 89), height=st.floats(0, 60))
def test_index_bbox_query_matches_brute_force(
    west: float, east: float, south: float, height: float
) -> None:
    reg = _world()
    north = min(south + height, 90)
    box = (west, south, east, north)
    found = {b.id for b in SpatialIndex(reg).in_bbox(box)}

    def inside(b: Branch) -> bool:
        in_lon = west <= b.lon <= east if west <= east else b.lon >= west or b.lon <= east
        return south <= b.lat <= north and in_lon

    assert found == {b.id for b in reg if inside(b)}


_WORLD: list[Registry] = []


def _world() -> Registry:
    if not _WORLD:
        _WORLD.append(synthetic_registry(2_000, seed=3))
    return _WORLD[0]


def test_nearest_among_ten_thousand_branches_is_fast() -> None:
    import time

    reg = synthetic_registry(10_000)
    index = SpatialIndex(reg)
    points = [(b.lat + 0.001, b.lon) for b in reg.branches[:2000]]
    started = time.process_time()
    hits = [index.nearest(lat, lon, 400) for lat, lon in points]
    per_query = (time.process_time() - started) / len(points)
    assert all(h is not None for h in hits)
    assert per_query < 0.002  # ~20-60 µs measured; generous for loaded CI machines


# ---- gazetteer ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gazetteer(registry: Registry) -> Gazetteer:
    return Gazetteer(registry, DEFAULT_CITY_ALIASES)


@pytest.mark.parametrize(
    ("text", "surface", "branch_id"),
    [
        ("queue at the camden high st. branch is long", "camden high st", "ldn-camden"),
        ("CAMDEN is a joke", "CAMDEN", "ldn-camden"),
        ("camden-town again", "camden-town", "ldn-camden"),
        ("Picadilly branch", "Picadilly", "ldn-piccadilly"),
        ("#KingsCross atm", "KingsCross", "ldn-kings-cross"),
        ("St Peters Sq branch", "St Peters Sq", "mcr-st-peters-square"),
        ("the Strand branch", "Strand branch", "ldn-strand"),
    ],
)
def test_gazetteer_matches_variants_with_offsets_into_the_original_text(
    gazetteer: Gazetteer, text: str, surface: str, branch_id: str
) -> None:
    found = gazetteer.find(f"@NorthbankHelp {text}")
    m = found.mentions[0]
    assert m.span.text == surface
    assert f"@NorthbankHelp {text}"[m.span.start : m.span.end] == surface
    assert branch_id in m.branches
    assert m.span.label.startswith("geo:")


def test_gazetteer_misspelling_alias_and_city_names() -> None:
    reg = Registry(
        (
            branch("a", "Altrincham", "Manchester", 53.38, -2.35, aliases=("Altringham",)),
            branch("b", "Brixton", "London", 51.46, -0.11),
        )
    )
    g = Gazetteer(reg, {"Manchester": ["manc"]})
    found = g.find("Altringham branch in manc, not Brixton")
    assert [m.span.text for m in found.mentions] == ["Altringham", "manc", "Brixton"]
    assert dict(found.mentions[0].branches) == {"a": 1}
    assert found.mentions[1].cities == ("Manchester",)
    assert found.branch_context


def test_gazetteer_longest_match_and_kinds(gazetteer: Gazetteer) -> None:
    found = gazetteer.find("Camden High Street and High Street and Market Street Droylsden")
    surfaces = [(m.span.text, sorted(m.branches)) for m in found.mentions]
    assert surfaces == [
        ("Camden High Street", ["ldn-camden"]),
        ("High Street", ["ldn-borough", "ldn-putney", "mcr-high-street"]),
        ("Market Street Droylsden", ["mcr-droylsden"]),
    ]
    assert gazetteer.nlp.meta["name"] != "core_web_sm"  # a blank English pipeline
    assert not gazetteer.nlp.pipe_names


def test_handles_and_urls_name_no_branch(gazetteer: Gazetteer) -> None:
    assert gazetteer.find("@Putney https://t.co/Camden ok").mentions == ()


# ---- geocoders ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "address", "level"),
    [
        ("London", "London, GB", "city"),
        ("Manchester, UK", "Manchester, GB", "city"),
        ("NYC", "New York City, NY, US", "city"),
        ("Camden, London", "London, GB", "city"),
        ("Boston, MA", "Boston, MA, US", "city"),
        ("London, Ontario", "London, CA", "city"),
        ("Texas", "Texas, TX, US", "state"),
        ("the Bronx", "The Bronx, NY, US", "city"),
        ("Bronx, NY", "The Bronx, NY, US", "city"),
        ("🇬🇧", "United Kingdom", "country"),
    ],
)
def test_offline_geocoder_resolves_places(
    offline: OfflineGeocoder, query: str, address: str, level: str
) -> None:
    loc = offline.geocode(query)
    assert isinstance(loc, GeopyLocation)
    assert loc.address == address and loc.raw["level"] == level


@pytest.mark.parametrize(
    "query",
    ["Earth 🌍", "your mum's house", "", "everywhere & nowhere", "in my bed", "come say hi"],
)
def test_offline_geocoder_is_none_for_non_places(offline: OfflineGeocoder, query: str) -> None:
    assert offline.geocode(query) is None
    assert ProfileGeocoder(offline).resolve(query)[0] is None


class _Failing(Geocoder):
    """The lowest layer: a geopy geocoder whose service fails."""

    def __init__(self, exc: Exception) -> None:
        super().__init__(user_agent="triagebot-tests")
        self.exc = exc
        self.calls = 0

    def geocode(self, query: str, **kwargs: Any) -> Any:
        self.calls += 1
        raise self.exc


@pytest.mark.parametrize(
    "exc",
    [GeocoderTimedOut("read timed out"), GeocoderServiceError("HTTP 502"), RuntimeError("boom")],
)
def test_geocoder_errors_are_no_evidence_never_raised(exc: Exception) -> None:
    failing = _Failing(exc)
    found, reason = ProfileGeocoder(failing).resolve("London")
    assert found is None
    assert "no evidence" in reason and type(exc).__name__ in reason
    limited = RateLimiter(
        failing.geocode,
        min_delay_seconds=0,
        max_retries=1,
        error_wait_seconds=0,
        swallow_exceptions=False,
    )
    assert ProfileGeocoder(limited).resolve("London")[0] is None


def test_locate_survives_a_timing_out_geocoder(registry: Registry) -> None:
    loc = Locator(registry, _Failing(GeocoderTimedOut("slow")))
    ambiguous = loc.locate(make_post("Piccadilly branch has no cash", profile="Manchester"))
    assert ambiguous.branch_id is None
    assert any("GeocoderTimedOut" in e.summary for e in ambiguous.evidence)
    named = loc.locate(make_post("Deansgate branch has no cash", profile="Manchester"))
    assert named.branch_id == "mcr-deansgate"


def test_unknown_online_geocoder_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        online_geocoder("no-such-service", {})


class _Counting(Geocoder):
    def __init__(self) -> None:
        super().__init__(user_agent="triagebot-tests")
        self.calls = 0

    def geocode(self, query: str, **kwargs: Any) -> Any:
        self.calls += 1
        if query == "fail":
            raise GeocoderTimedOut("slow")
        if query == "nowhere":
            return None
        return GeopyLocation("Leeds, GB", (53.8, -1.55), {"addresstype": "city"})


def test_cached_geocoder_keeps_answers_and_misses_but_not_errors(
    redis_client: redis.Redis,
) -> None:
    inner = _Counting()
    cached = CachedGeocoder(inner, redis_client, "test:geocode", ttl=60)
    first, second = cached.geocode("Leeds"), cached.geocode("  leeds ")
    assert first is not None and second is not None
    assert (second.latitude, second.longitude) == (53.8, -1.55) and inner.calls == 1
    assert cached.geocode("nowhere") is None and cached.geocode("nowhere") is None
    assert inner.calls == 2
    assert 0 < redis_client.ttl(cached.key("Leeds")) <= 60
    for _ in range(2):
        with pytest.raises(GeocoderTimedOut):
            cached.geocode("fail")
    assert inner.calls == 4  # errors are not cached
    found, reason = ProfileGeocoder(cached).resolve("fail")
    assert found is None and "GeocoderTimedOut" in reason
    assert ProfileGeocoder(cached).resolve("Leeds")[0] is not None


def test_cached_geocoder_works_without_redis() -> None:
    dead = redis.Redis(
        unix_socket_path="/nonexistent/redis.sock", retry=Retry(NoBackoff(), 0), socket_timeout=0.1
    )
    inner = _Counting()
    found = CachedGeocoder(inner, dead, "test:geocode", ttl=60).geocode("Leeds")
    assert found is not None and inner.calls == 1
    dead.close()


# ---- locate: each kind of evidence ---------------------------------------------------------


def test_coordinates_pick_the_nearest_branch(locator: Locator, registry: Registry) -> None:
    loc = locator.locate(
        make_post("nobody on the counter", coordinates=at(registry, "ldn-putney", 80))
    )
    assert loc.branch_id == "ldn-putney" and loc.confidence >= 0.85
    assert loc.evidence[0].kind == "coordinates"


def test_equally_near_branches_are_unroutable(locator: Locator, registry: Registry) -> None:
    a, b = registry.get("mcr-market-street"), registry.get("mcr-high-street")
    loc = locator.locate(make_post("queue", coordinates=((a.lat + b.lat) / 2, (a.lon + b.lon) / 2)))
    assert loc.branch_id is None
    assert set(loc.candidates) == {"mcr-market-street", "mcr-high-street"}


@pytest.mark.parametrize("coords", [(123.4, -0.14), (51.5, 200.0), (0.0, 0.0)])
def test_out_of_range_coordinates_are_ignored(
    locator: Locator, coords: tuple[float, float]
) -> None:
    loc = locator.locate(make_post("Deansgate branch closed", coordinates=coords))
    assert loc.branch_id == "mcr-deansgate"
    assert any(e.kind == "ignored" and "out of range" in e.summary for e in loc.evidence)


def test_neighbourhood_place_picks_its_only_branch(locator: Locator, registry: Registry) -> None:
    b = registry.get("mcr-oldham")
    box = (b.lon - 0.004, b.lat - 0.003, b.lon + 0.004, b.lat + 0.003)
    loc = locator.locate(make_post("queue", place=Place("Oldham", "Oldham, England", "GB", box)))
    assert loc.branch_id == "mcr-oldham"


def test_city_place_narrows_but_does_not_pick(locator: Locator) -> None:
    mcr = Place("Manchester", "Manchester, England", "GB", (-2.32, 53.40, -2.15, 53.54))
    assert locator.locate(make_post("queue", place=mcr)).branch_id is None
    assert (
        locator.locate(make_post("Piccadilly branch queue", place=mcr)).branch_id
        == "mcr-piccadilly"
    )


@pytest.mark.parametrize(
    "bbox", [(-0.22, 51.47, -0.21, 51.45), (0.33, 51.28, -0.51, 51.69), (float("nan"), 1, 2, 3)]
)
def test_malformed_place_boxes_are_ignored(
    locator: Locator, bbox: tuple[float, float, float, float]
) -> None:
    loc = locator.locate(make_post("queue", place=Place("Putney", "", "GB", bbox)))
    assert loc.branch_id is None
    assert loc.evidence[-1].kind == "ignored" or any(e.kind == "ignored" for e in loc.evidence)


def test_place_box_across_the_antimeridian_locates_a_branch_there() -> None:
    reg = Registry(
        (branch("fiji", "Suva", "Suva", -18.141, 178.441), branch("ldn", "L", "L", 51.5, 0))
    )
    box = (178.435, -18.145, 178.445, -18.135)  # a neighbourhood
    assert (
        Locator(reg).locate(make_post("queue", place=Place("Suva", "", "FJ", box))).branch_id
        == "fiji"
    )
    wide = (177.0, -19.2, -179.8, -16.0)  # Fiji, crossing ±180°
    loc = Locator(reg).locate(make_post("queue", place=Place("Fiji", "", "FJ", wide)))
    assert loc.branch_id is None and loc.candidates == ("fiji",)


def test_text_names_a_branch(locator: Locator) -> None:
    loc = locator.locate(make_post("@NorthbankHelp Holloway Road branch staff were rude"))
    assert loc.branch_id == "ldn-holloway"
    assert loc.evidence[0].span is not None and loc.evidence[0].span.text == "Holloway Road"


def test_profile_only_narrows_and_never_picks(locator: Locator) -> None:
    alone = locator.locate(make_post("your branch is always shut", profile="Eccles"))
    assert alone.branch_id is None
    narrowed = locator.locate(make_post("Piccadilly branch has no cash", profile="Manchester, UK"))
    assert narrowed.branch_id == "mcr-piccadilly"
    assert any(e.kind == "profile" and "narrows" in e.summary for e in narrowed.evidence)
    for junk in ("Earth 🌍", "your mum's house"):
        assert locator.locate(make_post("Piccadilly branch", profile=junk)).branch_id is None


def test_colliding_names_are_unroutable_and_say_why(locator: Locator) -> None:
    loc = locator.locate(make_post("High Street branch has no cash"))
    assert loc.branch_id is None and loc.confidence == 0.0
    assert loc.candidates == ("ldn-borough", "ldn-putney", "mcr-high-street")
    assert "'High Street branch' matches ldn-borough, ldn-putney and mcr-high-street" in (
        loc.evidence[0].summary
    )
    assert "no other evidence" in loc.explain()
    assert locator.locate(make_post("High St branch in Manchester")).branch_id == "mcr-high-street"


def test_common_words_need_a_cue(locator: Locator) -> None:
    assert locator.locate(make_post("Black Friday Sale declined my card")).branch_id is None
    assert locator.locate(make_post("queue at Sale is long")).branch_id == "mcr-sale"
    assert locator.locate(make_post("Sale branch closed")).branch_id == "mcr-sale"
    plain = make_post("Victoria was lovely on the phone")
    assert locator.locate(plain).branch_id is None
    confirmed = locator.locate(plain, [Span(0, 8, "location", "Victoria")])
    assert confirmed.branch_id == "ldn-victoria"  # the classifier marked it as a place


# ---- locate: conflicts -----------------------------------------------------------------------


def test_coordinates_at_one_branch_and_text_naming_another_are_unroutable(
    locator: Locator, registry: Registry
) -> None:
    loc = locator.locate(
        make_post("Camden branch closed early", coordinates=at(registry, "mcr-piccadilly"))
    )
    assert loc.branch_id is None and loc.evidence[0].kind == "conflict"
    assert set(loc.candidates) == {"ldn-camden", "mcr-piccadilly"}


def test_coordinates_elsewhere_lower_confidence_for_a_named_branch(locator: Locator) -> None:
    plain = locator.locate(make_post("Camden branch closed early"))
    away = locator.locate(make_post("Camden branch closed early", coordinates=(53.4875, -2.2425)))
    assert plain.branch_id == away.branch_id == "ldn-camden"
    assert away.confidence < plain.confidence
    assert any(e.kind == "conflict" for e in away.evidence)


def test_a_street_alone_does_not_beat_location_evidence(locator: Locator) -> None:
    assert locator.locate(make_post("Regent Street branch queue")).branch_id == "mcr-eccles"
    london = locator.locate(make_post("Regent Street branch queue", profile="London, UK"))
    assert london.branch_id is None and london.evidence[0].kind == "conflict"


def test_text_city_contradicting_the_branch_is_unroutable(locator: Locator) -> None:
    loc = locator.locate(make_post("Camden branch in Manchester closed??"))
    assert loc.branch_id is None and loc.evidence[0].kind == "conflict"


def test_coordinates_settle_a_colliding_name(locator: Locator, registry: Registry) -> None:
    post = make_post("Oxford St branch", coordinates=at(registry, "mcr-st-peters-square", 20))
    loc = locator.locate(post)
    assert loc.branch_id == "mcr-st-peters-square" and loc.confidence >= 0.95


def test_app_outage_with_coordinates_is_not_a_branch(locator: Locator, registry: Registry) -> None:
    post = make_post("app crashed again", coordinates=at(registry, "ldn-kensington", 30))
    assert locator.locate(post).branch_id is None


def test_branch_without_a_manager_is_still_located(locator: Locator, registry: Registry) -> None:
    assert registry.get("mcr-salford-quays").manager is None
    loc = locator.locate(make_post("Salford Quays branch: nobody on the desk"))
    assert loc.branch_id == "mcr-salford-quays"


def test_no_location_is_unroutable_with_a_reason(locator: Locator) -> None:
    loc = locator.locate(make_post("been on hold for an hour", profile="London"))
    assert loc.branch_id is None and loc.evidence[0].kind == "none"
    assert not loc.routable


def test_locate_many_and_module_function_agree(locator: Locator) -> None:
    posts = [make_post("Deansgate branch"), make_post("app down"), make_post("Brixton branch")]
    many = locator.locate_many(posts)
    assert [loc.branch_id for loc in many] == ["mcr-deansgate", None, "ldn-brixton"]
    assert locate(posts[0], locator=locator) == many[0]


def test_evidence_is_strongest_first(locator: Locator, registry: Registry) -> None:
    post = make_post(
        "Oxford Street branch", coordinates=at(registry, "ldn-oxford-street"), profile="London"
    )
    strengths = [e.strength for e in locator.locate(post).evidence]
    assert strengths == sorted(strengths, reverse=True)


# ---- settings, evaluation, bench ------------------------------------------------------------


def test_geo_settings_are_validated_and_build_the_locator() -> None:
    with pytest.raises(Exception, match="radius_m"):
        GeoSettings(radius_m=-1)
    with pytest.raises(Exception, match="extra"):
        GeoSettings.model_validate({"radius": 400})
    loc = build_locator(GeoSettings(radius_m=300), root=ROOT)
    assert loc.options.radius_m == 300 and len(loc.registry) >= 44


def test_labelled_set_meets_the_precision_and_recall_targets(locator: Locator) -> None:
    result = evaluate_locator(LABELLED, locator)
    assert result["posts"] >= 300
    assert result["precision"] >= 0.99, result["mistakes"]
    assert result["recall"] >= 0.90, result["mistakes"]


def test_bench_locate_reports_figures() -> None:
    figures = bench_locate(n_branches=400, n_posts=300)
    assert figures["branches"] == 400 and figures["posts"] == 300
    assert figures["locate_us_per_post"] > 0 and 0 < figures["routed_share"] < 1
