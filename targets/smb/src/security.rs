//! What protects an SMB session (signing, encryption), and the rule that decides whether a
//! session is good enough for the target's settings. The rule is checked after the logon and
//! before the first file operation, so a refused session never sends any data.

use std::fmt;

use sstore_target_api::{TargetError, TargetErrorKind};

use crate::config::{ClientKind, Encryption, Signing, SmbConfig};

/// How a session's protection was learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    /// Read from the client's own session state (smb2).
    Session,
    /// libsmbclient keeps its session state to itself: derived from the server's NEGOTIATE
    /// answer (which dialect and cipher it offers, whether it requires signing) together with
    /// what libsmbclient was told to require.
    Negotiate,
}

/// The protection of one SMB session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSecurity {
    /// `SMB 3.1.1`, `SMB 2.1`, ...
    pub dialect: String,
    /// Every message is signed.
    pub signed: bool,
    /// Every message is encrypted (which also protects its integrity).
    pub encrypted: bool,
    /// The cipher or signing algorithm, when known (`AES-128-GCM`, `AES-GMAC`).
    pub algorithm: Option<String>,
    pub client: ClientKind,
    pub evidence: Evidence,
}

impl SessionSecurity {
    /// `encrypted`, `signed` or `neither signed nor encrypted`.
    pub fn protection(&self) -> &'static str {
        match (self.encrypted, self.signed) {
            (true, _) => "encrypted",
            (false, true) => "signed, not encrypted",
            (false, false) => "neither signed nor encrypted",
        }
    }
}

impl fmt::Display for SessionSecurity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} session, {}", self.dialect, self.protection())?;
        if let Some(algorithm) = &self.algorithm {
            write!(f, " ({algorithm})")?;
        }
        write!(f, ", client {}", self.client)?;
        if self.evidence == Evidence::Negotiate {
            f.write_str(", as negotiated")?;
        }
        Ok(())
    }
}

/// The build flag that brings the client able to encrypt, for messages.
pub const LIBSMBCLIENT_BUILD: &str = "cargo install --path cli --features libsmbclient (or cargo build -p sstore-cli --features libsmbclient; it needs libsmbclient-dev and pkg-config to build and libsmbclient to run)";

/// Whether `session` may carry this target's data: refused when encryption is required and
/// the session is not encrypted, or when it is neither signed nor encrypted and signing was
/// not turned off explicitly.
pub fn check(config: &SmbConfig, session: &SessionSecurity) -> Result<(), TargetError> {
    let share = config.share_unc();
    let refuse = |message: String| {
        Err(TargetError::new(
            TargetErrorKind::Unsupported,
            &config.location(),
            None,
            message,
        ))
    };
    if config.encryption == Encryption::Required && !session.encrypted {
        let what_to_do = match session.client {
            ClientKind::Smb2 => format!(
                "the pure-Rust client (smb2) cannot negotiate SMB3 encryption; for an encrypted \
                 session build sstore with the libsmbclient feature ({LIBSMBCLIENT_BUILD}), or set \
                 encryption = \"if-offered\" to accept a signed session"
            ),
            ClientKind::Libsmbclient => "the server does not offer SMB3 encryption: enable it \
                 there (smb encrypt = desired or required), or set encryption = \"if-offered\" \
                 to accept a signed session"
                .to_owned(),
        };
        return refuse(format!(
            "encryption = \"required\", but the session to {share} on {} is {}; nothing was \
             sent. {what_to_do}",
            config.server,
            session.protection()
        ));
    }
    if !session.signed && !session.encrypted && config.signing != Signing::Off {
        return refuse(format!(
            "the session to {share} on {} is neither signed nor encrypted, so anyone on the \
             network path could change the backups; nothing was sent. Require signing on the \
             server, or set signing = \"off\" on the target to accept it",
            config.server
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use zeroize::Zeroizing;

    use super::*;

    fn config(encryption: Encryption, signing: Signing) -> SmbConfig {
        SmbConfig {
            server: "nas".into(),
            port: 445,
            share: "backups".into(),
            folder: Vec::new(),
            user: "u".into(),
            domain: "WORKGROUP".into(),
            password: Zeroizing::new("secret-pw".into()),
            encryption,
            signing,
            client: ClientKind::Smb2,
            timeout: Duration::from_secs(5),
        }
    }

    fn session(signed: bool, encrypted: bool, client: ClientKind) -> SessionSecurity {
        SessionSecurity {
            dialect: "SMB 3.1.1".into(),
            signed,
            encrypted,
            algorithm: None,
            client,
            evidence: Evidence::Session,
        }
    }

    #[test]
    fn every_combination_of_settings_and_session() {
        use ClientKind::*;
        use Encryption::*;
        use Signing::Off as SigningOff;
        use Signing::Required as SigningRequired;
        let cases = [
            // (encryption, signing, signed, encrypted, accepted)
            (Required, SigningRequired, true, true, true),
            (Required, SigningRequired, true, false, false),
            (Required, SigningOff, false, false, false),
            (IfOffered, SigningRequired, true, false, true),
            (IfOffered, SigningRequired, false, true, true),
            (IfOffered, SigningRequired, false, false, false),
            (IfOffered, SigningOff, false, false, true),
            (Encryption::Off, SigningRequired, false, false, false),
            (Encryption::Off, SigningOff, false, false, true),
            (Encryption::Off, SigningRequired, true, false, true),
        ];
        for (encryption, signing, signed, encrypted, accepted) in cases {
            let c = config(encryption, signing);
            for client in [Smb2, Libsmbclient] {
                let result = check(&c, &session(signed, encrypted, client));
                assert_eq!(
                    result.is_ok(),
                    accepted,
                    "{encryption} {signing} signed={signed} encrypted={encrypted}: {result:?}"
                );
                if let Err(e) = result {
                    assert_eq!(e.kind, TargetErrorKind::Unsupported);
                    assert!(!e.is_temporary(), "{e}");
                    assert!(e.message.contains(r"\\nas\backups"), "{e}");
                    assert!(e.message.contains("nothing was sent"), "{e}");
                    assert!(!e.to_string().contains("secret-pw"), "{e}");
                }
            }
        }
    }

    #[test]
    fn a_refusal_says_what_to_do_for_each_client() {
        let c = config(Encryption::Required, Signing::Required);
        let e = check(&c, &session(true, false, ClientKind::Smb2)).unwrap_err();
        assert!(e.message.contains("--features libsmbclient"), "{e}");
        assert!(e.message.contains("signed, not encrypted"), "{e}");
        let e = check(&c, &session(true, false, ClientKind::Libsmbclient)).unwrap_err();
        assert!(e.message.contains("smb encrypt"), "{e}");
        let c = config(Encryption::IfOffered, Signing::Required);
        let e = check(&c, &session(false, false, ClientKind::Smb2)).unwrap_err();
        assert!(e.message.contains("signing = \"off\""), "{e}");
    }

    #[test]
    fn descriptions_name_the_protection() {
        let mut s = session(true, false, ClientKind::Smb2);
        s.algorithm = Some("AES-GMAC".into());
        assert_eq!(
            s.to_string(),
            "SMB 3.1.1 session, signed, not encrypted (AES-GMAC), client smb2"
        );
        let mut s = session(true, true, ClientKind::Libsmbclient);
        s.evidence = Evidence::Negotiate;
        assert_eq!(
            s.to_string(),
            "SMB 3.1.1 session, encrypted, client libsmbclient, as negotiated"
        );
    }
}
