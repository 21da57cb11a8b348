from sisflow.config import EntityLimits, FilterProfile, Limit
from sisflow.filter import judge

PROFILE = FilterProfile(
    person=EntityLimits(delete=Limit(count=10, percent=5)),
    membership=EntityLimits(create=Limit(count=100)),
    min_share=80,
)
BASE = {"person": 1000, "group": 100, "membership": 10000}


def counts(**kw):
    c = {e: {"create": 0, "update": 0, "delete": 0} for e in ("person", "group", "membership")}
    for key, n in kw.items():
        entity, op = key.split("_")
        c[entity][op] = n
    return c


def test_a_small_change_passes():
    v = judge(counts(person_delete=5), BASE, {"person": 995, "group": 100}, PROFILE, "default")
    assert v.passed and v.as_dict() == {"profile": "default", "passed": True, "trips": []}


def test_every_tripped_rule_is_listed_with_actual_limit_and_base():
    v = judge(
        counts(person_delete=60, membership_create=150),
        BASE,
        {"person": 940, "group": 100},
        PROFILE,
        "default",
    )
    trips = {(t["entity"], t["op"], t["kind"]): t for t in v.as_dict()["trips"]}
    assert set(trips) == {
        ("person", "delete", "count"),
        ("person", "delete", "percent"),
        ("membership", "create", "count"),
    }
    assert trips["person", "delete", "percent"]["actual"] == 60
    assert trips["person", "delete", "percent"]["limit"] == 5
    assert trips["person", "delete", "percent"]["base"] == 1000
    assert (
        trips["person", "delete", "percent"]["text"]
        == "person delete: 6.0% of 1000 (60) is over the limit of 5%"
    )


def test_an_empty_or_nearly_empty_file_is_held_by_the_guard():
    v = judge(counts(), BASE, {"person": 12, "group": 100}, PROFILE, "default")
    (trip,) = v.trips
    assert (trip.entity, trip.kind, trip.actual, trip.base) == ("person", "guard", 12, 1000)
    assert "1% of the 1000" in trip.describe()


def test_a_first_import_is_not_judged_by_percentages_of_nothing():
    empty = {"person": 0, "group": 0, "membership": 0}
    assert judge(
        counts(person_create=5000), empty, {"person": 5000, "group": 90}, PROFILE, "default"
    ).passed


def test_delta_files_are_not_judged_by_the_size_guard():
    assert judge(counts(), BASE, None, PROFILE, "default").passed
