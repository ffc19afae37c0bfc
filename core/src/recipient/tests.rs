//! Bech32 forms, checksums, low-order points, identity files and their permissions.

use std::path::Path;

use super::file::parse_identities;
use super::*;

/// RFC 7748 section 6.1: Alice's secret and public keys.
const ALICE_SECRET: &str = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
const ALICE_PUBLIC: &str = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";

fn alice() -> Identity {
    let mut secret = [0u8; 32];
    hex::decode_to_slice(ALICE_SECRET, &mut secret).unwrap();
    Identity::from_secret_bytes(secret)
}

/// The secret's Bech32 data characters, to look for in messages.
fn secret_data(id: &Identity) -> String {
    id.to_secret_string()["SSTORE-SECRET-KEY-1".len()..].to_owned()
}

fn assert_no_secret(text: &str, id: &Identity) {
    let data = secret_data(id);
    let upper = text.to_uppercase();
    for window in data.as_bytes().windows(8) {
        let window = std::str::from_utf8(window).unwrap();
        assert!(!upper.contains(window), "secret material in: {text}");
    }
}

#[test]
fn keys_match_the_rfc_7748_vector() {
    assert_eq!(hex::encode(alice().recipient().as_bytes()), ALICE_PUBLIC);
}

#[test]
fn bech32_round_trips() {
    let id = Identity::generate();
    let text = id.to_secret_string();
    assert!(text.starts_with("SSTORE-SECRET-KEY-1"), "{}", &text[..19]);
    assert_eq!(text.len(), 77);
    assert_eq!(text.to_uppercase(), *text);
    let back: Identity = text.parse().unwrap();
    assert_eq!(back.recipient(), id.recipient());
    // Lower case is the same key (Bech32 is case-insensitive, not mixed-case).
    let lower: Identity = text.to_lowercase().parse().unwrap();
    assert_eq!(lower.recipient(), id.recipient());

    let recipient = id.recipient().to_string();
    assert!(recipient.starts_with("sstore1"));
    assert_eq!(recipient.len(), 65);
    let back: Recipient = recipient.parse().unwrap();
    assert_eq!(back, id.recipient());
    let upper: Recipient = recipient.to_uppercase().parse().unwrap();
    assert_eq!(upper, id.recipient());
    // Surrounding whitespace is ignored.
    let spaced: Recipient = format!("  {recipient}\n").parse().unwrap();
    assert_eq!(spaced, id.recipient());
}

#[test]
fn checksum_failures_and_malformed_keys_are_refused() {
    let id = alice();
    let text = id.to_secret_string();
    let recipient = id.recipient().to_string();
    // One character changed anywhere in the data or checksum.
    for at in [20, 40, 70, 76] {
        let mut damaged = text.to_string().into_bytes();
        damaged[at] = if damaged[at] == b'Q' { b'P' } else { b'Q' };
        let damaged = String::from_utf8(damaged).unwrap();
        let err = damaged.parse::<Identity>().unwrap_err();
        assert!(
            matches!(&err, KeyError::InvalidIdentity { reason } if reason.contains("checksum")),
            "{at}: {err}"
        );
        assert_no_secret(&err.to_string(), &id);
        assert_no_secret(&format!("{err:?}"), &id);
    }
    for at in [10, 30, 64] {
        let mut damaged = recipient.clone().into_bytes();
        damaged[at] = if damaged[at] == b'q' { b'p' } else { b'q' };
        let err = String::from_utf8(damaged)
            .unwrap()
            .parse::<Recipient>()
            .unwrap_err();
        assert!(
            matches!(&err, KeyError::InvalidRecipient { reason } if reason.contains("checksum")),
            "{at}: {err}"
        );
    }
    // Cut short.
    for len in [5, 19, 40, 76] {
        let err = text[..len].parse::<Identity>().unwrap_err();
        assert!(
            matches!(&err, KeyError::InvalidIdentity { reason } if reason.contains("cut short")),
            "{len}: {err}"
        );
        assert_no_secret(&err.to_string(), &id);
    }
    // Mixed case, the wrong kind, another tool's keys, nonsense.
    let mut mixed = text.to_string();
    mixed.replace_range(30..31, &mixed[30..31].to_lowercase());
    assert!(mixed.parse::<Identity>().is_err());
    let err = recipient.parse::<Identity>().unwrap_err();
    assert!(err.to_string().contains("recipient"), "{err}");
    let err = text.parse::<Recipient>().unwrap_err();
    assert!(err.to_string().contains("identity"), "{err}");
    assert_no_secret(&err.to_string(), &id);
    let err = "AGE-SECRET-KEY-1QQQQ".parse::<Identity>().unwrap_err();
    assert!(err.to_string().contains("age identity"), "{err}");
    assert!("".parse::<Identity>().is_err());
    assert!("hello".parse::<Recipient>().is_err());
    // Valid Bech32 with the right prefix but not 32 bytes.
    let hrp = Hrp::parse(RECIPIENT_HRP).unwrap();
    let short = bech32::encode_lower::<Bech32>(hrp, &[1u8; 31]).unwrap();
    let err = short.parse::<Recipient>().unwrap_err();
    assert!(err.to_string().contains("length"), "{err}");
    // Bech32m instead of Bech32 is a checksum failure.
    let m = bech32::encode_lower::<bech32::Bech32m>(hrp, id.recipient().as_bytes()).unwrap();
    assert!(m.parse::<Recipient>().is_err());
}

/// BIP 173 Bech32, written out independently of the bech32 crate.
fn bip173(hrp: &str, fes: &[u8]) -> String {
    const CHARSET: &[u8] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    const GEN: [u32; 5] = [
        0x3b6a_57b2,
        0x2650_8e6d,
        0x1ea1_19fa,
        0x3d42_33dd,
        0x2a14_62b3,
    ];
    let mut values: Vec<u8> = hrp.bytes().map(|b| b >> 5).collect();
    values.push(0);
    values.extend(hrp.bytes().map(|b| b & 31));
    values.extend_from_slice(fes);
    values.extend_from_slice(&[0; 6]);
    let mut chk = 1u32;
    for v in values {
        let top = chk >> 25;
        chk = ((chk & 0x01ff_ffff) << 5) ^ u32::from(v);
        for (i, g) in GEN.iter().enumerate() {
            if (top >> i) & 1 == 1 {
                chk ^= g;
            }
        }
    }
    let pm = chk ^ 1;
    let mut out = format!("{hrp}1");
    out.extend(fes.iter().map(|fe| char::from(CHARSET[usize::from(*fe)])));
    out.extend((0..6).map(|i| char::from(CHARSET[((pm >> (5 * (5 - i))) & 31) as usize])));
    out
}

/// 32 bytes as 52 five-bit groups (the last one padded with zero bits).
fn to_fes(bytes: &[u8; 32]) -> Vec<u8> {
    let mut fes = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for b in bytes {
        acc = (acc << 8) | u32::from(*b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            fes.push(((acc >> bits) & 31) as u8);
        }
    }
    fes.push(((acc << (5 - bits)) & 31) as u8);
    fes
}

#[test]
fn the_encoding_is_standard_bech32_and_canonical() {
    let id = alice();
    let fes = to_fes(id.recipient().as_bytes());
    assert_eq!(fes.len(), KEY_CHARS);
    assert_eq!(id.recipient().to_string(), bip173(RECIPIENT_HRP, &fes));
    let secret_fes = to_fes(&{
        let mut s = [0u8; 32];
        hex::decode_to_slice(ALICE_SECRET, &mut s).unwrap();
        s
    });
    assert_eq!(
        *id.to_secret_string(),
        bip173(IDENTITY_HRP, &secret_fes).to_uppercase()
    );
    // The same 32 bytes with a non-zero padding bit and a valid checksum: refused.
    let mut odd = fes.clone();
    odd[KEY_CHARS - 1] |= 1;
    let err = bip173(RECIPIENT_HRP, &odd)
        .parse::<Recipient>()
        .unwrap_err();
    assert!(err.to_string().contains("length"), "{err}");
}

#[test]
fn low_order_recipients_are_refused() {
    // 0 and 1 are points of order 1 and 4 on Curve25519.
    let mut one = [0u8; 32];
    one[0] = 1;
    for bytes in [[0u8; 32], one] {
        let err = Recipient::from_bytes(bytes).unwrap_err();
        assert!(err.to_string().contains("low-order"), "{err}");
        let text = encode(RECIPIENT_HRP, &bytes, false);
        assert!(text.parse::<Recipient>().is_err());
    }
    assert!(Recipient::from_bytes(*alice().recipient().as_bytes()).is_ok());
}

#[test]
fn debug_never_shows_a_secret() {
    let id = Identity::generate();
    let debug = format!("{id:?}");
    assert!(debug.contains("redacted") && debug.contains(&id.recipient().to_string()));
    assert_no_secret(&debug, &id);
    assert_no_secret(&format!("{:?}", std::slice::from_ref(&id)), &id);
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn identity_files_round_trip_and_are_never_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("backup.key");
    let id = Identity::generate();
    id.write_identity_file(&path).unwrap();
    #[cfg(unix)]
    assert_eq!(mode(&path), 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{}", lines[..2].join("\n"));
    assert!(lines[0].starts_with("# created: 20"), "{}", lines[0]);
    assert_eq!(lines[1], format!("# recipient: {}", id.recipient()));
    assert_eq!(lines[2], *id.to_secret_string());
    let read = read_identity_file(&path).unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].recipient(), id.recipient());

    let other = Identity::generate();
    let err = other.write_identity_file(&path).unwrap_err();
    assert!(
        matches!(&err, KeyError::Exists { path: p } if p == &path),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    assert_no_secret(&err.to_string(), &id);
}

#[cfg(unix)]
#[test]
fn identity_files_open_to_group_or_others_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("backup.key");
    let id = Identity::generate();
    id.write_identity_file(&path).unwrap();
    for bad in [0o640, 0o604, 0o620, 0o644] {
        set_mode(&path, bad);
        let err = read_identity_file(&path).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, KeyError::Permissions { mode, .. } if mode == bad),
            "{text}"
        );
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("chmod 600"), "{text}");
        assert_no_secret(&text, &id);
    }
    set_mode(&path, 0o400);
    assert!(read_identity_file(&path).is_ok());
}

fn write_private(path: &Path, contents: &[u8]) {
    std::fs::write(path, contents).unwrap();
    #[cfg(unix)]
    set_mode(path, 0o600);
}

#[test]
fn truncated_and_malformed_identity_files_name_the_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("backup.key");
    let id = Identity::generate();
    id.write_identity_file(&path).unwrap();
    let full = std::fs::read(&path).unwrap();
    let secret_line_starts = full.len() - 78;
    // Cut anywhere inside the secret line.
    for cut in [
        secret_line_starts + 3,
        secret_line_starts + 25,
        full.len() - 2,
    ] {
        write_private(&path, &full[..cut]);
        let err = read_identity_file(&path).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(&err, KeyError::Malformed { line: 3, .. }),
            "{cut}: {text}"
        );
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("cut short"), "{text}");
        assert_no_secret(&text, &id);
        assert_no_secret(&format!("{err:?}"), &id);
    }
    // Cut before the secret line: no identity at all.
    write_private(&path, &full[..secret_line_starts]);
    let err = read_identity_file(&path).unwrap_err();
    assert!(matches!(err, KeyError::NoIdentity { .. }), "{err}");
    // Empty.
    write_private(&path, b"");
    assert!(matches!(
        read_identity_file(&path),
        Err(KeyError::NoIdentity { .. })
    ));
    // Not text.
    write_private(&path, b"# fine\n\xff\xfe\n");
    assert!(matches!(
        read_identity_file(&path),
        Err(KeyError::Malformed { line: 2, .. })
    ));
    // A recipient where an identity belongs.
    write_private(&path, format!("{}\n", id.recipient()).as_bytes());
    let err = read_identity_file(&path).unwrap_err();
    assert!(
        matches!(&err, KeyError::Malformed { line: 1, reason, .. } if reason.contains("recipient")),
        "{err}"
    );
    // Too large.
    write_private(&path, &vec![b'#'; MAX_IDENTITY_FILE_LEN as usize + 1]);
    assert!(matches!(
        read_identity_file(&path),
        Err(KeyError::TooLarge { .. })
    ));
    // Missing.
    let err = read_identity_file(&tmp.path().join("absent.key")).unwrap_err();
    assert!(matches!(&err, KeyError::Io { .. }) && err.to_string().contains("absent.key"));
}

#[test]
fn several_identities_with_comments_and_crlf() {
    let a = Identity::generate();
    let b = Identity::generate();
    let text = format!(
        "# two keys\r\n\r\n{}\r\n   # indented comment\n  {}  \n\n",
        *a.to_secret_string(),
        b.to_secret_string().to_lowercase()
    );
    let ids = parse_identities(Path::new("keys.txt"), text.as_bytes()).unwrap();
    let recipients: Vec<Recipient> = ids.iter().map(Identity::recipient).collect();
    assert_eq!(recipients, [a.recipient(), b.recipient()]);
    // A bad second identity is reported on its own line.
    let text = format!("{}\n# c\nSSTORE-SECRET-KEY-1QQQ\n", *a.to_secret_string());
    let err = parse_identities(Path::new("keys.txt"), text.as_bytes()).unwrap_err();
    assert!(matches!(err, KeyError::Malformed { line: 3, .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("identity file keys.txt, line 3: "),
        "{err}"
    );
}
