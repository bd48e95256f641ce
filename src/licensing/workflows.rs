//! The licensing workflows, each one function called by the thin HTTP handlers: an officer's
//! decision on an application (`decide`, which issues through `issue`), the applicant's
//! supplement and withdrawal, and the deposit of a licence issued elsewhere. Every status change
//! is judged by `domain::application_state` and again by the database; a decision that already
//! took effect is refused with `StoreError::Transition` and changes nothing.

use chrono::NaiveDate;
use deadpool_postgres::Pool;
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::documents::{self, Issue};
use super::{certificates, signing};
use crate::config::Settings;
use crate::exchange::signature::SignatureError;
use crate::store::licensing::{
    self as store, AppScope, ApplicationSummary, LicenceView, NewLicence, Status,
};
use crate::store::routing::RoutingCache;
use crate::store::{keys, StoreError};
use crate::workflow::WorkflowError;
use crate::xml::{self, DocKind, Limits, Violation};

pub use crate::domain::application_state::Action;

/// What the licensing workflows need of the window.
pub struct Context<'a> {
    pub pool: &'a Pool,
    pub routing: &'a RoutingCache,
    pub settings: &'a Settings,
    pub limits: &'a Limits,
    /// The window's date: issue dates and validity are judged by it.
    pub today: NaiveDate,
    /// The partner exchange (its partner table and signing key), when this window exchanges
    /// with partners (e-Form D).
    pub exchange: Option<&'a crate::exchange::Exchange>,
    /// The working-time calendar time limits are counted on.
    pub calendar: &'a crate::calendar::Calendar,
    /// Fees paid online: notices issued with applications, refunds on withdrawal.
    pub payments: &'a crate::payments::Payments,
}

/// What the officer decides beyond the action.
#[derive(Debug, Default, Clone, Copy)]
pub struct Terms<'a> {
    pub reason: Option<&'a str>,
    /// Conditions written into an issued licence.
    pub conditions: Option<&'a str>,
    /// The officer's validity for an issued licence, in place of the one applied for.
    pub valid_from: Option<NaiveDate>,
    pub valid_until: Option<NaiveDate>,
}

/// The e-Form D that left with a certificate of origin.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EFormD {
    pub message_id: Uuid,
    pub conversation_id: Uuid,
    pub receiver: String,
    pub document_type: &'static str,
}

/// An application after an officer's decision.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = ApplicationDecided)]
#[serde(untagged)]
pub enum Decided {
    /// Reviewed, supplement requested or refused.
    Moved(ApplicationSummary),
    Licence {
        application: ApplicationSummary,
        licence_number: String,
    },
    Certificate {
        application: ApplicationSummary,
        certificate_reference: String,
        e_form_d: Option<EFormD>,
    },
}

fn reason_required(reason: Option<&str>, action: Action) -> Result<String, WorkflowError> {
    match reason.map(str::trim).filter(|r| !r.is_empty()) {
        Some(r) if r.chars().count() <= 2000 => Ok(r.to_owned()),
        Some(_) => Err(WorkflowError::bad_request(
            "REASON_TOO_LONG",
            "reason: at most 2000 characters",
        )),
        None => Err(WorkflowError::bad_request(
            "REASON_REQUIRED",
            format!("'{}' needs a reason", action.as_str()),
        )),
    }
}

/// An officer of `agency` decides on application `id`.
pub async fn decide(
    ctx: &Context<'_>,
    agency: &str,
    actor: &str,
    id: Uuid,
    action: Action,
    terms: &Terms<'_>,
) -> Result<Decided, WorkflowError> {
    let note = match action {
        Action::Issue => return issue(ctx, agency, actor, id, terms).await,
        Action::Review => "under review".to_owned(),
        Action::RequestSupplement | Action::Refuse => reason_required(terms.reason, action)?,
    };
    let mut client = ctx.pool.get().await?;
    let tx = client.transaction().await?;
    refuse_unpaid(store::status_for_update(&tx, &AppScope::Agency(agency), id).await?)?;
    let s = store::transition(
        &tx,
        &AppScope::Agency(agency),
        id,
        action.target(),
        actor,
        Some(&note),
    )
    .await?;
    tx.commit().await?;
    Ok(Decided::Moved(s))
}

/// An application whose fee is unpaid is not the agency's to decide yet: `409 FEE_UNPAID`
/// (the state machine refuses every officer's move from `awaiting_payment`; this names why).
fn refuse_unpaid(status: Option<Status>) -> Result<(), WorkflowError> {
    if status == Some(Status::AwaitingPayment) {
        return Err(WorkflowError::Conflict {
            code: "FEE_UNPAID",
            detail: "the application's fee is not paid yet: it can be decided once the \
                     payment platform reports the payment"
                .into(),
        });
    }
    Ok(())
}

fn schema_valid<'a>(bytes: &'a [u8], limits: &Limits, kind: DocKind) -> Option<xml::Tree<'a>> {
    match xml::check(bytes, limits, Some(kind)) {
        Ok(Ok(valid)) => Some(valid.tree),
        _ => None,
    }
}

/// Issues application `id` (under review, routed to `agency`): a licence written from the
/// application, checked against licence.xsd and its rules, signed with the agency's key and
/// stored with its balances — or, for a Form D application, the certificate of origin and its
/// e-Form D (`certificates::issue`). One transaction; the application row is locked first, so
/// two issuances of one application cannot both pass.
pub async fn issue(
    ctx: &Context<'_>,
    agency: &str,
    actor: &str,
    id: Uuid,
    terms: &Terms<'_>,
) -> Result<Decided, WorkflowError> {
    let conditions = terms.conditions;
    if conditions.is_some_and(|c| c.chars().count() > 2000) {
        return Err(WorkflowError::bad_request(
            "CONDITIONS_TOO_LONG",
            "conditions: at most 2000 characters",
        ));
    }
    let mut client = ctx.pool.get().await?;
    let table = ctx.routing.current(&client).await?;
    let agency_name = table
        .agency(agency)
        .map(|a| a.name.clone())
        .unwrap_or_else(|| agency.to_owned());
    let tx = client.transaction().await?;
    let (summary, app) = store::application_for_issue(&tx, id, agency).await?;
    let from = Status::parse(&summary.status);
    refuse_unpaid(from)?;
    if !from.is_some_and(|s| s.can_become(Status::Issued)) {
        return Err(StoreError::Transition(format!(
            "licence application: transition {} -> issued is not allowed",
            summary.status
        ))
        .into());
    }
    if app.application_type == certificates::APPLICATION_TYPE {
        return certificates::issue(ctx, tx, agency, &agency_name, actor, &app, id).await;
    }
    let (valid_from, valid_to) =
        super::issue_validity(&app, terms.valid_from, terms.valid_until, ctx.today).map_err(
            |e| match e {
                super::ValidityError::Ended { .. } => WorkflowError::Conflict {
                    code: "LICENCE_VALIDITY_ENDED",
                    detail: e.to_string(),
                },
                super::ValidityError::Invalid(_) => {
                    WorkflowError::bad_request("VALIDITY_INVALID", e.to_string())
                }
            },
        )?;
    let app = documents::Application {
        valid_from,
        valid_to,
        ..app
    };
    let number = store::next_licence_number(&tx, agency).await?;
    let xml_bytes = documents::write_licence(
        &app,
        &Issue {
            number: &number,
            agency,
            agency_name: &agency_name,
            issue_date: ctx.today,
            conditions,
        },
    );
    let tree = schema_valid(&xml_bytes, ctx.limits, DocKind::Licence).ok_or_else(|| {
        WorkflowError::Internal(format!("generated licence {number} is not schema-valid"))
    })?;
    let licence = documents::read_licence(&tree).map_err(|v| {
        WorkflowError::Internal(format!("generated licence {number} breaks a rule: {v:?}"))
    })?;
    let key = signing::agency_key(&tx, agency, ctx.settings).await?;
    let signature = signing::sign_detached(&key.private_key_pem, &key.certificate_pem, &xml_bytes)
        .map_err(|e| WorkflowError::Internal(e.to_string()))?;
    let application = store::issue_licence(
        &tx,
        &NewLicence {
            licence: &licence,
            body: &xml_bytes,
            signature: &signature,
            actor,
            application_id: Some(id),
        },
        agency,
    )
    .await?;
    tx.commit().await?;
    Ok(Decided::Licence {
        application,
        licence_number: number,
    })
}

/// The applicant's supplement: recorded, and the application moves to `supplemented`.
pub async fn supplement(
    pool: &Pool,
    id: Uuid,
    applicant: &str,
    note: &str,
) -> Result<ApplicationSummary, WorkflowError> {
    let note = note.trim();
    if note.is_empty() || note.chars().count() > 4000 {
        return Err(WorkflowError::bad_request(
            "NOTE_INVALID",
            "note: 1 to 4000 characters",
        ));
    }
    let mut client = pool.get().await?;
    Ok(store::supplement(&mut client, id, applicant, note).await?)
}

/// The applicant withdraws an application not decided yet. In the same transaction its fee
/// notice follows (`payments::notices::on_withdrawal`): an unpaid one is cancelled; a paid one
/// is refunded when the application never went under review, the refund request stored and
/// then sent at once (the payments job sends it again until the platform accepts it).
pub async fn withdraw(
    ctx: &Context<'_>,
    id: Uuid,
    applicant: &str,
) -> Result<ApplicationSummary, WorkflowError> {
    let mut client = ctx.pool.get().await?;
    let tx = client.transaction().await?;
    let s = store::transition(
        &tx,
        &AppScope::Applicant(applicant),
        id,
        Status::Withdrawn,
        applicant,
        Some("withdrawn by the applicant"),
    )
    .await?;
    let fee = crate::payments::notices::on_withdrawal(&tx, id, applicant).await?;
    tx.commit().await?;
    if let crate::payments::notices::Withdrawn::RefundRequested(refund) = fee {
        crate::payments::refunds::send_now(ctx.payments, refund).await;
    }
    Ok(s)
}

/// An enterprise (`applicant`, its party id) applies for a licence with a licence-application
/// document: schema and rules, the applicant is the document's own, the routing table names
/// the agency and procedure, then the document, application, event and audit entry are
/// stored together. Answers the receipt (reference, agency, procedure, fee, time limit).
pub async fn submit(
    ctx: &Context<'_>,
    applicant: &str,
    bytes: &[u8],
) -> Result<store::ApplicationReceipt, WorkflowError> {
    let tree = match xml::check(bytes, ctx.limits, Some(DocKind::LicenceApplication)) {
        Err(e) => return Err(WorkflowError::Xml(e)),
        Ok(Err(refused)) => return Err(WorkflowError::Invalid(refused.violations)),
        Ok(Ok(valid)) => valid.tree,
    };
    let app = documents::read_application(&tree).map_err(WorkflowError::Invalid)?;
    if app.applicant.id != applicant {
        return Err(WorkflowError::Forbidden {
            code: "PARTY_MISMATCH",
            detail: format!(
                "you ({applicant}) may apply only in your own name, not for {}",
                app.applicant.id
            ),
        });
    }
    let mut client = ctx.pool.get().await?;
    let table = ctx.routing.current(&client).await?;
    let rule = super::route_application(&table, &app).map_err(|e| {
        let (line, code) = match &e {
            super::RouteError::NoRule { line, .. } => (*line, "ROUTING_NO_RULE"),
            super::RouteError::Split { line, .. } => (*line, "ROUTING_SPLIT"),
        };
        let node = tree
            .children(xml::tree::ROOT, "Line")
            .nth((line.max(1) - 1) as usize)
            .unwrap_or(xml::tree::ROOT);
        let pos = tree.position(node);
        WorkflowError::Invalid(vec![Violation {
            line: pos.line,
            column: pos.column,
            path: tree.path(node),
            code,
            message: e.to_string(),
        }])
    })?;
    // Only errors needed the tree; the store works from `app` (a large document's tree is
    // about its own size again).
    drop(tree);
    let sha256: [u8; 32] = Sha256::digest(bytes).into();
    let agency_name = table
        .agency(&rule.agency)
        .map(|a| a.name.clone())
        .unwrap_or_else(|| rule.agency.clone());
    let receipt = store::submit_application(
        &mut client,
        store::NewApplication {
            applicant,
            document_kind: DocKind::LicenceApplication.name(),
            body: bytes,
            sha256,
            application: &app,
            rule,
            routing_version: table.version,
            country: &ctx.settings.country,
            sla_minutes: rule.sla_minutes(ctx.calendar.working_day_minutes()),
            fee: ctx.payments.enabled().then(|| store::NewFee {
                agency_name: &agency_name,
                due_date: ctx.payments.due_date(ctx.today),
            }),
        },
    )
    .await?;
    Ok(receipt)
}

/// An officer of `agency` deposits a licence its agency issued outside the window: schema and
/// rules, validity not ended on the window's date, the agency's own licence, a signature that
/// chains to a certificate registered for the agency; then stored with its balances.
pub async fn deposit(
    ctx: &Context<'_>,
    agency: &str,
    actor: &str,
    bytes: &[u8],
    signature: &[u8],
) -> Result<LicenceView, WorkflowError> {
    let tree = match xml::check(bytes, ctx.limits, Some(DocKind::Licence)) {
        Err(e) => return Err(WorkflowError::Xml(e)),
        Ok(Err(refused)) => return Err(WorkflowError::Invalid(refused.violations)),
        Ok(Ok(valid)) => valid.tree,
    };
    let licence = documents::read_licence(&tree).map_err(WorkflowError::Invalid)?;
    documents::check_not_ended(&tree, &licence, ctx.today).map_err(WorkflowError::Invalid)?;
    tracing::Span::current().record("number", licence.number.as_str());
    if licence.agency != agency {
        return Err(WorkflowError::Forbidden {
            code: "AGENCY_MISMATCH",
            detail: format!(
                "an officer of {agency} may deposit only licences of {agency}, not of {}",
                licence.agency
            ),
        });
    }
    let mut client = ctx.pool.get().await?;
    let trusted = keys::trusted(&client, agency).await?;
    let policy = signing::Policy::from_settings(&ctx.settings.exchange);
    signing::verify_detached(signature, bytes, &trusted, agency, &policy).map_err(|e| match e {
        SignatureError::Malformed(_) | SignatureError::NoSigner => {
            WorkflowError::bad_request("SIGNATURE_MALFORMED", e.to_string())
        }
        // The bytes are not what was signed: a fault of the document, listed like its others.
        SignatureError::Invalid(_) => WorkflowError::Invalid(vec![Violation {
            line: 1,
            column: 1,
            path: "/Licence".into(),
            code: "SIGNATURE_INVALID",
            message: e.to_string(),
        }]),
        // Digest algorithm, chain, dates, purpose: the signer is not accepted.
        other => WorkflowError::Forbidden {
            code: other.code(),
            detail: other.to_string(),
        },
    })?;
    store::deposit_licence(
        &mut client,
        &NewLicence {
            licence: &licence,
            body: bytes,
            signature,
            actor,
            application_id: None,
        },
    )
    .await?;
    store::get_licence(&client, &licence.number)
        .await?
        .ok_or_else(|| StoreError::NotFound.into())
}
