//! Secret material: passphrases and 256-bit keys that zeroize themselves and never print.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// A passphrase supplied by the user. Never stored, never printed; wiped from memory on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Passphrase(String);

impl Passphrase {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// Reads a passphrase from the first line of a file (trailing CR/LF removed).
    pub fn from_file_contents(contents: &str) -> Self {
        let line = contents.lines().next().unwrap_or("");
        Self(line.to_owned())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// Checks the passphrase policy of SharePoint's Secure Store: at least 8 characters and
    /// characters from at least 3 of the 4 classes (upper case, lower case, digit, other).
    pub fn check_policy(&self) -> Result<(), PolicyViolation> {
        let length = self.0.chars().count();
        let classes = [
            self.0.chars().any(|c| c.is_uppercase()),
            self.0.chars().any(|c| c.is_lowercase()),
            self.0.chars().any(|c| c.is_ascii_digit()),
            self.0
                .chars()
                .any(|c| !c.is_uppercase() && !c.is_lowercase() && !c.is_ascii_digit()),
        ]
        .iter()
        .filter(|present| **present)
        .count();
        if length < 8 || classes < 3 {
            return Err(PolicyViolation { length, classes });
        }
        Ok(())
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

/// Why a passphrase was refused by the policy (the passphrase itself is not included).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the passphrase does not meet the policy: it needs at least 8 characters (it has {length}) \
     and characters from at least 3 of: upper case, lower case, digits, other characters (it has {classes})"
)]
pub struct PolicyViolation {
    pub length: usize,
    pub classes: usize,
}

/// A 256-bit symmetric key, wiped from memory on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretKey([u8; 32]);

impl SecretKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A fresh key from the operating system's random source.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        crate::random::fill(bytes.as_mut());
        Self(*bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_needs_length_and_three_classes() {
        assert!(Passphrase::new("Abcdef1!").check_policy().is_ok());
        assert!(Passphrase::new("abcdefg1!").check_policy().is_ok());
        let short = Passphrase::new("Ab1!").check_policy().unwrap_err();
        assert_eq!(short.length, 4);
        let two_classes = Passphrase::new("abcdefgh12").check_policy().unwrap_err();
        assert_eq!(two_classes.classes, 2);
    }

    #[test]
    fn debug_output_hides_secrets() {
        let p = Passphrase::new("Secret-Value-1");
        assert!(!format!("{p:?}").contains("Secret"));
        let k = SecretKey::from_bytes([7; 32]);
        assert!(!format!("{k:?}").contains('7'));
    }
}
