//! The shared AWS files: `~/.aws/credentials` and `~/.aws/config` (or `AWS_SHARED_CREDENTIALS_FILE`
//! and `AWS_CONFIG_FILE`), read for one profile (`profile` setting, `AWS_PROFILE`, or
//! `default`). Static keys, the session token, the region and `endpoint_url` are used; other
//! credential sources in a profile (SSO, `credential_process`, role chains) are not.

use std::collections::BTreeMap;
use std::path::PathBuf;

use zeroize::Zeroizing;

/// What a profile gives.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Profile {
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    pub session_token: Option<Secret>,
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
}

/// A secret from the files: wiped on drop, never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub Zeroizing<String>);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(Zeroizing::new(value.into()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The sections of an INI file: `name -> key -> value` (keys lower-case).
fn parse_ini(text: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut sections: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = Some(name.trim().to_owned());
            continue;
        }
        if let (Some(section), Some((key, value))) = (&current, line.split_once('=')) {
            sections
                .entry(section.clone())
                .or_default()
                .insert(key.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    sections
}

fn home_file(env: &str, relative: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env) {
        return Some(PathBuf::from(path));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(relative))
}

/// The profile to use: the setting, else `AWS_PROFILE`, else `default`.
pub fn profile_name(setting: Option<&str>) -> String {
    setting
        .map(str::to_owned)
        .or_else(|| std::env::var("AWS_PROFILE").ok().filter(|p| !p.is_empty()))
        .unwrap_or_else(|| "default".to_owned())
}

/// Reads profile `name` from the credentials and config texts (the config file names
/// profiles `[profile NAME]`, except `[default]`).
pub fn from_texts(name: &str, credentials: &str, config: &str) -> Profile {
    let credentials = parse_ini(credentials);
    let config = parse_ini(config);
    let config_section = if name == "default" {
        config.get("default")
    } else {
        config.get(&format!("profile {name}"))
    };
    let empty = BTreeMap::new();
    let cred = credentials.get(name).unwrap_or(&empty);
    let conf = config_section.unwrap_or(&empty);
    let get = |key: &str| cred.get(key).or_else(|| conf.get(key)).cloned();
    Profile {
        access_key_id: get("aws_access_key_id"),
        secret_access_key: get("aws_secret_access_key").map(Secret::new),
        session_token: get("aws_session_token").map(Secret::new),
        region: conf.get("region").cloned(),
        endpoint_url: conf.get("endpoint_url").cloned(),
    }
}

/// Reads profile `name` from the user's shared AWS files (missing files give an empty profile).
pub fn load(name: &str) -> Profile {
    let read = |path: Option<PathBuf>| {
        path.and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    };
    from_texts(
        name,
        &read(home_file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials")),
        &read(home_file("AWS_CONFIG_FILE", ".aws/config")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_from_both_files() {
        let credentials = "[default]\naws_access_key_id = AKDEF\naws_secret_access_key = sdef\n\
                           [backup]\naws_access_key_id=AKB\naws_secret_access_key=sb\naws_session_token=tok\n";
        let config = "[default]\nregion = eu-west-1\n[profile backup]\nregion = us-east-2\n\
                      endpoint_url = http://127.0.0.1:9000\n";
        let p = from_texts("backup", credentials, config);
        assert_eq!(p.access_key_id.as_deref(), Some("AKB"));
        assert_eq!(p.secret_access_key, Some(Secret::new("sb")));
        assert_eq!(p.session_token, Some(Secret::new("tok")));
        assert_eq!(p.region.as_deref(), Some("us-east-2"));
        assert_eq!(p.endpoint_url.as_deref(), Some("http://127.0.0.1:9000"));
        let d = from_texts("default", credentials, config);
        assert_eq!(d.region.as_deref(), Some("eu-west-1"));
        assert!(!format!("{d:?}").contains("sdef"));
        assert_eq!(from_texts("none", credentials, config), Profile::default());
    }
}
