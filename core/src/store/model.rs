//! Target applications and their fields.

use serde::{Deserialize, Serialize};

use super::StoreError;

/// Who a target application's credentials belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AppType {
    /// One credential set per user identity.
    Individual,
    /// One credential set shared by everyone in a group.
    Group,
    IndividualRestricted,
    GroupRestricted,
}

impl AppType {
    pub const ALL: [AppType; 4] = [
        AppType::Individual,
        AppType::Group,
        AppType::IndividualRestricted,
        AppType::GroupRestricted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AppType::Individual => "individual",
            AppType::Group => "group",
            AppType::IndividualRestricted => "individual-restricted",
            AppType::GroupRestricted => "group-restricted",
        }
    }

    pub fn is_group(self) -> bool {
        matches!(self, AppType::Group | AppType::GroupRestricted)
    }
}

impl std::str::FromStr for AppType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        AppType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("unknown application type '{s}' (use one of: individual, group, individual-restricted, group-restricted)"))
    }
}

/// The kind of value a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FieldType {
    UserName,
    Password,
    Pin,
    Key,
    Generic,
    WindowsUserName,
    WindowsPassword,
    Certificate,
    CertificatePassword,
}

impl FieldType {
    pub const ALL: [FieldType; 9] = [
        FieldType::UserName,
        FieldType::Password,
        FieldType::Pin,
        FieldType::Key,
        FieldType::Generic,
        FieldType::WindowsUserName,
        FieldType::WindowsPassword,
        FieldType::Certificate,
        FieldType::CertificatePassword,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::UserName => "user-name",
            FieldType::Password => "password",
            FieldType::Pin => "pin",
            FieldType::Key => "key",
            FieldType::Generic => "generic",
            FieldType::WindowsUserName => "windows-user-name",
            FieldType::WindowsPassword => "windows-password",
            FieldType::Certificate => "certificate",
            FieldType::CertificatePassword => "certificate-password",
        }
    }
}

impl std::str::FromStr for FieldType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        FieldType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<_> = FieldType::ALL.iter().map(|t| t.as_str()).collect();
                format!("unknown field type '{s}' (use one of: {})", all.join(", "))
            })
    }
}

/// One field of a target application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldDef {
    pub name: String,
    pub field_type: FieldType,
    /// Masked fields are hidden when typed and in listings.
    pub masked: bool,
}

impl FieldDef {
    pub fn new(name: impl Into<String>, field_type: FieldType, masked: bool) -> Self {
        Self {
            name: name.into(),
            field_type,
            masked,
        }
    }

    /// Parses `NAME:TYPE[:masked]`.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let parts: Vec<&str> = spec.split(':').collect();
        let (name, ty, masked) = match parts.as_slice() {
            [name, ty] => (*name, *ty, false),
            [name, ty, "masked"] => (*name, *ty, true),
            _ => {
                return Err(format!(
                    "field '{spec}' is not of the form NAME:TYPE[:masked]"
                ));
            }
        };
        Ok(Self::new(name, ty.parse()?, masked))
    }
}

/// A target application: what a credential set is for, and which fields it has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetApp {
    /// Unique id.
    pub name: String,
    pub friendly_name: String,
    pub contact_email: Option<String>,
    pub app_type: AppType,
    pub fields: Vec<FieldDef>,
}

impl TargetApp {
    /// A new application with SharePoint's default fields (Windows user name and password).
    pub fn new(name: impl Into<String>, app_type: AppType) -> Self {
        let name = name.into();
        Self {
            friendly_name: name.clone(),
            name,
            contact_email: None,
            app_type,
            fields: Self::default_fields(),
        }
    }

    pub fn default_fields() -> Vec<FieldDef> {
        vec![
            FieldDef::new("Windows User Name", FieldType::WindowsUserName, false),
            FieldDef::new("Windows Password", FieldType::WindowsPassword, true),
        ]
    }

    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.name == name)
    }

    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        let invalid = |reason: String| StoreError::InvalidApp {
            name: self.name.clone(),
            reason,
        };
        check_name("application name", &self.name).map_err(invalid)?;
        if self.fields.is_empty() {
            return Err(invalid("an application needs at least one field".into()));
        }
        if self.fields.len() > 10 {
            return Err(invalid("an application has at most 10 fields".into()));
        }
        for (i, field) in self.fields.iter().enumerate() {
            check_name("field name", &field.name).map_err(invalid)?;
            if self.fields[..i].iter().any(|f| f.name == field.name) {
                return Err(invalid(format!("field '{}' is listed twice", field.name)));
            }
        }
        Ok(())
    }
}

/// Names are non-empty, at most 256 characters, without control characters or '='.
pub(crate) fn check_name(what: &str, name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err(format!("the {what} is empty"));
    }
    if name.chars().count() > 256 {
        return Err(format!("the {what} is longer than 256 characters"));
    }
    if name.chars().any(|c| c.is_control() || c == '=') {
        return Err(format!(
            "the {what} '{}' contains a control character or '='",
            name.escape_debug()
        ));
    }
    Ok(())
}
