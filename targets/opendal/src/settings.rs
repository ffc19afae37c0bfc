//! URLs and `[[target]]` settings of the `opendal` kind.
//!
//! ```toml
//! [[target]]
//! name = "nas-sftp"
//! kind = "opendal"
//! service = "sftp"                 # any service this build has: sftp, webdav, gcs
//! endpoint = "ssh://nas.example.net:22"
//! user = "backup"
//! key = "/root/.ssh/id_ed25519"
//! root = "/srv/backups/sstore"
//! known_hosts_strategy = "strict"  # opendal's option, passed through
//! timeout_secs = 60                # per operation, opendal's TimeoutLayer
//! io_timeout_secs = 30             # per read or write of a stream
//! retries = 3                      # opendal's RetryLayer
//! part_size_mib = 8
//! upload_concurrency = 4
//! max_single_write_mib = 256       # services without multipart writes (WebDAV): the largest
//!                                  # object, held in memory while it is sent
//! ```
//!
//! Every other setting is handed to the service as an option. A secret option is given as
//! `NAME_env` or `NAME_file` (`password_env = "DAV_PASSWORD"`) and handed over as `NAME`.
//!
//! URLs: `sftp://user@host[:port]/path` (key from `SSTORE_SFTP_KEY`, known hosts checked
//! strictly unless `SSTORE_SFTP_KNOWN_HOSTS` says `accept` or `add`),
//! `webdav://[user@]host[:port]/path` (HTTP) or `webdavs://` (HTTPS) with the password from
//! `SSTORE_WEBDAV_PASSWORD`, and `gs://bucket/prefix` (credentials as opendal's GCS service
//! finds them, e.g. `GOOGLE_APPLICATION_CREDENTIALS`).

use std::path::PathBuf;
use std::time::Duration;

use opendal::Operator;
use opendal::layers::{RetryLayer, TimeoutLayer};
use sstore_target_api::{OpenRequest, TargetError, TargetErrorKind, secret};

use crate::target::{OpendalTarget, TransferSettings};

/// The URL schemes this kind serves.
pub const URL_SCHEMES: &[&str] = &["sftp", "webdav", "webdavs", "gs"];

/// Settings the target itself uses; every other setting is a service option.
const OWN_SETTINGS: &[&str] = &[
    "service",
    "timeout_secs",
    "io_timeout_secs",
    "retries",
    "part_size_mib",
    "upload_concurrency",
    "max_single_write_mib",
];

/// A service and its options.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    pub service: String,
    pub options: Vec<(String, String)>,
}

impl ServiceConfig {
    fn set(&mut self, name: &str, value: impl Into<String>) {
        self.options.retain(|(k, _)| k != name);
        self.options.push((name.to_owned(), value.into()));
    }

    /// The value of option `name`.
    fn option(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The service and options a URL names.
pub fn from_url(url: &str) -> Option<ServiceConfig> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let (authority, path) = match rest.split_once('/') {
        Some((authority, path)) => (authority, format!("/{path}")),
        None => (rest, "/".to_owned()),
    };
    let (user, host) = match authority.rsplit_once('@') {
        Some((user, host)) => (Some(user.to_owned()), host),
        None => (None, authority),
    };
    if host.is_empty() {
        return None;
    }
    let mut config = ServiceConfig::default();
    match scheme.as_str() {
        "sftp" => {
            config.service = "sftp".into();
            config.set("endpoint", format!("ssh://{host}"));
            if let Some(user) = user {
                config.set("user", user);
            }
            config.set("root", path);
        }
        "webdav" | "webdavs" => {
            config.service = "webdav".into();
            let http = if scheme == "webdavs" { "https" } else { "http" };
            config.set("endpoint", format!("{http}://{host}"));
            if let Some(user) = user {
                config.set("username", user);
            }
            config.set("root", path);
        }
        "gs" => {
            config.service = "gcs".into();
            config.set("bucket", host);
            config.set("root", path);
        }
        _ => return None,
    }
    Some(config)
}

fn value_text(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A whole-number setting from 1 to `max`.
fn number(request: &OpenRequest, name: &str, max: u64) -> Result<Option<u64>, TargetError> {
    let Some(value) = request.config.get(name) else {
        return Ok(None);
    };
    value
        .as_integer()
        .and_then(|i| u64::try_from(i).ok())
        .filter(|n| (1..=max).contains(n))
        .map(Some)
        .ok_or_else(|| request.invalid(format!("{name} must be a whole number from 1 to {max}")))
}

/// The service and options of a request: from its URL, then its settings.
pub fn service_config(request: &OpenRequest) -> Result<ServiceConfig, TargetError> {
    let mut config = match &request.url {
        Some(url) => from_url(url).ok_or_else(|| {
            request.invalid(format!(
                "'{url}' is not a URL this kind serves ({})",
                URL_SCHEMES.join("://, ") + "://"
            ))
        })?,
        None => ServiceConfig::default(),
    };
    if let Some(service) = request.config.get("service") {
        let service = value_text(service).unwrap_or_default();
        if request.url.is_some() && service != config.service {
            return Err(request.invalid(format!(
                "the URL names service '{}', the settings '{service}'",
                config.service
            )));
        }
        config.service = service;
    }
    if config.service.is_empty() {
        return Err(request
            .invalid("an opendal target needs service = \"sftp\" (or webdav, gcs, ...) or a URL"));
    }
    for (name, value) in &request.config {
        if OWN_SETTINGS.contains(&name.as_str()) {
            continue;
        }
        let text = value_text(value)
            .ok_or_else(|| request.invalid(format!("setting '{name}' must be a plain value")))?;
        if let Some(option) = name.strip_suffix("_env") {
            let value = secret::resolve(&request.name, option, Some(&text), None)?;
            config.set(
                option,
                value.as_deref().map(String::as_str).unwrap_or_default(),
            );
        } else if let Some(option) = name.strip_suffix("_file") {
            let path = PathBuf::from(&text);
            let value = secret::resolve(&request.name, option, None, Some(&path))?;
            config.set(
                option,
                value.as_deref().map(String::as_str).unwrap_or_default(),
            );
        } else {
            config.set(name, text);
        }
    }
    // Command-line URLs take their secrets from the environment.
    if request.url.is_some() {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        match config.service.as_str() {
            "sftp" => {
                if config.option("key").is_none()
                    && let Some(key) = env("SSTORE_SFTP_KEY")
                {
                    config.set("key", key);
                }
                if config.option("known_hosts_strategy").is_none() {
                    let strategy =
                        env("SSTORE_SFTP_KNOWN_HOSTS").unwrap_or_else(|| "strict".into());
                    config.set("known_hosts_strategy", strategy);
                }
            }
            "webdav" => {
                if config.option("password").is_none()
                    && let Some(password) = env("SSTORE_WEBDAV_PASSWORD")
                {
                    config.set("password", password);
                }
            }
            _ => {}
        }
    }
    Ok(config)
}

/// A name for messages: the service and where it points, never a secret.
fn describe(config: &ServiceConfig) -> String {
    let place = ["endpoint", "bucket", "root"]
        .iter()
        .filter_map(|k| config.option(k))
        .collect::<Vec<_>>()
        .join(" ");
    format!("{}:{place}", config.service)
}

/// Opens the target a request describes.
pub fn open(request: &OpenRequest) -> Result<OpendalTarget, TargetError> {
    let config = service_config(request)?;
    let location = describe(&config);
    let timeout = Duration::from_secs(number(request, "timeout_secs", 86_400)?.unwrap_or(120));
    let io_timeout = Duration::from_secs(number(request, "io_timeout_secs", 86_400)?.unwrap_or(60));
    let retries = number(request, "retries", 100)?.unwrap_or(3) as usize;
    let operator = Operator::via_iter(&config.service, config.options.clone())
        .map_err(|e| {
            TargetError::new(
                TargetErrorKind::InvalidConfig,
                &request.name,
                None,
                format!(
                    "opendal service '{}' could not be set up (is it in this build? sftp, \
                     webdav and gcs are): {e}",
                    config.service
                ),
            )
        })?
        .layer(
            TimeoutLayer::new()
                .with_timeout(timeout)
                .with_io_timeout(io_timeout),
        )
        .layer(RetryLayer::new().with_max_times(retries).with_jitter());
    let transfer = TransferSettings {
        part_size: number(request, "part_size_mib", 5 * 1024)?.unwrap_or(8) * 1024 * 1024,
        concurrency: number(request, "upload_concurrency", 64)?.unwrap_or(4) as usize,
        single_write_limit: number(request, "max_single_write_mib", 4 * 1024)?.unwrap_or(256)
            * 1024
            * 1024,
    };
    Ok(OpendalTarget::new(operator, location, transfer))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn option<'a>(c: &'a ServiceConfig, k: &str) -> Option<&'a str> {
        c.option(k)
    }

    #[test]
    fn urls_name_services() {
        let c = from_url("sftp://backup@nas:2222/srv/b").unwrap();
        assert_eq!(c.service, "sftp");
        assert_eq!(option(&c, "endpoint"), Some("ssh://nas:2222"));
        assert_eq!(option(&c, "user"), Some("backup"));
        assert_eq!(option(&c, "root"), Some("/srv/b"));
        let c = from_url("webdavs://dav.example.net/remote.php/dav").unwrap();
        assert_eq!(option(&c, "endpoint"), Some("https://dav.example.net"));
        let c = from_url("gs://bucket/pre").unwrap();
        assert_eq!(
            (c.service.as_str(), option(&c, "bucket")),
            ("gcs", Some("bucket"))
        );
        assert!(from_url("ftp://x/y").is_none());
    }

    #[test]
    fn settings_become_options_and_secrets_resolve() {
        let mut request = OpenRequest {
            name: "dav".into(),
            url: None,
            config: toml::from_str(
                "service = 'webdav'\nendpoint = 'http://127.0.0.1:1'\nusername = 'u'\n\
                 password_env = 'SSTORE_TEST_UNSET_DAV_PASSWORD'\nretries = 2",
            )
            .unwrap(),
        };
        let err = service_config(&request).unwrap_err();
        assert!(
            err.message.contains("SSTORE_TEST_UNSET_DAV_PASSWORD"),
            "{err}"
        );
        request.config.remove("password_env");
        let c = service_config(&request).unwrap();
        assert_eq!(option(&c, "username"), Some("u"));
        assert_eq!(option(&c, "retries"), None, "own settings are not options");
        assert!(open(&request).is_ok());

        for bad in [
            "part_size_mib = 0",
            "part_size_mib = 9223372036854775807",
            "retries = -1",
        ] {
            let mut request = request.clone();
            request
                .config
                .extend(toml::from_str::<toml::Table>(bad).unwrap());
            let name = bad.split(' ').next().unwrap();
            let err = open(&request).unwrap_err();
            assert!(err.message.contains(name), "{bad}: {err}");
        }

        request.config.insert("service".into(), "nosuch".into());
        let err = open(&request).unwrap_err();
        assert!(err.message.contains("nosuch"), "{err}");
    }
}
