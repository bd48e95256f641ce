//! Licensing: licence applications routed to agencies, the electronic licences they issue or
//! deposit, and the signatures over them.

pub mod certificates;
pub mod documents;
pub mod signing;

use crate::routing::{document_for_application, RoutingTable, Rule};
use documents::Application;

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
