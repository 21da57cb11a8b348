from collections import defaultdict

import pytest
from lxml import etree
from sisflow.ims.generate import Municipality, build_year, generate
from sisflow.ims.reader import ImsReader


@pytest.fixture(scope="module")
def two_years(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gen")
    paths = {}
    for year in (2025, 2026):
        paths[year] = folder / f"{year}.xml"
        generate(paths[year], seed=3, year=year, size="small")
    return paths


def test_generated_files_validate_against_the_pifu_xsd(reference_dir, two_years):
    schema = etree.XMLSchema(etree.parse(str(reference_dir / "PIFU-IMS_SAS.xsd")))
    for path in two_years.values():
        doc = etree.parse(str(path))
        assert schema.validate(doc), schema.error_log.last_error


def test_generated_files_read_without_problems(two_years):
    reader = ImsReader(two_years[2025])
    records = list(reader)
    assert reader.result.ok and reader.result.problems == []
    assert len(records) == sum(reader.result.records.values())


def test_same_seed_same_bytes_other_seed_other_municipality(tmp_path, two_years):
    again = tmp_path / "again.xml"
    generate(again, seed=3, year=2025, size="small")
    assert again.read_bytes() == two_years[2025].read_bytes()
    other = tmp_path / "other.xml"
    generate(other, seed=4, year=2025, size="small")
    assert other.read_bytes() != again.read_bytes()


def test_norwegian_letters_are_in_the_names(two_years):
    text = two_years[2025].read_text(encoding="utf-8")
    assert all(letter in text for letter in "æøåÆØÅ")


def _grades(data):
    """person id -> grade, from the trinn memberships."""
    trinn = {g["id"]: int(g["short"].split(".")[0]) for g in data["groups"] if g["type"] == "trinn"}
    grades = {}
    for group_id, members in data["members"].items():
        if group_id in trinn:
            for person_id, _role in members:
                grades[person_id] = trinn[group_id]
    return grades


def test_consecutive_years_form_a_rollover():
    m = Municipality(seed=3, pupils=1_000)
    before, after = build_year(m, 2025), build_year(m, 2026)
    g1, g2 = _grades(before), _grades(after)
    stayed = set(g1) & set(g2)
    assert stayed and all(g2[p] == g1[p] + 1 for p in stayed)  # everyone moves up one grade
    assert {p for p in g1 if g1[p] == 10}.isdisjoint(g2)  # 10th graders leave
    newcomers = set(g2) - set(g1)
    assert newcomers and all(g2[p] == 1 for p in newcomers)  # new 1st graders arrive
    # 7th graders move from a barneskole to an ungdomsskole
    school_of = defaultdict(dict)
    for data, key in ((before, 2025), (after, 2026)):
        for group in data["groups"]:
            if group["type"] == "skole":
                for person_id, role in data["members"][group["id"]]:
                    if role == "01":
                        school_of[key][person_id] = group["short"]
    seventh = [p for p in g1 if g1[p] == 7]
    assert seventh and all("barneskole" in school_of[2025][p] for p in seventh)
    assert all("ungdomsskole" in school_of[2026][p] for p in seventh)
    # last year's classes and teaching groups are gone; new ones appear
    teaching = {"basisgruppe", "undervisningsgruppe", "kontaktlærergruppe"}
    old = {g["id"] for g in before["groups"] if g["type"] in teaching}
    new = {g["id"] for g in after["groups"] if g["type"] in teaching}
    assert old and new and old.isdisjoint(new)

    # teachers stay at their school
    def teachers(data):
        return {
            (group_id, person_id)
            for group_id, members in data["members"].items()
            for person_id, role in members
            if role == "02" and person_id.startswith("ansatt") and group_id.count("-") == 1
        }

    assert teachers(before) and teachers(before) == teachers(after)


def test_tiny_is_one_barneskole_and_one_ungdomsskole(tmp_path):
    counts = generate(tmp_path / "tiny.xml", seed=1, year=2025, size="tiny")
    barn, ung = Municipality(seed=1, pupils=70).schools()
    assert (len(barn), len(ung)) == (1, 1)
    assert counts["person"] < 100
