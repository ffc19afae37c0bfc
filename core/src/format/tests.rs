//! Round trips and every kind of damage the format must detect, on real bytes.

use std::io::{Read, Write};

use super::*;
use crate::kdf::KdfParams;
use crate::secret::Passphrase;

const CHUNK: usize = MIN_CHUNK_SIZE as usize;

fn pass() -> Passphrase {
    Passphrase::new("Correct-Horse-9")
}

fn options(compression: Compression) -> StreamOptions {
    StreamOptions {
        kdf: KdfParams::MINIMUM,
        chunk_size: MIN_CHUNK_SIZE,
        compression,
        backup_id: [9; 16],
    }
}

/// Deterministic, incompressible-looking bytes.
fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn encrypt(data: &[u8], compression: Compression) -> Vec<u8> {
    let mut w = PayloadWriter::new(Vec::new(), &pass(), &options(compression)).unwrap();
    w.write_all(data).unwrap();
    w.finish().unwrap()
}

fn decrypt(sealed: &[u8], passphrase: &Passphrase) -> Result<Vec<u8>, FormatError> {
    let mut r = PayloadReader::open(sealed, passphrase)?;
    let mut out = Vec::new();
    r.copy_to(&mut out)?;
    Ok(out)
}

fn sealed_len(plain: usize) -> usize {
    let chunks = plain.div_ceil(CHUNK).max(1);
    HEADER_LEN + plain + chunks * 16
}

#[test]
fn round_trips_at_every_chunk_edge() {
    for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 5] {
        for compression in [Compression::None, Compression::Zstd] {
            let data = payload(len, len as u64);
            let sealed = encrypt(&data, compression);
            if compression == Compression::None {
                assert_eq!(sealed.len(), sealed_len(len), "length for {len}");
            }
            assert_eq!(
                decrypt(&sealed, &pass()).unwrap(),
                data,
                "len {len} {compression:?}"
            );
        }
    }
}

#[test]
fn compression_shrinks_repetitive_payloads() {
    let data = b"field=value;".repeat(10_000);
    let sealed = encrypt(&data, Compression::Zstd);
    assert!(sealed.len() < data.len() / 10, "{} bytes", sealed.len());
    assert_eq!(decrypt(&sealed, &pass()).unwrap(), data);
}

#[test]
fn wrong_passphrase_is_reported_as_such() {
    let sealed = encrypt(b"secret", Compression::None);
    let err = decrypt(&sealed, &Passphrase::new("Wrong-Horse-9")).unwrap_err();
    assert!(matches!(err, FormatError::WrongPassphrase), "{err}");
}

#[test]
fn not_a_backup_and_unsupported_version() {
    let err = decrypt(b"SQLite format 3\0 and more bytes", &pass()).unwrap_err();
    assert!(matches!(err, FormatError::NotSstoreBackup), "{err}");
    let mut sealed = encrypt(b"x", Compression::None);
    sealed[9] = 3;
    let err = decrypt(&sealed, &pass()).unwrap_err();
    assert!(
        matches!(
            err,
            FormatError::UnsupportedVersion {
                found: 3,
                supported: 2
            }
        ),
        "{err}"
    );
}

#[test]
fn every_header_bit_flip_is_refused() {
    let sealed = encrypt(&payload(2 * CHUNK, 1), Compression::None);
    for byte in 0..HEADER_LEN {
        for bit in [0, 7] {
            let mut damaged = sealed.clone();
            damaged[byte] ^= 1 << bit;
            let err = decrypt(&damaged, &pass())
                .expect_err(&format!("flip of byte {byte} bit {bit} was accepted"));
            // Version 2, one passphrase slot: fixed fields 0..48, slot count 48, slot type and
            // length 49..52, Argon2id parameters 52..64, salt 64..80, wrapped key 80..128,
            // header MAC 128..160.
            match byte {
                0..=7 => assert!(matches!(err, FormatError::NotSstoreBackup), "{byte}: {err}"),
                8..=9 => assert!(
                    matches!(err, FormatError::UnsupportedVersion { .. }),
                    "{byte}: {err}"
                ),
                10..=47 => assert!(
                    matches!(
                        err,
                        FormatError::WrongPassphrase | FormatError::InvalidHeader(_)
                    ),
                    "byte {byte}: {err}"
                ),
                48..=51 => assert!(
                    matches!(err, FormatError::InvalidHeader(_)),
                    "byte {byte}: {err}"
                ),
                52..=63 => assert!(
                    matches!(err, FormatError::WrongPassphrase | FormatError::Kdf(_)),
                    "byte {byte}: {err}"
                ),
                64..=127 => assert!(
                    matches!(err, FormatError::WrongPassphrase),
                    "byte {byte}: {err}"
                ),
                _ => assert!(
                    matches!(err, FormatError::HeaderAltered),
                    "byte {byte}: {err}"
                ),
            }
        }
    }
}

#[test]
fn flipped_bit_in_a_chunk_names_the_chunk() {
    let sealed = encrypt(&payload(3 * CHUNK, 2), Compression::None);
    let offset = HEADER_LEN + (CHUNK + 16) + 100;
    let mut damaged = sealed.clone();
    damaged[offset] ^= 0x10;
    let err = decrypt(&damaged, &pass()).unwrap_err();
    assert!(
        matches!(err, FormatError::CorruptedChunk { index: 1, offset } if offset == (HEADER_LEN + CHUNK + 16) as u64),
        "{err}"
    );
}

#[test]
fn truncation_at_a_chunk_boundary() {
    let sealed = encrypt(&payload(3 * CHUNK + 10, 3), Compression::None);
    let cut = HEADER_LEN + 2 * (CHUNK + 16);
    let err = decrypt(&sealed[..cut], &pass()).unwrap_err();
    assert!(
        matches!(err, FormatError::Truncated { offset } if offset == cut as u64),
        "{err}"
    );
    let err = decrypt(&sealed[..HEADER_LEN], &pass()).unwrap_err();
    assert!(matches!(err, FormatError::Truncated { .. }), "{err}");
    let err = decrypt(&sealed[..HEADER_LEN - 5], &pass()).unwrap_err();
    assert!(matches!(err, FormatError::Truncated { .. }), "{err}");
}

#[test]
fn truncation_mid_chunk_with_and_without_the_expected_length() {
    let sealed = encrypt(&payload(3 * CHUNK + 10, 4), Compression::None);
    let cut = HEADER_LEN + CHUNK + 16 + 500;
    // The stream alone cannot tell a cut inside a chunk from corruption ...
    let err = decrypt(&sealed[..cut], &pass()).unwrap_err();
    assert!(
        matches!(err, FormatError::CorruptedChunk { index: 1, .. }),
        "{err}"
    );
    // ... with the length recorded in the manifest it says exactly what happened.
    let reader = ExpectedLength::new(&sealed[..cut], sealed.len() as u64);
    let mut r = PayloadReader::open(reader, &pass()).unwrap();
    let err = r.copy_to(&mut Vec::new()).unwrap_err();
    assert!(
        matches!(err, FormatError::Truncated { offset } if offset == cut as u64),
        "{err}"
    );
}

#[test]
fn swapped_chunks_are_refused() {
    let sealed = encrypt(&payload(3 * CHUNK + 10, 5), Compression::None);
    let c = CHUNK + 16;
    let mut damaged = sealed.clone();
    let (a, b) = (HEADER_LEN, HEADER_LEN + c);
    let first: Vec<u8> = damaged[a..a + c].to_vec();
    damaged.copy_within(b..b + c, a);
    damaged[b..b + c].copy_from_slice(&first);
    let err = decrypt(&damaged, &pass()).unwrap_err();
    assert!(
        matches!(err, FormatError::CorruptedChunk { index: 0, .. }),
        "{err}"
    );
}

#[test]
fn appended_bytes_are_trailing_data() {
    // Final chunk full-size: the stream alone detects the extra bytes.
    let mut sealed = encrypt(&payload(2 * CHUNK, 6), Compression::None);
    let len = sealed.len() as u64;
    sealed.extend_from_slice(b"extra");
    let err = decrypt(&sealed, &pass()).unwrap_err();
    assert!(
        matches!(err, FormatError::TrailingData { offset } if offset == len),
        "{err}"
    );
    // Short final chunk: the expected length catches it.
    let mut sealed = encrypt(&payload(2 * CHUNK + 7, 6), Compression::None);
    let len = sealed.len() as u64;
    sealed.extend_from_slice(b"extra");
    let mut r = PayloadReader::open(ExpectedLength::new(&sealed[..], len), &pass()).unwrap();
    let err = r.copy_to(&mut Vec::new()).unwrap_err();
    assert!(
        matches!(err, FormatError::TrailingData { offset } if offset == len),
        "{err}"
    );
}

#[test]
fn a_chunk_from_another_backup_with_the_same_passphrase_is_refused() {
    let one = encrypt(&payload(3 * CHUNK, 7), Compression::None);
    let two = encrypt(&payload(3 * CHUNK, 8), Compression::None);
    let c = CHUNK + 16;
    let mut spliced = one.clone();
    spliced[HEADER_LEN + c..HEADER_LEN + 2 * c]
        .copy_from_slice(&two[HEADER_LEN + c..HEADER_LEN + 2 * c]);
    let err = decrypt(&spliced, &pass()).unwrap_err();
    assert!(
        matches!(err, FormatError::CorruptedChunk { index: 1, .. }),
        "{err}"
    );
}

#[test]
fn reader_memory_is_bounded_by_the_chunk_size() {
    // A reader handed an unbounded stream keeps only one chunk: read a 64-chunk stream through
    // a 7-byte buffer and check it never needs more than the chunk it holds.
    let data = payload(64 * CHUNK + 3, 9);
    let sealed = encrypt(&data, Compression::None);
    let mut r = StreamReader::open(&sealed[..], &pass()).unwrap();
    let mut out = Vec::new();
    let mut small = [0u8; 7];
    loop {
        let n = r.read(&mut small).unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&small[..n]);
    }
    assert_eq!(out, data);
    assert!(r.buf.capacity() <= CHUNK + 17);
}

#[test]
fn excessive_kdf_parameters_are_refused_before_deriving() {
    let mut sealed = encrypt(b"x", Compression::None);
    // the passphrase slot's memory_kib lives at bytes 52..56
    sealed[52..56].copy_from_slice(&u32::MAX.to_be_bytes());
    let err = decrypt(&sealed, &pass()).unwrap_err();
    assert!(
        matches!(
            err,
            FormatError::Kdf(crate::kdf::KdfError::TooCostly { .. })
        ),
        "{err}"
    );
}
