"""Small IMS Enterprise files written by hand for the tests: a record at a time, as text."""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import escape

PIFU_NS = "http://pifu.no/xsd/pifu-ims_sas/pifu-ims_sas-v1"
IMS_NS = "http://www.imsglobal.org/xsd/imsep_rootv1p01"
SOURCE = "sas@test.kommune.no"


def _rec(recstatus) -> str:
    return f' recstatus="{recstatus}"' if recstatus is not None else ""


def sourcedid(sid, kind=None) -> str:
    attr = f' sourcedidtype="{kind}"' if kind else ""
    return f"<sourcedid{attr}><source>{SOURCE}</source><id>{escape(sid)}</id></sourcedid>"


def person(
    sid,
    given="Ola",
    family="Nordmann",
    *,
    bday=None,
    email=None,
    recstatus=None,
    userids=(),
    extra="",
    ids=None,
) -> str:
    ids_xml = ids if ids is not None else sourcedid(sid)
    users = "".join(f'<userid useridtype="{t}">{escape(v)}</userid>' for t, v in userids)
    demo = f"<demographics><bday>{bday}</bday></demographics>" if bday else ""
    mail = f"<email>{escape(email)}</email>" if email else ""
    name = (
        f"<name><fn>{escape(given)} {escape(family)}</fn><n><family>{escape(family)}</family>"
        f"<given>{escape(given)}</given></n></name>"
    )
    return f"<person{_rec(recstatus)}>{ids_xml}{users}{name}{demo}{mail}{extra}</person>\n"


def group(
    sid,
    typevalue="basisgruppe",
    *,
    parent=None,
    short=None,
    begin=None,
    end=None,
    recstatus=None,
    scheme="pifu-ims-go-grp",
    level="1",
    extra="",
) -> str:
    frame = ""
    if begin or end:
        frame = (
            "<timeframe>"
            + (f"<begin>{begin}</begin>" if begin else "")
            + (f"<end>{end}</end>" if end else "")
            + "</timeframe>"
        )
    rel = f'<relationship relation="1">{sourcedid(parent or sid)}<label>x</label></relationship>'
    return (
        f"<group{_rec(recstatus)}>{sourcedid(sid)}<grouptype><scheme>{scheme}</scheme>"
        f'<typevalue level="{level}">{typevalue}</typevalue></grouptype>'
        f"<description><short>{escape(short or sid)}</short></description>{frame}{rel}"
        f"{extra}</group>\n"
    )


def member(sid, roletype="01", *, idtype=1, status=1, recstatus=None, inner="") -> str:
    return (
        f"<member>{sourcedid(sid)}<idtype>{idtype}</idtype>"
        f'<role roletype="{roletype}"{_rec(recstatus)}><status>{status}</status>{inner}'
        f"</role></member>"
    )


def membership(group_id, *members) -> str:
    return f"<membership>{sourcedid(group_id)}{''.join(members)}</membership>\n"


def enterprise(*records, kind="full", ns=PIFU_NS, encoding="UTF-8", properties=None) -> str:
    xmlns = f' xmlns="{ns}"' if ns else ""
    if properties is None:
        properties = (
            f"<properties><datasource>{SOURCE}</datasource><type>{kind}</type>"
            "<datetime>2025-08-15T05:00:00</datetime></properties>\n"
        )
    return (
        f'<?xml version="1.0" encoding="{encoding}"?>\n<enterprise{xmlns}>\n{properties}'
        + "".join(records)
        + "</enterprise>\n"
    )


def write(folder: Path, text: str, name: str = "export.xml", encoding: str = "utf-8") -> Path:
    path = Path(folder) / name
    path.write_bytes(text.encode(encoding))
    return path


def lenient(customer: str = "kommune", **settings):
    """A customer whose filter holds nothing: for tests about other rules than the filter."""
    from sisflow.config import CustomerConfig

    no_limits = {"person": {}, "group": {}, "membership": {}, "min_share": 0}
    return CustomerConfig.model_validate(
        {"id": customer, "filter": {"default": no_limits, "rollover": no_limits}, **settings}
    )


def run_once(conn, customer, file=None, *, config=None, sender=None, now=None, **request):
    """``sisflow.pipeline.run`` for a test: the request from keyword arguments (``rollover``
    for the kind, ``target_year`` for the school year), the test's own customer file and sender
    and clock when given, and the customer files and the outbox otherwise."""
    from sisflow import pipeline
    from sisflow.services import Services

    if request.pop("rollover", False):
        request["kind"] = pipeline.Kind.ROLLOVER
    if "target_year" in request:
        request["school_year"] = request.pop("target_year")
    holder = request.pop("holder", None)
    given = {
        "configs": {customer: config} if config is not None else {},
        **({"sender": sender} if sender is not None else {}),
        **({"clock": lambda: now} if now is not None else {}),
    }
    return pipeline.run(
        conn, pipeline.Request(customer, file, **request), Services(**given), holder
    )
