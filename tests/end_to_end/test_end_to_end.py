"""End to end on real parts: events → worker (forecast, rules) → alert topic → notifier → SMTP.

A small organisation of its own (not the demo scenario): two hemtjänst units with salaries and
substitutes, a normal 2023, and a 2024 in which Hemtjänst Norr books far too much substitute
cost in June. The June close must raise the vikarie alert; the enhetschef gets one e-mail with
the month's figure; when the mis-booking is corrected, one more e-mail says it is resolved.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.swedish import format_mnkr
from services.demo.receivers import MailCatcher
from services.processes.supervised import free_port, wait_until
from tests.fixtures import REFUSING_WEBHOOK_ENV
from tests.services.notifier.fixtures import NotifierProcess
from tests.streams.fixtures import StreamCase

pytestmark = [pytest.mark.integration, pytest.mark.slow]

UNITS = ("1110", "1120")
SALARIES_MONTH = 4_000_000
SUBSTITUTES_PROFILE = (0.8, 0.75, 0.8, 0.8, 0.9, 1.5, 2.1, 1.8, 0.85, 0.8, 0.8, 1.1)
SUBSTITUTES_YEAR = 9_000_000
JUNE_EXTRA = 2_500_000  # a mis-booked invoice on Hemtjänst Norr's substitutes in June 2024
ALERT_ID = "substitutes_month_above_expected|1110|substitutes|2024"
CHEF = "karin.holm@storvik.example"  # enhetschef Hemtjänst Norr in config/routing.yaml


def _substitutes(month: int) -> float:
    return SUBSTITUTES_YEAR * SUBSTITUTES_PROFILE[month - 1] / sum(SUBSTITUTES_PROFILE)


def _events(rng: np.random.Generator) -> dict[str, list[dict[str, Any]]]:
    budgets, costs, closes = [], [], []
    for year in (2023, 2024):
        for unit in UNITS:
            for category, annual in (
                ("salaries", 12 * SALARIES_MONTH),
                ("substitutes", SUBSTITUTES_YEAR),
            ):
                budgets.append(
                    {
                        "event_id": f"b-{year}-{unit}-{category}",
                        "type": "budget",
                        "org_unit": unit,
                        "year": year,
                        "category": category,
                        "annual": annual,
                    }
                )
        for month in range(1, 13 if year == 2023 else 7):
            period = f"{year}-{month:02d}"
            for unit in UNITS:
                for category, amount in (
                    ("salaries", SALARIES_MONTH),
                    ("substitutes", _substitutes(month)),
                ):
                    amount = round(amount * (1 + rng.normal(0, 0.01)))
                    if (unit, category, period) == ("1110", "substitutes", "2024-06"):
                        amount += JUNE_EXTRA
                    costs.append(
                        {
                            "event_id": f"c-{unit}-{category}-{period}",
                            "type": "cost",
                            "org_unit": unit,
                            "period": period,
                            "category": category,
                            "amount_sek": amount,
                        }
                    )
            closes.append(
                {
                    "event_id": f"close-{period}",
                    "type": "period_close",
                    "org_unit": "VON",
                    "period": period,
                }
            )
    return {"budget": budgets, "cost": costs, "period_close": closes}


def _june_amount(costs: list[dict[str, Any]]) -> int:
    return next(
        c["amount_sek"]
        for c in costs
        if (c["org_unit"], c["category"], c["period"]) == ("1110", "substitutes", "2024-06")
    )


def _mails_about(smtp: MailCatcher, sequence: int) -> list[Any]:
    return [m for m in smtp.handler.to(CHEF) if f"{ALERT_ID}@{sequence}" in m.event_ids]


def test_vikarie_overrun_reaches_the_enhetschef_once_and_its_correction_resolves_it(
    stream_case: StreamCase, tmp_path: Path
) -> None:
    events = _events(np.random.default_rng(42))
    smtp = MailCatcher().start()
    notifier_port = free_port()
    notifier = NotifierProcess(
        {
            **stream_case.env,
            **REFUSING_WEBHOOK_ENV,
            "BUDGETVAKT_DATA_DIR": str(tmp_path / "notifier"),
            "BUDGETVAKT_NOTIFIER_WEB_PORT": str(notifier_port),
            "BUDGETVAKT_NOTIFIER_GROUP_ID": f"notifier-{uuid.uuid4().hex[:8]}",
            "BUDGETVAKT_NOTIFIER_DEAD_LETTER_TOPIC": f"{stream_case.app_id}.notify-dl",
            "BUDGETVAKT_SMTP_PORT": str(smtp.port),
            "BUDGETVAKT_LOG_FORMAT": "json",
        },
        notifier_port,
        tmp_path / "notifier.log",
    )
    try:
        worker = stream_case.start_worker()
        notifier.start()
        stream_case.publish("budget", events["budget"])
        stream_case.publish("cost", [c for c in events["cost"] if c["period"] < "2024-06"])
        stream_case.publish(
            "period_close", [c for c in events["period_close"] if c["period"] < "2024-06"]
        )
        wait_until(
            lambda: "2024-05" in worker_status(worker)["evaluated"], 90, "May 2024 evaluated"
        )
        # The alerts of a run are on the topic before the status says "evaluated".
        assert not [a for a in _alert_events(stream_case) if a["alert_id"] == ALERT_ID]

        stream_case.publish("cost", [c for c in events["cost"] if c["period"] == "2024-06"])
        stream_case.publish(
            "period_close", [c for c in events["period_close"] if c["period"] == "2024-06"]
        )
        wait_until(lambda: len(_mails_about(smtp, 1)) >= 1, 60, "the vikarie alert mail")
        [fired] = _mails_about(smtp, 1)
        assert format_mnkr(_june_amount(events["cost"])) in fired.body
        assert "Hemtjänst Norr" in fired.body and "juni" in fired.body

        # The invoice belonged to another cost centre: a correction posting moves it away.
        stream_case.publish(
            "cost",
            [
                {
                    "event_id": "corr-1110-2024-06",
                    "type": "cost",
                    "org_unit": "1110",
                    "period": "2024-06",
                    "category": "substitutes",
                    "amount_sek": -JUNE_EXTRA,
                }
            ],
        )
        wait_until(lambda: len(_mails_about(smtp, 2)) >= 1, 60, "the resolved mail")
        [resolved] = _mails_about(smtp, 2)
        assert "åter inom gränserna" in resolved.body
        # Exactly one notification each, also after everything has settled.
        wait_until(
            lambda: (
                worker_status(worker)["state_version"]
                == worker_status(worker)["current_state_version"]
            ),
            30,
            "the worker's last forecast",
        )
        assert len(_mails_about(smtp, 1)) == 1 and len(_mails_about(smtp, 2)) == 1
        assert not any(f"{ALERT_ID}@3" in m.event_ids for m in smtp.handler.snapshot())
        # Hemtjänst Syd booked a normal summer: its chef hears nothing about vikarier.
        other = ALERT_ID.replace("|1110|", "|1120|")
        assert not any(other in " ".join(m.event_ids) for m in smtp.handler.snapshot())
    finally:
        notifier.stop()
        smtp.stop()


def _alert_events(case: StreamCase) -> list[dict[str, Any]]:
    import json

    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        case.topics["alert"],
        bootstrap_servers=case.bootstrap_servers,
        auto_offset_reset="earliest",
        consumer_timeout_ms=2000,
        group_id=None,
    )
    try:
        return [json.loads(record.value) for record in consumer]
    finally:
        consumer.close()


def worker_status(worker: Any) -> dict[str, Any]:
    import json
    import urllib.request

    with urllib.request.urlopen(worker.url("/forecasts/status"), timeout=5) as resp:
        status: dict[str, Any] = json.loads(resp.read())
    return status
