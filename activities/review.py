"""Activities of the periodic review (issue #14 items 5 and 6; R23, R30): draw the day's
spot checks, compute and store the review report (analysis, spot-check accuracy, suggested
catalogue changes, charts, HTML), email it to operations over the existing SMTP path."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import date, datetime
from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib
from aiosmtplib.email import flatten_message
from sqlalchemy.engine import Engine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from notifiers.email import SmtpConfig
from sentinel.catalogue import Catalogue
from sentinel.review_report import (
    ReviewInput,
    ReviewOutput,
    charts,
    headline,
    render_html,
    subject,
    text_summary,
)
from store.events import report_between
from store.reports import charts_of, get_report, mark_emailed, save_report
from store.spot_checks import accuracy_between, draw_day, suggestions_between


def recipients(review_recipients: str | None, operator_email: str | None) -> list[str]:
    raw = review_recipients if review_recipients else (operator_email or "")
    return [a.strip() for a in raw.split(",") if a.strip()][:20]


class ReviewActivities:
    def __init__(
        self,
        engine: Engine,
        catalogue: Catalogue,
        smtp: SmtpConfig,
        to: list[str],
        *,
        per_day: int = 20,
        min_per_stratum: int = 1,
        seed: int = 0,
    ):
        self.engine, self.catalogue, self.smtp, self.to = engine, catalogue, smtp, to
        self.per_day, self.min_per_stratum, self.seed = per_day, min_per_stratum, seed

    @activity.defn(name="draw_spot_checks")
    async def draw_spot_checks(self, day: str) -> int:
        """The day's stratified sample of automated decisions into the spot-check queue."""
        return await asyncio.to_thread(
            draw_day,
            self.engine,
            date.fromisoformat(day),
            size=self.per_day,
            min_per_stratum=self.min_per_stratum,
            seed=self.seed,
        )

    @activity.defn(name="build_review_report")
    async def build_review_report(self, inp: ReviewInput) -> ReviewOutput:
        return await asyncio.to_thread(self._build, inp)

    def _build(self, inp: ReviewInput) -> ReviewOutput:
        report = report_between(self.engine, inp.since, inp.until)
        accuracy = accuracy_between(self.engine, inp.since, inp.until)
        suggestions = suggestions_between(self.engine, self.catalogue, inp.since, inp.until)
        chart_list = charts(report, accuracy)
        html = render_html(inp.kind, inp.since, inp.until, report, accuracy, suggestions, chart_list)
        summary = {
            "headline": headline(report),
            "analysis": report,
            "spot_check_accuracy": accuracy,
            "suggestions": suggestions,
        }
        report_id = save_report(self.engine, inp.kind, inp.since, inp.until, summary, html, chart_list)
        return ReviewOutput(report_id=report_id, since=inp.since, until=inp.until, headline=headline(report))

    @activity.defn(name="email_review_report")
    async def email_review_report(self, report_id: int) -> str:
        """Email the report (HTML with its charts inline, and a text part) to operations;
        once: a report already emailed is not sent again. The Message-ID comes from the
        report's key, so a copy sent twice after a crash is recognisable downstream."""
        row = await asyncio.to_thread(get_report, self.engine, report_id)
        if row is None:
            raise ApplicationError(f"no review report {report_id}", non_retryable=True)
        if row.emailed_at is not None:
            return f"already emailed to {row.emailed_to}"
        if not self.to:
            return "no recipients (review_recipients and operator_email are empty)"
        summary = json.loads(row.summary_json)
        chart_rows = await asyncio.to_thread(charts_of, self.engine, report_id)
        msg = EmailMessage()
        msg["From"] = self.smtp.sender
        msg["To"] = ", ".join(self.to)
        msg["Subject"] = subject(row.kind, _utc(row.since), _utc(row.until), summary["analysis"])
        msg["Date"] = formatdate(localtime=False)
        domain = self.smtp.sender.rsplit("@", 1)[-1].strip("> ") or "sentinel.local"
        msg["Message-ID"] = f"<review-{hashlib.sha256(row.key.encode()).hexdigest()[:24]}@{domain}>"
        msg["X-Review-Report"] = str(report_id)
        msg.set_content(
            text_summary(
                row.kind,
                _utc(row.since),
                _utc(row.until),
                summary["analysis"],
                summary["spot_check_accuracy"],
                summary["suggestions"],
            )
        )
        msg.add_alternative(row.html, subtype="html")
        html_part = msg.get_body(preferencelist=("html",))
        assert html_part is not None  # added just above
        for c in chart_rows:
            html_part.add_related(
                c.png, maintype="image", subtype="png", cid=f"<{c.name}>", filename=f"{c.name}.png"
            )
        try:
            async with aiosmtplib.SMTP(
                hostname=self.smtp.host,
                port=self.smtp.port,
                username=self.smtp.username,
                password=self.smtp.password,
                start_tls=self.smtp.starttls,
                timeout=self.smtp.timeout_s,
            ) as smtp:
                await smtp.sendmail(self.smtp.sender, self.to, flatten_message(msg))
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise ApplicationError(f"SMTP {type(exc).__name__}: {exc}") from exc
        await asyncio.to_thread(mark_emailed, self.engine, report_id, ", ".join(self.to))
        return f"emailed to {', '.join(self.to)}"


def _utc(at: datetime) -> datetime:
    from sentinel.analysis import as_utc

    return as_utc(at)


def build_review_activities(settings, engine: Engine | None = None) -> list:
    """The review activities from the settings (worker.py registers them)."""
    from sentinel.catalogue import default_catalogue
    from store.db import engine_for

    smtp = SmtpConfig.from_settings(settings.smtp, settings.mail_from)
    acts = ReviewActivities(
        engine or engine_for(settings.database_url),
        default_catalogue(),
        smtp,
        recipients(settings.review_recipients, settings.operator_email),
        per_day=settings.spot_checks_per_day,
        min_per_stratum=settings.spot_checks_min_per_stratum,
        seed=settings.spot_checks_seed,
    )
    return [acts.draw_spot_checks, acts.build_review_report, acts.email_review_report]
