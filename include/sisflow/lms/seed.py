"""Manual objects in a site, as people make them: for the demo and the tests.

Administrators are made by hand on purpose (no sync key, so the integration never changes
them); a first-grader made by hand without a sync key is the classic duplicate in waiting.
"""

from __future__ import annotations


def seed_manual_objects(
    cur, site: str, *, first_grader: tuple[str, str, str | None] | None = None
) -> dict:
    """Two administrators, a manual course with one of them in it, and optionally a
    first-grader made by hand (given name, family name, birth date); returns their ids."""
    ids = {}
    for n in (1, 2):
        cur.execute(
            "INSERT INTO lms.users (site, username, first_name, last_name, profile, last_login)"
            " VALUES (%s, %s, 'Admin', %s, 'admin', now()) RETURNING id",
            (site, f"admin{n}", f"Nummer {n}"),
        )
        ids[f"admin{n}"] = cur.fetchone()[0]
    cur.execute(
        "INSERT INTO lms.courses (site, title, code) VALUES (%s, 'Oppslagstavle for ansatte',"
        " 'MANUELL') RETURNING id",
        (site,),
    )
    ids["manual_course"] = cur.fetchone()[0]
    cur.execute(
        "INSERT INTO lms.participants (course_id, user_id, role, synced)"
        " VALUES (%s, %s, 'instructor', false)",
        (ids["manual_course"], ids["admin1"]),
    )
    if first_grader:
        given, family, born = first_grader
        cur.execute(
            "INSERT INTO lms.users (site, username, first_name, last_name, birth_date, profile)"
            " VALUES (%s, %s, %s, %s, %s, 'student') RETURNING id",
            (site, "manuell.elev", given, family, born),
        )
        ids["manual_first_grader"] = cur.fetchone()[0]
    return ids


def seed_demo_site(cur, *, year: int, seed: int, size: int | str) -> str:
    """The demo customer's site as ``make demo`` and ``make airflow`` start it: the manual
    objects, with a pupil who starts school in August ``year + 1`` made by hand (the readiness
    check finds them in next year's export). Returns that pupil's id in the export."""
    from ..ims import generate as gen

    pupils = size if isinstance(size, int) else gen.SIZES[size]
    following = gen.build_year(gen.Municipality(seed, pupils), year + 1)
    first = next(p for p in following["persons"] if p["id"].startswith(f"elev-{year + 1}-"))
    seed_manual_objects(cur, "demo", first_grader=(first["given"], first["family"], first["bday"]))
    return first["id"]
