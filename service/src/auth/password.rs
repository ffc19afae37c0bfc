//! Passwords: the policy, and Argon2id hashes as PHC strings
//! (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`, the `argon2` crate's defaults: 19 MiB, two
//! passes, one lane, as OWASP recommends).

use argon2::{Argon2, PasswordHasher, PasswordVerifier};

use super::random;

/// The shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// The longest password accepted, in bytes (a bound on the work one login asks for).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// A password the policy refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordPolicyError {
    #[error("the password is too short: it needs at least {MIN_PASSWORD_CHARS} characters")]
    TooShort,
    #[error("the password is too long: at most {MAX_PASSWORD_BYTES} bytes")]
    TooLong,
    #[error("the password contains a control character (a line break or tab)")]
    ControlCharacter,
}

/// Checks a new password against the policy: at least 12 characters, at most 1024 bytes, no
/// control characters (they would not survive the first line of stdin or a form).
pub fn check_policy(password: &str) -> Result<(), PasswordPolicyError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordPolicyError::TooLong);
    }
    if password.chars().any(char::is_control) {
        return Err(PasswordPolicyError::ControlCharacter);
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(PasswordPolicyError::TooShort);
    }
    Ok(())
}

/// The Argon2id PHC string of `password` under a fresh random 16-byte salt.
pub(crate) fn hash(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = random::bytes::<16>();
    let phc = Argon2::default().hash_password_with_salt(password.as_bytes(), &salt)?;
    Ok(phc.to_string())
}

/// Whether `password` matches the PHC string `phc` (the comparison is constant-time). A hash
/// that does not parse matches nothing.
pub(crate) fn verify(password: &str, phc: &str) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    Argon2::default()
        .verify_password(password.as_bytes(), phc)
        .is_ok()
}

/// A hash with the parameters [`hash`] uses, of a random password nobody kept: what an
/// unknown name is checked against.
const DUMMY_PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$WwvtqC09WxWKUbxNG4NxhQ$PsQE8x3LpNfV/ww8ds3OWuCvV7jW0skoRZJQ6TLonoc";

/// Spends the same work as [`verify`] against a real hash, for a name that has none, so an
/// unknown name answers no faster than a wrong password.
pub(crate) fn verify_nothing(password: &str) {
    let _ = verify(password, DUMMY_PHC);
}

/// Whether `phc` is an Argon2id hash this module could have written.
pub fn is_argon2id_phc(phc: &str) -> bool {
    argon2::PasswordHash::new(phc)
        .is_ok_and(|h| h.algorithm.as_str() == argon2::ARGON2ID_IDENT.as_str())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_policy_needs_twelve_characters_and_says_so() {
        assert_eq!(
            check_policy("short-pass1"),
            Err(PasswordPolicyError::TooShort)
        );
        assert!(
            PasswordPolicyError::TooShort
                .to_string()
                .contains("at least 12 characters")
        );
        assert_eq!(check_policy("twelve-chars"), Ok(()));
        // Characters, not bytes: twelve accented letters pass, six do not.
        assert_eq!(check_policy(&"é".repeat(12)), Ok(()));
        assert_eq!(
            check_policy(&"é".repeat(6)),
            Err(PasswordPolicyError::TooShort)
        );
        assert_eq!(
            check_policy(&"x".repeat(MAX_PASSWORD_BYTES + 1)),
            Err(PasswordPolicyError::TooLong)
        );
        assert_eq!(
            check_policy("twelve-chars\nmore"),
            Err(PasswordPolicyError::ControlCharacter)
        );
    }

    #[test]
    fn hashes_are_salted_argon2id_phc_strings_with_at_least_the_owasp_parameters() {
        let a = hash("correct horse battery").unwrap();
        let b = hash("correct horse battery").unwrap();
        assert_ne!(a, b, "every hash has its own salt");
        for phc in [&a, &b] {
            assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
            assert!(is_argon2id_phc(phc));
            assert!(!phc.contains("correct horse"));
        }
        assert!(verify("correct horse battery", &a));
        assert!(!verify("correct horse batterY", &a));
        assert!(!verify("correct horse battery", "not a hash"));
        assert!(!is_argon2id_phc(
            "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA"
        ));
    }

    #[test]
    fn the_dummy_hash_has_the_parameters_of_real_ones() {
        let real = hash("any password at all").unwrap();
        let params = |phc: &str| phc.rsplitn(3, '$').nth(2).map(str::to_owned);
        assert_eq!(params(DUMMY_PHC), params(&real));
        assert!(is_argon2id_phc(DUMMY_PHC));
    }
}
