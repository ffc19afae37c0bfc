//! Identity files: written owner-only and exclusively, read only when no one else can read them.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use zeroize::Zeroizing;

use super::{Identity, KeyError};

/// The largest identity file a reader accepts (about 800 identities); anything larger is not an
/// identity file, and is refused before it is read into memory.
pub const MAX_IDENTITY_FILE_LEN: u64 = 64 * 1024;

impl Identity {
    /// Writes this identity to a new file at `path`, as age-keygen does:
    ///
    /// ```text
    /// # created: 2026-01-31T12:00:00Z
    /// # recipient: sstore1…
    /// SSTORE-SECRET-KEY-1…
    /// ```
    ///
    /// The file is created exclusively (an existing file is never overwritten) and owner-only
    /// (0600 on Unix), then fsynced with its folder. On a failure after creating it, the partial
    /// file is removed.
    pub fn write_identity_file(&self, path: &Path) -> Result<(), KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = crate::fsutil::private_new_file_options()
            .open(path)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    KeyError::Exists {
                        path: path.to_owned(),
                    }
                } else {
                    io(e)
                }
            })?;
        let created = time::OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default();
        // Sized up front, so the secret is never left behind by a reallocation.
        let mut text = Zeroizing::new(String::with_capacity(256));
        text.push_str(&format!(
            "# created: {created}\n# recipient: {}\n",
            self.recipient()
        ));
        text.push_str(&self.to_secret_string());
        text.push('\n');
        let written = file
            .write_all(text.as_bytes())
            .and_then(|()| file.sync_all());
        if let Err(e) = written {
            drop(file);
            let _ = std::fs::remove_file(path);
            return Err(io(e));
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            crate::fsutil::sync_dir(parent).map_err(io)?;
        }
        Ok(())
    }
}

/// Reads the identities in the file at `path`: one `SSTORE-SECRET-KEY-1…` per line; empty lines
/// and lines starting with `#` are ignored. On Unix the file must not be accessible by group or
/// others (as ssh requires of private keys). Errors name the file and the line, never the secret.
pub fn read_identity_file(path: &Path) -> Result<Vec<Identity>, KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    // Checked on the open file, so the file read is the file checked.
    let meta = file.metadata().map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Permissions {
                path: path.to_owned(),
                mode,
            });
        }
    }
    let too_large = || KeyError::TooLarge {
        path: path.to_owned(),
        limit: MAX_IDENTITY_FILE_LEN,
    };
    if meta.len() > MAX_IDENTITY_FILE_LEN {
        return Err(too_large());
    }
    // Sized up front, so the secret is never left behind by a reallocation.
    let capacity = usize::try_from(meta.len().min(MAX_IDENTITY_FILE_LEN)).unwrap_or(0) + 1;
    let mut bytes = Zeroizing::new(Vec::with_capacity(capacity));
    file.take(MAX_IDENTITY_FILE_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_IDENTITY_FILE_LEN {
        return Err(too_large());
    }
    parse_identities(path, &bytes)
}

/// Parses identity-file contents (see [`read_identity_file`]).
pub(super) fn parse_identities(path: &Path, bytes: &[u8]) -> Result<Vec<Identity>, KeyError> {
    let malformed = |line: usize, reason: String| KeyError::Malformed {
        path: path.to_owned(),
        line,
        reason,
    };
    let mut identities = Vec::new();
    for (index, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let line = index + 1;
        let text = std::str::from_utf8(raw)
            .map_err(|_| malformed(line, "not UTF-8 text (is this an identity file?)".into()))?
            .trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let identity = text.parse::<Identity>().map_err(|e| match e {
            KeyError::InvalidIdentity { reason } => malformed(line, reason),
            other => malformed(line, other.to_string()),
        })?;
        identities.push(identity);
    }
    if identities.is_empty() {
        return Err(KeyError::NoIdentity {
            path: path.to_owned(),
        });
    }
    Ok(identities)
}
