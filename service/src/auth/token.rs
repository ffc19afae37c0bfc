//! API tokens: `sst_` and 64 hex digits (32 random bytes), shown once. Only their SHA-256 is
//! kept, with an id (the token's first 12 characters) that names it in listings.

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::random;

/// What every token starts with (so a leaked one is recognisable, e.g. by secret scanners).
pub const TOKEN_PREFIX: &str = "sst_";
const SECRET_HEX_LEN: usize = 64;
/// The characters of a token kept in the clear as its id: the prefix and 8 hex digits.
const ID_LEN: usize = TOKEN_PREFIX.len() + 8;

/// A token just made: its text (to show once) and what is stored of it.
pub(crate) struct NewToken {
    pub text: Zeroizing<String>,
    pub id: String,
    pub sha256: [u8; 32],
}

pub(crate) fn generate() -> NewToken {
    let secret = Zeroizing::new(random::bytes::<32>());
    let text = Zeroizing::new(format!("{TOKEN_PREFIX}{}", hex::encode(*secret)));
    let id = id_of(&text).unwrap_or_default().to_owned();
    let sha256 = digest(&text);
    NewToken { text, id, sha256 }
}

/// The SHA-256 of a token's text, as stored.
pub(crate) fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether `text` has the shape of a token (checking it says nothing about any secret).
pub fn is_well_formed(text: &str) -> bool {
    text.strip_prefix(TOKEN_PREFIX).is_some_and(|hex| {
        hex.len() == SECRET_HEX_LEN && hex.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

/// The id of a well-formed token: its first 12 characters (`sst_` and 8 hex digits).
pub fn id_of(token: &str) -> Option<&str> {
    if is_well_formed(token) {
        token.get(..ID_LEN)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_well_formed_and_stored_only_as_a_hash_and_an_id() {
        let a = generate();
        let b = generate();
        assert_ne!(*a.text, *b.text);
        assert!(is_well_formed(&a.text), "{}", *a.text);
        assert_eq!(a.text.len(), 4 + 64);
        assert_eq!(a.id.len(), 12);
        assert!(a.text.starts_with(&a.id));
        assert_eq!(a.sha256, digest(&a.text));
        assert_ne!(a.sha256, b.sha256);
    }

    #[test]
    fn malformed_tokens_are_recognised() {
        for bad in [
            "",
            "sst_",
            "sst_xyz",
            &format!("sst_{}", "g".repeat(64)),
            &format!("sst_{}", "a".repeat(63)),
            &format!("abc_{}", "a".repeat(64)),
        ] {
            assert!(!is_well_formed(bad), "{bad}");
            assert_eq!(id_of(bad), None);
        }
    }
}
