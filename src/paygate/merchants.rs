//! The merchants the platform knows and the certificates their requests are verified with.
//! A certificate given as a file is read again whenever the file changes (size or time), and
//! its absence means "not configured yet", not a start-up failure.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::{CertificateSource, Merchant, PaygateError};
use crate::payments::protocol::Verifier;

/// What a merchant id gives.
pub enum Lookup {
    Found(Arc<Verifier>),
    /// Not a configured merchant.
    Unknown,
    /// Configured, but its certificate file is absent.
    Missing,
    /// Configured, but its certificate file is not a PEM certificate.
    Invalid(String),
}

/// The last good read of a certificate file: its (modified, length) and its verifier.
type Cached = Option<(Option<SystemTime>, u64, Arc<Verifier>)>;

enum Source {
    Fixed(Arc<Verifier>),
    File { path: PathBuf, cache: Mutex<Cached> },
}

pub struct Registry {
    merchants: HashMap<String, Source>,
}

impl Registry {
    /// Errors: a `Pem` certificate that does not parse, an id given twice.
    pub fn new(merchants: &[Merchant]) -> Result<Registry, PaygateError> {
        let mut map = HashMap::new();
        for m in merchants {
            let source = match &m.certificate {
                CertificateSource::Pem(pem) => {
                    Source::Fixed(Arc::new(Verifier::from_pem(pem).map_err(|e| {
                        PaygateError::Config(format!("merchant {}: certificate: {e}", m.id))
                    })?))
                }
                CertificateSource::Path(path) => Source::File {
                    path: path.clone(),
                    cache: Mutex::new(None),
                },
            };
            if map.insert(m.id.clone(), source).is_some() {
                return Err(PaygateError::Config(format!(
                    "merchant {} is configured twice",
                    m.id
                )));
            }
        }
        Ok(Registry { merchants: map })
    }

    pub fn is_known(&self, id: &str) -> bool {
        self.merchants.contains_key(id)
    }

    /// The verifier of merchant `id`'s requests, reading its file again if it changed.
    pub fn lookup(&self, id: &str) -> Lookup {
        match self.merchants.get(id) {
            None => Lookup::Unknown,
            Some(Source::Fixed(v)) => Lookup::Found(v.clone()),
            Some(Source::File { path, cache }) => {
                let meta = match std::fs::metadata(path) {
                    Ok(m) => m,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Lookup::Missing,
                    Err(e) => return Lookup::Invalid(e.to_string()),
                };
                let stamp = (meta.modified().ok(), meta.len());
                let Ok(mut cache) = cache.lock() else {
                    return Lookup::Invalid("certificate cache poisoned".into());
                };
                if let Some((modified, len, v)) = cache.as_ref() {
                    if (*modified, *len) == stamp {
                        return Lookup::Found(v.clone());
                    }
                }
                let pem = match std::fs::read(path) {
                    Ok(p) => p,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Lookup::Missing,
                    Err(e) => return Lookup::Invalid(e.to_string()),
                };
                match Verifier::from_pem(&pem) {
                    Ok(v) => {
                        let v = Arc::new(v);
                        *cache = Some((stamp.0, stamp.1, v.clone()));
                        tracing::info!(merchant = id, path = %path.display(), "merchant certificate loaded");
                        Lookup::Found(v)
                    }
                    // Not cached: a file being written is read again at the next request.
                    Err(e) => Lookup::Invalid(e.to_string()),
                }
            }
        }
    }
}
