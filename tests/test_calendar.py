from datetime import date

from sisflow.calendar import DELAY_DELETE, NORMAL, PAUSED, outlook, state_on
from sisflow.config import CustomerConfig
from sisflow.school_year import SchoolYear

CFG = CustomerConfig.model_validate(
    {
        "id": "k",
        "pause": [{"start": "2026-07-01", "end": "2026-07-31"}],
        "delay_delete": [{"start": "2026-06-20", "end": "2026-06-30"}],
    }
)


def test_window_ends_are_inclusive():
    assert state_on(CFG, date(2026, 6, 19)).mode == NORMAL
    assert state_on(CFG, date(2026, 6, 20)).mode == DELAY_DELETE
    assert state_on(CFG, date(2026, 6, 30)).until == date(2026, 6, 30)
    assert state_on(CFG, date(2026, 7, 1)).mode == PAUSED
    assert state_on(CFG, date(2026, 7, 31)).mode == PAUSED
    assert state_on(CFG, date(2026, 8, 1)).mode == NORMAL


def test_school_year_and_rollover_default_to_1_august():
    state = state_on(CFG, date(2026, 3, 1))
    assert (state.school_year.start, state.school_year.end) == (date(2025, 8, 1), date(2026, 7, 31))
    assert state.earliest_rollover == date(2026, 8, 1)
    # the earliest rollover follows the active school year, not the date: on 10 August
    # before the rollover (2025-2026 still active) it was allowed from 1 August; after it
    # (2026-2027 active) the next one is allowed from 1 August next year
    before = SchoolYear(date(2025, 8, 1), date(2026, 7, 31))
    after = SchoolYear(date(2026, 8, 1), date(2027, 7, 31))
    assert state_on(CFG, date(2026, 8, 10), active=before).earliest_rollover == date(2026, 8, 1)
    assert state_on(CFG, date(2026, 8, 10), active=after).earliest_rollover == date(2027, 8, 1)


def test_visma_flyt_skole_may_roll_over_the_day_after_its_school_year():
    visma = CustomerConfig.model_validate(
        {
            "id": "v",
            "sis_vendor": "Visma Flyt Skole",
            "school_year": {"start": "2025-08-18", "end": "2026-06-19"},
        }
    )
    assert state_on(visma, date(2026, 5, 1)).earliest_rollover == date(2026, 6, 20)
    other = visma.model_copy(update={"sis_vendor": "IST Extens"})
    assert state_on(other, date(2026, 5, 1)).earliest_rollover == date(2026, 8, 1)


def test_outlook_lists_the_coming_spans():
    spans = outlook(CFG, date(2026, 6, 1), days=92)
    assert [(a.isoformat(), b.isoformat(), m) for a, b, m in spans] == [
        ("2026-06-01", "2026-06-19", NORMAL),
        ("2026-06-20", "2026-06-30", DELAY_DELETE),
        ("2026-07-01", "2026-07-31", PAUSED),
        ("2026-08-01", "2026-08-31", NORMAL),
    ]


def test_the_picture_has_a_row_per_customer_and_marks_the_rollover():
    from sisflow.calendar_view import as_html

    other = CustomerConfig(id="annen", name="Åsen kommune")
    html = as_html([CFG, other], date(2026, 6, 1), days=92)
    assert html.count("<tr><th class='name'>") == 2 and "Åsen kommune" in html
    assert html.count('class="paused') == 31  # July, ends included
    assert html.count('class="delay-delete') == 11
    assert 'class="normal r" title="2026-08-01' in html  # 1 August for both


def test_the_next_scheduled_run_is_in_oslo_time():
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from sisflow.calendar import next_run

    cfg = CustomerConfig.model_validate({"id": "k", "schedule": {"cron": "30 4 * * 1-5"}})
    friday_evening = datetime(2026, 3, 27, 20, 0, tzinfo=ZoneInfo("Europe/Oslo"))
    assert next_run(cfg, friday_evening) == datetime(
        2026, 3, 30, 4, 30, tzinfo=ZoneInfo("Europe/Oslo")
    )
