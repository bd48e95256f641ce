//! Exchange with partner windows the way the ASEAN Single Window does it: every message a
//! signed envelope, answered with a signed receipt, delivered at least once from the outbox,
//! processed once thanks to deduplication on (sender, message id).

pub mod acdd;
pub mod envelope;
pub mod fault;
pub mod form_d;
pub mod inbound;
pub mod keys;
pub mod outbox;
pub mod partners;
pub mod ping;
pub mod receipt;
pub mod respond;
pub mod signature;
pub mod signed_data;
pub use crate::domain::message_state as state;
pub mod tls;
pub mod trust;
pub mod worker;

use std::collections::HashMap;
use std::path::PathBuf;

use uuid::Uuid;

use crate::config::{ExchangeSettings, Settings};
use crate::store::StoreError;
use crate::xml::{Violation, XmlError};

/// HTTP header carrying the base64 DER detached CMS signature of the body.
pub const SIGNATURE_HEADER: &str = "X-NSW-Signature";

#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("exchange configuration: {0}")]
    Config(String),
    #[error("keys in {path}: {message}")]
    Keys { path: PathBuf, message: String },
    #[error("cryptography: {0}")]
    Crypto(String),
    #[error("this window has no exchange keys and partner table configured")]
    NotConfigured,
    #[error("the message carries no {SIGNATURE_HEADER} header")]
    SignatureMissing,
    #[error("the {SIGNATURE_HEADER} header is not base64: {0}")]
    SignatureEncoding(String),
    #[error("{0} is not a partner window of this one")]
    UnknownPartner(String),
    #[error(transparent)]
    Signature(#[from] signature::SignatureError),
    #[error("{0}")]
    TlsClientMismatch(String),
    #[error("this message id was already received from {sender} with different content")]
    MessageIdReused { sender: String },
    #[error("{detail}")]
    Refused { code: &'static str, detail: String },
    #[error("the envelope is invalid")]
    EnvelopeInvalid(Vec<Violation>),
    #[error(transparent)]
    Xml(#[from] XmlError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<tokio_postgres::Error> for ExchangeError {
    fn from(e: tokio_postgres::Error) -> Self {
        ExchangeError::Store(e.into())
    }
}

impl From<deadpool_postgres::PoolError> for ExchangeError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        ExchangeError::Store(e.into())
    }
}

/// Everything the exchange needs at run time: our identity, the partner table, the fault
/// switch and the retry policy.
pub struct Exchange {
    pub country: String,
    pub identity: keys::Identity,
    pub partners: partners::Partners,
    pub fault: fault::FaultSwitch,
    pub policy: ExchangeSettings,
    /// Lease owner id of this process's outbox worker.
    pub worker_id: Uuid,
    /// One HTTP client per partner (each trusting only that partner's CA on TLS).
    pub clients: HashMap<String, reqwest::Client>,
    /// Our mutual-TLS certificate and key, when `nsw keys init` made them.
    pub tls: Option<keys::TlsFiles>,
}

impl Exchange {
    /// The exchange when keys exist (a partner table is optional: with none, we only talk to
    /// nobody); `None` when this window has no keys, so a plain `nsw serve` still starts.
    /// Whether an export from `from` to `to` goes to a connected ASEAN partner that takes ACDDs.
    pub fn takes_acdd_for(&self, to: &str, from: &str) -> bool {
        to != from
            && partners::ASEAN.contains(&to)
            && self.partners.get(to).is_some_and(|p| p.exchanges("ACDD"))
    }

    pub fn from_settings(s: &Settings) -> Result<Option<Exchange>, ExchangeError> {
        let dir = s.exchange_keys_dir();
        if !dir.join(keys::SIGNING_KEY).exists() {
            if s.exchange.partners_file.is_some() {
                return Err(ExchangeError::Config(format!(
                    "a partner table is configured but there are no keys in {} (run `nsw keys init --country {}`)",
                    dir.display(),
                    s.country
                )));
            }
            return Ok(None);
        }
        // Settings built in code (tests, the demo) do not pass through `Settings::load`.
        s.exchange.check_lease().map_err(ExchangeError::Config)?;
        let key_dir = keys::KeyDir::of(s);
        key_dir.check()?;
        let identity = keys::load(&key_dir, &s.country)?;
        let partners = match &s.exchange.partners_file {
            Some(p) => partners::Partners::load(p)?,
            None => partners::Partners::default(),
        };
        let tls = keys::load_tls(&key_dir)?;
        let mut clients = HashMap::new();
        for c in partners.countries() {
            if let Some(p) = partners.get(c) {
                clients.insert(c.to_owned(), tls::client(p, tls.as_ref(), &s.exchange)?);
            }
        }
        Ok(Some(Exchange {
            country: s.country.clone(),
            identity,
            partners,
            fault: fault::FaultSwitch::new(s.exchange.fault.clone()),
            policy: s.exchange.clone(),
            worker_id: Uuid::now_v7(),
            clients,
            tls,
        }))
    }
}
