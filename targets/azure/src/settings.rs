//! The settings of a `kind = "azure"` target and how they become an object_store client.
//!
//! ```toml
//! [[target]]
//! name = "azure-offsite"
//! kind = "azure"
//! url = "az://backups/sstore"          # or container = "backups", prefix = "sstore"
//! account = "mystorageaccount"
//! account_key_env = "AZURE_KEY"        # or account_key_file, or sas_token_env / sas_token_file
//! endpoint = "https://mystorageaccount.blob.core.windows.net"   # Azure Stack, Azurite
//! use_emulator = false                 # Azurite with its development account
//! allow_http = false
//! access_tier = "Cool"                 # Hot | Cool | Cold | Archive
//! part_size_mib = 8                    # multipart part size (5 to 5120)
//! upload_concurrency = 4               # parts in flight
//! download_chunk_mib = 8               # the size of each ranged GET
//! download_concurrency = 12            # ranged GETs in flight
//! timeout_secs = 60                    # a stalled connection fails after this (1 to 3600)
//! retries = 3                          # the client's own retries of one request (0 to 10)
//! ```

use std::path::PathBuf;
use std::sync::Arc;

use object_store::azure::MicrosoftAzureBuilder;
use object_store::{Attribute, Attributes};
use serde::Deserialize;
use sstore_target_api::{OpenRequest, TargetError, secret};
use sstore_target_objstore::{DownloadSettings, ObjectStoreTarget, Tuning, client};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureSettings {
    pub container: Option<String>,
    pub prefix: Option<String>,
    pub account: Option<String>,
    pub account_key_env: Option<String>,
    pub account_key_file: Option<PathBuf>,
    pub sas_token_env: Option<String>,
    pub sas_token_file: Option<PathBuf>,
    pub endpoint: Option<String>,
    pub use_emulator: Option<bool>,
    pub allow_http: Option<bool>,
    pub access_tier: Option<String>,
    pub part_size_mib: Option<u64>,
    pub upload_concurrency: Option<usize>,
    pub download_chunk_mib: Option<u64>,
    pub download_concurrency: Option<usize>,
    /// A stalled connection (no answer, or no next bytes of one) fails after this many seconds.
    pub timeout_secs: Option<u64>,
    /// How many times the client retries one request itself before the engine sees the error.
    pub retries: Option<usize>,
}

/// Splits `az://container/prefix` (or `azure://`).
pub fn parse_url(url: &str) -> Option<(String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    if !matches!(scheme.to_ascii_lowercase().as_str(), "az" | "azure") {
        return None;
    }
    let (container, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    (!container.is_empty() && !container.contains('@'))
        .then(|| (container.to_owned(), prefix.trim_matches('/').to_owned()))
}

fn env_flag(name: &str) -> Option<bool> {
    std::env::var(name)
        .ok()
        .map(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
}

/// Opens the target a request describes.
pub fn open(request: &OpenRequest) -> Result<ObjectStoreTarget, TargetError> {
    let settings: AzureSettings = request.settings()?;
    let (container, prefix) = match (&request.url, &settings.container) {
        (Some(_), Some(_)) => {
            return Err(request.invalid("give either url or container, not both"));
        }
        (Some(url), None) => parse_url(url).ok_or_else(|| {
            request.invalid(format!(
                "'{url}' is not an Azure Blob URL; write az://container/prefix"
            ))
        })?,
        (None, Some(container)) => (
            container.clone(),
            settings.prefix.clone().unwrap_or_default(),
        ),
        (None, None) => {
            return Err(request
                .invalid("an azure target needs url = \"az://container/prefix\" or container"));
        }
    };
    if request.url.is_some() && settings.prefix.is_some() {
        return Err(request.invalid("the prefix is part of the url; remove `prefix`"));
    }

    let mut builder = MicrosoftAzureBuilder::from_env().with_container_name(&container);
    let emulator = settings
        .use_emulator
        .or_else(|| env_flag("AZURE_STORAGE_USE_EMULATOR"))
        .unwrap_or(false);
    if emulator {
        builder = builder.with_use_emulator(true);
    }
    if let Some(account) = &settings.account {
        builder = builder.with_account(account);
    }
    if let Some(endpoint) = &settings.endpoint {
        if emulator {
            return Err(request.invalid(
                "use_emulator takes Azurite's address from AZURITE_BLOB_STORAGE_URL; give either \
                 endpoint (with account and account_key_env) or use_emulator",
            ));
        }
        builder = builder.with_endpoint(endpoint.clone());
    }
    let key = secret::resolve(
        &request.name,
        "account_key",
        settings.account_key_env.as_deref(),
        settings.account_key_file.as_deref(),
    )?;
    let sas = secret::resolve(
        &request.name,
        "sas_token",
        settings.sas_token_env.as_deref(),
        settings.sas_token_file.as_deref(),
    )?;
    match (key, sas) {
        (Some(_), Some(_)) => {
            return Err(request.invalid("give either an account key or a SAS token, not both"));
        }
        (Some(key), None) => builder = builder.with_access_key(key.as_str()),
        (None, Some(sas)) => {
            let pairs = parse_sas(sas.trim_start_matches('?'));
            builder = builder.with_sas_authorization(pairs);
        }
        (None, None) => {}
    }
    let allow_http = settings.allow_http.unwrap_or(false) || emulator;
    let connection =
        client::Connection::from_settings(request, settings.timeout_secs, settings.retries)?;
    let store = builder
        .with_client_options(connection.client_options(allow_http))
        .with_retry(connection.retry_config())
        .build()
        .map_err(|e| {
            request.invalid(format!(
                "cannot configure the Azure client: {e} (set account and account_key_env or \
                 sas_token_env, or AZURE_STORAGE_ACCOUNT_NAME with AZURE_STORAGE_ACCOUNT_KEY or \
                 AZURE_STORAGE_SAS_TOKEN)"
            ))
        })?;

    let mut attributes = Attributes::new();
    if let Some(tier) = &settings.access_tier {
        if !matches!(tier.as_str(), "Hot" | "Cool" | "Cold" | "Archive") {
            return Err(request.invalid(format!(
                "access_tier '{tier}' is not one of Hot, Cool, Cold, Archive"
            )));
        }
        attributes.insert(Attribute::StorageClass, tier.clone().into());
    }
    let tuning = Tuning {
        part_size_mib: settings.part_size_mib,
        upload_concurrency: settings.upload_concurrency,
        download_chunk_mib: settings.download_chunk_mib,
        download_concurrency: settings.download_concurrency,
    };
    let (upload, download) = tuning.resolve(request, DownloadSettings::AZURE, attributes)?;
    Ok(
        ObjectStoreTarget::new(Arc::new(store), "az", "container", container, &prefix)
            .with_transfer(upload, download),
    )
}

/// A SAS token's query pairs (`sv=...&sig=...`), percent-decoded.
fn parse_sas(token: &str) -> Vec<(String, String)> {
    token
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| {
            (
                sstore_target_api::location::percent_decode(k),
                sstore_target_api::location::percent_decode(v),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_sas_tokens() {
        assert_eq!(
            parse_url("az://backups/a/b"),
            Some(("backups".into(), "a/b".into()))
        );
        assert_eq!(
            parse_url("azure://backups"),
            Some(("backups".into(), String::new()))
        );
        assert_eq!(parse_url("s3://b"), None);
        assert_eq!(
            parse_sas("sv=2021&sig=a%2Bb"),
            vec![("sv".into(), "2021".into()), ("sig".into(), "a+b".into())]
        );
    }

    #[test]
    fn conflicting_settings_are_refused() {
        let mut request = OpenRequest::for_url("az://c/p");
        request.config = toml::from_str("use_emulator = true\nendpoint = 'http://x'").unwrap();
        assert!(
            open(&request)
                .unwrap_err()
                .message
                .contains("AZURITE_BLOB_STORAGE_URL")
        );
        let mut request = OpenRequest::for_url("az://c/p");
        request.config = toml::from_str("access_tier = 'Lukewarm'").unwrap();
        // The tier is checked whatever the credentials.
        let err = open(&request).unwrap_err();
        assert!(
            err.message.contains("Lukewarm") || err.message.contains("cannot configure"),
            "{err}"
        );
    }
}
