//! The settings of a `kind = "s3"` target and how they become an object_store client.
//!
//! ```toml
//! [[target]]
//! name = "offsite"
//! kind = "s3"
//! url = "s3://my-bucket/sstore"        # or bucket = "my-bucket", prefix = "sstore"
//! region = "eu-west-1"
//! endpoint = "https://s3.example.net"  # S3-compatible stores
//! addressing = "path"                  # or "virtual-hosted"
//! allow_http = false                   # plain HTTP only when set
//! access_key_id = "AKIA..."
//! secret_access_key_env = "OFFSITE_SECRET"   # or secret_access_key_file
//! session_token_env = "OFFSITE_TOKEN"        # or session_token_file
//! profile = "backup"                   # a profile of the shared AWS files
//! storage_class = "STANDARD_IA"
//! server_side_encryption = "aws:kms"   # AES256 | aws:kms | aws:kms:dsse
//! sse_kms_key_id = "arn:aws:kms:..."
//! part_size_mib = 8                    # multipart part size (5 to 5120)
//! upload_concurrency = 4               # parts in flight
//! download_chunk_mib = 4               # the size of each ranged GET
//! download_concurrency = 12            # ranged GETs in flight
//! conditional_create = true            # false if the service does not enforce If-None-Match
//! timeout_secs = 60                    # a stalled connection fails after this (1 to 3600)
//! retries = 3                          # the client's own retries of one request (0 to 10)
//! ```

use std::path::PathBuf;
use std::sync::Arc;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::{Attribute, Attributes};
use serde::Deserialize;
use sstore_target_api::{OpenRequest, TargetError, secret};
use sstore_target_objstore::{DownloadSettings, ObjectStoreTarget, Tuning, client};

use crate::profile;

/// Path-style (`endpoint/bucket/key`) or virtual-hosted-style (`bucket.endpoint/key`) URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Addressing {
    Path,
    VirtualHosted,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Settings {
    pub bucket: Option<String>,
    pub prefix: Option<String>,
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub addressing: Option<Addressing>,
    pub allow_http: Option<bool>,
    pub access_key_id: Option<String>,
    pub secret_access_key_env: Option<String>,
    pub secret_access_key_file: Option<PathBuf>,
    pub session_token_env: Option<String>,
    pub session_token_file: Option<PathBuf>,
    pub profile: Option<String>,
    pub storage_class: Option<String>,
    pub server_side_encryption: Option<String>,
    pub sse_kms_key_id: Option<String>,
    pub part_size_mib: Option<u64>,
    pub upload_concurrency: Option<usize>,
    pub download_chunk_mib: Option<u64>,
    pub download_concurrency: Option<usize>,
    /// Whether the service enforces `If-None-Match: *` atomically (AWS S3, MinIO, R2 do).
    /// Set false for one that does not, so the lock and create-only puts are not trusted to it.
    pub conditional_create: Option<bool>,
    /// A stalled connection (no answer, or no next bytes of one) fails after this many seconds.
    pub timeout_secs: Option<u64>,
    /// How many times the client retries one request itself before the engine sees the error.
    pub retries: Option<usize>,
}

/// Splits `s3://bucket/prefix` (or `s3a://`).
pub fn parse_url(url: &str) -> Option<(String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    if !matches!(scheme.to_ascii_lowercase().as_str(), "s3" | "s3a") {
        return None;
    }
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    (!bucket.is_empty()).then(|| (bucket.to_owned(), prefix.trim_matches('/').to_owned()))
}

fn env_flag(name: &str) -> Option<bool> {
    std::env::var(name)
        .ok()
        .map(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
}

/// Opens the target a request describes.
pub fn open(request: &OpenRequest) -> Result<ObjectStoreTarget, TargetError> {
    let settings: S3Settings = request.settings()?;
    let (bucket, prefix) = match (&request.url, &settings.bucket) {
        (Some(_), Some(_)) => return Err(request.invalid("give either url or bucket, not both")),
        (Some(url), None) => parse_url(url).ok_or_else(|| {
            request.invalid(format!(
                "'{url}' is not an S3 URL; write s3://bucket/prefix"
            ))
        })?,
        (None, Some(bucket)) => (bucket.clone(), settings.prefix.clone().unwrap_or_default()),
        (None, None) => {
            return Err(
                request.invalid("an s3 target needs url = \"s3://bucket/prefix\" or bucket")
            );
        }
    };
    if request.url.is_some() && settings.prefix.is_some() {
        return Err(request.invalid("the prefix is part of the url; remove `prefix`"));
    }

    // The standard AWS environment first; explicit settings override it.
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(&bucket);
    let env_has_keys = std::env::var_os("AWS_ACCESS_KEY_ID").is_some();
    let configured_profile = settings.profile.is_some();
    let profile = profile::load(&profile::profile_name(settings.profile.as_deref()));

    let region = settings
        .region
        .clone()
        .or_else(|| std::env::var("AWS_REGION").ok())
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
        .or_else(|| profile.region.clone())
        .unwrap_or_else(|| "us-east-1".to_owned());
    builder = builder.with_region(&region);
    let endpoint = settings.endpoint.clone().or_else(|| {
        (std::env::var_os("AWS_ENDPOINT_URL").is_none()
            && std::env::var_os("AWS_ENDPOINT").is_none())
        .then(|| profile.endpoint_url.clone())
        .flatten()
    });
    if let Some(endpoint) = &endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    if let Some(addressing) = settings.addressing {
        builder =
            builder.with_virtual_hosted_style_request(addressing == Addressing::VirtualHosted);
    }
    let allow_http = settings
        .allow_http
        .or_else(|| env_flag("AWS_ALLOW_HTTP"))
        .unwrap_or(false);

    let secret = secret::resolve(
        &request.name,
        "secret_access_key",
        settings.secret_access_key_env.as_deref(),
        settings.secret_access_key_file.as_deref(),
    )?;
    let token = secret::resolve(
        &request.name,
        "session_token",
        settings.session_token_env.as_deref(),
        settings.session_token_file.as_deref(),
    )?;
    match (&settings.access_key_id, &secret) {
        (Some(id), Some(secret)) => {
            builder = builder
                .with_access_key_id(id)
                .with_secret_access_key(secret.as_str());
            if let Some(token) = &token {
                builder = builder.with_token(token.as_str());
            }
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(request
                .invalid("access_key_id and secret_access_key_env/_file go together; give both"));
        }
        (None, None) if configured_profile || !env_has_keys => {
            if let (Some(id), Some(secret)) = (&profile.access_key_id, &profile.secret_access_key) {
                builder = builder
                    .with_access_key_id(id)
                    .with_secret_access_key(secret.expose());
                if let Some(token) = &profile.session_token {
                    builder = builder.with_token(token.expose());
                }
            } else if configured_profile {
                return Err(request.invalid(format!(
                    "profile '{}' has no aws_access_key_id / aws_secret_access_key in the shared \
                     AWS files",
                    profile::profile_name(settings.profile.as_deref())
                )));
            }
        }
        (None, None) => {}
    }
    if let Some(sse) = &settings.server_side_encryption {
        if !matches!(sse.as_str(), "AES256" | "aws:kms" | "aws:kms:dsse") {
            return Err(request.invalid(format!(
                "server_side_encryption '{sse}' is not one of AES256, aws:kms, aws:kms:dsse"
            )));
        }
        builder = builder.with_config(config_key("aws_server_side_encryption")?, sse);
    }
    if let Some(kms) = &settings.sse_kms_key_id {
        builder = builder.with_config(config_key("aws_sse_kms_key_id")?, kms);
    }

    let connection =
        client::Connection::from_settings(request, settings.timeout_secs, settings.retries)?;
    let store = builder
        .with_client_options(connection.client_options(allow_http))
        .with_retry(connection.retry_config())
        .build()
        .map_err(|e| {
            let text = e.to_string();
            let hint = if text.contains("http") && !allow_http {
                " (a plain-HTTP endpoint needs allow_http = true or AWS_ALLOW_HTTP=true)"
            } else {
                ""
            };
            request.invalid(format!("cannot configure the S3 client: {text}{hint}"))
        })?;

    let mut attributes = Attributes::new();
    if let Some(class) = &settings.storage_class {
        attributes.insert(Attribute::StorageClass, class.clone().into());
    }
    let tuning = Tuning {
        part_size_mib: settings.part_size_mib,
        upload_concurrency: settings.upload_concurrency,
        download_chunk_mib: settings.download_chunk_mib,
        download_concurrency: settings.download_concurrency,
    };
    let (upload, download) = tuning.resolve(request, DownloadSettings::S3, attributes)?;
    Ok(
        ObjectStoreTarget::new(Arc::new(store), "s3", "bucket", bucket, &prefix)
            .with_transfer(upload, download)
            .with_conditional_create(settings.conditional_create.unwrap_or(true)),
    )
}

fn config_key(name: &str) -> Result<AmazonS3ConfigKey, TargetError> {
    name.parse().map_err(|e: object_store::Error| {
        TargetError::new(
            sstore_target_api::TargetErrorKind::InvalidConfig,
            "s3",
            None,
            e.to_string(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("s3://bucket/a/b/"),
            Some(("bucket".into(), "a/b".into()))
        );
        assert_eq!(
            parse_url("S3A://bucket"),
            Some(("bucket".into(), String::new()))
        );
        assert_eq!(parse_url("s3:///x"), None);
        assert_eq!(parse_url("az://c/p"), None);
    }

    #[test]
    fn bad_settings_are_named() {
        let mut request = OpenRequest::for_url("s3://b/p");
        request.config = toml::from_str("prefix = 'x'").unwrap();
        let err = open(&request).unwrap_err();
        assert!(err.message.contains("prefix"), "{err}");

        let mut request = OpenRequest::for_url("s3://b/p");
        request.config = toml::from_str("access_key_id = 'AK'").unwrap();
        let err = open(&request).unwrap_err();
        assert!(err.message.contains("go together"), "{err}");

        let mut request = OpenRequest::for_url("s3://b/p");
        request.config = toml::from_str("server_side_encryption = 'rot13'").unwrap();
        assert!(open(&request).unwrap_err().message.contains("rot13"));

        let mut request = OpenRequest::for_url("s3://b/p");
        request.config =
            toml::from_str("endpoint = 'http://127.0.0.1:1'\nallow_http = false").unwrap();
        // object_store refuses plain HTTP only when a request is made; the target opens.
        assert!(open(&request).is_ok());
    }
}
