//! The window's identity: an EC P-256 certificate authority and a signing certificate issued
//! by it, with the window's country in the subject (`C=`). Partners pin our CA; the signing
//! certificate travels inside every signature we make.
//!
//! The private key files (`ca.key`, `signing.key`, `tls.key`) are stored sealed under the
//! key-encryption key (`crate::secrets`): one line `nswkek1:<base64>`, bound to the file's name,
//! never a PEM private key in clear. Everything that reads or writes them goes through
//! [`KeyDir`], which also takes plaintext PEM files from before sealing: in the window's own
//! keys directory it seals them in place, in a directory the operator names elsewhere it keeps
//! them as they are and warns once.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

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
use crate::config::Settings;
use crate::secrets::{self, Kek};

pub const CA_CERT: &str = "ca.crt";
pub const CA_KEY: &str = "ca.key";
pub const SIGNING_CERT: &str = "signing.crt";
pub const SIGNING_KEY: &str = "signing.key";
pub const TLS_CERT: &str = "tls.crt";
pub const TLS_KEY: &str = "tls.key";

/// The window's keys directory and how its private key files are kept: the one way they are
/// read and written (exchange signing, the partner TLS listener and clients, `nsw keys init`,
/// the demo and the load test).
#[derive(Debug, Clone)]
pub struct KeyDir {
    pub dir: PathBuf,
    /// The key-encryption key's file.
    kek: PathBuf,
    /// The window's own directory (inside its data directory): a plaintext key found here is
    /// sealed in place. A directory the operator names elsewhere is the operator's: its
    /// plaintext keys are used as they are, with a warning.
    own: bool,
}

/// Plaintext key files already warned about, so each is warned about once per process.
static WARNED: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);

fn keys_err(path: &Path, message: impl Into<String>) -> ExchangeError {
    ExchangeError::Keys {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// `path` with symbolic links resolved when it exists, else made absolute as written.
fn resolved(path: &Path) -> PathBuf {
    path.canonicalize()
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf())
}

impl KeyDir {
    /// The configured keys directory (`exchange.keys_dir`, default `<data_dir>/keys`) and KEK
    /// (`secrets.kek_file`, default `agency-keys.kek` in the keys directory).
    pub fn of(settings: &Settings) -> KeyDir {
        let dir = settings.exchange_keys_dir();
        let own = settings.exchange.keys_dir.is_none()
            || resolved(&dir).starts_with(resolved(&settings.data_dir));
        KeyDir {
            kek: secrets::kek_path(settings),
            dir,
            own,
        }
    }

    /// A keys directory of the window's own with the KEK in it, as `of` lays out a window
    /// configured with only this directory (tests, the demo, the load test).
    pub fn at(dir: &Path) -> KeyDir {
        KeyDir {
            dir: dir.to_path_buf(),
            kek: dir.join(secrets::KEK_FILE),
            own: true,
        }
    }

    /// The associated data a key file is sealed with: a sealed file copied over another key
    /// file does not open there.
    fn context(name: &str) -> String {
        format!("nsw window key {name}")
    }

    /// The private key in file `name` as PEM (PKCS#8), in memory only: the file opened with
    /// the KEK, or (from before sealing) a PEM file as it is, which in the window's own
    /// directory is sealed in place first. Errors: the file missing or readable by others, a
    /// sealed file and no KEK, or one that does not open with it, a plaintext file that is not
    /// a PEM private key. Nothing of the key is ever put in an error or a log line.
    pub fn private_key_pem(&self, name: &str) -> Result<Vec<u8>, ExchangeError> {
        let path = self.dir.join(name);
        let stored = read_secret(&path)?;
        if secrets::is_sealed(&stored) {
            let kek = Kek::load(&self.kek)
                .map_err(|e| keys_err(&path, e.to_string()))?
                .ok_or_else(|| {
                    keys_err(
                        &path,
                        format!(
                            "the key is sealed, but the key-encryption key {} is missing (restore \
                             it with the keys, or set secrets.kek_file to where it is)",
                            self.kek.display()
                        ),
                    )
                })?;
            return kek
                .open(&Self::context(name), &stored)
                .map_err(|e| keys_err(&path, format!("{e}: {}", self.kek.display())));
        }
        PKey::private_key_from_pem(&stored).map_err(|_| {
            keys_err(
                &path,
                "neither a sealed key (nswkek1:) nor a PEM private key",
            )
        })?;
        if self.own {
            self.write_sealed(name, &stored, true)?;
            tracing::info!(
                path = %path.display(),
                kek = %self.kek.display(),
                "a private key file in clear was sealed in place under the key-encryption key"
            );
        } else {
            let mut warned = WARNED.lock().unwrap_or_else(|e| e.into_inner());
            if warned.get_or_insert_with(HashSet::new).insert(path.clone()) {
                tracing::warn!(
                    path = %path.display(),
                    "private key file in clear, in a keys directory outside the data directory: \
                     used as it is (the operator keeps it)"
                );
            }
        }
        Ok(stored)
    }

    /// Opens every private key file the directory has, as start-up does: one readable by
    /// others, or that does not open, stops the start, and those in clear are sealed in place
    /// (the window's own directory) or warned about, `ca.key` included, which no request reads.
    pub fn check(&self) -> Result<(), ExchangeError> {
        for name in [CA_KEY, SIGNING_KEY, TLS_KEY] {
            if self.dir.join(name).exists() {
                self.private_key(name)?;
            }
        }
        Ok(())
    }

    /// The private key in file `name` (see [`KeyDir::private_key_pem`]).
    pub fn private_key(&self, name: &str) -> Result<PKey<Private>, ExchangeError> {
        let path = self.dir.join(name);
        PKey::private_key_from_pem(&self.private_key_pem(name)?)
            .map_err(|_| keys_err(&path, "the opened key is not a PEM private key"))
    }

    /// Seals `pem` under the KEK (made if there is none yet) into file `name`, mode 0600:
    /// a new file, or with `replace` one written whole beside it and renamed over the old, so
    /// a crash leaves the old file or the new one, never half of either.
    fn write_sealed(
        &self,
        name: &str,
        pem: &[u8],
        replace: bool,
    ) -> Result<PathBuf, ExchangeError> {
        let path = self.dir.join(name);
        let kek = Kek::load_or_create(&self.kek).map_err(|e| keys_err(&path, e.to_string()))?;
        let mut sealed = kek
            .seal(&Self::context(name), pem)
            .map_err(|e| keys_err(&path, e.to_string()))?;
        sealed.push(b'\n');
        if !replace {
            write(&path, &sealed, true)?;
            return Ok(path);
        }
        let tmp = self
            .dir
            .join(format!(".{name}.{}", uuid::Uuid::now_v7().simple()));
        write(&tmp, &sealed, true)?;
        let synced = std::fs::File::open(&tmp).and_then(|f| f.sync_all());
        match synced.and_then(|_| std::fs::rename(&tmp, &path)) {
            Ok(()) => Ok(path),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(keys_err(&path, e.to_string()))
            }
        }
    }
}

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

pub fn load_tls(keys: &KeyDir) -> Result<Option<TlsFiles>, ExchangeError> {
    let (cert, key) = (keys.dir.join(TLS_CERT), keys.dir.join(TLS_KEY));
    if !cert.exists() || !key.exists() {
        return Ok(None);
    }
    Ok(Some(TlsFiles {
        cert_pem: read(&cert)?,
        key_pem: keys.private_key_pem(TLS_KEY)?,
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

/// Creates the CA and signing certificate in `keys`' directory, the private keys sealed under
/// the KEK (made if there is none yet); refuses to overwrite existing keys, since partners have
/// pinned the old CA. The files written, in order.
pub fn init(keys: &KeyDir, country: &str, hosts: &[String]) -> Result<Vec<PathBuf>, ExchangeError> {
    let dir = &keys.dir;
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
        let path = if secret {
            keys.write_sealed(file, &bytes, false)?
        } else {
            let path = dir.join(file);
            write(&path, &bytes, false)?;
            path
        };
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

/// Loads the identity `init` created in `keys`' directory.
pub fn load(keys: &KeyDir, country: &str) -> Result<Identity, ExchangeError> {
    let dir = &keys.dir;
    let key = keys.private_key(SIGNING_KEY)?;
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
        let keys = KeyDir::at(dir.path());
        init(&keys, "VN", &[]).unwrap();
        assert!(load(&keys, "VN").is_ok());
        let key = dir.path().join(SIGNING_KEY);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = load(&keys, "VN").err().expect("refused");
        assert!(err.to_string().contains("chmod 600"), "{err}");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(load(&keys, "VN").is_ok());
    }

    /// Key files are written sealed (no PEM private key in clear, mode 0600) and read back to
    /// the same keys.
    #[test]
    fn key_files_are_sealed_and_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyDir::at(dir.path());
        init(&keys, "VN", &["vn.example".into()]).unwrap();
        for name in [CA_KEY, SIGNING_KEY, TLS_KEY] {
            let path = dir.path().join(name);
            let stored = std::fs::read(&path).unwrap();
            assert!(secrets::is_sealed(&stored), "{name}");
            let text = String::from_utf8_lossy(&stored);
            assert!(!text.contains("PRIVATE KEY"), "{name}: {text}");
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{name}");
            assert!(keys.private_key(name).is_ok(), "{name} opens");
        }
        let identity = load(&keys, "VN").unwrap();
        assert!(identity.cert.public_key().unwrap().public_eq(&identity.key));
        let tls = load_tls(&keys).unwrap().expect("TLS files");
        let tls_key = PKey::private_key_from_pem(&tls.key_pem).unwrap();
        let tls_cert = X509::from_pem(&tls.cert_pem).unwrap();
        assert!(tls_cert.public_key().unwrap().public_eq(&tls_key));
    }

    /// A sealed key opens only with its KEK and only under its own name; without the KEK the
    /// error says which file is missing.
    #[test]
    fn a_sealed_key_needs_its_kek_and_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyDir::at(dir.path());
        init(&keys, "VN", &[]).unwrap();
        std::fs::copy(dir.path().join(SIGNING_KEY), dir.path().join(TLS_KEY)).unwrap();
        assert!(
            keys.private_key(TLS_KEY).is_err(),
            "copied over another key file"
        );
        std::fs::remove_file(dir.path().join(secrets::KEK_FILE)).unwrap();
        let err = load(&keys, "VN").err().expect("no KEK").to_string();
        assert!(
            err.contains(secrets::KEK_FILE) && err.contains("missing"),
            "{err}"
        );
    }

    /// A PEM key file from before sealing: in the window's own directory it is sealed in place
    /// and stays the same key; in a directory the operator keeps elsewhere it is used as it is.
    #[test]
    fn plaintext_key_files_are_sealed_in_place_in_the_window_s_own_directory() {
        let plain = |dir: &Path| {
            let keys = KeyDir::at(dir);
            init(&keys, "VN", &[]).unwrap();
            let pem = keys.private_key_pem(SIGNING_KEY).unwrap();
            std::fs::remove_file(dir.join(SIGNING_KEY)).unwrap();
            write(&dir.join(SIGNING_KEY), &pem, true).unwrap();
            pem
        };
        let data = tempfile::tempdir().unwrap();
        let mut settings = Settings {
            data_dir: data.path().to_path_buf(),
            ..Settings::default()
        };
        let keys = KeyDir::of(&settings);
        let pem = plain(&keys.dir);
        let loaded = load(&keys, "VN").unwrap();
        let stored = std::fs::read(keys.dir.join(SIGNING_KEY)).unwrap();
        assert!(secrets::is_sealed(&stored), "sealed in place");
        let mode = std::fs::metadata(keys.dir.join(SIGNING_KEY))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(keys.private_key_pem(SIGNING_KEY).unwrap(), pem);
        assert_eq!(
            loaded.key.private_key_to_der().unwrap(),
            PKey::private_key_from_pem(&pem)
                .unwrap()
                .private_key_to_der()
                .unwrap()
        );
        // No stray temporary file beside it.
        let names: Vec<_> = std::fs::read_dir(&keys.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");

        // Keys the operator keeps outside the data directory.
        let elsewhere = tempfile::tempdir().unwrap();
        settings.exchange.keys_dir = Some(elsewhere.path().to_path_buf());
        let keys = KeyDir::of(&settings);
        let pem = plain(&keys.dir);
        assert!(load(&keys, "VN").is_ok());
        assert_eq!(std::fs::read(keys.dir.join(SIGNING_KEY)).unwrap(), pem);
        // ... and inside it, though configured: the window's own.
        settings.exchange.keys_dir = Some(data.path().join("other-keys"));
        let keys = KeyDir::of(&settings);
        plain(&keys.dir);
        load(&keys, "VN").unwrap();
        assert!(secrets::is_sealed(
            &std::fs::read(keys.dir.join(SIGNING_KEY)).unwrap()
        ));
    }
}
