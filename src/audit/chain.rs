//! The hash chain: each row's hash covers its own fields and the hash of the row
//! before it, so changing, removing or reordering rows is detected by walking them in
//! order ([`Verifier`]). Pure code: the store reads rows, this judges them.
//!
//! The canonical encoding is a JSON array of the fields in a fixed order (`id`, `at`,
//! `actor_id`, `actor`, `address`, `action`, `target`, `outcome`, `detail`,
//! `prev_hash`); `detail` is hashed as the exact text stored. The first row's
//! `prev_hash` is [`GENESIS`]. Removing the newest rows leaves a shorter chain that still
//! verifies: compare the head `hearth audit verify` prints with one noted earlier.

use serde::Serialize;
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first row.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One stored row, as read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    pub id: i64,
    /// Unix seconds.
    pub at: i64,
    pub actor_id: Option<i64>,
    pub actor: String,
    pub address: Option<String>,
    pub action: String,
    pub target: String,
    pub outcome: String,
    /// JSON object text.
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

/// The hash a row with these fields must carry (hex SHA-256).
pub fn hash_of(row: &Row) -> String {
    let canonical = serde_json::json!([
        row.id,
        row.at,
        row.actor_id,
        row.actor,
        row.address,
        row.action,
        row.target,
        row.outcome,
        row.detail,
        row.prev_hash,
    ]);
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

/// Why the chain is broken, at which row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Broken {
    #[error("row {id}: its hash does not match its contents (the row was edited)")]
    Edited { id: i64 },
    #[error(
        "row {id}: it does not follow row {after} (a row before it was removed, or rows were reordered or inserted)"
    )]
    Unlinked { id: i64, after: i64 },
    #[error("row {id}: the first row does not start the chain (rows before it were removed)")]
    BadStart { id: i64 },
    #[error("row {id}: ids go back or repeat after row {after} (rows were reordered)")]
    OutOfOrder { id: i64, after: i64 },
}

impl Broken {
    /// The first bad row's id.
    pub fn row(&self) -> i64 {
        match *self {
            Broken::Edited { id }
            | Broken::Unlinked { id, .. }
            | Broken::BadStart { id }
            | Broken::OutOfOrder { id, .. } => id,
        }
    }
}

/// Walks rows in id order, one at a time (so a long log needs no memory).
#[derive(Debug)]
pub struct Verifier {
    last: Option<(i64, String)>,
    rows: u64,
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier::new()
    }
}

impl Verifier {
    pub fn new() -> Verifier {
        Verifier { last: None, rows: 0 }
    }

    /// Checks the next row; the first error is the first bad row.
    pub fn next(&mut self, row: &Row) -> Result<(), Broken> {
        match &self.last {
            None if row.prev_hash != GENESIS => return Err(Broken::BadStart { id: row.id }),
            Some((after, _)) if row.id <= *after => {
                return Err(Broken::OutOfOrder { id: row.id, after: *after })
            }
            Some((after, hash)) if row.prev_hash != *hash || row.id != after + 1 => {
                return Err(Broken::Unlinked { id: row.id, after: *after })
            }
            _ => {}
        }
        if hash_of(row) != row.hash {
            return Err(Broken::Edited { id: row.id });
        }
        self.last = Some((row.id, row.hash.clone()));
        self.rows += 1;
        Ok(())
    }

    /// Rows checked so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The last good row's id and hash: the chain's head once every row is checked.
    pub fn head(&self) -> Option<(i64, &str)> {
        self.last.as_ref().map(|(id, hash)| (*id, hash.as_str()))
    }
}

/// Checks a whole chain; `Ok(rows)`.
pub fn verify<'a>(rows: impl IntoIterator<Item = &'a Row>) -> Result<u64, Broken> {
    let mut verifier = Verifier::new();
    for row in rows {
        verifier.next(row)?;
    }
    Ok(verifier.rows())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<Row> {
        let mut rows: Vec<Row> = Vec::new();
        for id in 1..=n {
            let prev_hash = rows.last().map_or(GENESIS.to_string(), |r| r.hash.clone());
            let mut row = Row {
                id,
                at: 1_700_000_000 + id,
                actor_id: Some(1),
                actor: "root".into(),
                address: Some("127.0.0.1".into()),
                action: "login".into(),
                target: format!("user:{id} u{id}"),
                outcome: "success".into(),
                detail: "{}".into(),
                prev_hash,
                hash: String::new(),
            };
            row.hash = hash_of(&row);
            rows.push(row);
        }
        rows
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert_eq!(verify(&chain(5)), Ok(5));
        assert_eq!(verify(&[]), Ok(0));
    }

    #[test]
    fn an_edited_row_is_named() {
        for field in 0..4 {
            let mut rows = chain(5);
            match field {
                0 => rows[2].outcome = "failure".into(),
                1 => rows[2].actor = "mallory".into(),
                2 => rows[2].detail = "{\"x\":1}".into(),
                _ => rows[2].address = None,
            }
            assert_eq!(verify(&rows), Err(Broken::Edited { id: 3 }), "field {field}");
        }
    }

    #[test]
    fn an_edited_row_with_its_hash_recomputed_breaks_the_next_link() {
        let mut rows = chain(5);
        rows[2].outcome = "failure".into();
        rows[2].hash = hash_of(&rows[2]);
        assert_eq!(verify(&rows), Err(Broken::Unlinked { id: 4, after: 3 }));
    }

    #[test]
    fn a_deleted_row_is_named() {
        let mut rows = chain(5);
        rows.remove(2);
        assert_eq!(verify(&rows).unwrap_err().row(), 4);
        let mut rows = chain(5);
        rows.remove(0);
        assert_eq!(verify(&rows), Err(Broken::BadStart { id: 2 }));
    }

    #[test]
    fn reordered_rows_are_named() {
        // Rows read back in id order, their contents swapped (ids kept).
        let mut rows = chain(5);
        let (a, b) = (rows[1].clone(), rows[2].clone());
        rows[1] = Row { id: 2, ..b };
        rows[2] = Row { id: 3, ..a };
        assert_eq!(verify(&rows).unwrap_err().row(), 2);
        // Rows given in another order.
        let mut rows = chain(5);
        rows.swap(1, 2);
        assert_eq!(verify(&rows).unwrap_err().row(), 3);
    }

    #[test]
    fn the_head_is_the_last_row() {
        let rows = chain(3);
        let mut v = Verifier::new();
        for r in &rows {
            v.next(r).unwrap();
        }
        assert_eq!(v.head(), Some((3, rows[2].hash.as_str())));
    }
}
