//! Locations as users type them (`--directory`, `--target`): a plain path, a `file://` URL, a
//! UNC path (`\\server\share\folder`), or any `scheme://` URL a target kind serves.

use std::path::PathBuf;

use crate::{TargetError, TargetErrorKind};

/// What a location string names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A local path (opened by the kind that serves `file`).
    Path(PathBuf),
    /// A URL; `scheme` is lower-case. UNC paths become `smb://server/share/folder`.
    Url { scheme: String, url: String },
}

/// The scheme of `text` if it starts with `scheme://` (RFC 3986 scheme characters).
fn scheme_of(text: &str) -> Option<&str> {
    let (scheme, _) = text.split_once("://")?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some(scheme)
}

/// Parses a location. A URL carrying a password (`user:secret@host`) is refused: it would end
/// up in shell history and process listings.
pub fn parse(text: &str) -> Result<Location, TargetError> {
    let invalid =
        |message: String| TargetError::new(TargetErrorKind::InvalidConfig, text, None, message);
    if text.is_empty() {
        return Err(invalid("the location is empty".into()));
    }
    if let Some(unc) = text.strip_prefix("\\\\").filter(|_| !cfg!(windows)) {
        let parts: Vec<&str> = unc.split('\\').filter(|p| !p.is_empty()).collect();
        if parts.len() < 2 {
            return Err(invalid(
                "a UNC path needs a server and a share: \\\\server\\share\\folder".into(),
            ));
        }
        return Ok(Location::Url {
            scheme: "smb".into(),
            url: format!("smb://{}", parts.join("/")),
        });
    }
    let Some(scheme) = scheme_of(text) else {
        return Ok(Location::Path(PathBuf::from(text)));
    };
    let rest = &text[scheme.len() + 3..];
    let authority = rest.split('/').next().unwrap_or_default();
    if let Some((userinfo, _)) = authority.rsplit_once('@')
        && userinfo.contains(':')
    {
        let redacted = text.replacen(
            authority,
            &format!(
                "{}:***@{}",
                userinfo.split(':').next().unwrap_or_default(),
                &authority[userinfo.len() + 1..]
            ),
            1,
        );
        return Err(TargetError::new(
            TargetErrorKind::InvalidConfig,
            &redacted,
            None,
            format!(
                "a password in the URL is not accepted (it would be visible in shell history and process \
             listings); give the user only ({scheme}://user@...) and the password through the \
             environment or the config's password_env / password_file"
            ),
        ));
    }
    Ok(Location::Url {
        scheme: scheme.to_ascii_lowercase(),
        url: text.to_owned(),
    })
}

/// The path of a `file://` URL (`file:///srv/backups`, `file://localhost/srv/backups`).
pub fn file_url_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("file://")
        .or_else(|| url.strip_prefix("FILE://"))?;
    let path = rest.strip_prefix("localhost").unwrap_or(rest);
    (path.starts_with('/')).then(|| PathBuf::from(percent_decode(path)))
}

/// Decodes `%XX` escapes (a URL path with spaces: `file:///my%20backups`).
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(scheme: &str, url: &str) -> Location {
        Location::Url {
            scheme: scheme.into(),
            url: url.into(),
        }
    }

    #[test]
    fn paths_urls_and_unc() {
        assert_eq!(
            parse("/srv/backups").unwrap(),
            Location::Path("/srv/backups".into())
        );
        assert_eq!(parse("rel/dir").unwrap(), Location::Path("rel/dir".into()));
        assert_eq!(
            parse("S3://bucket/prefix").unwrap(),
            url("s3", "S3://bucket/prefix")
        );
        assert_eq!(
            parse("az://container/p").unwrap(),
            url("az", "az://container/p")
        );
        assert_eq!(
            parse("smb://user@nas:4445/share/dir").unwrap(),
            url("smb", "smb://user@nas:4445/share/dir")
        );
        if !cfg!(windows) {
            assert_eq!(
                parse(r"\\nas\backups\sstore").unwrap(),
                url("smb", "smb://nas/backups/sstore")
            );
            assert!(parse(r"\\nas").is_err());
        }
        // Not a scheme: a path that happens to contain "://" later on.
        assert_eq!(parse("./a://b").unwrap(), Location::Path("./a://b".into()));
    }

    #[test]
    fn passwords_in_urls_are_refused_without_echoing_them() {
        let err = parse("smb://alice:hunter2@nas/share").unwrap_err();
        assert!(err.message.contains("password"), "{err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(err.to_string().contains("alice:***@nas"), "{err}");
    }

    #[test]
    fn file_urls() {
        assert_eq!(
            file_url_path("file:///srv/my%20backups"),
            Some(PathBuf::from("/srv/my backups"))
        );
        assert_eq!(
            file_url_path("file://localhost/srv"),
            Some(PathBuf::from("/srv"))
        );
        assert_eq!(file_url_path("file://server/srv"), None);
    }
}
