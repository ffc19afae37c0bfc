//! The store's promises, written once and run against every home: the SQLite file always,
//! and a real SQL Server / Azure SQL / Babelfish when `SSTORE_TEST_MSSQL_URL` names one (see
//! `sstore_tests::mssql_engine`; without it that half skips with a note).

use sstore_core::store::{
    AppType, CredentialSet, FieldDef, FieldType, SecureStore, StoreError, StoreLocation, TargetApp,
};
use sstore_core::{KdfParams, Passphrase};
use sstore_tests::mssql_engine::{DropDatabase, engine, fresh_database};

fn pass() -> Passphrase {
    Passphrase::new("Homes-Pass-123")
}

/// Every rule of the model, the policy, the Master Key and the per-value encryption, on the
/// store at `location` (which must not exist yet).
fn semantics(location: &StoreLocation, snapshot_dir: &std::path::Path) {
    assert!(matches!(
        SecureStore::create_at(location, &Passphrase::new("short"), KdfParams::MINIMUM),
        Err(StoreError::Policy(_))
    ));
    let mut store = SecureStore::create_at(location, &pass(), KdfParams::MINIMUM).unwrap();
    assert_eq!(store.summary().unwrap().master_key.generation, 1);

    // Names match exactly: case, trailing spaces and accents make different applications.
    let mut crm = TargetApp::new("crm", AppType::Individual);
    crm.friendly_name = "CRM — Kundenverwaltung".into();
    crm.contact_email = Some("ops@example.com".into());
    crm.fields = vec![
        FieldDef::new("User", FieldType::UserName, false),
        FieldDef::new("Password", FieldType::Password, true),
        FieldDef::new("PIN", FieldType::Pin, true),
    ];
    store
        .create_apps(&[
            crm.clone(),
            TargetApp::new("CRM", AppType::Individual),
            TargetApp::new("crm ", AppType::Individual),
            TargetApp::new("crmé", AppType::Individual),
            TargetApp::new("payroll", AppType::Group),
        ])
        .unwrap();
    assert!(matches!(
        store.create_app(&TargetApp::new("crm", AppType::Group)),
        Err(StoreError::AppExists { .. })
    ));
    let mut dup = TargetApp::new("dup", AppType::Individual);
    dup.fields.push(dup.fields[0].clone());
    assert!(matches!(
        store.create_app(&dup),
        Err(StoreError::InvalidApp { .. })
    ));
    let names: Vec<String> = store.apps().unwrap().into_iter().map(|a| a.name).collect();
    assert_eq!(names, ["CRM", "crm", "crm ", "crmé", "payroll"]);
    assert_eq!(store.app("crm").unwrap(), crm);

    let mut store = store.unlock(&pass()).unwrap();
    let set = |p: &str, pw: &str| {
        CredentialSet::new("crm", p)
            .with("User", p)
            .with("Password", pw)
            .with("PIN", "0042")
    };
    store
        .set_many(&[
            set("bob", "pw-bob ✓"),
            set("Bob", "pw-Bob"),
            set("alice", "pw-alice"),
        ])
        .unwrap();
    store.set_credentials(&set("bob", "pw-bob-2 ✓")).unwrap();
    assert_eq!(store.principals("crm").unwrap(), ["Bob", "alice", "bob"]);
    let got = store.credentials("crm", "bob").unwrap();
    let fields: Vec<&str> = got.values.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        fields,
        ["User", "Password", "PIN"],
        "the application's field order"
    );
    assert_eq!(got.value("Password"), Some("pw-bob-2 ✓"));
    assert_eq!(
        store.credentials("crm", "Bob").unwrap().value("Password"),
        Some("pw-Bob")
    );
    assert!(matches!(
        store.credentials("CRM", "bob"),
        Err(StoreError::CredentialsNotFound { .. })
    ));
    assert!(matches!(
        store.set_credentials(&CredentialSet::new("crm", "carol").with("User", "carol")),
        Err(StoreError::MissingFields { ref fields, .. }) if fields == &["Password", "PIN"]
    ));
    assert!(matches!(
        store.set_credentials(&set("carol", "x").with("Nope", "x")),
        Err(StoreError::UnknownField { .. })
    ));
    assert!(matches!(
        store.set_credentials(&set("bad=name", "x")),
        Err(StoreError::InvalidCredentials { .. })
    ));
    // A failed batch changes nothing.
    assert!(
        store
            .set_many(&[set("dave", "x"), set("erin", "x").with("Nope", "x")])
            .is_err()
    );
    assert!(matches!(
        store.credentials("crm", "dave"),
        Err(StoreError::CredentialsNotFound { .. })
    ));
    let group = |g: &str| {
        CredentialSet::new("payroll", g)
            .with("Windows User Name", "svc")
            .with("Windows Password", "pw")
    };
    store.set_credentials(&group("CONTOSO\\Payroll")).unwrap();
    store.set_credentials(&group("CONTOSO\\Payroll")).unwrap();
    assert!(matches!(
        store.set_credentials(&group("CONTOSO\\Other")),
        Err(StoreError::GroupAlreadyMapped { .. })
    ));
    store
        .clear_credentials("payroll", "CONTOSO\\Payroll")
        .unwrap();
    assert!(matches!(
        store.clear_credentials("payroll", "CONTOSO\\Payroll"),
        Err(StoreError::CredentialsNotFound { .. })
    ));
    store.set_credentials(&group("CONTOSO\\Other")).unwrap();
    let summary = store.summary().unwrap();
    assert_eq!((summary.applications, summary.credential_sets), (5, 4));

    // The backup payload is an SQLite store file with the same contents, whatever the home.
    let copy = snapshot_dir.join("payload.db");
    let snap = store.snapshot(&copy).unwrap();
    assert_eq!(snap.summary, summary);
    let from_copy = SecureStore::open(&copy).unwrap().unlock(&pass()).unwrap();
    assert_eq!(
        from_copy
            .credentials("crm", "bob")
            .unwrap()
            .value("Password"),
        Some("pw-bob-2 ✓")
    );
    assert_eq!(from_copy.apps().unwrap(), store.apps().unwrap());

    // The Master Key changes in one transaction; the old passphrase stops working.
    let new_pass = Passphrase::new("Rotated-Pass-456");
    assert!(matches!(
        store.change_master_key(&Passphrase::new("weak"), KdfParams::MINIMUM),
        Err(StoreError::Policy(_))
    ));
    let info = store
        .change_master_key(&new_pass, KdfParams::MINIMUM)
        .unwrap();
    assert_eq!(info.generation, 2);
    drop(store);
    let reopened = SecureStore::open_at(location).unwrap();
    assert!(matches!(
        reopened.check_passphrase(&pass()),
        Err(StoreError::WrongPassphrase)
    ));
    let mut store = reopened.unlock(&new_pass).unwrap();
    assert_eq!(
        store.credentials("crm", "alice").unwrap().value("Password"),
        Some("pw-alice")
    );
    assert_eq!(store.summary().unwrap().credential_sets, 4);

    store.remove_app("crm").unwrap();
    assert!(matches!(
        store.remove_app("crm"),
        Err(StoreError::AppNotFound { .. })
    ));
    assert!(matches!(
        store.credentials("crm", "alice"),
        Err(StoreError::AppNotFound { .. })
    ));
    assert_eq!(store.summary().unwrap().credential_sets, 1);
    assert!(matches!(
        SecureStore::create_at(location, &pass(), KdfParams::MINIMUM),
        Err(StoreError::AlreadyExists { .. } | StoreError::SqlServer(_))
    ));
}

#[test]
fn store_semantics_on_sqlite() {
    let dir = sstore_tests::scratch_dir();
    semantics(
        &StoreLocation::Sqlite(dir.path().join("store.db")),
        dir.path(),
    );
}

#[test]
fn store_semantics_on_sql_server() {
    let Some(base) = engine("store_semantics_on_sql_server") else {
        return;
    };
    let config = fresh_database(&base, "semantics");
    let _cleanup = DropDatabase(config.clone());
    let dir = sstore_tests::scratch_dir();
    semantics(&StoreLocation::SqlServer(config), dir.path());
}
