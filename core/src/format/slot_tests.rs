//! Key slots (format version 2) and version-1 compatibility, with real crypto on real bytes.

use std::io::Write;

use sha2::{Digest, Sha256};

use super::*;
use crate::kdf::KdfParams;
use crate::recipient::{Identity, Recipient};
use crate::secret::Passphrase;

fn pass() -> Passphrase {
    Passphrase::new("Correct-Horse-9")
}

fn options() -> StreamOptions {
    StreamOptions {
        kdf: KdfParams::MINIMUM,
        chunk_size: MIN_CHUNK_SIZE,
        compression: Compression::Zstd,
        backup_id: [7; 16],
    }
}

fn plaintext() -> Vec<u8> {
    let mut data = b"slot test payload; ".repeat(500);
    data.extend((0..3 * MIN_CHUNK_SIZE).map(|i| (i * 7 % 251) as u8));
    data
}

fn write<'k>(recipients: impl Into<Recipients<'k>>, data: &[u8]) -> Vec<u8> {
    let mut w = PayloadWriter::new(Vec::new(), recipients, &options()).unwrap();
    w.write_all(data).unwrap();
    w.finish().unwrap()
}

fn read<'k>(sealed: &[u8], keys: impl Into<Keys<'k>>) -> Result<Vec<u8>, FormatError> {
    let mut r = PayloadReader::open(sealed, keys)?;
    let mut out = Vec::new();
    r.copy_to(&mut out)?;
    Ok(out)
}

/// A backup with a passphrase slot and two recipient slots, and the two identities.
struct Three {
    sealed: Vec<u8>,
    ids: [Identity; 2],
}

fn three() -> Three {
    let ids = [Identity::generate(), Identity::generate()];
    let recipients = [ids[0].recipient(), ids[1].recipient()];
    let p = pass();
    let sealed = write(Recipients::new(Some(&p), &recipients), &plaintext());
    Three { sealed, ids }
}

/// Byte ranges of each slot of a version-2 header, and the header's length.
fn slot_ranges(sealed: &[u8]) -> (Vec<std::ops::Range<usize>>, usize) {
    let count = usize::from(sealed[48]);
    let mut at = 49;
    let mut ranges = Vec::new();
    for _ in 0..count {
        let len = usize::from(u16::from_be_bytes([sealed[at + 1], sealed[at + 2]]));
        ranges.push(at..at + 3 + len);
        at += 3 + len;
    }
    (ranges, at + 32)
}

/// `sealed` with its slots replaced by `slots` (count adjusted), the rest kept.
fn with_slots(sealed: &[u8], slots: &[&[u8]]) -> Vec<u8> {
    let (ranges, _) = slot_ranges(sealed);
    let end = ranges.last().unwrap().end;
    let mut out = sealed[..48].to_vec();
    out.push(u8::try_from(slots.len()).unwrap());
    for slot in slots {
        out.extend_from_slice(slot);
    }
    out.extend_from_slice(&sealed[end..]);
    out
}

fn wrong_key_message() -> String {
    FormatError::WrongPassphrase.to_string()
}

#[test]
fn round_trips_with_a_passphrase_one_recipient_and_several() {
    let data = plaintext();
    // Passphrase only.
    let sealed = write(&pass(), &data);
    assert_eq!(read(&sealed, &pass()).unwrap(), data);
    assert_eq!(&sealed[8..10], &[0, 2], "new backups are version 2");
    // One recipient only.
    let id = Identity::generate();
    let sealed = write(Recipients::new(None, &[id.recipient()]), &data);
    assert_eq!(
        read(&sealed, Keys::identities(std::slice::from_ref(&id))).unwrap(),
        data
    );
    // Two recipients and a passphrase: each key alone opens it.
    let t = three();
    assert_eq!(read(&t.sealed, &pass()).unwrap(), data);
    for id in &t.ids {
        assert_eq!(
            read(&t.sealed, Keys::identities(std::slice::from_ref(id))).unwrap(),
            data
        );
    }
    // Several identities, some unrelated, and a wrong passphrase beside a right identity.
    let other = Identity::generate();
    let wrong = Passphrase::new("Wrong-Horse-9");
    let ids = [other, t.ids[1].clone()];
    assert_eq!(
        read(&t.sealed, Keys::new(Some(&wrong), &ids)).unwrap(),
        data
    );
}

#[test]
fn the_header_describes_its_slots() {
    let t = three();
    let r = PayloadReader::open(&t.sealed[..], &pass()).unwrap();
    let header = r.header();
    let texts: Vec<String> = header.slots().iter().map(ToString::to_string).collect();
    assert_eq!(
        texts,
        [
            "passphrase".to_owned(),
            t.ids[0].recipient().to_string(),
            t.ids[1].recipient().to_string()
        ]
    );
    assert_eq!(header.passphrase_kdf(), Some(KdfParams::MINIMUM));
    assert_eq!(header.kdf, KdfParams::MINIMUM);
    assert_eq!(header.opens_with(), "a passphrase, 2 recipients");
    assert_eq!(header.encoded_len(), slot_ranges(&t.sealed).1);
    assert_eq!(header.version, 2);
    assert_eq!(header.backup_id, [7; 16]);
    assert_eq!(Header::decode(&t.sealed).unwrap(), *header);

    // Recipient only: no KDF parameters, and a passphrase gets the wrong-key error at once.
    let id = Identity::generate();
    let sealed = write(Recipients::new(None, &[id.recipient()]), b"x");
    let header = Header::decode(&sealed).unwrap();
    assert_eq!(header.passphrase_kdf(), None);
    assert_eq!(header.opens_with(), "1 recipient");
    assert_eq!(header.recipients(), [id.recipient()]);
    let err = read(&sealed, &pass()).unwrap_err();
    assert!(matches!(err, FormatError::WrongPassphrase), "{err}");

    // Passphrase only: what `sstore backup` writes today is HEADER_LEN long.
    let sealed = write(&pass(), b"x");
    assert_eq!(Header::decode(&sealed).unwrap().encoded_len(), HEADER_LEN);
}

#[test]
fn every_wrong_or_missing_key_gives_the_same_error() {
    let t = three();
    let stranger = [Identity::generate()];
    let wrong = Passphrase::new("Wrong-Horse-9");
    let errors = [
        read(&t.sealed, Keys::identities(&stranger)).unwrap_err(),
        read(&t.sealed, &wrong).unwrap_err(),
        read(&t.sealed, Keys::default()).unwrap_err(),
        read(&t.sealed, Keys::new(Some(&wrong), &stranger)).unwrap_err(),
    ];
    for err in &errors {
        assert!(matches!(err, FormatError::WrongPassphrase), "{err}");
        assert_eq!(err.to_string(), wrong_key_message());
        assert!(err.to_string().starts_with("wrong passphrase or identity"));
        assert!(!err.is_damage());
    }
    // The same for a recipient-only backup and for a version-1 stream.
    let id = Identity::generate();
    let sealed = write(Recipients::new(None, &[id.recipient()]), b"x");
    for keys in [
        Keys::identities(&stranger),
        Keys::passphrase(&wrong),
        Keys::default(),
    ] {
        assert!(matches!(
            read(&sealed, keys),
            Err(FormatError::WrongPassphrase)
        ));
        assert!(matches!(
            read(V1_STREAM, keys),
            Err(FormatError::WrongPassphrase)
        ));
    }
}

#[test]
fn every_byte_of_every_slot_is_bound() {
    let t = three();
    let (ranges, header_len) = slot_ranges(&t.sealed);
    assert_eq!(ranges.len(), 3);
    let id0 = std::slice::from_ref(&t.ids[0]);
    for (slot, range) in ranges.iter().enumerate() {
        for byte in range.clone() {
            let mut damaged = t.sealed.clone();
            damaged[byte] ^= 0x01;
            // Opened with the first recipient's identity (slot index 1).
            let err = read(&damaged, Keys::identities(id0))
                .expect_err(&format!("flip of slot {slot} byte {byte} was accepted"));
            let offset = byte - range.start;
            match (slot, offset) {
                // Slot type and length.
                (_, 0..=2) => assert!(
                    matches!(err, FormatError::InvalidHeader(_)),
                    "{byte}: {err}"
                ),
                // The slot this key opens: its recipient no longer matches, or the wrap fails.
                (1, _) => assert!(
                    matches!(
                        err,
                        FormatError::WrongPassphrase | FormatError::InvalidHeader(_)
                    ),
                    "{byte}: {err}"
                ),
                // Another slot: the data key opens, the header MAC does not match.
                (0, 3..=14) => assert!(
                    matches!(err, FormatError::HeaderAltered | FormatError::Kdf(_)),
                    "{byte}: {err}"
                ),
                _ => assert!(matches!(err, FormatError::HeaderAltered), "{byte}: {err}"),
            }
        }
    }
    // The MAC itself.
    for byte in header_len - 32..header_len {
        let mut damaged = t.sealed.clone();
        damaged[byte] ^= 0x80;
        let err = read(&damaged, Keys::identities(id0)).unwrap_err();
        assert!(matches!(err, FormatError::HeaderAltered), "{byte}: {err}");
    }
}

#[test]
fn a_flipped_passphrase_slot_byte_fails_with_the_passphrase() {
    let t = three();
    let (ranges, _) = slot_ranges(&t.sealed);
    // The salt and the wrapped key of the passphrase slot (its parameters are covered by the
    // header-flip test of a passphrase-only backup).
    for byte in ranges[0].start + 15..ranges[0].end {
        let mut damaged = t.sealed.clone();
        damaged[byte] ^= 0x40;
        let err = read(&damaged, &pass()).unwrap_err();
        assert!(matches!(err, FormatError::WrongPassphrase), "{byte}: {err}");
        // ... while an identity still opens the data key, and the header MAC catches it.
        let err = read(&damaged, Keys::identities(std::slice::from_ref(&t.ids[1]))).unwrap_err();
        assert!(matches!(err, FormatError::HeaderAltered), "{byte}: {err}");
    }
}

#[test]
fn removed_duplicated_and_swapped_slots_are_refused() {
    let t = three();
    let (r, _) = slot_ranges(&t.sealed);
    let s = |i: usize| &t.sealed[r[i].clone()];
    let id0 = std::slice::from_ref(&t.ids[0]);
    let id1 = std::slice::from_ref(&t.ids[1]);

    // Removed (the count adjusted): the remaining keys open, the MAC does not match; the
    // removed recipient's identity no longer opens anything.
    let removed = with_slots(&t.sealed, &[s(0), s(1)]);
    let err = read(&removed, Keys::identities(id0)).unwrap_err();
    assert!(matches!(err, FormatError::HeaderAltered), "{err}");
    let err = read(&removed, &pass()).unwrap_err();
    assert!(matches!(err, FormatError::HeaderAltered), "{err}");
    let err = read(&removed, Keys::identities(id1)).unwrap_err();
    assert!(matches!(err, FormatError::WrongPassphrase), "{err}");
    // Removed without adjusting the count: the header no longer parses.
    let mut cut = t.sealed[..r[2].start].to_vec();
    cut.extend_from_slice(&t.sealed[r[2].end..]);
    let err = read(&cut, Keys::identities(id0)).unwrap_err();
    assert!(matches!(err, FormatError::InvalidHeader(_)), "{err}");

    // Duplicated: refused as malformed before any key is tried.
    let dup = with_slots(&t.sealed, &[s(0), s(1), s(2), s(1)]);
    let err = read(&dup, Keys::identities(id0)).unwrap_err();
    assert!(
        matches!(&err, FormatError::InvalidHeader(m) if m.contains("key slots 2 and 4") && m.contains(&t.ids[0].recipient().to_string())),
        "{err}"
    );
    let dup = with_slots(&t.sealed, &[s(0), s(1), s(0)]);
    let err = read(&dup, &pass()).unwrap_err();
    assert!(
        matches!(&err, FormatError::InvalidHeader(m) if m.contains("both for the passphrase")),
        "{err}"
    );

    // Swapped: each slot still unwraps, the MAC does not match.
    let swapped = with_slots(&t.sealed, &[s(0), s(2), s(1)]);
    for keys in [
        Keys::identities(id0),
        Keys::identities(id1),
        Keys::passphrase(&pass()),
    ] {
        let err = read(&swapped, keys).unwrap_err();
        assert!(matches!(err, FormatError::HeaderAltered), "{err}");
    }
}

#[test]
fn a_slot_from_another_backup_does_not_unwrap() {
    let one = three();
    // Another backup to the same keys, with the same backup id and options even.
    let recipients = [one.ids[0].recipient(), one.ids[1].recipient()];
    let p = pass();
    let two = write(Recipients::new(Some(&p), &recipients), &plaintext());
    let (r1, _) = slot_ranges(&one.sealed);
    let (r2, h2) = slot_ranges(&two);
    let id0 = std::slice::from_ref(&one.ids[0]);

    // The first recipient's slot taken from the other backup: it does not unwrap here.
    let moved = with_slots(
        &one.sealed,
        &[
            &one.sealed[r1[0].clone()],
            &two[r2[1].clone()],
            &one.sealed[r1[2].clone()],
        ],
    );
    let err = read(&moved, Keys::identities(id0)).unwrap_err();
    assert!(matches!(err, FormatError::WrongPassphrase), "{err}");
    // With another key the data key opens, and the MAC catches the foreign slot.
    let err = read(&moved, &pass()).unwrap_err();
    assert!(matches!(err, FormatError::HeaderAltered), "{err}");

    // All slots and the MAC of the other backup: no key opens anything (the stream salt in
    // the fixed fields differs).
    let mut all = one.sealed[..48].to_vec();
    all.extend_from_slice(&two[48..h2]);
    all.extend_from_slice(&one.sealed[h2..]);
    for keys in [Keys::identities(id0), Keys::passphrase(&pass())] {
        let err = read(&all, keys).unwrap_err();
        assert!(matches!(err, FormatError::WrongPassphrase), "{err}");
    }
}

#[test]
fn slot_counts_are_limited_and_checked_first() {
    let t = three();
    let (r, _) = slot_ranges(&t.sealed);
    // 17 slots: refused on the count alone.
    let mut many = t.sealed.clone();
    many[48] = 17;
    let err = read(&many, &pass()).unwrap_err();
    assert!(
        matches!(&err, FormatError::InvalidHeader(m) if m.contains("17 key slots") && m.contains("at most 16")),
        "{err}"
    );
    // Zero slots.
    let mut none = t.sealed.clone();
    none[48] = 0;
    let err = read(&none, &pass()).unwrap_err();
    assert!(matches!(err, FormatError::InvalidHeader(_)), "{err}");
    // 16 distinct recipient slots are written and read; 17 keys are refused by the writer.
    let ids: Vec<Identity> = (0..16).map(|_| Identity::generate()).collect();
    let recipients: Vec<Recipient> = ids.iter().map(Identity::recipient).collect();
    let sealed = write(Recipients::new(None, &recipients), b"sixteen");
    assert_eq!(
        read(&sealed, Keys::identities(&ids[15..])).unwrap(),
        b"sixteen"
    );
    let p = pass();
    let err = PayloadWriter::new(
        Vec::new(),
        Recipients::new(Some(&p), &recipients),
        &options(),
    )
    .err()
    .unwrap();
    assert!(matches!(err, FormatError::Recipients(_)), "{err}");
    // An unknown slot type and a wrong slot length.
    let mut bad = t.sealed.clone();
    bad[r[1].start] = 9;
    let err = read(&bad, &pass()).unwrap_err();
    assert!(
        matches!(&err, FormatError::InvalidHeader(m) if m.contains("unknown type 9")),
        "{err}"
    );
    let mut bad = t.sealed.clone();
    bad[r[1].start + 2] ^= 0x01;
    let err = read(&bad, &pass()).unwrap_err();
    assert!(matches!(err, FormatError::InvalidHeader(_)), "{err}");
    // A header cut inside a slot is truncated, at the exact offset.
    for cut in [49, r[1].start + 10, r[2].end + 5] {
        let err = read(&t.sealed[..cut], &pass()).unwrap_err();
        assert!(
            matches!(err, FormatError::Truncated { offset } if offset == cut as u64),
            "{cut}: {err}"
        );
    }
}

#[test]
fn writers_refuse_unusable_key_sets() {
    let none = PayloadWriter::new(Vec::new(), Recipients::default(), &options());
    assert!(matches!(none.err(), Some(FormatError::Recipients(_))));
    let id = Identity::generate();
    let twice = [id.recipient(), id.recipient()];
    let err = PayloadWriter::new(Vec::new(), Recipients::new(None, &twice), &options())
        .err()
        .unwrap();
    assert!(
        matches!(&err, FormatError::Recipients(m) if m.contains("twice")),
        "{err}"
    );
    // A weak passphrase KDF is refused for the passphrase slot, as in version 1.
    let weak = StreamOptions {
        kdf: KdfParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        },
        ..options()
    };
    let err = PayloadWriter::new(Vec::new(), &pass(), &weak)
        .err()
        .unwrap();
    assert!(matches!(err, FormatError::Kdf(_)), "{err}");
    // ... and ignored without a passphrase.
    assert!(
        PayloadWriter::new(Vec::new(), Recipients::new(None, &[id.recipient()]), &weak).is_ok()
    );
}

#[test]
fn a_low_order_ephemeral_key_is_refused() {
    let t = three();
    let (r, _) = slot_ranges(&t.sealed);
    let mut bad = t.sealed.clone();
    // The ephemeral key of the first recipient slot: the all-zero point has order 1.
    bad[r[1].start + 3 + 32..r[1].start + 3 + 64].fill(0);
    let err = read(&bad, Keys::identities(std::slice::from_ref(&t.ids[0]))).unwrap_err();
    assert!(
        matches!(&err, FormatError::InvalidHeader(m) if m.contains("low-order")),
        "{err}"
    );
}

#[test]
fn chunks_are_bound_to_the_whole_header() {
    // A chunk from another backup to the same keys fails, as in version 1.
    let one = three();
    let recipients = [one.ids[0].recipient(), one.ids[1].recipient()];
    let p = pass();
    let two = write(Recipients::new(Some(&p), &recipients), &plaintext());
    let (_, h) = slot_ranges(&one.sealed);
    let mut spliced = one.sealed.clone();
    spliced[h..h + 100].copy_from_slice(&two[h..h + 100]);
    let err = read(&spliced, &pass()).unwrap_err();
    assert!(
        matches!(err, FormatError::CorruptedChunk { index: 0, offset } if offset == h as u64),
        "{err}"
    );
}

#[test]
fn no_secret_in_debug_or_display() {
    let id = Identity::generate();
    let secret = id.to_secret_string();
    let secret_data = &secret["SSTORE-SECRET-KEY-1".len()..];
    let p = Passphrase::new("Unique-Passphrase-77");
    let ids = [id.clone()];
    let keys = Keys::new(Some(&p), &ids);
    let recipients = [id.recipient()];
    let sealed = write(Recipients::new(Some(&p), &recipients), b"x");
    let header = Header::decode(&sealed).unwrap();
    let texts = [
        format!("{keys:?}"),
        format!("{:?}", Recipients::new(Some(&p), &recipients)),
        format!("{header:?}"),
        format!("{:?}", header.slots()),
        format!("{id:?}"),
        wrong_key_message(),
        format!("{:?}", FormatError::WrongPassphrase),
        format!("{:?}", read(&sealed, Keys::default()).unwrap_err()),
    ];
    for text in &texts {
        assert!(!text.contains("Unique-Passphrase"), "{text}");
        for window in secret_data.as_bytes().windows(8) {
            let window = std::str::from_utf8(window).unwrap();
            assert!(!text.to_uppercase().contains(window), "{text}");
        }
    }
    assert!(format!("{id:?}").contains(&id.recipient().to_string()));
}

// --- Version 1 ---------------------------------------------------------------------------------

/// A stream written by the version-1 writer (tests/fixtures/v1/sstorebackup.txt describes it).
const V1_STREAM: &[u8] = include_bytes!("../../../tests/fixtures/v1/sstorebackup.bak");
const V1_FACTS: &str = include_str!("../../../tests/fixtures/v1/sstorebackup.txt");

fn v1_fact(name: &str) -> &'static str {
    V1_FACTS
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(": "))
        .unwrap()
}

#[test]
fn version_1_streams_are_still_read() {
    assert_eq!(V1_STREAM.len().to_string(), v1_fact("stream_size"));
    assert_eq!(
        hex::encode(Sha256::digest(V1_STREAM)),
        v1_fact("stream_sha256")
    );
    let p = Passphrase::new(v1_fact("passphrase"));
    let mut r = PayloadReader::open(V1_STREAM, &p).unwrap();
    let header = r.header().clone();
    let mut out = Vec::new();
    r.copy_to(&mut out).unwrap();
    assert_eq!(out.len().to_string(), v1_fact("plaintext_size"));
    assert_eq!(
        hex::encode(Sha256::digest(&out)),
        v1_fact("plaintext_sha256")
    );
    assert_eq!(header.version, 1);
    assert_eq!(hex::encode(header.backup_id), v1_fact("backup_id_hex"));
    assert_eq!(header.compression, Compression::Zstd);
    assert_eq!(header.chunk_size, MIN_CHUNK_SIZE);
    assert_eq!(header.kdf, KdfParams::MINIMUM);
    assert_eq!(header.passphrase_kdf(), Some(KdfParams::MINIMUM));
    assert_eq!(
        header.slots(),
        [SlotDescription::Passphrase {
            kdf: KdfParams::MINIMUM
        }]
    );
    assert_eq!(header.encoded_len(), HEADER_LEN_V1);
    // The header re-encodes to its exact bytes.
    assert_eq!(header.encode(), V1_STREAM[..HEADER_LEN_V1]);
    // Through Keys too, with identities beside the passphrase.
    let ids = [Identity::generate()];
    assert_eq!(read(V1_STREAM, Keys::new(Some(&p), &ids)).unwrap(), out);
}

#[test]
fn every_version_1_header_bit_flip_is_refused() {
    let p = Passphrase::new(v1_fact("passphrase"));
    for byte in 0..HEADER_LEN_V1 {
        let mut damaged = V1_STREAM.to_vec();
        damaged[byte] ^= 0x02;
        let err = read(&damaged, &p).expect_err(&format!("flip of byte {byte} was accepted"));
        match byte {
            0..=7 => assert!(matches!(err, FormatError::NotSstoreBackup), "{byte}: {err}"),
            8..=9 => assert!(
                matches!(err, FormatError::UnsupportedVersion { .. }),
                "{byte}: {err}"
            ),
            _ => assert!(
                matches!(
                    err,
                    FormatError::WrongPassphrase
                        | FormatError::InvalidHeader(_)
                        | FormatError::Kdf(_)
                ),
                "byte {byte}: {err}"
            ),
        }
    }
    // A version-1 stream cut inside a chunk or at the header still reports as before.
    let err = read(&V1_STREAM[..HEADER_LEN_V1 - 5], &p).unwrap_err();
    assert!(
        matches!(err, FormatError::Truncated { offset } if offset == (HEADER_LEN_V1 - 5) as u64),
        "{err}"
    );
    let cut = HEADER_LEN_V1 + MIN_CHUNK_SIZE as usize + 16;
    let err = read(&V1_STREAM[..cut], &p).unwrap_err();
    assert!(
        matches!(err, FormatError::Truncated { offset } if offset == cut as u64),
        "{err}"
    );
}

#[test]
fn a_writer_reads_back_what_it_wrote_without_any_key() {
    let id = Identity::generate();
    let recipients = [id.recipient()];
    let data = plaintext();
    let mut w =
        PayloadWriter::new(Vec::new(), Recipients::new(None, &recipients), &options()).unwrap();
    let key = w.read_back_key();
    w.write_all(&data).unwrap();
    let sealed = w.finish().unwrap();
    assert_eq!(read(&sealed, Keys::read_back(&key)).unwrap(), data);
    // It opens only that stream ...
    let other = write(Recipients::new(None, &recipients), &data);
    let err = read(&other, Keys::read_back(&key)).unwrap_err();
    assert!(matches!(err, FormatError::WrongPassphrase), "{err}");
    // ... checks its header MAC like any key ...
    let mut damaged = sealed.clone();
    damaged[49 + 3] ^= 1; // the recipient's public key
    let err = read(&damaged, Keys::read_back(&key)).unwrap_err();
    assert!(matches!(err, FormatError::HeaderAltered), "{err}");
    // ... and never prints.
    let debug = format!("{key:?} {:?}", Keys::read_back(&key));
    assert!(debug.contains("redacted"), "{debug}");
}
