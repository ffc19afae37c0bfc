//! Object keys: relative, `/`-separated, validated so no target can be made to write outside
//! its root.

use std::fmt;

/// A validated object key: no empty, `.` or `..` segments, no leading `/`, no `\`, NUL or other
/// control characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid object key '{key}': {reason}")]
pub struct InvalidKey {
    pub key: String,
    pub reason: &'static str,
}

impl ObjectKey {
    pub fn new(key: impl Into<String>) -> Result<Self, InvalidKey> {
        let key = key.into();
        let reason = if key.is_empty() {
            Some("empty")
        } else if key.starts_with('/') {
            Some("absolute")
        } else if key.contains('\\') {
            Some("contains a backslash")
        } else if key.chars().any(char::is_control) {
            Some("contains a control character")
        } else if key.split('/').any(|s| s.is_empty()) {
            Some("has an empty segment")
        } else if key.split('/').any(|s| s == "." || s == "..") {
            Some("has a '.' or '..' segment")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(InvalidKey { key, reason }),
            None => Ok(Self(key)),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The segments of the key.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_and_malformed_keys_are_refused() {
        for bad in [
            "",
            "/etc/passwd",
            "a/../b",
            "..",
            "a//b",
            "a/",
            "./a",
            "a\\b",
            "a\0b",
            "a\nb",
        ] {
            assert!(ObjectKey::new(bad).is_err(), "{bad:?} accepted");
        }
        for good in [
            "sstorebrtoc.json",
            "sstorebr0001/sstorebackup.bak",
            "a/b.c/d..e",
        ] {
            assert_eq!(ObjectKey::new(good).unwrap().as_str(), good);
        }
    }
}
