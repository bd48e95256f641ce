//! The public performance dashboard, open to everyone without logging in: for a period of
//! days, per agency and procedure, applications received and decided, the on-schedule rate,
//! processing time in working hours, the full-online rate; applications per day; and the
//! messages exchanged with each partner window. Charts are SVG drawn on the server
//! (`charts.rs`) and served as images beside tables with the same figures; the figures are
//! also downloadable as CSV. No party is named anywhere.
//!
//! The figures (`store::dashboard::load`) are computed once per period and shared between
//! requests for a minute (`dashboard_cache`), a few periods at a time; the period is limited
//! to `MAX_DAYS` days so a computation's cost stays bounded.

use std::sync::Arc;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use chrono::{Datelike, NaiveDate};
use serde::Deserialize;

use super::forms::FieldErrors;
use super::i18n::{self, Lang};
use super::page::{default_lang, render_with, Page};
use super::{session, PortalError};
use crate::api::AppState;
use crate::charts::{self, Labels, Series};
use crate::store::dashboard::Dashboard;
use crate::store::stats::{Period, ProcedureStats};

/// The longest period shown at once, in days (a leap year).
pub const MAX_DAYS: i64 = 366;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/dashboard", web::get().to(page))
        .route("/dashboard.csv", web::get().to(csv_figures))
        .route("/dashboard/exchange.csv", web::get().to(csv_exchange))
        .route("/dashboard/charts/{name}.svg", web::get().to(chart));
}

#[derive(Deserialize, Default)]
pub struct PeriodQuery {
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    lang: Option<String>,
}

/// A field's problem, as a catalogue key.
type Problems = Vec<(&'static str, &'static str)>;

fn parse_date(raw: Option<&str>) -> Result<Option<NaiveDate>, ()> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| ()),
    }
}

fn month_start(d: NaiveDate) -> NaiveDate {
    d.with_day(1).unwrap_or(d)
}

/// The period asked for: `from` defaults to the first of the current month, `to` to today.
pub fn parse_period(
    from: Option<&str>,
    to: Option<&str>,
    today: NaiveDate,
    offset: chrono::FixedOffset,
) -> Result<Period, Problems> {
    let mut problems = Problems::new();
    let from = parse_date(from).unwrap_or_else(|()| {
        problems.push(("from", "dashboard-error-date"));
        None
    });
    let to = parse_date(to).unwrap_or_else(|()| {
        problems.push(("to", "dashboard-error-date"));
        None
    });
    if !problems.is_empty() {
        return Err(problems);
    }
    let to = to.unwrap_or(today);
    let from = from.unwrap_or_else(|| month_start(to.min(today)));
    if from > to {
        return Err(vec![("to", "dashboard-error-order")]);
    }
    if (to - from).num_days() + 1 > MAX_DAYS {
        return Err(vec![("to", "dashboard-error-too-long")]);
    }
    Ok(Period { from, to, offset })
}

/// A rate (0..=1) as a percentage with one decimal: `66,7 %` (vi, with a no-break space),
/// `66.7%` (en).
pub fn percent(lang: Lang, rate: f64) -> String {
    let n = format!("{:.1}", rate * 100.0);
    match lang {
        Lang::Vi => format!("{}\u{a0}%", n.replace('.', ",")),
        Lang::En => format!("{n}%"),
    }
}

fn decimal(lang: Lang, v: f64, places: u32) -> String {
    let d = rust_decimal::Decimal::from_f64_retain(v)
        .unwrap_or_default()
        .round_dp_with_strategy(places, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
    lang.number(&d)
}

fn count(lang: Lang, n: i64) -> String {
    lang.number(&rust_decimal::Decimal::from(n))
}

/// One line of the figures' tables, written in the page's language.
pub struct Row {
    pub agency: String,
    pub procedure: String,
    pub received: String,
    pub decided: String,
    pub issued: String,
    pub refused: String,
    pub withdrawn: String,
    pub pending: String,
    pub on_schedule: String,
    pub median: String,
    pub p90: String,
    pub full_online: String,
}

pub struct DayRow {
    pub date: String,
    pub received: String,
    pub decided: String,
}

pub struct ExchangeRow {
    pub partner: String,
    pub document_type: String,
    pub sent: String,
    pub delivered: String,
    pub failed: String,
    pub received: String,
}

pub struct ChartRef {
    pub src: String,
    pub alt: String,
}

pub struct Preset {
    pub label: String,
    pub href: String,
    pub current: bool,
}

/// What the page shows for a valid period.
pub struct View {
    pub period: String,
    pub query: String,
    pub day_hours: String,
    pub agencies: Vec<Row>,
    pub procedures: Vec<Row>,
    pub days: Vec<DayRow>,
    pub exchange: Vec<ExchangeRow>,
    pub charts: Vec<ChartRef>,
}

#[derive(Template)]
#[template(path = "dashboard/page.html")]
struct DashboardPage {
    page: Page,
    from: String,
    to: String,
    errors: FieldErrors,
    presets: Vec<Preset>,
    view: Option<View>,
}

/// Working hours with the same span in working days: `12 giờ (1,5 ngày)`.
fn hours(lang: Lang, h: Option<f64>, day_hours: f64) -> String {
    match h {
        None => "—".into(),
        Some(h) => lang.t_args(
            "dashboard-hours-days",
            &[
                ("hours", decimal(lang, h, 1)),
                ("days", decimal(lang, h / day_hours, 1)),
            ],
        ),
    }
}

fn row(lang: Lang, s: &ProcedureStats, full_online: Option<f64>, day_hours: f64) -> Row {
    Row {
        agency: s.agency.clone(),
        procedure: s.procedure_code.clone(),
        received: count(lang, s.received),
        decided: count(lang, s.decided),
        issued: count(lang, s.issued),
        refused: count(lang, s.refused),
        withdrawn: count(lang, s.withdrawn),
        pending: count(lang, s.pending),
        on_schedule: s
            .on_schedule_rate
            .map_or_else(|| "—".into(), |r| percent(lang, r)),
        median: hours(lang, s.median_hours, day_hours),
        p90: hours(lang, s.p90_hours, day_hours),
        full_online: full_online.map_or_else(|| "—".into(), |r| percent(lang, r)),
    }
}

fn full_online_of(d: &Dashboard, agency: &str) -> Option<f64> {
    d.figures
        .licences
        .iter()
        .find(|l| l.agency == agency)
        .and_then(|l| l.full_online_rate())
}

fn query_string(p: &Period, lang: Lang) -> String {
    format!("from={}&to={}&lang={}", p.from, p.to, lang.code())
}

fn presets(lang: Lang, today: NaiveDate, current: Option<&Period>) -> Vec<Preset> {
    let this_month = month_start(today);
    let last_month_end = this_month.pred_opt().unwrap_or(this_month);
    let year_start = NaiveDate::from_ymd_opt(today.year(), 1, 1).unwrap_or(today);
    [
        ("dashboard-preset-this-month", this_month, today),
        (
            "dashboard-preset-last-month",
            month_start(last_month_end),
            last_month_end,
        ),
        ("dashboard-preset-this-year", year_start, today),
    ]
    .into_iter()
    .map(|(key, from, to)| Preset {
        label: lang.t(key),
        href: format!("/dashboard?from={from}&to={to}"),
        current: current.is_some_and(|p| p.from == from && p.to == to),
    })
    .collect()
}

fn day_hours(state: &AppState) -> f64 {
    f64::from(state.calendar.working_day_minutes().max(1)) / 60.0
}

async fn load(state: &AppState, period: Period) -> Result<Arc<Dashboard>, PortalError> {
    state
        .dashboard
        .get(&state.pool, &state.calendar, period)
        .await
}

/// `GET /dashboard`: the form, and the figures of a valid period (`422` with the message beside
/// the field otherwise).
#[tracing::instrument(name = "portal.dashboard", skip_all)]
async fn page(
    req: HttpRequest,
    q: web::Query<PeriodQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    let person = session::current(&req, &state).await.ok().flatten();
    let page = Page::new(&req, &state, person.as_ref(), "dashboard-title");
    let lang = page.lang;
    let today = state.today();
    let parsed = parse_period(
        q.from.as_deref(),
        q.to.as_deref(),
        today,
        state.calendar_offset(),
    );
    let (from, to) = match &parsed {
        Ok(p) => (p.from.to_string(), p.to.to_string()),
        Err(_) => (
            q.from.clone().unwrap_or_default(),
            q.to.clone().unwrap_or_default(),
        ),
    };
    let period = match parsed {
        Ok(p) => p,
        Err(problems) => {
            let mut errors = FieldErrors::new();
            for (field, key) in problems {
                errors.add(field, lang.t_args(key, &[("max", MAX_DAYS.to_string())]));
            }
            return render_with(
                StatusCode::UNPROCESSABLE_ENTITY,
                &DashboardPage {
                    presets: presets(lang, today, None),
                    page,
                    from,
                    to,
                    errors,
                    view: None,
                },
            );
        }
    };
    let d = load(&state, period).await?;
    let dh = day_hours(&state);
    let query = query_string(&period, lang);
    let charts = CHARTS
        .iter()
        .map(|name| ChartRef {
            src: format!("/dashboard/charts/{name}.svg?{query}"),
            alt: lang.t_args(
                &format!("dashboard-chart-{name}-alt"),
                &[("period", period_text(lang, &period))],
            ),
        })
        .collect();
    let view = View {
        period: period_text(lang, &period),
        query,
        day_hours: decimal(lang, dh, 1),
        agencies: d
            .figures
            .agencies
            .iter()
            .map(|s| row(lang, s, full_online_of(&d, &s.agency), dh))
            .collect(),
        procedures: d
            .figures
            .procedures
            .iter()
            .map(|s| row(lang, s, None, dh))
            .collect(),
        days: d
            .days
            .iter()
            .filter(|x| x.received > 0 || x.decided > 0)
            .map(|x| DayRow {
                date: lang.date(x.date),
                received: count(lang, x.received),
                decided: count(lang, x.decided),
            })
            .collect(),
        exchange: d
            .exchange
            .iter()
            .map(|x| ExchangeRow {
                partner: x.partner.clone(),
                document_type: x.document_type.clone(),
                sent: count(lang, x.sent),
                delivered: count(lang, x.delivered),
                failed: count(lang, x.failed),
                received: count(lang, x.received),
            })
            .collect(),
        charts,
    };
    render_with(
        StatusCode::OK,
        &DashboardPage {
            presets: presets(lang, today, Some(&period)),
            page,
            from,
            to,
            errors: FieldErrors::new(),
            view: Some(view),
        },
    )
}

fn period_text(lang: Lang, p: &Period) -> String {
    lang.t_args(
        "dashboard-period-text",
        &[("from", lang.date(p.from)), ("to", lang.date(p.to))],
    )
}

/// The period of a download or chart; a bad one is a request no form of ours sends.
fn period_of(q: &PeriodQuery, state: &AppState) -> Result<Period, PortalError> {
    parse_period(
        q.from.as_deref(),
        q.to.as_deref(),
        state.today(),
        state.calendar_offset(),
    )
    .map_err(|p| {
        PortalError::BadRequest(format!(
            "invalid period: {}",
            p.iter()
                .map(|(f, k)| format!("{f} ({k})"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

fn opt(v: Option<f64>, places: usize) -> String {
    v.map_or_else(String::new, |v| format!("{v:.places$}"))
}

fn csv_response(name: &str, p: &Period, body: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/csv; charset=utf-8"))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}-{}-{}.csv\"", p.from, p.to),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

fn csv_error(e: impl std::fmt::Display) -> PortalError {
    PortalError::Internal(format!("csv: {e}"))
}

/// `GET /dashboard.csv`: one row per agency (`level` = `agency`, all its procedures) and per
/// agency and procedure (`level` = `procedure`). Plain numbers: rates in percent and hours with
/// a dot as decimal separator, empty where there is nothing to measure.
#[tracing::instrument(name = "portal.dashboard_csv", skip_all)]
async fn csv_figures(
    q: web::Query<PeriodQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    let period = period_of(&q, &state)?;
    let d = load(&state, period).await?;
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "period_from",
        "period_to",
        "level",
        "agency",
        "procedure_code",
        "received",
        "decided",
        "issued",
        "refused",
        "withdrawn",
        "pending",
        "on_schedule_percent",
        "median_working_hours",
        "p90_working_hours",
        "full_online_percent",
    ])
    .map_err(csv_error)?;
    let (from, to) = (period.from.to_string(), period.to.to_string());
    let lines = d
        .figures
        .agencies
        .iter()
        .map(|s| ("agency", s, full_online_of(&d, &s.agency)))
        .chain(d.figures.procedures.iter().map(|s| ("procedure", s, None)));
    for (level, s, online) in lines {
        w.write_record([
            from.clone(),
            to.clone(),
            level.to_owned(),
            s.agency.clone(),
            s.procedure_code.clone(),
            s.received.to_string(),
            s.decided.to_string(),
            s.issued.to_string(),
            s.refused.to_string(),
            s.withdrawn.to_string(),
            s.pending.to_string(),
            opt(s.on_schedule_rate.map(|r| r * 100.0), 1),
            opt(s.median_hours, 2),
            opt(s.p90_hours, 2),
            opt(online.map(|r| r * 100.0), 1),
        ])
        .map_err(csv_error)?;
    }
    let body = w.into_inner().map_err(csv_error)?;
    Ok(csv_response("dashboard", &period, body))
}

/// `GET /dashboard/exchange.csv`: messages per partner window and document type.
#[tracing::instrument(name = "portal.dashboard_exchange_csv", skip_all)]
async fn csv_exchange(
    q: web::Query<PeriodQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    let period = period_of(&q, &state)?;
    let d = load(&state, period).await?;
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "period_from",
        "period_to",
        "partner",
        "document_type",
        "sent",
        "delivered",
        "failed",
        "received",
    ])
    .map_err(csv_error)?;
    for x in &d.exchange {
        w.write_record([
            period.from.to_string(),
            period.to.to_string(),
            x.partner.clone(),
            x.document_type.clone(),
            x.sent.to_string(),
            x.delivered.to_string(),
            x.failed.to_string(),
            x.received.to_string(),
        ])
        .map_err(csv_error)?;
    }
    let body = w.into_inner().map_err(csv_error)?;
    Ok(csv_response("dashboard-exchange", &period, body))
}

/// The charts, by the name in their address.
pub const CHARTS: [&str; 4] = ["on-schedule", "processing", "daily", "exchange"];

fn labels(lang: Lang, name: &str, period: &Period, desc: String) -> Labels {
    Labels {
        title: lang.t_args(
            &format!("dashboard-chart-{name}-title"),
            &[("period", period_text(lang, period))],
        ),
        desc,
        y_axis: lang.t(&format!("dashboard-chart-{name}-axis")),
    }
}

/// A chart's SVG for `d` in `lang`, or `None` for an unknown name.
pub fn render_chart(
    lang: Lang,
    name: &str,
    d: &Dashboard,
) -> Option<Result<String, charts::ChartError>> {
    let p = &d.period;
    let none = || lang.t("dashboard-chart-empty");
    let join = |parts: Vec<String>| {
        if parts.is_empty() {
            none()
        } else {
            parts.join("; ")
        }
    };
    Some(match name {
        "on-schedule" => {
            let decided: Vec<&ProcedureStats> = d
                .figures
                .agencies
                .iter()
                .filter(|s| s.on_schedule_rate.is_some())
                .collect();
            let rates: Vec<f64> = decided
                .iter()
                .map(|s| s.on_schedule_rate.unwrap_or(0.0) * 100.0)
                .collect();
            let desc = join(
                decided
                    .iter()
                    .map(|s| {
                        format!(
                            "{}: {}",
                            s.agency,
                            percent(lang, s.on_schedule_rate.unwrap_or(0.0))
                        )
                    })
                    .collect(),
            );
            charts::bars(
                &labels(lang, name, p, desc),
                &decided.iter().map(|s| s.agency.clone()).collect::<Vec<_>>(),
                &[Series {
                    name: lang.t("dashboard-on-schedule"),
                    values: rates,
                }],
                100.0,
                &|v| format!("{v:.0}"),
            )
        }
        "processing" => {
            let decided: Vec<&ProcedureStats> = d
                .figures
                .agencies
                .iter()
                .filter(|s| s.median_hours.is_some())
                .collect();
            let desc = join(
                decided
                    .iter()
                    .map(|s| {
                        lang.t_args(
                            "dashboard-chart-processing-item",
                            &[
                                ("agency", s.agency.clone()),
                                ("median", decimal(lang, s.median_hours.unwrap_or(0.0), 1)),
                                ("p90", decimal(lang, s.p90_hours.unwrap_or(0.0), 1)),
                            ],
                        )
                    })
                    .collect(),
            );
            charts::bars(
                &labels(lang, name, p, desc),
                &decided.iter().map(|s| s.agency.clone()).collect::<Vec<_>>(),
                &[
                    Series {
                        name: lang.t("dashboard-median"),
                        values: decided
                            .iter()
                            .map(|s| s.median_hours.unwrap_or(0.0))
                            .collect(),
                    },
                    Series {
                        name: lang.t("dashboard-p90"),
                        values: decided.iter().map(|s| s.p90_hours.unwrap_or(0.0)).collect(),
                    },
                ],
                1.0,
                &|v| decimal(lang, v, 1),
            )
        }
        "daily" => {
            let received: i64 = d.days.iter().map(|x| x.received).sum();
            let decided: i64 = d.days.iter().map(|x| x.decided).sum();
            let desc = lang.t_args(
                "dashboard-chart-daily-summary",
                &[
                    ("received", count(lang, received)),
                    ("decided", count(lang, decided)),
                    ("days", d.days.len().to_string()),
                ],
            );
            charts::lines(
                &labels(lang, name, p, desc),
                d.days.len(),
                &[
                    Series {
                        name: lang.t("dashboard-received"),
                        values: d.days.iter().map(|x| x.received as f64).collect(),
                    },
                    Series {
                        name: lang.t("dashboard-decided"),
                        values: d.days.iter().map(|x| x.decided as f64).collect(),
                    },
                ],
                &|i| {
                    d.days
                        .get(i)
                        .map(|x| x.date.format("%d/%m").to_string())
                        .unwrap_or_default()
                },
            )
        }
        "exchange" => {
            let mut by: std::collections::BTreeMap<&str, (i64, i64)> = Default::default();
            for x in &d.exchange {
                let e = by.entry(x.partner.as_str()).or_default();
                e.0 += x.sent;
                e.1 += x.received;
            }
            let desc = join(
                by.iter()
                    .map(|(partner, (sent, received))| {
                        lang.t_args(
                            "dashboard-chart-exchange-item",
                            &[
                                ("partner", (*partner).to_owned()),
                                ("sent", count(lang, *sent)),
                                ("received", count(lang, *received)),
                            ],
                        )
                    })
                    .collect(),
            );
            charts::bars(
                &labels(lang, name, p, desc),
                &by.keys().map(|k| (*k).to_owned()).collect::<Vec<_>>(),
                &[
                    Series {
                        name: lang.t("dashboard-sent"),
                        values: by.values().map(|v| v.0 as f64).collect(),
                    },
                    Series {
                        name: lang.t("dashboard-exchange-received"),
                        values: by.values().map(|v| v.1 as f64).collect(),
                    },
                ],
                1.0,
                &|v| {
                    if v.fract() == 0.0 {
                        format!("{v:.0}")
                    } else {
                        String::new()
                    }
                },
            )
        }
        _ => return None,
    })
}

/// `GET /dashboard/charts/{name}.svg?from&to&lang`: a chart as `image/svg+xml`.
#[tracing::instrument(name = "portal.dashboard_chart", skip_all)]
async fn chart(
    req: HttpRequest,
    name: web::Path<String>,
    q: web::Query<PeriodQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    if !CHARTS.contains(&name.as_str()) {
        return Err(PortalError::NotFound);
    }
    let lang = q
        .lang
        .as_deref()
        .and_then(Lang::parse)
        .unwrap_or_else(|| i18n::negotiate(&req, default_lang(&state)));
    let period = period_of(&q, &state)?;
    let d = load(&state, period).await?;
    let svg = render_chart(lang, &name, &d)
        .ok_or(PortalError::NotFound)?
        .map_err(|e| PortalError::Internal(e.to_string()))?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "image/svg+xml; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .body(svg))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn off() -> chrono::FixedOffset {
        chrono::FixedOffset::east_opt(7 * 3600).unwrap()
    }

    #[test]
    fn the_default_period_is_the_month_so_far() {
        let p = parse_period(None, Some(""), d("2026-11-30"), off()).unwrap();
        assert_eq!((p.from, p.to), (d("2026-11-01"), d("2026-11-30")));
    }

    #[test]
    fn bad_periods_name_their_field() {
        let today = d("2026-11-30");
        assert_eq!(
            parse_period(Some("2026-13-01"), None, today, off()).unwrap_err(),
            vec![("from", "dashboard-error-date")]
        );
        assert_eq!(
            parse_period(Some("2026-11-02"), Some("2026-11-01"), today, off()).unwrap_err(),
            vec![("to", "dashboard-error-order")]
        );
        assert_eq!(
            parse_period(Some("2025-01-01"), Some("2026-01-02"), today, off()).unwrap_err(),
            vec![("to", "dashboard-error-too-long")]
        );
        // a leap year is the longest period
        assert!(parse_period(Some("2024-01-01"), Some("2024-12-31"), today, off()).is_ok());
    }

    #[test]
    fn percentages_are_written_as_each_language_writes_them() {
        assert_eq!(percent(Lang::Vi, 2.0 / 3.0), "66,7\u{a0}%");
        assert_eq!(percent(Lang::En, 2.0 / 3.0), "66.7%");
        assert_eq!(percent(Lang::En, 1.0), "100.0%");
    }
}
