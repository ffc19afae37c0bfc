//! `masterkey update` in the SQLite home: every credential value re-encrypted inside the
//! caller's one write transaction, a page of rows at a time, so memory stays flat whatever the
//! store's size.
//!
//! Two threads overlap: this one reads the next page and writes back the previous one (the
//! connection stays on it), while a helper re-encrypts the page in between. Three page buffers
//! go round, and the values' strings and byte vectors are filled in place, so the pass
//! allocates nothing per row.

use std::sync::mpsc;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, Row, Statement, params};

use crate::store::StoreError;
use crate::store::credentials::SealedValue;
use crate::store::home::Reseal;

/// Rows per page.
const PAGE: usize = 4096;

/// Re-encrypts every value of `credentials` with `reseal`, by rowid order.
pub(super) fn reseal_all(conn: &Connection, reseal: Reseal<'_>) -> Result<(), StoreError> {
    // An 8 MiB page cache (negative: KiB) instead of the default 2 MiB: dirty pages spill to
    // the file, each spill after a journal sync, far less often (on a 1M-set store the pass
    // took 6.1 s instead of 8.5 s; 32 MiB was no faster).
    conn.pragma_update(None, "cache_size", -8 * 1024)?;
    let mut select = conn.prepare_cached(
        "SELECT rowid, app, principal, field, nonce, value FROM credentials
         WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
    )?;
    let mut update =
        conn.prepare_cached("UPDATE credentials SET nonce = ?1, value = ?2 WHERE rowid = ?3")?;

    std::thread::scope(|scope| {
        // Capacity 1 each way: one page waits for the helper while it works on another.
        let (to_helper, pages) = mpsc::sync_channel::<Page>(1);
        let (to_writer, resealed) = mpsc::sync_channel::<Result<Page, StoreError>>(1);
        scope.spawn(move || {
            for mut page in pages {
                let outcome = reseal(page.values_mut()).map(|()| page);
                let failed = outcome.is_err();
                if to_writer.send(outcome).is_err() || failed {
                    return;
                }
            }
        });

        // Why the helper stopped early: the failure it sent (it stops after one), if any.
        let stopped = || match resealed.try_recv() {
            Ok(Err(e)) => e,
            _ => helper_gone(),
        };
        let mut spare = vec![Page::default(), Page::default(), Page::default()];
        let mut after = i64::MIN;
        let mut in_flight = 0;
        loop {
            let mut page = spare.pop().unwrap_or_default();
            let read = page.read(&mut select, after)?;
            if read {
                after = page.last_rowid(after);
                to_helper.send(page).map_err(|_| stopped())?;
                in_flight += 1;
            } else {
                spare.push(page);
            }
            if in_flight == 0 {
                return Ok(());
            }
            // Keep one page with the helper while writing the one before it; at the end, drain.
            if in_flight == 2 || !read {
                let page = resealed.recv().map_err(|_| helper_gone())??;
                in_flight -= 1;
                page.write(&mut update)?;
                spare.push(page);
            }
        }
    })
}

/// A page of rows: their rowids and values. `len` of them are in use; the rest are kept for
/// their buffers.
#[derive(Default)]
struct Page {
    rowids: Vec<i64>,
    values: Vec<SealedValue>,
}

impl Page {
    /// Reads the next page after `after`, reusing the buffers; false when there are no more rows.
    fn read(&mut self, select: &mut Statement<'_>, after: i64) -> Result<bool, StoreError> {
        self.rowids.clear();
        let mut rows = select.query(params![after, PAGE as i64])?;
        while let Some(row) = rows.next()? {
            let at = self.rowids.len();
            if at == self.values.len() {
                self.values.push(SealedValue::default());
            }
            fill(&mut self.values[at], row)?;
            self.rowids.push(row.get(0)?);
        }
        Ok(!self.rowids.is_empty())
    }

    fn last_rowid(&self, otherwise: i64) -> i64 {
        self.rowids.last().copied().unwrap_or(otherwise)
    }

    fn values_mut(&mut self) -> &mut [SealedValue] {
        let len = self.rowids.len();
        &mut self.values[..len]
    }

    fn write(&self, update: &mut Statement<'_>) -> Result<(), StoreError> {
        for (rowid, value) in self.rowids.iter().zip(&self.values) {
            update.execute(params![value.nonce, value.sealed, rowid])?;
        }
        Ok(())
    }
}

/// Overwrites `value` with the row's `app, principal, field, nonce, value` (columns 1 to 5).
fn fill(value: &mut SealedValue, row: &Row<'_>) -> rusqlite::Result<()> {
    set_text(&mut value.app, row.get_ref(1)?)?;
    set_text(&mut value.principal, row.get_ref(2)?)?;
    set_text(&mut value.field, row.get_ref(3)?)?;
    set_bytes(&mut value.nonce, row.get_ref(4)?)?;
    set_bytes(&mut value.sealed, row.get_ref(5)?)
}

fn set_text(out: &mut String, column: ValueRef<'_>) -> rusqlite::Result<()> {
    out.clear();
    out.push_str(column.as_str()?);
    Ok(())
}

fn set_bytes(out: &mut Vec<u8>, column: ValueRef<'_>) -> rusqlite::Result<()> {
    out.clear();
    out.extend_from_slice(column.as_blob()?);
    Ok(())
}

/// The helper thread stopped without an answer: only after a panic, which the scope raises
/// once this error has ended the loop.
fn helper_gone() -> StoreError {
    StoreError::Io {
        path: std::path::PathBuf::from("credentials"),
        source: std::io::Error::other("the re-encryption thread stopped"),
    }
}
