//! Backups that restore: `nsw backup` writes one file holding a consistent dump of the window's
//! database (`pg_dump`, one snapshot), its key files (the exchange keys directory) and a
//! manifest (time, audit head, counts), as a tar archive encrypted for a recipient certificate
//! (CMS EnvelopedData, AES-256; only the holder of the recipient's private key can read it, so a
//! stolen backup is useless). `nsw restore` decrypts it into an EMPTY database and an empty keys
//! directory, then proves it: every stored document's and envelope's SHA-256 recomputes and the
//! audit chain verifies up to the manifest's head. The agencies' signing keys are rows of the
//! database and travel with it; they and the window's key files are sealed under the
//! key-encryption key (`secrets.rs`), which the backup carries too (entry `kek`, wherever
//! `secrets.kek_file` puts it) so that the restored window opens them. See docs/operations.md,
//! "Backups and restore".

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::pkey::PKey;
use openssl::stack::Stack;
use openssl::symm::Cipher;
use openssl::x509::X509;
use serde::{Deserialize, Serialize};

use crate::app::{self, StartError};
use crate::config::Settings;
use crate::store::audit::{self, Verification};

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("database: {0}")]
    Db(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{what}: {detail}")]
    Tool { what: String, detail: String },
    #[error("encryption: {0}")]
    Crypto(String),
    #[error("{0}")]
    Refused(String),
}

impl From<crate::store::StoreError> for BackupError {
    fn from(e: crate::store::StoreError) -> Self {
        BackupError::Db(crate::error::cause_chain(&e))
    }
}

impl From<deadpool_postgres::PoolError> for BackupError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        BackupError::Db(e.to_string())
    }
}

impl From<tokio_postgres::Error> for BackupError {
    fn from(e: tokio_postgres::Error) -> Self {
        BackupError::Db(crate::error::cause_chain(&e))
    }
}

/// What a backup says of itself (`manifest.json` in the archive).
#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub country: String,
    /// The audit chain's head when the backup began (sealed first): position and hex hash.
    pub audit_head: Option<(i64, String)>,
    pub documents: i64,
    pub key_files: Vec<String>,
    /// Whether the archive holds the key-encryption key (entry `kek`). Format 1 carried it
    /// only among the key files, when it was in the keys directory.
    #[serde(default)]
    pub kek: bool,
}

/// The format written; restore also reads format 1 (no `kek` entry).
const FORMAT: u32 = 2;

/// What a restore found.
#[derive(Debug)]
pub struct Restored {
    pub manifest: Manifest,
    pub documents_checked: i64,
    pub envelopes_checked: i64,
    pub audit_sealed: i64,
}

/// libpq-style connection string of the window's database (configured or embedded).
fn database_url(db: &app::Database) -> String {
    db.url.clone()
}

fn tool(name: &str) -> Result<PathBuf, BackupError> {
    let dir = crate::db::embedded::bin_dir().map_err(|e| BackupError::Tool {
        what: name.into(),
        detail: e.to_string(),
    })?;
    Ok(dir.join(name))
}

fn run_tool(mut cmd: Command, what: &str) -> Result<(), BackupError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| BackupError::Tool {
            what: what.into(),
            detail: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(BackupError::Tool {
            what: what.into(),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(())
}

/// The files of the keys directory (the window's key files, sealed as they are stored), but
/// `except` (the key-encryption key, which travels as an entry of its own).
fn key_files(dir: &Path, except: Option<&Path>) -> Result<Vec<(String, Vec<u8>)>, BackupError> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(files);
    };
    for e in entries {
        let e = e?;
        if except.is_some_and(|x| x == e.path()) {
            continue;
        }
        if e.file_type()?.is_file() {
            let name = e.file_name().to_string_lossy().into_owned();
            files.push((name, std::fs::read(e.path())?));
        }
    }
    files.sort();
    Ok(files)
}

/// Writes a backup of the window to `out` (mode 0600), encrypted for the certificate in
/// `recipient_pem`. The dump is one snapshot: documents accepted while it runs are either
/// wholly in it or not at all.
pub async fn backup(
    settings: &Settings,
    out: &Path,
    recipient_pem: &[u8],
) -> Result<Manifest, BackupError> {
    let recipient =
        X509::from_pem(recipient_pem).map_err(|e| BackupError::Crypto(e.to_string()))?;
    let db = app::connect(settings).await?;
    let result = backup_with(settings, &db, out, recipient).await;
    db.close().await;
    db.shutdown();
    result
}

async fn backup_with(
    settings: &Settings,
    db: &app::Database,
    out: &Path,
    recipient: X509,
) -> Result<Manifest, BackupError> {
    let client = db.pool.get().await?;
    // Seal what is committed, so the manifest's head covers everything before the dump.
    while audit::seal(&client, 10_000).await? > 0 {}
    let head = match audit::verify(&client, None).await? {
        Verification::Intact { head, .. } => head.map(|(pos, h)| (pos, hex::encode(h))),
        Verification::Broken {
            chain_pos, reason, ..
        } => {
            return Err(BackupError::Refused(format!(
                "the audit chain is broken at position {chain_pos} ({reason}); \
                 not backing up a window whose trail does not verify"
            )))
        }
    };
    let documents: i64 = client
        .query_one("SELECT count(*) FROM documents", &[])
        .await?
        .get(0);
    drop(client);

    let work = tempfile::tempdir()?;
    let dump = work.path().join("database.dump");
    let mut cmd = Command::new(tool("pg_dump")?);
    cmd.args(["--format=custom", "--no-owner", "--no-privileges"])
        .arg(format!("--file={}", dump.display()))
        .arg(format!("--dbname={}", database_url(db)));
    tokio::task::spawn_blocking(move || run_tool(cmd, "pg_dump"))
        .await
        .map_err(|e| BackupError::Refused(e.to_string()))??;

    let kek_path = crate::secrets::kek_path(settings);
    let keys = key_files(&settings.exchange_keys_dir(), Some(&kek_path))?;
    // Without it the restored window could open neither its key files nor the agencies' keys.
    let kek = match std::fs::read(&kek_path) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e.into()),
    };
    let manifest = Manifest {
        format: FORMAT,
        created_at: chrono::Utc::now(),
        country: settings.country.clone(),
        audit_head: head,
        documents,
        key_files: keys.iter().map(|(n, _)| n.clone()).collect(),
        kek: kek.is_some(),
    };
    let mut archive = tar::Builder::new(Vec::new());
    let mut add = |name: &str, bytes: &[u8]| -> std::io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o600);
        h.set_mtime(manifest.created_at.timestamp().max(0) as u64);
        h.set_cksum();
        archive.append_data(&mut h, name, bytes)
    };
    add(
        "manifest.json",
        &serde_json::to_vec_pretty(&manifest).map_err(std::io::Error::other)?,
    )?;
    add("database.dump", &std::fs::read(&dump)?)?;
    for (name, bytes) in &keys {
        add(&format!("keys/{name}"), bytes)?;
    }
    if let Some(kek) = &kek {
        add("kek", kek)?;
    }
    let plain = archive.into_inner()?;

    let mut certs = Stack::new().map_err(|e| BackupError::Crypto(e.to_string()))?;
    certs
        .push(recipient)
        .map_err(|e| BackupError::Crypto(e.to_string()))?;
    let sealed = CmsContentInfo::encrypt(&certs, &plain, Cipher::aes_256_cbc(), CMSOptions::BINARY)
        .and_then(|c| c.to_der())
        .map_err(|e| BackupError::Crypto(e.to_string()))?;
    write_private(out, &sealed)?;
    Ok(manifest)
}

/// Writes `bytes` to `path` readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), BackupError> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("partial");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Restores the backup at `from` (decrypted with the recipient's key and certificate) into the
/// configured database, which must be empty, the keys directory, which must hold no file, and
/// the key-encryption key's place (`secrets.kek_file`), which must be free; then checks every document's and envelope's SHA-256 and the audit chain up to the
/// manifest's head.
pub async fn restore(
    settings: &Settings,
    from: &Path,
    key_pem: &[u8],
    cert_pem: &[u8],
) -> Result<Restored, BackupError> {
    let key =
        PKey::private_key_from_pem(key_pem).map_err(|e| BackupError::Crypto(e.to_string()))?;
    let cert = X509::from_pem(cert_pem).map_err(|e| BackupError::Crypto(e.to_string()))?;
    let sealed = std::fs::read(from)?;
    let plain = CmsContentInfo::from_der(&sealed)
        .and_then(|c| c.decrypt(&key, &cert))
        .map_err(|e| {
            BackupError::Crypto(format!(
                "cannot decrypt {} with this key (not its recipient, or damaged): {e}",
                from.display()
            ))
        })?;
    let mut manifest: Option<Manifest> = None;
    let work = tempfile::tempdir()?;
    let dump = work.path().join("database.dump");
    let mut keys = Vec::new();
    let mut kek = None;
    let mut archive = tar::Archive::new(plain.as_slice());
    for entry in archive.entries()? {
        let mut entry = entry?;
        let name = entry.path()?.to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes)?;
        match name.as_str() {
            "manifest.json" => {
                manifest = Some(serde_json::from_slice(&bytes).map_err(|e| {
                    BackupError::Refused(format!("the backup's manifest is unreadable: {e}"))
                })?)
            }
            "database.dump" => std::fs::write(&dump, &bytes)?,
            "kek" => kek = Some(bytes),
            other => match other.strip_prefix("keys/") {
                Some(k) if !k.is_empty() && !k.contains('/') && !k.starts_with('.') => {
                    keys.push((k.to_owned(), bytes))
                }
                _ => {
                    return Err(BackupError::Refused(format!(
                        "unexpected entry '{other}' in the backup"
                    )))
                }
            },
        }
    }
    let manifest =
        manifest.ok_or_else(|| BackupError::Refused("the backup has no manifest".into()))?;
    if !(1..=FORMAT).contains(&manifest.format) || !dump.exists() {
        return Err(BackupError::Refused(format!(
            "backup format {} is not one this version restores (1 to {FORMAT})",
            manifest.format
        )));
    }
    if manifest.kek != kek.is_some() {
        return Err(BackupError::Refused(
            "the backup's manifest and its key-encryption key disagree: damaged".into(),
        ));
    }

    let keys_dir = settings.exchange_keys_dir();
    if !key_files(&keys_dir, None)?.is_empty() {
        return Err(BackupError::Refused(format!(
            "the keys directory {} is not empty: restore into an empty data directory",
            keys_dir.display()
        )));
    }
    let kek_path = crate::secrets::kek_path(settings);
    if kek.is_some() && kek_path.exists() {
        return Err(BackupError::Refused(format!(
            "a key-encryption key is already at {}: restore into an empty data directory (or \
             point secrets.kek_file at a free place)",
            kek_path.display()
        )));
    }
    let db = app::connect_with(settings, false).await?;
    let result = restore_into(&db, &dump, &manifest).await;
    db.close().await;
    db.shutdown();
    let (documents_checked, envelopes_checked, audit_sealed) = result?;
    if !keys.is_empty() {
        std::fs::create_dir_all(&keys_dir)?;
        for (name, bytes) in &keys {
            write_private(&keys_dir.join(name), bytes)?;
        }
    }
    if let Some(kek) = &kek {
        if let Some(dir) = kek_path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        write_private(&kek_path, kek)?;
    }
    Ok(Restored {
        manifest,
        documents_checked,
        envelopes_checked,
        audit_sealed,
    })
}

async fn restore_into(
    db: &app::Database,
    dump: &Path,
    manifest: &Manifest,
) -> Result<(i64, i64, i64), BackupError> {
    let client = db.pool.get().await?;
    let tables: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
            &[],
        )
        .await?
        .get(0);
    if tables > 0 {
        return Err(BackupError::Refused(
            "the database is not empty: restore into an empty database (never over a running \
             window)"
                .into(),
        ));
    }
    let mut cmd = Command::new(tool("pg_restore")?);
    cmd.args(["--no-owner", "--no-privileges", "--exit-on-error"])
        .arg(format!("--dbname={}", database_url(db)))
        .arg(dump);
    tokio::task::spawn_blocking(move || run_tool(cmd, "pg_restore"))
        .await
        .map_err(|e| BackupError::Refused(e.to_string()))??;

    // Proofs: every stored body hashes to its recorded digest, and the audit chain verifies
    // up to the head the backup recorded.
    let bad_documents: i64 = client
        .query_one(
            "SELECT count(*) FROM documents WHERE sha256(body) <> sha256",
            &[],
        )
        .await?
        .get(0);
    let documents: i64 = client
        .query_one("SELECT count(*) FROM documents", &[])
        .await?
        .get(0);
    let bad_envelopes: i64 = client
        .query_one(
            "SELECT (SELECT count(*) FROM outbox WHERE sha256(envelope) <> sha256)
                  + (SELECT count(*) FROM inbound_messages WHERE sha256(envelope) <> sha256)",
            &[],
        )
        .await?
        .get(0);
    let envelopes: i64 = client
        .query_one(
            "SELECT (SELECT count(*) FROM outbox) + (SELECT count(*) FROM inbound_messages)",
            &[],
        )
        .await?
        .get(0);
    if bad_documents > 0 || bad_envelopes > 0 {
        return Err(BackupError::Refused(format!(
            "restored, but {bad_documents} document(s) and {bad_envelopes} envelope(s) do not \
             match their SHA-256: the backup is damaged"
        )));
    }
    if documents < manifest.documents {
        return Err(BackupError::Refused(format!(
            "restored {documents} documents, fewer than the {} the backup recorded",
            manifest.documents
        )));
    }
    let anchor = manifest
        .audit_head
        .as_ref()
        .map(|(pos, h)| hex::decode(h).map(|h| (*pos, h)))
        .transpose()
        .map_err(|e| BackupError::Refused(format!("manifest audit head: {e}")))?;
    let sealed =
        match audit::verify(&client, anchor.as_ref().map(|(p, h)| (*p, h.as_slice()))).await? {
            Verification::Intact { sealed, .. } => sealed,
            Verification::Broken {
                chain_pos, reason, ..
            } => {
                return Err(BackupError::Refused(format!(
                    "restored, but the audit chain breaks at position {chain_pos}: {reason}"
                )))
            }
        };
    Ok((documents, envelopes, sealed))
}
