//! Samba (SMB): written by the SMB target work (issue 6); this placeholder is replaced there.

use super::{Ctx, EnvEntries};

pub fn up(_ctx: &Ctx) -> Result<EnvEntries, String> {
    Err("the Samba service is not written yet (issue 6)".into())
}

pub fn down(_ctx: &Ctx) {}
