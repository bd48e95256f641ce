//! The window's identity: an EC P-256 certificate authority and a signing certificate issued
//! by it, with the window's country in the subject (`C=`). Partners pin our CA; the signing
//! certificate travels inside every signature we make.

use std::path::{Path, PathBuf};

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{X509Name, X509Ref, X509};

use super::ExchangeError;

pub const CA_CERT: &str = "ca.crt";
pub const CA_KEY: &str = "ca.key";
pub const SIGNING_CERT: &str = "signing.crt";
pub const SIGNING_KEY: &str = "signing.key";
pub const TLS_CERT: &str = "tls.crt";
pub const TLS_KEY: &str = "tls.key";

/// What this window signs with.
#[derive(Clone)]
pub struct Identity {
    pub country: String,
    pub ca: X509,
    pub cert: X509,
    pub key: PKey<Private>,
    /// Intermediates between `cert` and the CA partners pin, carried in every signature so
    /// partners can build the chain (the certificates after the first in `signing.crt`).
    pub chain: Vec<X509>,
}

fn ssl(e: openssl::error::ErrorStack) -> ExchangeError {
    ExchangeError::Crypto(e.to_string())
}

fn ec_key() -> Result<PKey<Private>, ExchangeError> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).map_err(ssl)?;
    PKey::from_ec_key(EcKey::generate(&group).map_err(ssl)?).map_err(ssl)
}

fn name(country: &str, cn: &str) -> Result<X509Name, ExchangeError> {
    let mut n = X509Name::builder().map_err(ssl)?;
    n.append_entry_by_nid(Nid::COUNTRYNAME, country)
        .map_err(ssl)?;
    n.append_entry_by_nid(Nid::ORGANIZATIONNAME, "National Single Window")
        .map_err(ssl)?;
    n.append_entry_by_nid(Nid::COMMONNAME, cn).map_err(ssl)?;
    Ok(n.build())
}

fn serial() -> Result<Asn1Integer, ExchangeError> {
    let mut bn = BigNum::new().map_err(ssl)?;
    bn.rand(127, MsbOption::MAYBE_ZERO, false).map_err(ssl)?;
    bn.to_asn1_integer().map_err(ssl)
}

/// A self-signed CA (CA:TRUE) for `country`, valid for `days` from now.
pub fn make_ca(country: &str, days: u32) -> Result<(X509, PKey<Private>), ExchangeError> {
    let key = ec_key()?;
    let subject = name(country, &format!("{country} Single Window CA"))?;
    let mut b = X509::builder().map_err(ssl)?;
    b.set_version(2).map_err(ssl)?;
    let sn = serial()?;
    b.set_serial_number(&sn).map_err(ssl)?;
    b.set_subject_name(&subject).map_err(ssl)?;
    b.set_issuer_name(&subject).map_err(ssl)?;
    b.set_pubkey(&key).map_err(ssl)?;
    let t = Asn1Time::days_from_now(0).map_err(ssl)?;
    b.set_not_before(&t).map_err(ssl)?;
    let t = Asn1Time::days_from_now(days).map_err(ssl)?;
    b.set_not_after(&t).map_err(ssl)?;
    b.append_extension(
        BasicConstraints::new()
            .critical()
            .ca()
            .build()
            .map_err(ssl)?,
    )
    .map_err(ssl)?;
    b.append_extension(
        KeyUsage::new()
            .critical()
            .key_cert_sign()
            .crl_sign()
            .build()
            .map_err(ssl)?,
    )
    .map_err(ssl)?;
    let ski = SubjectKeyIdentifier::new()
        .build(&b.x509v3_context(None, None))
        .map_err(ssl)?;
    b.append_extension(ski).map_err(ssl)?;
    b.sign(&key, MessageDigest::sha256()).map_err(ssl)?;
    Ok((b.build(), key))
}

/// Validity of an issued certificate, as Unix times (tests make expired ones).
pub struct Validity {
    pub not_before: i64,
    pub not_after: i64,
}

impl Validity {
    pub fn days_from_now(days: i64) -> Validity {
        let now = chrono::Utc::now().timestamp();
        Validity {
            not_before: now - 3600,
            not_after: now + days * 86_400,
        }
    }
}

/// A signing certificate with `C=country` in its subject, issued by `ca`.
pub fn issue(
    ca: &X509,
    ca_key: &PKey<Private>,
    country: &str,
    cn: &str,
    validity: &Validity,
) -> Result<(X509, PKey<Private>), ExchangeError> {
    let key = ec_key()?;
    let mut b = X509::builder().map_err(ssl)?;
    b.set_version(2).map_err(ssl)?;
    let sn = serial()?;
    b.set_serial_number(&sn).map_err(ssl)?;
    let subject = name(country, cn)?;
    b.set_subject_name(&subject).map_err(ssl)?;
    b.set_issuer_name(ca.subject_name()).map_err(ssl)?;
    b.set_pubkey(&key).map_err(ssl)?;
    let t = Asn1Time::from_unix(validity.not_before).map_err(ssl)?;
    b.set_not_before(&t).map_err(ssl)?;
    let t = Asn1Time::from_unix(validity.not_after).map_err(ssl)?;
    b.set_not_after(&t).map_err(ssl)?;
    b.append_extension(BasicConstraints::new().critical().build().map_err(ssl)?)
        .map_err(ssl)?;
    b.append_extension(
        KeyUsage::new()
            .critical()
            .digital_signature()
            .non_repudiation()
            .build()
            .map_err(ssl)?,
    )
    .map_err(ssl)?;
    let aki = AuthorityKeyIdentifier::new()
        .keyid(false)
        .build(&b.x509v3_context(Some(ca), None))
        .map_err(ssl)?;
    b.append_extension(aki).map_err(ssl)?;
    b.sign(ca_key, MessageDigest::sha256()).map_err(ssl)?;
    Ok((b.build(), key))
}

/// The certificate this window presents on mutual TLS, as server and as client: issued by
/// the window's CA, `C=country`, valid for loopback and the given host names.
pub fn issue_tls(
    ca: &X509,
    ca_key: &PKey<Private>,
    country: &str,
    hosts: &[String],
    validity: &Validity,
) -> Result<(X509, PKey<Private>), ExchangeError> {
    let key = ec_key()?;
    let mut b = X509::builder().map_err(ssl)?;
    b.set_version(2).map_err(ssl)?;
    let sn = serial()?;
    b.set_serial_number(&sn).map_err(ssl)?;
    let subject = name(country, &format!("{country} Single Window TLS"))?;
    b.set_subject_name(&subject).map_err(ssl)?;
    b.set_issuer_name(ca.subject_name()).map_err(ssl)?;
    b.set_pubkey(&key).map_err(ssl)?;
    let t = Asn1Time::from_unix(validity.not_before).map_err(ssl)?;
    b.set_not_before(&t).map_err(ssl)?;
    let t = Asn1Time::from_unix(validity.not_after).map_err(ssl)?;
    b.set_not_after(&t).map_err(ssl)?;
    b.append_extension(BasicConstraints::new().critical().build().map_err(ssl)?)
        .map_err(ssl)?;
    b.append_extension(
        KeyUsage::new()
            .critical()
            .digital_signature()
            .build()
            .map_err(ssl)?,
    )
    .map_err(ssl)?;
    b.append_extension(
        ExtendedKeyUsage::new()
            .server_auth()
            .client_auth()
            .build()
            .map_err(ssl)?,
    )
    .map_err(ssl)?;
    let mut san = SubjectAlternativeName::new();
    san.dns("localhost").ip("127.0.0.1").ip("::1");
    for h in hosts {
        san.dns(h);
    }
    let san = san.build(&b.x509v3_context(Some(ca), None)).map_err(ssl)?;
    b.append_extension(san).map_err(ssl)?;
    b.sign(ca_key, MessageDigest::sha256()).map_err(ssl)?;
    Ok((b.build(), key))
}

/// PEM certificate and PKCS#8 key for mutual TLS, when `init` made them.
pub struct TlsFiles {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

pub fn load_tls(dir: &Path) -> Result<Option<TlsFiles>, ExchangeError> {
    let (cert, key) = (dir.join(TLS_CERT), dir.join(TLS_KEY));
    if !cert.exists() || !key.exists() {
        return Ok(None);
    }
    Ok(Some(TlsFiles {
        cert_pem: read(&cert)?,
        key_pem: read_secret(&key)?,
    }))
}

fn write(path: &Path, bytes: &[u8], secret: bool) -> Result<(), ExchangeError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    if secret {
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| ExchangeError::Keys {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    f.write_all(bytes).map_err(|e| ExchangeError::Keys {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Creates the CA and signing certificate in `dir`; refuses to overwrite existing keys, since
/// partners have pinned the old CA.
pub fn init(dir: &Path, country: &str, hosts: &[String]) -> Result<Vec<PathBuf>, ExchangeError> {
    if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(ExchangeError::Config(format!(
            "'{country}' is not an ISO 3166-1 alpha-2 code"
        )));
    }
    if dir.join(CA_KEY).exists() || dir.join(SIGNING_KEY).exists() {
        return Err(ExchangeError::Keys {
            path: dir.to_path_buf(),
            message: "keys already exist here; remove them first to start a new identity".into(),
        });
    }
    std::fs::create_dir_all(dir).map_err(|e| ExchangeError::Keys {
        path: dir.to_path_buf(),
        message: e.to_string(),
    })?;
    let (ca, ca_key) = make_ca(country, 3650)?;
    let (cert, key) = issue(
        &ca,
        &ca_key,
        country,
        &format!("{country} Single Window signing"),
        &Validity::days_from_now(825),
    )?;
    let (tls, tls_key) = issue_tls(&ca, &ca_key, country, hosts, &Validity::days_from_now(825))?;
    let files = [
        (CA_CERT, ca.to_pem().map_err(ssl)?, false),
        (TLS_CERT, tls.to_pem().map_err(ssl)?, false),
        (
            TLS_KEY,
            tls_key.private_key_to_pem_pkcs8().map_err(ssl)?,
            true,
        ),
        (
            CA_KEY,
            ca_key.private_key_to_pem_pkcs8().map_err(ssl)?,
            true,
        ),
        (SIGNING_CERT, cert.to_pem().map_err(ssl)?, false),
        (
            SIGNING_KEY,
            key.private_key_to_pem_pkcs8().map_err(ssl)?,
            true,
        ),
    ];
    let mut written = Vec::new();
    for (file, bytes, secret) in files {
        let path = dir.join(file);
        write(&path, &bytes, secret)?;
        written.push(path);
    }
    Ok(written)
}

fn read(path: &Path) -> Result<Vec<u8>, ExchangeError> {
    std::fs::read(path).map_err(|e| ExchangeError::Keys {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Reads a private key file, refusing one that anyone but its owner may read or write: a key
/// readable by others is a key already disclosed (`chmod 600` it).
fn read_secret(path: &Path) -> Result<Vec<u8>, ExchangeError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| ExchangeError::Keys {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(ExchangeError::Keys {
            path: path.to_path_buf(),
            message: format!(
                "private key file is accessible to others (mode {:o}); run chmod 600 on it",
                mode & 0o777
            ),
        });
    }
    read(path)
}

pub fn read_cert(path: &Path) -> Result<X509, ExchangeError> {
    X509::from_pem(&read(path)?).map_err(|e| ExchangeError::Keys {
        path: path.to_path_buf(),
        message: format!("not a PEM certificate: {e}"),
    })
}

/// Loads the identity `init` created in `dir`.
pub fn load(dir: &Path, country: &str) -> Result<Identity, ExchangeError> {
    let key_path = dir.join(SIGNING_KEY);
    let key =
        PKey::private_key_from_pem(&read_secret(&key_path)?).map_err(|e| ExchangeError::Keys {
            path: key_path.clone(),
            message: format!("not a PEM private key: {e}"),
        })?;
    let cert_path = dir.join(SIGNING_CERT);
    let mut certs = X509::stack_from_pem(&read(&cert_path)?)
        .map_err(|e| ExchangeError::Keys {
            path: cert_path.clone(),
            message: format!("not a PEM certificate: {e}"),
        })?
        .into_iter();
    let cert = certs.next().ok_or_else(|| ExchangeError::Keys {
        path: cert_path.clone(),
        message: "no certificate".into(),
    })?;
    let chain: Vec<X509> = certs.collect();
    let cert_country = subject_country(&cert);
    if cert_country.as_deref() != Some(country) {
        return Err(ExchangeError::Config(format!(
            "the signing certificate in {} is for country {:?}, but this window is {country}",
            dir.display(),
            cert_country
        )));
    }
    Ok(Identity {
        country: country.to_owned(),
        ca: read_cert(&dir.join(CA_CERT))?,
        cert,
        key,
        chain,
    })
}

/// The `C=` of a certificate's subject.
pub fn subject_country(cert: &X509Ref) -> Option<String> {
    cert.subject_name()
        .entries_by_nid(Nid::COUNTRYNAME)
        .next()
        .and_then(|e| e.data().to_string().ok())
}

/// A one-line rendering of a certificate's subject, for logs and the inbox.
pub fn subject_line(cert: &X509Ref) -> String {
    cert.subject_name()
        .entries()
        .filter_map(|e| {
            let k = e.object().nid().short_name().ok()?;
            let v = e.data().to_string().ok()?;
            Some(format!("{k}={v}"))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_private_key_readable_by_others_is_refused_at_start() {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path(), "VN", &[]).unwrap();
        assert!(load(dir.path(), "VN").is_ok());
        let key = dir.path().join(SIGNING_KEY);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = load(dir.path(), "VN").err().expect("refused");
        assert!(err.to_string().contains("chmod 600"), "{err}");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(load(dir.path(), "VN").is_ok());
    }
}
