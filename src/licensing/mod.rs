//! Licensing: licence applications routed to agencies, the electronic licences they issue or
//! deposit, and the signatures over them.

pub mod certificates;
pub mod documents;
pub mod signing;
mod workflows;

pub use workflows::{
    decide, deposit, issue, submit, supplement, withdraw, Action, Context, Decided, EFormD, Terms,
};

use chrono::NaiveDate;

use crate::routing::{document_for_application, RoutingTable, Rule};
use documents::Application;

/// Why a licence cannot be issued with the validity asked for.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ValidityError {
    /// The validity ended before the day of issue: the licence would cover nothing.
    #[error("the validity {from} to {to} ended before today ({today}); give new dates with valid_from and valid_until")]
    Ended {
        from: NaiveDate,
        to: NaiveDate,
        today: NaiveDate,
    },
    /// The officer's dates are out of order or outside the years the window records.
    #[error("{0}")]
    Invalid(String),
}

/// The validity an issued licence carries: the officer's dates where given (`valid_from`,
/// `valid_until` of the `issue` decision), the application's otherwise. A licence is never
/// issued with a validity that has already ended on the window's date `today`.
pub fn issue_validity(
    app: &Application,
    valid_from: Option<NaiveDate>,
    valid_until: Option<NaiveDate>,
    today: NaiveDate,
) -> Result<(NaiveDate, NaiveDate), ValidityError> {
    let from = valid_from.unwrap_or(app.valid_from);
    let to = valid_until.unwrap_or(app.valid_to);
    for d in [from, to] {
        if !crate::rules::date_recordable(d) {
            return Err(ValidityError::Invalid(format!(
                "{d} is outside the years the window records ({} to {})",
                crate::rules::FIRST_DATE,
                crate::rules::LAST_DATE
            )));
        }
    }
    if to < from {
        return Err(ValidityError::Invalid(format!(
            "the validity ends ({to}) before it starts ({from})"
        )));
    }
    if to < today {
        return Err(ValidityError::Ended { from, to, today });
    }
    Ok((from, to))
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RouteError {
    #[error("no routing rule sends {document} for HS {hs} ({direction}) to {agency}")]
    NoRule {
        line: i32,
        hs: String,
        direction: String,
        document: String,
        agency: String,
    },
    #[error("line {line} (HS {hs}) goes to {other}, line 1 to {first}: apply separately")]
    Split {
        line: i32,
        hs: String,
        first: String,
        other: String,
    },
}

/// The rule that decides which agency and procedure handle an application: every line must
/// lead, for the document the application asks for, to the same agency and procedure (and to
/// the agency the applicant named, if any).
pub fn route_application<'t>(
    table: &'t RoutingTable,
    app: &Application,
) -> Result<&'t Rule, RouteError> {
    let document = document_for_application(&app.application_type);
    let mut chosen: Option<&Rule> = None;
    for l in &app.lines {
        let rule = table
            .requirements(&l.hs_code, &app.direction, Some(app.partner_country()))
            .into_iter()
            .find(|r| r.document == document && app.agency.as_deref().is_none_or(|a| a == r.agency))
            .ok_or_else(|| RouteError::NoRule {
                line: l.number,
                hs: l.hs_code.clone(),
                direction: app.direction.clone(),
                document: document.to_owned(),
                agency: app.agency.clone().unwrap_or_else(|| "any agency".into()),
            })?;
        match chosen {
            None => chosen = Some(rule),
            Some(c) if c.agency == rule.agency && c.procedure == rule.procedure => {}
            Some(c) => {
                return Err(RouteError::Split {
                    line: l.number,
                    hs: l.hs_code.clone(),
                    first: format!("{}/{}", c.agency, c.procedure),
                    other: format!("{}/{}", rule.agency, rule.procedure),
                })
            }
        }
    }
    chosen.ok_or_else(|| RouteError::NoRule {
        line: 0,
        hs: String::new(),
        direction: app.direction.clone(),
        document: document.to_owned(),
        agency: "any agency".into(),
    })
}
