//! What a workflow can answer besides success. Each workflow is one function in the module
//! that owns it, called by the thin HTTP handlers (and any other face):
//!
//! | workflow | function |
//! |---|---|
//! | an enterprise's customs declaration (idempotency, validation, party, store) | `intake::submit_declaration` |
//! | an enterprise's licence application | `licensing::submit` |
//! | an exporter's application for a certificate of origin (Form D) | `licensing::certificates::apply` |
//! | a customs decision on a declaration, with its ACDD | `customs::decide` |
//! | the submitter's withdrawal of a declaration | `customs::withdraw` |
//! | an officer's decision on a licence application | `licensing::decide` |
//! | issuing a licence or a certificate of origin (with its e-Form D) | `licensing::issue` |
//! | depositing a licence issued elsewhere | `licensing::deposit` |
//! | the applicant's supplement and withdrawal | `licensing::supplement`, `licensing::withdraw` |
//! | answering a partner's document with a business response | `exchange::respond::respond` |
//! | paying a fee: an order at the payment platform | `payments::start_payment` |
//! | the platform's signed notification (payment, cancellation, refund) | `payments::notifications::receive` |
//!
//! `error.rs` maps every variant to its HTTP answer, in one place.

use crate::exchange::ExchangeError;
use crate::store::StoreError;
use crate::xml::{Violation, XmlError};

#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
    #[error(transparent)]
    Xml(#[from] XmlError),
    /// The document breaks its schema or rules: every violation at once.
    #[error("{} violation(s)", .0.len())]
    Invalid(Vec<Violation>),
    /// The request itself is wrong (400).
    #[error("{detail}")]
    BadRequest { code: &'static str, detail: String },
    /// The request conflicts with what is stored (409).
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    /// The caller may not do this (403).
    #[error("{detail}")]
    Forbidden { code: &'static str, detail: String },
    /// The request is understood and signed, but what it says cannot be accepted (422), e.g. a
    /// payment notification for an unknown reference or a wrong amount.
    #[error("{detail}")]
    Unprocessable { code: &'static str, detail: String },
    /// A signed message whose signature is missing or does not verify (401).
    #[error("{detail}")]
    SignatureInvalid { code: &'static str, detail: String },
    /// A service the workflow depends on (the payment platform) did not answer, or answered
    /// that it cannot now (503); nothing was stored that would stand in the way of a retry.
    #[error("{detail}")]
    Unavailable {
        code: &'static str,
        detail: String,
        retry_after_secs: u64,
    },
    /// A service the workflow depends on answered something it must not be believed on (an
    /// unsigned or mismatched answer) or refused the request (502).
    #[error("{detail}")]
    BadGateway { code: &'static str, detail: String },
    /// A bug or a broken invariant: never the caller's fault.
    #[error("{0}")]
    Internal(String),
}

impl WorkflowError {
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        WorkflowError::BadRequest {
            code,
            detail: detail.into(),
        }
    }
}

impl From<tokio_postgres::Error> for WorkflowError {
    fn from(e: tokio_postgres::Error) -> Self {
        WorkflowError::Store(e.into())
    }
}

impl From<deadpool_postgres::PoolError> for WorkflowError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        WorkflowError::Store(e.into())
    }
}
