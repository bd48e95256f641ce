//! The submission of a customs declaration, one workflow called by both faces (the JSON API's
//! `POST /api/v1/declarations` and the portal's upload form): idempotency, schema and rules
//! (on the blocking pool for big documents), the submitter's part in it, then the store (in a
//! group commit, or alone). Refusals come back typed, with every violation located on its line.

use sha2::{Digest, Sha256};

use crate::api::{AppState, Intake};
use crate::domain::declaration::Declaration;
use crate::domain::party::Principal;
use crate::domain::Direction;
use crate::store::declarations::{self as store, Receipt, Submission};
use crate::store::group_commit::OwnedSubmission;
use crate::store::StoreError;
use crate::validation::{Valid, Verdict};
use crate::xml::{DocKind, Limits, Tree, Violation, XmlError};

/// Documents above this size are validated on the blocking pool so one large document does not
/// stall the other requests on its worker.
pub const INLINE_VALIDATION_LIMIT: usize = 512 * 1024;

/// An accepted declaration: its receipt, and whether it is the replay of an earlier answer to
/// the same Idempotency-Key and body.
#[derive(Debug, Clone)]
pub struct Submitted {
    pub receipt: Receipt,
    pub replayed: bool,
}

/// Why a declaration was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The bytes are not a usable XML document (malformed, hostile shape, empty …).
    #[error(transparent)]
    Xml(XmlError),
    /// Schema, rule or stored-data violations (licence balances, routing): every one, each with
    /// its line and column.
    #[error("the document has {} problem(s)", .0.len())]
    Invalid(Vec<Violation>),
    /// The submitter is neither the declarant nor the trader of the declaration.
    #[error("{detail}")]
    PartyMismatch { detail: String },
    /// Everything else the store answers (reference reused, idempotency key reused with
    /// another body, database down …).
    #[error(transparent)]
    Store(StoreError),
    /// A bug: never the submitter's fault.
    #[error("{0}")]
    Internal(String),
}

impl SubmitError {
    /// The stable code of the refusal, as the API's problem documents carry it.
    pub fn code(&self) -> &'static str {
        match self {
            SubmitError::Xml(e) => e.code(),
            SubmitError::Invalid(_) => "DOCUMENT_INVALID",
            SubmitError::PartyMismatch { .. } => "PARTY_MISMATCH",
            SubmitError::Store(StoreError::ReferenceReused { .. }) => {
                "DECLARATION_REFERENCE_REUSED"
            }
            SubmitError::Store(StoreError::IdempotencyConflict) => "IDEMPOTENCY_KEY_REUSED",
            SubmitError::Store(_) | SubmitError::Internal(_) => "INTERNAL",
        }
    }
}

impl From<SubmitError> for crate::error::ApiError {
    fn from(e: SubmitError) -> Self {
        use crate::error::ApiError;
        match e {
            SubmitError::Xml(x) => ApiError::Xml(x),
            SubmitError::Invalid(violations) => ApiError::Invalid { violations },
            SubmitError::PartyMismatch { detail } => ApiError::forbidden("PARTY_MISMATCH", detail),
            SubmitError::Store(s) => s.into(),
            SubmitError::Internal(m) => ApiError::Internal(m),
        }
    }
}

/// A store error with stored-data violations located on the document's lines.
fn store_error(e: StoreError, src: &[u8], limits: &Limits) -> SubmitError {
    match e {
        StoreError::Rejected(violations) => SubmitError::Invalid(locate(violations, src, limits)),
        other => SubmitError::Store(other),
    }
}

/// Violations found against stored data carry a path only: the document is parsed again to
/// find the line and column of each.
pub fn locate(mut violations: Vec<Violation>, src: &[u8], limits: &Limits) -> Vec<Violation> {
    if let Ok(tree) = Tree::parse(src, limits) {
        for v in &mut violations {
            if let Some(n) = tree.find(&v.path) {
                let p = tree.position(n);
                v.line = p.line;
                v.column = p.column;
            }
        }
    }
    violations
}

/// Submits the declaration in `bytes` for `principal` (an enterprise: the caller checks the
/// role and the body's size). `idempotency_key`, when given, makes a retry with the same body
/// answer as the first request did. Every outcome is counted (`nsw_intake_submissions_total`).
pub async fn submit_declaration(
    state: &AppState,
    intake: &Intake,
    principal: &Principal,
    bytes: bytes::Bytes,
    idempotency_key: Option<String>,
) -> Result<Submitted, SubmitError> {
    let result = submit(state, intake, principal, bytes, idempotency_key).await;
    count_outcome("declaration", &result);
    result
}

/// Counts one submission's outcome: accepted, replayed, or the code it was refused with (and
/// for an invalid document, each violation's code).
fn count_outcome(document: &'static str, result: &Result<Submitted, SubmitError>) {
    use crate::metrics::intake_outcome;
    match result {
        Ok(s) if s.replayed => intake_outcome(document, "replayed", []),
        Ok(_) => intake_outcome(document, "accepted", []),
        Err(e @ SubmitError::Invalid(violations)) => {
            intake_outcome(document, e.code(), violations.iter().map(|v| v.code))
        }
        Err(e) => intake_outcome(document, e.code(), []),
    }
}

async fn submit(
    state: &AppState,
    intake: &Intake,
    principal: &Principal,
    bytes: bytes::Bytes,
    idempotency_key: Option<String>,
) -> Result<Submitted, SubmitError> {
    let limits = &state.validator.limits;
    let sha256: [u8; 32] = Sha256::digest(&bytes).into();
    if let Some(key) = &idempotency_key {
        let client = state
            .pool
            .get()
            .await
            .map_err(|e| SubmitError::Store(e.into()))?;
        let earlier = store::earlier_answer(&client, &principal.party_id, key, &sha256)
            .await
            .map_err(|e| store_error(e, &bytes, limits))?;
        if let Some(receipt) = earlier {
            return Ok(Submitted {
                receipt,
                replayed: true,
            });
        }
    }

    let verdict = if bytes.len() > INLINE_VALIDATION_LIMIT {
        let v = &state.validator;
        let validator = crate::validation::Validator {
            limits: v.limits.clone(),
            country: v.country.clone(),
            clock: v.clock,
        };
        let bytes2 = bytes.clone();
        tokio::task::spawn_blocking(move || validator.validate(&bytes2, Some(DocKind::Declaration)))
            .await
            .map_err(|e| SubmitError::Internal(e.to_string()))?
    } else {
        state.validator.validate(&bytes, Some(DocKind::Declaration))
    };
    let declaration = match verdict {
        Verdict::Unusable(e) => return Err(SubmitError::Xml(e)),
        Verdict::Invalid { violations, .. } => return Err(SubmitError::Invalid(violations)),
        Verdict::Valid(Valid::Declaration(d)) => d,
        Verdict::Valid(Valid::Other(_)) => {
            return Err(SubmitError::Internal(
                "validator returned another kind".into(),
            ))
        }
    };
    let me = principal.party_id.as_str();
    if declaration.declarant.id != me && declaration.trader().id != me {
        return Err(SubmitError::PartyMismatch {
            detail: format!(
                "you ({me}) may submit only declarations in which you are the declarant or the {}",
                match declaration.direction {
                    Direction::Import => "importer",
                    Direction::Export => "exporter",
                }
            ),
        });
    }
    // A large document is written alone, its body streamed (`store::documents`): in a group
    // its bytes would travel as one parameter of the group's statement.
    let group = intake
        .0
        .as_ref()
        .filter(|_| bytes.len() < crate::store::documents::STREAMED_FROM);
    let outcome = match group {
        Some(group) => {
            group
                .submit(OwnedSubmission {
                    principal: principal.clone(),
                    body: bytes.clone(),
                    sha256,
                    declaration,
                    idempotency_key,
                    today: state.today(),
                })
                .await
        }
        None => {
            submit_alone(
                state,
                principal,
                &bytes,
                sha256,
                &declaration,
                idempotency_key,
            )
            .await
        }
    }
    .map_err(|e| store_error(e, &bytes, limits))?;
    Ok(match outcome {
        store::Submitted::Created(receipt) => Submitted {
            receipt,
            replayed: false,
        },
        store::Submitted::Replayed(receipt) => Submitted {
            receipt,
            replayed: true,
        },
    })
}

/// One request, one transaction (`intake.group_commit = false`).
async fn submit_alone(
    state: &AppState,
    principal: &Principal,
    bytes: &[u8],
    sha256: [u8; 32],
    declaration: &Declaration,
    key: Option<String>,
) -> Result<store::Submitted, StoreError> {
    let mut client = state.pool.get().await?;
    let routing = state.routing.current(&client).await?;
    let origin_checked_from = state
        .exchange
        .as_ref()
        .map(|ex| ex.partners.exchanging("FORM_D"))
        .unwrap_or_default();
    store::submit(
        &mut client,
        Submission {
            principal,
            body: bytes,
            sha256,
            declaration,
            idempotency_key: key.as_deref(),
            country: &state.settings.country,
            routing: &routing,
            origin_checked_from: &origin_checked_from,
            today: state.today(),
        },
    )
    .await
}
