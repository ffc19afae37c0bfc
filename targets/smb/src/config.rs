//! What an `smb` target points at: a UNC path, an `smb://` URL or config settings, completed
//! from the environment (`SSTORE_SMB_USER`, `SSTORE_SMB_PASSWORD`, `SSTORE_SMB_PORT`,
//! `SSTORE_SMB_CLIENT`).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use sstore_target_api::location::{self, Location, percent_decode};
use sstore_target_api::{OpenRequest, TargetError, secret};
use zeroize::Zeroizing;

/// The user name when none is in the URL or the settings.
pub const USER_ENV: &str = "SSTORE_SMB_USER";
/// The password when the settings name no `password_env` / `password_file`.
pub const PASSWORD_ENV: &str = "SSTORE_SMB_PASSWORD";
/// The port when none is in the URL or the settings.
pub const PORT_ENV: &str = "SSTORE_SMB_PORT";
/// The SMB port.
pub const DEFAULT_PORT: u16 = 445;
/// The client when the settings name none (`smb2` or `libsmbclient`).
pub const CLIENT_ENV: &str = "SSTORE_SMB_CLIENT";
/// How long one operation may take by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether the SMB3 session must be, may be, or is not encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encryption {
    /// Refuse a server that does not offer SMB3 encryption.
    Required,
    /// Encrypt whenever the server offers it (the default).
    #[default]
    IfOffered,
    /// Never ask for encryption (a server that requires it still gets it, as SMB3 demands).
    Off,
}

impl fmt::Display for Encryption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Required => "required",
            Self::IfOffered => "if-offered",
            Self::Off => "off",
        })
    }
}

/// Whether a session that is neither signed nor encrypted may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Signing {
    /// Refuse a session that is neither signed nor encrypted (the default).
    #[default]
    Required,
    /// Accept an unsigned, unencrypted session (anyone on the path can then change the data).
    Off,
}

impl fmt::Display for Signing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Required => "required",
            Self::Off => "off",
        })
    }
}

/// Which SMB client speaks to the share (see the crate docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientKind {
    /// The pure-Rust `smb2` crate: in every build.
    Smb2,
    /// Samba's libsmbclient: only in a build with the `libsmbclient` feature.
    Libsmbclient,
}

impl ClientKind {
    /// The client of this build when nothing names one: libsmbclient when it was built in
    /// (whoever builds it wants what only it can do: encryption, Kerberos), else smb2.
    pub const fn default_for_build() -> Self {
        if cfg!(feature = "libsmbclient") {
            Self::Libsmbclient
        } else {
            Self::Smb2
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "smb2" => Some(Self::Smb2),
            "libsmbclient" => Some(Self::Libsmbclient),
            _ => None,
        }
    }
}

impl fmt::Display for ClientKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Smb2 => "smb2",
            Self::Libsmbclient => "libsmbclient",
        })
    }
}

/// Settings of a `kind = "smb"` target (the config's `[[target]]` table).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmbSettings {
    pub server: Option<String>,
    pub port: Option<u16>,
    pub share: Option<String>,
    /// The folder inside the share (`a/b` or `a\b`); the share's root when absent.
    pub folder: Option<String>,
    pub user: Option<String>,
    #[serde(alias = "workgroup")]
    pub domain: Option<String>,
    pub password_env: Option<String>,
    pub password_file: Option<PathBuf>,
    pub encryption: Option<Encryption>,
    pub signing: Option<Signing>,
    pub client: Option<ClientKind>,
    /// The bound of one operation, in seconds (default 30).
    pub timeout_secs: Option<u64>,
}

/// Everything needed to reach the share. The password never appears in `Debug` output.
#[derive(Clone)]
pub struct SmbConfig {
    pub server: String,
    pub port: u16,
    pub share: String,
    /// Folder segments inside the share.
    pub folder: Vec<String>,
    pub user: String,
    pub domain: String,
    pub password: Zeroizing<String>,
    pub encryption: Encryption,
    pub signing: Signing,
    pub client: ClientKind,
    pub timeout: Duration,
}

impl fmt::Debug for SmbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmbConfig")
            .field("location", &self.location())
            .field("domain", &self.domain)
            .field("encryption", &self.encryption)
            .field("signing", &self.signing)
            .field("client", &self.client)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl SmbConfig {
    /// `smb://user@server:port/share/folder`: for messages; never holds the password.
    pub fn location(&self) -> String {
        let mut out = format!("smb://{}@{}", self.user, self.server);
        if self.port != DEFAULT_PORT {
            out.push_str(&format!(":{}", self.port));
        }
        out.push('/');
        out.push_str(&self.share);
        for segment in &self.folder {
            out.push('/');
            out.push_str(segment);
        }
        out
    }

    /// `\\server\share`, as users name a share in messages.
    pub fn share_unc(&self) -> String {
        format!("\\\\{}\\{}", self.server, self.share)
    }
}

/// The parts of an `smb://[user@]server[:port]/share/folder` URL (a UNC path is turned into
/// one by [`location::parse`] first).
#[derive(Debug, Default, PartialEq, Eq)]
struct UrlParts {
    user: Option<String>,
    server: String,
    port: Option<u16>,
    share: String,
    folder: Vec<String>,
}

fn parse_url(request: &OpenRequest, text: &str) -> Result<UrlParts, TargetError> {
    let url = match location::parse(text)? {
        Location::Url { scheme, url } if scheme == "smb" => url,
        _ => {
            return Err(request.invalid(format!(
                "'{text}' is not an SMB location; write \\\\server\\share\\folder or \
                 smb://[user@]server[:port]/share/folder"
            )));
        }
    };
    let rest = &url["smb://".len()..];
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (user, host) = match authority.rsplit_once('@') {
        Some((user, host)) => (Some(percent_decode(user)), host),
        None => (None, authority),
    };
    let (server, port) = match host.rsplit_once(':') {
        Some((server, port)) if !server.ends_with(']') || host.starts_with('[') => {
            let port = port
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| request.invalid(format!("'{port}' is not a port number")))?;
            (server, Some(port))
        }
        _ => (host, None),
    };
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let Some((share, folder)) = segments.split_first() else {
        return Err(request.invalid(format!(
            "'{text}' names no share; write \\\\server\\share\\folder or smb://server/share/folder"
        )));
    };
    if server.is_empty() {
        return Err(request.invalid(format!("'{text}' names no server")));
    }
    Ok(UrlParts {
        user: user.filter(|u| !u.is_empty()),
        server: server.to_owned(),
        port,
        share: share.clone(),
        folder: folder.to_vec(),
    })
}

/// Splits a folder setting (`a/b`, `a\b`, `/a/b/`) into checked segments.
fn folder_segments(request: &OpenRequest, folder: &str) -> Result<Vec<String>, TargetError> {
    let segments: Vec<String> = folder
        .split(['/', '\\'])
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    check_segments(request, &segments)?;
    Ok(segments)
}

fn check_segments(request: &OpenRequest, segments: &[String]) -> Result<(), TargetError> {
    for segment in segments {
        if segment == "." || segment == ".." || segment.chars().any(char::is_control) {
            return Err(request.invalid(format!(
                "the folder segment '{segment}' is not allowed (no '.', '..' or control characters)"
            )));
        }
    }
    Ok(())
}

/// Where the environment is read from: the process's, or a fixed list in tests.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

/// Builds the configuration of a target from its URL (or UNC path), its settings and the
/// environment. URL values win over settings only when the settings do not give them too
/// (both is an error); the environment fills in what neither gives.
pub fn resolve(request: &OpenRequest, env: &dyn Env) -> Result<SmbConfig, TargetError> {
    let settings: SmbSettings = request.settings()?;
    let url = request
        .url
        .as_deref()
        .map(|u| parse_url(request, u))
        .transpose()?;

    let both = |what: &str| {
        request.invalid(format!(
            "`{what}` is given both in the URL and in the settings; give it once"
        ))
    };
    let (server, share, folder, url_port, url_user) = match url {
        Some(parts) => {
            if settings.server.is_some() {
                return Err(both("server"));
            }
            if settings.share.is_some() {
                return Err(both("share"));
            }
            if settings.folder.is_some() {
                return Err(both("folder"));
            }
            check_segments(request, &parts.folder)?;
            (
                parts.server,
                parts.share,
                parts.folder,
                parts.port,
                parts.user,
            )
        }
        None => {
            let server = settings.server.clone().ok_or_else(|| {
                request.invalid(
                    "an smb target needs `url` (\\\\server\\share\\folder) or `server` and `share`",
                )
            })?;
            let share = settings
                .share
                .clone()
                .ok_or_else(|| request.invalid("an smb target needs `share`"))?;
            let share = share.trim_matches(['/', '\\']).to_owned();
            if share.is_empty() || share.contains(['/', '\\']) {
                return Err(request.invalid(format!(
                    "`share` must be one share name, not '{share}' (put folders in `folder`)"
                )));
            }
            let folder = match &settings.folder {
                Some(f) => folder_segments(request, f)?,
                None => Vec::new(),
            };
            (server, share, folder, None, None)
        }
    };

    let port = match (url_port, settings.port) {
        (Some(_), Some(_)) => return Err(both("port")),
        (Some(p), None) | (None, Some(p)) => p,
        (None, None) => match env.var(PORT_ENV) {
            Some(text) => text
                .trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| {
                    request.invalid(format!("{PORT_ENV}='{text}' is not a port number"))
                })?,
            None => DEFAULT_PORT,
        },
    };
    let user = match (url_user, settings.user.clone()) {
        (Some(_), Some(_)) => return Err(both("user")),
        (Some(u), None) | (None, Some(u)) => u,
        (None, None) => env.var(USER_ENV).ok_or_else(|| {
            request.invalid(format!(
                "no SMB user: write smb://user@server/share, set `user` in the config, or set {USER_ENV}"
            ))
        })?,
    };
    let password = match secret::resolve(
        &request.name,
        "password",
        settings.password_env.as_deref(),
        settings.password_file.as_deref(),
    )? {
        Some(password) => password,
        None => env.var(PASSWORD_ENV).map(Zeroizing::new).ok_or_else(|| {
            request.invalid(format!(
                "no SMB password: set {PASSWORD_ENV}, or password_env / password_file in the config"
            ))
        })?,
    };
    let timeout = match settings.timeout_secs {
        Some(0) => return Err(request.invalid("`timeout_secs` must be at least 1")),
        Some(secs) => Duration::from_secs(secs),
        None => DEFAULT_TIMEOUT,
    };
    let client = match settings.client {
        Some(client) => client,
        None => match env.var(CLIENT_ENV) {
            Some(text) => ClientKind::parse(&text).ok_or_else(|| {
                request.invalid(format!(
                    "{CLIENT_ENV}='{text}' is not an SMB client: write smb2 or libsmbclient"
                ))
            })?,
            None => ClientKind::default_for_build(),
        },
    };
    Ok(SmbConfig {
        server,
        port,
        share,
        folder,
        user,
        domain: settings.domain.unwrap_or_else(|| "WORKGROUP".to_owned()),
        password,
        encryption: settings.encryption.unwrap_or_default(),
        signing: settings.signing.unwrap_or_default(),
        client,
        timeout,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    struct Vars(&'static [(&'static str, &'static str)]);

    impl Env for Vars {
        fn var(&self, name: &str) -> Option<String> {
            self.0
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    const ENV: Vars = Vars(&[
        (USER_ENV, "envuser"),
        (PASSWORD_ENV, "envpass"),
        (PORT_ENV, "4445"),
    ]);

    fn request(url: Option<&str>, config: &str) -> OpenRequest {
        OpenRequest {
            name: "nas".into(),
            url: url.map(str::to_owned),
            config: toml::from_str(config).unwrap(),
        }
    }

    #[test]
    fn unc_paths_take_user_password_and_port_from_the_environment() {
        let c = resolve(&request(Some(r"\\127.0.0.1\backups\sstore\sub"), ""), &ENV).unwrap();
        assert_eq!(c.server, "127.0.0.1");
        assert_eq!(c.share, "backups");
        assert_eq!(c.folder, ["sstore", "sub"]);
        assert_eq!(c.port, 4445);
        assert_eq!(c.user, "envuser");
        assert_eq!(c.password.as_str(), "envpass");
        assert_eq!(c.encryption, Encryption::IfOffered);
        assert_eq!(c.signing, Signing::Required);
        assert_eq!(c.client, ClientKind::default_for_build());
        assert_eq!(
            c.location(),
            "smb://envuser@127.0.0.1:4445/backups/sstore/sub"
        );
        assert!(!format!("{c:?}").contains("envpass"));
    }

    #[test]
    fn urls_carry_user_and_port() {
        let c = resolve(
            &request(Some("smb://alice@nas:1445/share/my%20dir"), ""),
            &ENV,
        )
        .unwrap();
        assert_eq!((c.user.as_str(), c.port), ("alice", 1445));
        assert_eq!(c.folder, ["my dir"]);
        let c = resolve(&request(Some("smb://nas/share"), ""), &Vars(&[])).unwrap_err();
        assert!(c.message.contains(USER_ENV), "{c}");
        let e = resolve(&request(Some("smb://u@nas"), ""), &ENV).unwrap_err();
        assert!(e.message.contains("names no share"), "{e}");
        let e = resolve(&request(Some("smb://u:pw@nas/s"), ""), &ENV).unwrap_err();
        assert!(!e.to_string().contains("pw@"), "{e}");
    }

    #[test]
    fn settings_and_their_conflicts() {
        let c = resolve(
            &request(
                None,
                "server = 'nas'\nshare = 'backups'\nfolder = 'a\\\\b'\nuser = 'u'\n\
                 encryption = 'required'\ndomain = 'CORP'\ntimeout_secs = 5\n\
                 signing = 'off'\nclient = 'smb2'",
            ),
            &Vars(&[(PASSWORD_ENV, "p")]),
        )
        .unwrap();
        assert_eq!(c.folder, ["a", "b"]);
        assert_eq!(c.port, DEFAULT_PORT);
        assert_eq!(c.encryption, Encryption::Required);
        assert_eq!((c.signing, c.client), (Signing::Off, ClientKind::Smb2));
        assert_eq!(c.domain, "CORP");
        assert_eq!(c.timeout, Duration::from_secs(5));
        assert_eq!(c.share_unc(), r"\\nas\backups");

        // The port from config with a UNC url (the end-to-end case).
        let c = resolve(&request(Some(r"\\h\s\f"), "port = 4999"), &ENV).unwrap();
        assert_eq!(c.port, 4999);
        let e = resolve(&request(Some("smb://h:1/s"), "port = 2"), &ENV).unwrap_err();
        assert!(e.message.contains("`port`"), "{e}");
        let e = resolve(&request(Some(r"\\h\s"), "share = 'x'"), &ENV).unwrap_err();
        assert!(e.message.contains("`share`"), "{e}");
        let e = resolve(&request(None, "server = 'h'\nshare = 'a/b'"), &ENV).unwrap_err();
        assert!(e.message.contains("one share name"), "{e}");
        let e = resolve(
            &request(None, "server = 'h'\nshare = 's'\nfolder = 'a/../b'"),
            &ENV,
        )
        .unwrap_err();
        assert!(e.message.contains("'..'"), "{e}");
        let e = resolve(&request(Some(r"\\h\s"), "encryption = 'maybe'"), &ENV).unwrap_err();
        assert!(e.message.contains("if-offered"), "{e}");
        let e = resolve(
            &request(
                Some(r"\\h\s"),
                "password_env = 'SSTORE_TEST_NOT_SET_ANYWHERE'",
            ),
            &ENV,
        )
        .unwrap_err();
        assert!(e.message.contains("SSTORE_TEST_NOT_SET_ANYWHERE"), "{e}");
        let e = resolve(&request(Some(r"\\h\s"), ""), &Vars(&[(USER_ENV, "u")])).unwrap_err();
        assert!(e.message.contains(PASSWORD_ENV), "{e}");
        let e = resolve(&request(Some(r"\\h\s"), ""), &Vars(&[(PORT_ENV, "x")])).unwrap_err();
        assert!(e.message.contains(PORT_ENV), "{e}");
        let e = resolve(&request(Some(r"\\h\s"), "signing = 'maybe'"), &ENV).unwrap_err();
        assert!(e.message.contains("required"), "{e}");
        let vars = Vars(&[
            (USER_ENV, "u"),
            (PASSWORD_ENV, "p"),
            (CLIENT_ENV, "libsmbclient"),
        ]);
        let c = resolve(&request(Some(r"\\h\s"), ""), &vars).unwrap();
        assert_eq!(c.client, ClientKind::Libsmbclient);
        let vars = Vars(&[
            (USER_ENV, "u"),
            (PASSWORD_ENV, "p"),
            (CLIENT_ENV, "smbclient"),
        ]);
        let e = resolve(&request(Some(r"\\h\s"), ""), &vars).unwrap_err();
        assert!(e.message.contains("smb2 or libsmbclient"), "{e}");
    }
}
