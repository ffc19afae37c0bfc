//! The session cookie: its `Set-Cookie` values and finding it in a `Cookie` header. Always
//! `HttpOnly; SameSite=Strict; Path=/`; on TLS also `Secure` and the `__Host-` name prefix
//! (which browsers accept only from a secure origin, for the whole host).

use std::time::Duration;

/// The session cookie's name on plain HTTP (loopback only).
pub const PLAIN_COOKIE: &str = "sstore_session";
/// The session cookie's name on TLS.
pub const SECURE_COOKIE: &str = "__Host-sstore_session";

/// The session cookie's name: `__Host-sstore_session` on TLS, `sstore_session` without.
pub fn session_cookie_name(tls: bool) -> &'static str {
    if tls { SECURE_COOKIE } else { PLAIN_COOKIE }
}

/// The `Set-Cookie` value that gives a browser its session id.
pub fn session_cookie(id: &str, tls: bool, max_age: Duration) -> String {
    let mut value = format!(
        "{}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        session_cookie_name(tls),
        max_age.as_secs()
    );
    if tls {
        value.push_str("; Secure");
    }
    value
}

/// The `Set-Cookie` value that removes the session cookie (at logout).
pub fn clear_session_cookie(tls: bool) -> String {
    session_cookie("", tls, Duration::ZERO)
}

/// The session id in a request's `Cookie` header, if it has the session cookie.
pub fn session_id_from_cookies(header: &str, tls: bool) -> Option<&str> {
    let name = session_cookie_name(tls);
    header.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key.trim() == name).then(|| value.trim().trim_matches('"'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_on_tls() {
        let plain = session_cookie("abc", false, Duration::from_secs(43200));
        assert_eq!(
            plain,
            "sstore_session=abc; HttpOnly; SameSite=Strict; Path=/; Max-Age=43200"
        );
        let tls = session_cookie("abc", true, Duration::from_secs(60));
        assert_eq!(
            tls,
            "__Host-sstore_session=abc; HttpOnly; SameSite=Strict; Path=/; Max-Age=60; Secure"
        );
        assert!(clear_session_cookie(true).contains("Max-Age=0"));
        assert!(clear_session_cookie(false).starts_with("sstore_session=;"));
    }

    #[test]
    fn the_session_id_is_found_among_other_cookies() {
        let header = "theme=dark; sstore_session=abc123; other=x";
        assert_eq!(session_id_from_cookies(header, false), Some("abc123"));
        assert_eq!(session_id_from_cookies(header, true), None);
        assert_eq!(
            session_id_from_cookies("__Host-sstore_session=\"q\"", true),
            Some("q")
        );
        assert_eq!(session_id_from_cookies("xsstore_session=abc", false), None);
        assert_eq!(session_id_from_cookies("", false), None);
    }
}
