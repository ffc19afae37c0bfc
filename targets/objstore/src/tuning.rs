//! The transfer settings the `s3` and `azure` kinds share, checked and turned into
//! [`UploadSettings`] and [`DownloadSettings`]:
//!
//! ```toml
//! part_size_mib = 8           # multipart part / block size (5 to 5120; raised to fit 10,000 parts)
//! upload_concurrency = 4      # parts in flight (1 to 64)
//! download_chunk_mib = 4      # the size of each ranged GET (1 to 1024)
//! download_concurrency = 12   # ranged GETs in flight (1 to 64)
//! ```

use object_store::Attributes;
use sstore_target_api::{OpenRequest, TargetError};

use crate::download::DownloadSettings;
use crate::upload::{DEFAULT_CONCURRENCY, DEFAULT_PART_SIZE, MIN_PART_SIZE, UploadSettings};

const MIB: u64 = 1024 * 1024;
/// The largest part S3 accepts (5 GiB); Azure's largest block is 4000 MiB, beyond any sane
/// part size for a backup.
const MAX_PART_MIB: u64 = 5 * 1024;
const MAX_CONCURRENCY: usize = 64;
const MAX_CHUNK_MIB: u64 = 1024;

/// The transfer settings as written in a `[[target]]` table (all optional).
#[derive(Debug, Default, Clone, Copy)]
pub struct Tuning {
    pub part_size_mib: Option<u64>,
    pub upload_concurrency: Option<usize>,
    pub download_chunk_mib: Option<u64>,
    pub download_concurrency: Option<usize>,
}

impl Tuning {
    /// Checks every setting against its range (naming the one that is off) and fills in the
    /// defaults: the kind's `download` defaults, and [`UploadSettings`]'s for uploads.
    pub fn resolve(
        &self,
        request: &OpenRequest,
        download: DownloadSettings,
        attributes: Attributes,
    ) -> Result<(UploadSettings, DownloadSettings), TargetError> {
        let part_mib = within(
            request,
            "part_size_mib",
            self.part_size_mib,
            MIN_PART_SIZE / MIB,
            MAX_PART_MIB,
        )?;
        let upload_concurrency = within(
            request,
            "upload_concurrency",
            self.upload_concurrency,
            1,
            MAX_CONCURRENCY,
        )?;
        let chunk_mib = within(
            request,
            "download_chunk_mib",
            self.download_chunk_mib,
            1,
            MAX_CHUNK_MIB,
        )?;
        let download_concurrency = within(
            request,
            "download_concurrency",
            self.download_concurrency,
            1,
            MAX_CONCURRENCY,
        )?;
        let upload = UploadSettings {
            part_size: part_mib.map_or(DEFAULT_PART_SIZE, |m| m * MIB),
            concurrency: upload_concurrency.unwrap_or(DEFAULT_CONCURRENCY),
            attributes,
        };
        let download = DownloadSettings {
            chunk_size: chunk_mib.map_or(download.chunk_size, |m| m * MIB),
            concurrency: download_concurrency.unwrap_or(download.concurrency),
        };
        Ok((upload, download))
    }
}

/// `value` if it lies in `min..=max`, else an error naming the setting.
fn within<T: PartialOrd + std::fmt::Display + Copy>(
    request: &OpenRequest,
    name: &str,
    value: Option<T>,
    min: T,
    max: T,
) -> Result<Option<T>, TargetError> {
    match value {
        Some(v) if v < min || v > max => Err(request.invalid(format!(
            "{name} = {v} is out of range: give a value from {min} to {max}"
        ))),
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> OpenRequest {
        OpenRequest::for_url("s3://b/p")
    }

    #[test]
    fn defaults_and_settings() {
        let (up, down) = Tuning::default()
            .resolve(&request(), DownloadSettings::S3, Attributes::new())
            .unwrap();
        assert_eq!(up.part_size, DEFAULT_PART_SIZE);
        assert_eq!(up.concurrency, DEFAULT_CONCURRENCY);
        assert_eq!(down, DownloadSettings::S3);

        let tuning = Tuning {
            part_size_mib: Some(16),
            upload_concurrency: Some(2),
            download_chunk_mib: Some(32),
            download_concurrency: Some(3),
        };
        let (up, down) = tuning
            .resolve(&request(), DownloadSettings::AZURE, Attributes::new())
            .unwrap();
        assert_eq!((up.part_size, up.concurrency), (16 * MIB, 2));
        assert_eq!((down.chunk_size, down.concurrency), (32 * MIB, 3));
    }

    #[test]
    fn out_of_range_settings_are_named() {
        for (tuning, name) in [
            (
                Tuning {
                    part_size_mib: Some(4),
                    ..Tuning::default()
                },
                "part_size_mib = 4",
            ),
            (
                Tuning {
                    // Would overflow as bytes if it were not refused.
                    part_size_mib: Some(u64::MAX),
                    ..Tuning::default()
                },
                "part_size_mib",
            ),
            (
                Tuning {
                    upload_concurrency: Some(0),
                    ..Tuning::default()
                },
                "upload_concurrency = 0",
            ),
            (
                Tuning {
                    download_chunk_mib: Some(0),
                    ..Tuning::default()
                },
                "download_chunk_mib = 0",
            ),
            (
                Tuning {
                    download_concurrency: Some(1000),
                    ..Tuning::default()
                },
                "download_concurrency = 1000",
            ),
        ] {
            let err = tuning
                .resolve(&request(), DownloadSettings::S3, Attributes::new())
                .unwrap_err();
            assert!(err.message.contains(name), "{err}");
        }
    }
}
