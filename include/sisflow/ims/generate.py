"""A synthetic municipality as PIFU-IMS 1.3, for the demo, the tests and the benchmark.

Everything is derived from (seed, school year) so that the same seed gives the same file, and
two consecutive school years with one seed form a real rollover: a pupil keeps their id and
moves up one grade into a new class (classes and teaching groups carry the school year in their
id, as many SIS make them), 10th graders leave, new 1st graders arrive, and 7th graders move
on from a barneskole (1-7) to an ungdomsskole (8-10). Teachers stay at their school.

The file is written as text rather than built as an lxml tree: a large municipality (100k persons,
about 1M memberships) takes seconds and some hundred MB while it is generated.
"""

from __future__ import annotations

import itertools
import math
import random
import unicodedata
from dataclasses import dataclass
from datetime import date, timedelta
from xml.sax.saxutils import escape, quoteattr

NAMESPACE = "http://pifu.no/xsd/pifu-ims_sas/pifu-ims_sas-v1"

SIZES = {"tiny": 70, "small": 1_000, "medium": 10_000, "large": 90_000}  # pupils

GIVEN = (
    "Åse Ærlig Øystein Bjørn Håkon Sølvi Mathilde Jonas Ingrid Sigurd Ole Kari Tiril Emma Nora "
    "Sofie Leah Ella Maja Frida Astrid Jakob Filip Lukas Emil Oskar Aksel Henrik Tobias Sander "
    "Eirik Ståle Gøril Bjørg Åshild Torbjørn Mons Trygve Solveig Ragnhild Dagny Kåre Eskil Sverre "
    "Vår Linnéa Amalie Hedda Iben Ylva Ørjan Mikkel Halvor Gudrun Idun Siri Turid Njål Jørgen"
).split()
FAMILY = (
    "Hansen Johansen Olsen Larsen Andersen Pedersen Nilsen Kristiansen Jensen Karlsen Johnsen "
    "Pettersen Eriksen Berg Haugen Hagen Bakken Strøm Sæther Øvrebø Ødegård Ås Lønning Kvåle "
    "Bråten Mæland Sørensen Halvorsen Jørgensen Dahl Lie Moen Solberg Lund Brekke Nygård Røed "
    "Fjæra Tveitå Grønli Kjærnes Årdal Hølland Vågen Mørk Løvås Skjærseth Bøe Næss Dæhli"
).split()
PLACES = (
    "Bjørnåsen Fjellhøgda Sjøvik Granlia Kvernbekken Måneflekken Solås Lønnåsen Øvre Hage "
    "Strandå Bærtjern Furuløkka Skogbrynet Ørnereiret Heggli Tømte Vestgård Kråkerøy Nøtterø "
    "Lysåsen Rødberg Sæterbakken Bakkehaugen Elvebredden Åsmyra Kjølstad Møllerud Nordbø Sørlia"
).split()

SUBJECTS_1_4 = [
    ("NOR", "Norsk"),
    ("MAT", "Matematikk"),
    ("ENG", "Engelsk"),
    ("NAT", "Naturfag"),
    ("KRO", "Kroppsøving"),
    ("KHV", "Kunst og håndverk"),
]
SUBJECTS_5_7 = SUBJECTS_1_4 + [("SAM", "Samfunnsfag"), ("KRL", "KRLE")]
SUBJECTS_8_10 = SUBJECTS_5_7 + [("FSP", "Fremmedspråk")]
CLASS_SIZE = 24


def subjects_for(grade: int) -> list[tuple[str, str]]:
    return SUBJECTS_1_4 if grade <= 4 else SUBJECTS_5_7 if grade <= 7 else SUBJECTS_8_10


def _ascii(s: str) -> str:
    s = s.lower().replace("æ", "ae").replace("ø", "o").replace("å", "a")
    return unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode()


@dataclass(frozen=True)
class School:
    code: str
    name: str
    first_grade: int
    last_grade: int


@dataclass(frozen=True)
class Municipality:
    seed: int
    pupils: int

    @property
    def rng_name(self) -> random.Random:
        return random.Random(f"{self.seed}/name")

    @property
    def name(self) -> str:
        return f"{self.rng_name.choice(PLACES)} kommune"

    @property
    def slug(self) -> str:
        return _ascii(self.name.split()[0])

    @property
    def datasource(self) -> str:
        return f"sas@{self.slug}.kommune.no"

    @property
    def cohort_size(self) -> int:
        return max(1, self.pupils // 10)

    def schools(self) -> tuple[list[School], list[School]]:
        n_barn = max(1, round(self.cohort_size / 48))
        n_ung = max(1, round(self.cohort_size / 144))
        places = random.Random(f"{self.seed}/places").sample(PLACES, len(PLACES))
        names = [
            places[i % len(places)] + (f" {i // len(places) + 1}" if i >= len(places) else "")
            for i in range(n_barn + n_ung)
        ]
        barn = [School(f"b{i + 1:03d}", f"{names[i]} barneskole", 1, 7) for i in range(n_barn)]
        ung = [
            School(f"u{i + 1:03d}", f"{names[n_barn + i]} ungdomsskole", 8, 10)
            for i in range(n_ung)
        ]
        return barn, ung

    def cohort_count(self, cohort: int) -> int:
        """How many pupils started 1st grade in August of ``cohort`` (varies a little)."""
        spread = random.Random(f"{self.seed}/cohort/{cohort}").uniform(-0.05, 0.05)
        return max(1, round(self.cohort_size * (1 + spread)))


def _pupil(m: Municipality, cohort: int, k: int) -> dict:
    rng = random.Random(f"{m.seed}/pupil/{cohort}/{k}")
    given, family = rng.choice(GIVEN), rng.choice(FAMILY)
    born = date(cohort - 6, 1, 1) + timedelta(days=rng.randrange(365))
    pid = f"elev-{cohort}-{k:05d}"
    user = f"{_ascii(given)[:4]}{_ascii(family)[:4]}{cohort % 100:02d}{k:05d}"
    return {
        "id": pid,
        "given": given,
        "family": family,
        "bday": born.isoformat(),
        "username": user,
        "email": f"{user}@elev.{m.slug}.no",
        "gender": rng.choice("12"),
        "number": f"{cohort}{k:05d}",
        "role": "student",
    }


def _teacher(m: Municipality, school: School, i: int) -> dict:
    rng = random.Random(f"{m.seed}/teacher/{school.code}/{i}")
    given, family = rng.choice(GIVEN), rng.choice(FAMILY)
    born = date(1960, 1, 1) + timedelta(days=rng.randrange(365 * 35))
    user = f"{_ascii(given)[:4]}{_ascii(family)[:4]}{school.code}{i:03d}"
    return {
        "id": f"ansatt-{school.code}-{i:03d}",
        "given": given,
        "family": family,
        "bday": born.isoformat(),
        "username": user,
        "email": f"{user}@{m.slug}.kommune.no",
        "gender": rng.choice("12"),
        "number": f"{school.code}{i:04d}",
        "role": "teacher",
    }


def build_year(m: Municipality, year: int) -> dict:
    """The municipality in school year ``year``/``year + 1``: schools, classes and people.

    Returns plain data: persons, groups (with parents) and memberships as
    (group id, person id, roletype) triples.
    """
    barn, ung = m.schools()
    persons: list[dict] = []
    groups: list[dict] = []
    members: dict[str, list[tuple[str, str]]] = {}
    begin, end = f"{year}-08-15", f"{year + 1}-06-20"
    period = f"{year}/{year + 1}"
    owner = f"{m.slug}-skoleeier"
    groups.append(
        {
            "id": owner,
            "scheme": "pifu-ims-go-org",
            "type": "skoleeier",
            "level": "1",
            "short": m.name,
            "parent": owner,
            "parent_label": m.name,
        }
    )
    members[owner] = []

    for school in barn + ung:
        groups.append(
            {
                "id": f"{m.slug}-{school.code}",
                "scheme": "pifu-ims-go-org",
                "type": "skole",
                "level": "2",
                "short": school.name,
                "parent": owner,
                "parent_label": m.name,
            }
        )
        members[f"{m.slug}-{school.code}"] = []

    for school in barn + ung:
        sid = f"{m.slug}-{school.code}"
        pupils_by_grade: dict[int, list[dict]] = {}
        for grade in range(school.first_grade, school.last_grade + 1):
            cohort = year - grade + 1
            feeders = barn if school in barn else ung
            index = feeders.index(school)
            pupils = []
            for k in range(m.cohort_count(cohort)):
                # pupil k goes to barneskole k mod n_barn, then to the ungdomsskole that
                # barneskole feeds: a stable path through the school years
                b = k % len(barn)
                at = b if school in barn else b % len(ung)
                if at == index:
                    pupils.append(_pupil(m, cohort, k))
            pupils_by_grade[grade] = pupils
        n_pupils = sum(len(p) for p in pupils_by_grade.values())
        teachers = [_teacher(m, school, i) for i in range(max(2, math.ceil(n_pupils / 12)))]
        persons.extend(teachers)
        members[sid].extend((t["id"], "02") for t in teachers)
        rota = itertools.cycle(t["id"] for t in teachers)  # who takes the next group

        for grade, pupils in pupils_by_grade.items():
            persons.extend(pupils)
            members[sid].extend((p["id"], "01") for p in pupils)
            trinn = f"{sid}-trinn{grade}"
            groups.append(
                {
                    "id": trinn,
                    "scheme": "pifu-ims-go-grp",
                    "type": "trinn",
                    "level": "4",
                    "short": f"{grade}. trinn",
                    "parent": sid,
                    "parent_label": school.name,
                    "long": f"{grade}. trinn ved {school.name}",
                }
            )
            members[trinn] = [(p["id"], "01") for p in pupils]
            rng = random.Random(f"{m.seed}/classes/{school.code}/{year}/{grade}")
            shuffled = sorted(pupils, key=lambda p: p["id"])
            rng.shuffle(shuffled)
            n_classes = max(1, math.ceil(len(shuffled) / CLASS_SIZE))
            for c in range(n_classes):
                letter = chr(ord("A") + c)
                klass = shuffled[c::n_classes]
                label = f"{grade}{letter}"
                basis = f"{sid}-{year}-{label}"
                contact = next(rota)
                groups.append(
                    {
                        "id": basis,
                        "scheme": "pifu-ims-go-grp",
                        "type": "basisgruppe",
                        "level": "1",
                        "short": label,
                        "long": f"Basisgruppe {label}",
                        "parent": sid,
                        "parent_label": school.name,
                        "begin": begin,
                        "end": end,
                        "period": period,
                    }
                )
                members[basis] = [(p["id"], "01") for p in klass] + [(contact, "02")]
                kontakt = f"{basis}-kontakt"
                groups.append(
                    {
                        "id": kontakt,
                        "scheme": "pifu-ims-go-grp",
                        "type": "kontaktlærergruppe",
                        "level": "3",
                        "short": f"Kontaktlærer {label}",
                        "parent": sid,
                        "parent_label": school.name,
                        "begin": begin,
                        "end": end,
                        "period": period,
                    }
                )
                members[kontakt] = [(p["id"], "01") for p in klass] + [(contact, "02")]
                for code, subject in subjects_for(grade):
                    ug = f"{basis}-{code}"
                    groups.append(
                        {
                            "id": ug,
                            "scheme": "pifu-ims-go-grp",
                            "type": "undervisningsgruppe",
                            "level": "2",
                            "short": f"{code}-{label}",
                            "long": f"{subject} {label}",
                            "parent": sid,
                            "parent_label": school.name,
                            "begin": begin,
                            "end": end,
                            "period": period,
                        }
                    )
                    members[ug] = [(p["id"], "01") for p in klass] + [(next(rota), "02")]
    return {
        "municipality": m,
        "year": year,
        "persons": persons,
        "groups": groups,
        "members": members,
    }


def _person_xml(p: dict, source: str) -> str:
    idtype = "studentID" if p["role"] == "student" else "workforceID"
    fn = f"{p['given']} {p['family']}"
    return (
        "<person><sourcedid><source>" + source + "</source><id>" + escape(p["id"]) + "</id>"
        '</sourcedid><userid useridtype="username">' + escape(p["username"]) + "</userid>"
        '<userid useridtype="' + idtype + '">' + p["number"] + "</userid>"
        "<name><fn>" + escape(fn) + "</fn><n><family>" + escape(p["family"]) + "</family>"
        "<given>" + escape(p["given"]) + "</given></n></name>"
        "<demographics><gender>" + p["gender"] + "</gender><bday>" + p["bday"] + "</bday>"
        "</demographics><email>" + escape(p["email"]) + "</email></person>\n"
    )


def _group_xml(g: dict, source: str) -> str:
    parts = [
        "<group><sourcedid><source>",
        source,
        "</source><id>",
        escape(g["id"]),
        "</id></sourcedid>",
        "<grouptype><scheme>",
        g["scheme"],
        "</scheme><typevalue level=",
        quoteattr(g["level"]),
        ">",
        escape(g["type"]),
        "</typevalue></grouptype><description><short>",
        escape(g["short"]),
        "</short>",
    ]
    if g.get("long"):
        parts += ["<long>", escape(g["long"]), "</long>"]
    parts.append("</description>")
    if g.get("begin"):
        parts += [
            '<timeframe><begin restrict="0">',
            g["begin"],
            '</begin><end restrict="0">',
            g["end"],
            "</end><adminperiod>",
            g["period"],
            "</adminperiod></timeframe>",
        ]
    parts += [
        '<relationship relation="1"><sourcedid><source>',
        source,
        "</source><id>",
        escape(g["parent"]),
        "</id></sourcedid><label>",
        escape(g["parent_label"]),
        "</label></relationship></group>\n",
    ]
    return "".join(parts)


def write_year(m: Municipality, year: int, out, *, drop_every: int = 0) -> dict[str, int]:
    """Write school year ``year`` to the text stream ``out``; returns record counts.

    ``drop_every`` leaves out every n-th member (1% with 100): a day's churn, for benchmarks.
    """
    data = build_year(m, year)
    source = escape(m.datasource)
    out.write('<?xml version="1.0" encoding="UTF-8"?>\n')
    out.write(f'<enterprise xmlns="{NAMESPACE}">\n')
    out.write(
        f'<properties lang="no"><comments>Synthetic full export of {escape(m.name)}, school '
        f"year {year}/{year + 1} (sisflow generate, seed {m.seed})</comments>"
        f"<datasource>{source}</datasource><target>sisflow</target><type>full</type>"
        f"<datetime>{year}-08-15T05:00:00</datetime></properties>\n"
    )
    for p in data["persons"]:
        out.write(_person_xml(p, source))
    for g in data["groups"]:
        out.write(_group_xml(g, source))
    n_members = 0
    for group_id, group_members in data["members"].items():
        if not group_members:
            continue
        chunk = [
            "<membership><sourcedid><source>",
            source,
            "</source><id>",
            escape(group_id),
            "</id></sourcedid>",
        ]
        if drop_every:
            group_members = [
                gm for i, gm in enumerate(group_members, n_members + 1) if i % drop_every
            ]
        for person_id, roletype in group_members:
            chunk += [
                "<member><sourcedid><source>",
                source,
                "</source><id>",
                person_id,
                '</id></sourcedid><idtype>1</idtype><role roletype="',
                roletype,
                '"><status>1</status></role></member>',
            ]
        chunk.append("</membership>\n")
        out.write("".join(chunk))
        n_members += len(group_members)
    out.write("</enterprise>\n")
    return {"person": len(data["persons"]), "group": len(data["groups"]), "membership": n_members}


def generate(
    path, *, seed: int = 1, year: int = 2025, size: str | int = "small", drop_every: int = 0
) -> dict[str, int]:
    """Write one school year of a synthetic municipality to ``path``."""
    pupils = SIZES[size] if isinstance(size, str) else int(size)
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        return write_year(Municipality(seed, pupils), year, out, drop_every=drop_every)
