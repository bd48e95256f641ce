//! Passwords of people (traders, officers, customs), for the portal's log-in; systems keep
//! bearer tokens. Hashed with argon2id at the library's default parameters (19 MiB, 2 passes,
//! 1 lane, as OWASP recommends), stored as a PHC string; never logged, never stored in clear.

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, SaltString};
use argon2::{Argon2, PasswordVerifier};

/// Shortest password accepted, in characters.
pub const MIN_CHARS: usize = 12;
/// Longest password accepted, in bytes: hashing cost must not grow with what a caller sends.
pub const MAX_BYTES: usize = 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordError {
    #[error("a password has at least {MIN_CHARS} characters")]
    TooShort,
    #[error("a password has at most {MAX_BYTES} bytes")]
    TooLong,
    #[error("a password may not begin or end with white space, nor hold control characters")]
    Unprintable,
    #[error("password hashing failed: {0}")]
    Hashing(String),
}

impl PasswordError {
    /// Stable code, for answers and the command line.
    pub fn code(&self) -> &'static str {
        match self {
            PasswordError::TooShort => "PASSWORD_TOO_SHORT",
            PasswordError::TooLong => "PASSWORD_TOO_LONG",
            PasswordError::Unprintable => "PASSWORD_UNPRINTABLE",
            PasswordError::Hashing(_) => "INTERNAL",
        }
    }
}

/// The policy: 12 characters or more, 1 KiB at most, printable, no surrounding white space
/// (which copy and paste add by mistake). Passphrases of any script are welcome.
pub fn check(password: &str) -> Result<(), PasswordError> {
    if password.len() > MAX_BYTES {
        return Err(PasswordError::TooLong);
    }
    if password.chars().count() < MIN_CHARS {
        return Err(PasswordError::TooShort);
    }
    if password.trim() != password || password.chars().any(char::is_control) {
        return Err(PasswordError::Unprintable);
    }
    Ok(())
}

/// The argon2id PHC string of `password`, with a fresh random salt, after [`check`].
pub fn hash(password: &str) -> Result<String, PasswordError> {
    check(password)?;
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hashing(e.to_string()))
}

/// Whether `password` matches `phc` (compared in constant time by the library). A password over
/// [`MAX_BYTES`] or a malformed stored hash never matches.
pub fn verify(phc: &str, password: &str) -> bool {
    if password.len() > MAX_BYTES {
        return false;
    }
    PasswordHash::new(phc)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash of a random password, made once: a log-in for a party that has no password is
/// verified against it, so it costs the same time as a wrong password.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        let random = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(random.as_str().as_bytes(), &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_is_argon2id_salted_and_verifies_only_its_password() {
        let a = hash("correct horse battery staple").unwrap();
        let b = hash("correct horse battery staple").unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b, "each hash has its own salt");
        assert!(verify(&a, "correct horse battery staple"));
        assert!(!verify(&a, "correct horse battery stapler"));
        assert!(!verify("not a hash", "correct horse battery staple"));
    }

    #[test]
    fn the_policy_refuses_short_long_and_padded_passwords() {
        assert_eq!(check("short"), Err(PasswordError::TooShort));
        assert_eq!(
            check(&"x".repeat(MAX_BYTES + 1)),
            Err(PasswordError::TooLong)
        );
        assert_eq!(check(" padded password "), Err(PasswordError::Unprintable));
        assert_eq!(
            check("line\nbreak password"),
            Err(PasswordError::Unprintable)
        );
        assert_eq!(check("mật khẩu đủ dài rồi"), Ok(()));
    }
}
