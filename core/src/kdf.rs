//! Passphrase-based key derivation (Argon2id): parameters, the limits a reader accepts, and the
//! floor a writer enforces.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::secret::{Passphrase, SecretKey};

/// Argon2id cost parameters, recorded next to every wrapped key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl KdfParams {
    /// RFC 9106's second recommended setting: 64 MiB, t=3, p=4 (about 0.11 s on the 2-core
    /// development machine; the argon2 crate computes the lanes one after another).
    pub const RECOMMENDED: Self = Self {
        memory_kib: 64 * 1024,
        iterations: 3,
        parallelism: 4,
    };

    /// OWASP's minimum for Argon2id (19 MiB, t=2, p=1). The writer refuses anything weaker.
    pub const MINIMUM: Self = Self {
        memory_kib: 19 * 1024,
        iterations: 2,
        parallelism: 1,
    };

    /// The most a reader will spend on a header it has not yet authenticated. A crafted file
    /// asking for more is refused instead of exhausting memory or time.
    pub const READER_LIMIT: Self = Self {
        memory_kib: 1024 * 1024,
        iterations: 16,
        parallelism: 16,
    };

    /// Parameters are acceptable to a reader (within [`Self::READER_LIMIT`] and valid for Argon2).
    pub fn check_readable(&self) -> Result<(), KdfError> {
        let limit = Self::READER_LIMIT;
        if self.memory_kib > limit.memory_kib
            || self.iterations > limit.iterations
            || self.parallelism > limit.parallelism
        {
            return Err(KdfError::TooCostly {
                params: *self,
                limit,
            });
        }
        self.argon2_params().map(|_| ())
    }

    /// Parameters are strong enough to write new key material with.
    pub fn check_writable(&self) -> Result<(), KdfError> {
        self.check_readable()?;
        let min = Self::MINIMUM;
        if self.memory_kib < min.memory_kib || self.iterations < min.iterations {
            return Err(KdfError::TooWeak {
                params: *self,
                minimum: min,
            });
        }
        Ok(())
    }

    fn argon2_params(&self) -> Result<argon2::Params, KdfError> {
        argon2::Params::new(self.memory_kib, self.iterations, self.parallelism, Some(32)).map_err(
            |e| KdfError::Invalid {
                params: *self,
                reason: e.to_string(),
            },
        )
    }

    /// Derives a 256-bit key from the passphrase and salt.
    pub fn derive(&self, passphrase: &Passphrase, salt: &[u8]) -> Result<SecretKey, KdfError> {
        self.check_readable()?;
        let argon = argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            self.argon2_params()?,
        );
        let mut out = Zeroizing::new([0u8; 32]);
        argon
            .hash_password_into(passphrase.as_bytes(), salt, out.as_mut())
            .map_err(|e| KdfError::Invalid {
                params: *self,
                reason: e.to_string(),
            })?;
        Ok(SecretKey::from_bytes(*out))
    }
}

impl Default for KdfParams {
    fn default() -> Self {
        Self::RECOMMENDED
    }
}

impl std::fmt::Display for KdfParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Argon2id m={} MiB t={} p={}",
            self.memory_kib / 1024,
            self.iterations,
            self.parallelism
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KdfError {
    #[error(
        "key derivation parameters ({params}) exceed what sstore accepts ({limit}); the file is damaged or was not written by sstore"
    )]
    TooCostly { params: KdfParams, limit: KdfParams },
    #[error("key derivation parameters ({params}) are weaker than the minimum ({minimum})")]
    TooWeak {
        params: KdfParams,
        minimum: KdfParams,
    },
    #[error("invalid key derivation parameters ({params}): {reason}")]
    Invalid { params: KdfParams, reason: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivation_depends_on_passphrase_and_salt() {
        let p = KdfParams::MINIMUM;
        let a = p.derive(&Passphrase::new("Pass-word-1"), &[1; 16]).unwrap();
        let b = p.derive(&Passphrase::new("Pass-word-1"), &[1; 16]).unwrap();
        let c = p.derive(&Passphrase::new("Pass-word-2"), &[1; 16]).unwrap();
        let d = p.derive(&Passphrase::new("Pass-word-1"), &[2; 16]).unwrap();
        assert_eq!(a.as_bytes(), b.as_bytes());
        assert_ne!(a.as_bytes(), c.as_bytes());
        assert_ne!(a.as_bytes(), d.as_bytes());
    }

    #[test]
    fn limits_are_enforced() {
        let huge = KdfParams {
            memory_kib: 4 * 1024 * 1024,
            ..KdfParams::RECOMMENDED
        };
        assert!(matches!(
            huge.check_readable(),
            Err(KdfError::TooCostly { .. })
        ));
        let weak = KdfParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        };
        assert!(weak.check_readable().is_ok());
        assert!(matches!(
            weak.check_writable(),
            Err(KdfError::TooWeak { .. })
        ));
        assert!(KdfParams::RECOMMENDED.check_writable().is_ok());
    }
}
