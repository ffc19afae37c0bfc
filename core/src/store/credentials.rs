//! Credential sets: field values encrypted under the Master Key, each bound to its application,
//! principal and field so a value moved to another row no longer decrypts.

use rusqlite::Connection;
use zeroize::Zeroizing;

use super::StoreError;
use super::master_key::MasterKey;
use super::model::{FieldDef, load_apps};

/// Field values, in the application's field order. Wiped on drop.
pub type CredentialValues = Vec<(String, Zeroizing<String>)>;

/// The credentials of one principal (user identity, or the group) for one application.
#[derive(Clone)]
pub struct CredentialSet {
    pub app: String,
    pub principal: String,
    pub values: CredentialValues,
}

impl std::fmt::Debug for CredentialSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let fields: Vec<&str> = self.values.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("CredentialSet")
            .field("app", &self.app)
            .field("principal", &self.principal)
            .field("fields", &fields)
            .finish_non_exhaustive()
    }
}

impl CredentialSet {
    pub fn new(app: impl Into<String>, principal: impl Into<String>) -> Self {
        Self {
            app: app.into(),
            principal: principal.into(),
            values: Vec::new(),
        }
    }

    pub fn with(mut self, field: impl Into<String>, value: impl Into<String>) -> Self {
        self.values
            .push((field.into(), Zeroizing::new(value.into())));
        self
    }

    pub fn value(&self, field: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(k, _)| k == field)
            .map(|(_, v)| v.as_str())
    }
}

fn aad(app: &str, principal: &str, field: &str) -> Vec<u8> {
    let mut out = b"sstore credential v1\0".to_vec();
    for part in [app, principal, field] {
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out
}

fn seal(
    key: &MasterKey,
    app: &str,
    principal: &str,
    field: &str,
    value: &[u8],
) -> ([u8; 12], Vec<u8>) {
    let nonce: [u8; 12] = crate::random::bytes();
    let sealed = key
        .cipher()
        .seal(&nonce, &aad(app, principal, field), value);
    (nonce, sealed)
}

fn open(
    key: &MasterKey,
    app: &str,
    principal: &str,
    field: &str,
    nonce: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    let tampered = || StoreError::Tampered {
        app: app.to_owned(),
        principal: principal.to_owned(),
        field: field.to_owned(),
    };
    let nonce: [u8; 12] = nonce.try_into().map_err(|_| tampered())?;
    key.cipher()
        .open(&nonce, &aad(app, principal, field), sealed)
        .map_err(|_| tampered())
}

pub(crate) fn write_set(
    conn: &Connection,
    key: &MasterKey,
    set: &CredentialSet,
) -> Result<(), StoreError> {
    super::model::check_name("principal", &set.principal).map_err(|reason| {
        StoreError::InvalidCredentials {
            app: set.app.clone(),
            reason,
        }
    })?;
    let app = load_apps(conn, Some(&set.app))?
        .pop()
        .ok_or_else(|| StoreError::AppNotFound {
            name: set.app.clone(),
        })?;
    for (field, _) in &set.values {
        if app.field(field).is_none() {
            return Err(StoreError::UnknownField {
                app: app.name.clone(),
                field: field.clone(),
            });
        }
    }
    let missing: Vec<String> = app
        .fields
        .iter()
        .filter(|f| !set.values.iter().any(|(k, _)| *k == f.name))
        .map(|f| f.name.clone())
        .collect();
    if !missing.is_empty() {
        return Err(StoreError::MissingFields {
            app: app.name.clone(),
            fields: missing,
        });
    }
    if app.app_type.is_group() {
        let existing: Option<String> = super::optional(conn.query_row(
            "SELECT principal FROM credentials WHERE app = ?1 AND principal <> ?2 LIMIT 1",
            [&set.app, &set.principal],
            |r| r.get(0),
        ))?;
        if let Some(group) = existing {
            return Err(StoreError::GroupAlreadyMapped {
                app: app.name.clone(),
                principal: group,
            });
        }
    }
    conn.execute(
        "DELETE FROM credentials WHERE app = ?1 AND principal = ?2",
        [&set.app, &set.principal],
    )?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO credentials (app, principal, field, nonce, value) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (field, value) in &set.values {
        let (nonce, sealed) = seal(key, &set.app, &set.principal, field, value.as_bytes());
        insert.execute(rusqlite::params![
            set.app,
            set.principal,
            field,
            &nonce[..],
            sealed
        ])?;
    }
    Ok(())
}

pub(crate) fn read_set(
    conn: &Connection,
    key: &MasterKey,
    app_name: &str,
    principal: &str,
) -> Result<CredentialSet, StoreError> {
    let app = load_apps(conn, Some(app_name))?
        .pop()
        .ok_or_else(|| StoreError::AppNotFound {
            name: app_name.to_owned(),
        })?;
    let mut stmt = conn.prepare_cached(
        "SELECT nonce, value FROM credentials WHERE app = ?1 AND principal = ?2 AND field = ?3",
    )?;
    let mut set = CredentialSet::new(app_name, principal);
    for FieldDef { name, .. } in &app.fields {
        let row: Option<(Vec<u8>, Vec<u8>)> = super::optional(
            stmt.query_row([app_name, principal, name], |r| Ok((r.get(0)?, r.get(1)?))),
        )?;
        let Some((nonce, sealed)) = row else { continue };
        let plain = open(key, app_name, principal, name, &nonce, &sealed)?;
        let text = String::from_utf8(plain.to_vec()).map_err(|_| StoreError::Tampered {
            app: app_name.to_owned(),
            principal: principal.to_owned(),
            field: name.clone(),
        })?;
        set.values.push((name.clone(), Zeroizing::new(text)));
    }
    if set.values.is_empty() {
        return Err(StoreError::CredentialsNotFound {
            app: app_name.to_owned(),
            principal: principal.to_owned(),
        });
    }
    Ok(set)
}

/// Decrypts every value with `old` and encrypts it again with `new`, inside the caller's
/// transaction.
pub(crate) fn reencrypt_all(
    conn: &Connection,
    old: &MasterKey,
    new: &MasterKey,
) -> Result<u64, StoreError> {
    struct Row {
        rowid: i64,
        app: String,
        principal: String,
        field: String,
        nonce: Vec<u8>,
        sealed: Vec<u8>,
    }
    let rows: Vec<Row> = {
        let mut stmt =
            conn.prepare("SELECT rowid, app, principal, field, nonce, value FROM credentials")?;
        let mapped = stmt.query_map([], |r| {
            Ok(Row {
                rowid: r.get(0)?,
                app: r.get(1)?,
                principal: r.get(2)?,
                field: r.get(3)?,
                nonce: r.get(4)?,
                sealed: r.get(5)?,
            })
        })?;
        mapped.collect::<Result<_, _>>()?
    };
    let mut update =
        conn.prepare("UPDATE credentials SET nonce = ?1, value = ?2 WHERE rowid = ?3")?;
    for row in &rows {
        let plain = open(
            old,
            &row.app,
            &row.principal,
            &row.field,
            &row.nonce,
            &row.sealed,
        )?;
        let (nonce, sealed) = seal(new, &row.app, &row.principal, &row.field, &plain);
        update.execute(rusqlite::params![&nonce[..], sealed, row.rowid])?;
    }
    Ok(rows.len() as u64)
}
