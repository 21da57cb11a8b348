import json
from datetime import date

import pytest
from sisflow.config import ConfigError, json_schema, load_all, load_customer


def write(folder, name, text):
    (folder / f"{name}.yaml").write_text(text, encoding="utf-8")


FULL = """
name: Fjordvik kommune
sis_vendor: Visma Flyt Skole
source: {kind: sftp, conn_id: sftp_fjordvik, path: /eksport/pifu.xml}
schedule: {cron: "30 4 * * *", timezone: Europe/Oslo}
school_year: {start: 2025-08-18, end: 2026-06-19}
pause:
  - {start: 2026-07-01, end: 2026-07-31}
delay_delete:
  - {start: 2026-06-20, end: 2026-06-30}
filter:
  default:
    person: {delete: {count: 100, percent: 3}}
  deadline_hours: 24
course_archiving: false
recipients: [drift@fjordvik.kommune.no]
inactive_months: 6
"""


def test_a_full_customer_file_loads(tmp_path):
    write(tmp_path, "fjordvik", FULL)
    c = load_customer("fjordvik", tmp_path)
    assert c.sis_vendor == "Visma Flyt Skole"
    assert c.source.conn_id == "sftp_fjordvik"
    assert c.filter.default.person.delete.count == 100
    assert c.filter.default.group.delete is None  # a profile given replaces the default one
    assert c.filter.deadline_hours == 24
    assert c.school_year.end == date(2026, 6, 19)
    assert c.inactive_months == 6 and c.course_archiving is False


def test_a_customer_without_a_file_gets_the_defaults(tmp_path):
    c = load_customer("ny", tmp_path)
    assert c.id == "ny" and c.course_archiving and c.filter.default.person.delete.count == 200


@pytest.mark.parametrize(
    ("text", "field", "reason"),
    [
        ("pause:\n  - {start: 2026-07-31, end: 2026-07-01}\n", "pause.0", "is before start"),
        (
            "pause:\n  - {start: 2026-07-01, end: 2026-07-31}\ndelay_delete:\n"
            "  - {start: 2026-07-20, end: 2026-08-10}\n",
            "(file)",
            "overlaps",
        ),
        (
            "summer_school: true\npause:\n  - {start: 2026-07-01, end: 2026-07-31}\n",
            "(file)",
            "summer-school customer cannot be paused",
        ),
        ("inactive_months: 9\n", "inactive_months", "Input should be 6 or 12"),
        ("recipients: [not-an-address]\n", "recipients.0", "should match pattern"),
        ("source: {kind: sftp, path: /x}\n", "source", "needs a conn_id"),
        ("schedule: {cron: '5 4 * *'}\n", "schedule", "not a valid five-field cron"),
        ("schedule: {cron: '5 25 * * *'}\n", "schedule", "not a valid five-field cron"),
        (
            "filter: {default: {person: {delete: {count: -1}}}}\n",
            "filter.default.person.delete.count",
            "greater than or equal to 0",
        ),
        ("password: hunter2\n", "password", "Extra inputs are not permitted"),
        ("id: other\n", "id", "differs from the file name"),
        ("pause: [\n", "line", "not valid YAML"),
    ],
)
def test_invalid_files_get_file_field_and_reason(tmp_path, text, field, reason):
    write(tmp_path, "kommune", text)
    with pytest.raises(ConfigError) as caught:
        load_customer("kommune", tmp_path)
    message = str(caught.value)
    assert str(tmp_path / "kommune.yaml") in message
    assert field in message and reason in message


def test_a_broken_file_does_not_stop_the_others(tmp_path):
    write(tmp_path, "good", "name: God kommune\n")
    write(tmp_path, "bad", "inactive_months: 3\n")
    configs, errors = load_all(tmp_path)
    assert [c.id for c in configs] == ["good"]
    assert [e.path.name for e in errors] == ["bad.yaml"]


def test_the_committed_json_schema_is_current():
    from sisflow.config import PROJECT

    committed = json.loads((PROJECT / "customers" / "customer.schema.json").read_text())
    assert committed == json_schema(), "run: sisflow config schema"


def test_the_shipped_customer_files_are_valid():
    configs, errors = load_all()
    assert errors == [] and "demo" in [c.id for c in configs]


# -- operator input that must never reach an email header, a path or another customer --------


@pytest.mark.parametrize("name", ["Fjord\\nvik", "Fjord\\rvik", "Fjord\\u2028vik", "Fjord\\x85vik"])
def test_a_name_with_a_line_break_fails_the_check(tmp_path, name):
    write(tmp_path, "fjordvik", f'name: "{name}"\n')
    configs, errors = load_all(tmp_path)
    assert configs == [] and "name: Value error, a name is one line" in str(errors[0])


@pytest.mark.parametrize(
    "address",
    [
        "Kari <kari@x.no>",
        "kari@x.no, ola@y.no",
        "kari@x",
        "kari @x.no",
        "kari@x.no\\nBcc: eve@y.no",
    ],
)
def test_recipients_are_plain_addresses(tmp_path, address):
    write(tmp_path, "fjordvik", f'recipients: ["{address}"]\n')
    configs, errors = load_all(tmp_path)
    assert configs == [] and "recipients.0" in str(errors[0])


def test_two_customers_whose_source_folders_overlap_are_both_refused(tmp_path):
    write(tmp_path, "nord", "source: {kind: folder, path: /data/eksport}\n")
    write(tmp_path, "sor", "source: {kind: folder, path: /data/eksport/sor}\n")
    write(tmp_path, "vest", "source: {kind: folder, path: /data/vest}\n")
    configs, errors = load_all(tmp_path)
    assert [c.id for c in configs] == ["vest"]
    assert sorted(e.path.stem for e in errors) == ["nord", "sor"]
    assert "overlaps the source folder of customer 'sor'" in str(errors[0]) + str(errors[1])


@pytest.mark.parametrize("customer", ["../customers/c1", "Nord", "a/b", ""])
def test_a_customer_id_is_checked_before_any_file_is_opened(tmp_path, customer):
    outside = tmp_path / "customers"
    outside.mkdir()
    write(outside, "c1", "name: x\n")
    with pytest.raises(ConfigError, match="not a customer id"):
        load_customer(customer, tmp_path / "inner")


def test_a_name_that_passes_the_check_always_renders_in_the_email(tmp_path):
    import email
    import email.policy

    from sisflow.config import CustomerConfig
    from sisflow.report.build import Report
    from sisflow.report.email import Outbox

    name = 'Øst-Agder "fylke" <b>&amp; 😀 \u202e' + "x" * 150  # long, odd, but one line
    config = CustomerConfig(id="x", name=name, recipients=["drift+sisflow@ost.no"])
    report = Report(
        customer="x",
        customer_name=config.name,
        outcome="paused",
        subject=f"[sisflow] {config.name}: paused",
        recipients=config.recipients,
    )
    path = Outbox(tmp_path).send(report)
    with open(path, "rb") as f:
        msg = email.message_from_bytes(f.read(), policy=email.policy.default)
    assert msg["Subject"] == f"[sisflow] {name}: paused"  # survives header encoding whole
    assert msg["To"] == "drift+sisflow@ost.no"
    assert "&lt;b&gt;&amp;amp;" in msg.get_body(("html",)).get_content()  # escaped in HTML
