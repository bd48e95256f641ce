//! `GET /console/audit`: the audit chain check (`store::audit::verify`, as `nsw audit verify`
//! runs it) on request, with the head hash to keep outside the database as an anchor.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::operator;
use crate::api::AppState;
use crate::portal::page::{render, Page};
use crate::portal::session::Person;
use crate::portal::PortalError;
use crate::store::audit::{self, Verification};

pub enum Outcome {
    Intact {
        sealed: i64,
        unsealed: i64,
        head: Option<(i64, String)>,
    },
    Broken {
        chain_pos: i64,
        id: i64,
        reason: String,
    },
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    page: Page,
    outcome: Option<Outcome>,
    anchor_pos: String,
    anchor_hash: String,
    anchor_error: bool,
}

#[derive(Deserialize)]
pub struct Query {
    run: Option<String>,
    #[serde(default)]
    anchor_pos: String,
    #[serde(default)]
    anchor_hash: String,
}

#[tracing::instrument(name = "portal.console_audit", skip_all, fields(party))]
pub async fn audit(
    req: HttpRequest,
    person: Person,
    q: web::Query<Query>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PortalError> {
    operator(&person)?;
    let page = Page::new(&req, &state, Some(&person), "console-audit-title");
    let q = q.into_inner();
    let (pos, hash) = (q.anchor_pos.trim(), q.anchor_hash.trim());
    let anchor = if pos.is_empty() && hash.is_empty() {
        Ok(None)
    } else {
        match (pos.parse::<i64>(), hex::decode(hash)) {
            (Ok(p), Ok(h)) if p > 0 && h.len() == 32 => Ok(Some((p, h))),
            _ => Err(()),
        }
    };
    let mut outcome = None;
    if q.run.is_some() {
        if let Ok(anchor) = &anchor {
            let client = state.pool.get().await?;
            let v =
                audit::verify(&client, anchor.as_ref().map(|(p, h)| (*p, h.as_slice()))).await?;
            outcome = Some(match v {
                Verification::Intact {
                    sealed,
                    unsealed,
                    head,
                } => Outcome::Intact {
                    sealed,
                    unsealed,
                    head: head.map(|(p, h)| (p, hex::encode(h))),
                },
                Verification::Broken {
                    chain_pos,
                    id,
                    reason,
                } => Outcome::Broken {
                    chain_pos,
                    id,
                    reason,
                },
            });
        }
    }
    render(&AuditPage {
        page,
        outcome,
        anchor_error: q.run.is_some() && anchor.is_err(),
        anchor_pos: q.anchor_pos,
        anchor_hash: q.anchor_hash,
    })
}
