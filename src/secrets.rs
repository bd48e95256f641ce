//! Secrets at rest: the agencies' signing keys (rows of the database) and the window's own
//! private key files (`exchange::keys::KeyDir`) are stored encrypted with a key-encryption key
//! (KEK) kept in a file readable by its owner only (`secrets.kek_file`, default
//! `<keys directory>/agency-keys.kek`, made on first use). A copy of the database alone (a
//! dump, a stolen disk, a replica) discloses no agency key; with the KEK kept apart from the
//! keys directory (`secrets.kek_file`), a copy of that directory discloses no window key.
//!
//! Sealed form: `nswkek1:` followed by base64 of nonce (12 bytes) ‖ ciphertext ‖ GCM tag
//! (16 bytes), AES-256-GCM with a context as associated data — the agency's code for an agency
//! key, `nsw window key <file name>` for a window key file — so a sealed key moved to another
//! agency's row, or copied over another key file, does not open.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use openssl::symm::{decrypt_aead, encrypt_aead, Cipher};
use rand::RngCore;

use crate::config::Settings;

const PREFIX: &[u8] = b"nswkek1:";

/// The KEK's file name in the keys directory when `secrets.kek_file` is not set.
pub const KEK_FILE: &str = "agency-keys.kek";

/// Whether `stored` is in the sealed form (else it is a plaintext key from before sealing).
pub fn is_sealed(stored: &[u8]) -> bool {
    stored.starts_with(PREFIX)
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("key-encryption key {path}: {message}")]
    Kek { path: PathBuf, message: String },
    #[error("a sealed key does not open with this key-encryption key ({0})")]
    Open(String),
    #[error("openssl: {0}")]
    Openssl(#[from] openssl::error::ErrorStack),
}

/// The key-encryption key.
pub struct Kek([u8; 32]);

/// Where the KEK is: `secrets.kek_file`, or `agency-keys.kek` in the exchange keys directory
/// (which backups carry, encrypted, with the database).
pub fn kek_path(settings: &Settings) -> PathBuf {
    settings
        .secrets
        .kek_file
        .clone()
        .unwrap_or_else(|| settings.exchange_keys_dir().join(KEK_FILE))
}

impl Kek {
    /// Reads the KEK (64 hex digits), refusing a file others may read or write; `None` when
    /// there is none (nothing was sealed with one here yet, or it was lost).
    pub fn load(path: &Path) -> Result<Option<Kek>, SecretError> {
        let err = |message: String| SecretError::Kek {
            path: path.to_path_buf(),
            message,
        };
        let meta = match std::fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(err(e.to_string())),
        };
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(err(format!(
                "accessible to others (mode {:o}); run chmod 600 on it",
                mode & 0o777
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let bytes = hex::decode(text.trim()).map_err(|e| err(e.to_string()))?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| err("not 32 bytes in hex".into()))?;
        Ok(Some(Kek(key)))
    }

    /// Reads the KEK as [`Kek::load`]; makes one (mode 0600) when there is none yet.
    pub fn load_or_create(path: &Path) -> Result<Kek, SecretError> {
        let err = |message: String| SecretError::Kek {
            path: path.to_path_buf(),
            message,
        };
        match Kek::load(path)? {
            Some(kek) => Ok(kek),
            None => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
                }
                let mut key = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut key);
                // Written whole under a name of its own, then linked into place: a process
                // that finds the file finds it complete, and of two made at once one wins.
                let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::now_v7().simple()));
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&tmp)
                    .map_err(|e| err(e.to_string()))?;
                f.write_all(hex::encode(key).as_bytes())
                    .and_then(|_| f.sync_all())
                    .map_err(|e| err(e.to_string()))?;
                let linked = std::fs::hard_link(&tmp, path);
                let _ = std::fs::remove_file(&tmp);
                match linked {
                    Ok(()) => Ok(Kek(key)),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        Kek::load_or_create(path)
                    }
                    Err(e) => Err(err(e.to_string())),
                }
            }
        }
    }

    /// Seals `plain` (a private key PEM) for `context` (an agency's code, or a window key's
    /// context): it opens only with this KEK and the same context.
    pub fn seal(&self, context: &str, plain: &[u8]) -> Result<Vec<u8>, SecretError> {
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let mut tag = [0u8; 16];
        let ct = encrypt_aead(
            Cipher::aes_256_gcm(),
            &self.0,
            Some(&nonce),
            context.as_bytes(),
            plain,
            &mut tag,
        )?;
        let mut raw = Vec::with_capacity(12 + ct.len() + 16);
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(&ct);
        raw.extend_from_slice(&tag);
        let mut out = PREFIX.to_vec();
        out.extend_from_slice(
            base64::engine::general_purpose::STANDARD
                .encode(raw)
                .as_bytes(),
        );
        Ok(out)
    }

    /// Opens what `seal` made for `context`. A key stored before keys were sealed (a PEM) is
    /// returned as it is.
    pub fn open(&self, context: &str, stored: &[u8]) -> Result<Vec<u8>, SecretError> {
        let Some(b64) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_vec());
        };
        // A file may end with a newline (ours do, editors add one).
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64.trim_ascii())
            .map_err(|e| SecretError::Open(e.to_string()))?;
        if raw.len() < 28 {
            return Err(SecretError::Open("too short".into()));
        }
        let (nonce, rest) = raw.split_at(12);
        let (ct, tag) = rest.split_at(rest.len() - 16);
        decrypt_aead(
            Cipher::aes_256_gcm(),
            &self.0,
            Some(nonce),
            context.as_bytes(),
            ct,
            tag,
        )
        .map_err(|e| SecretError::Open(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_keys_open_only_for_their_agency_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.kek");
        let kek = Kek::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let pem = b"-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n";
        let sealed = kek.seal("MOIT", pem).unwrap();
        assert!(sealed.starts_with(PREFIX));
        assert!(!sealed.windows(7).any(|w| w == b"PRIVATE"));
        assert_eq!(kek.open("MOIT", &sealed).unwrap(), pem);
        assert!(kek.open("MARD", &sealed).is_err(), "bound to its agency");
        let again = Kek::load_or_create(&path).unwrap();
        assert_eq!(
            again.open("MOIT", &sealed).unwrap(),
            pem,
            "the same key read back"
        );
        let other = Kek::load_or_create(&dir.path().join("other.kek")).unwrap();
        assert!(other.open("MOIT", &sealed).is_err());
        // A legacy PEM reads as it is.
        assert_eq!(kek.open("MOIT", pem).unwrap(), pem);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Kek::load_or_create(&path).err().unwrap().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }
}
