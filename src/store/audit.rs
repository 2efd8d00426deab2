//! The audit log's table (`audit_log`): appends only, the chain's head read and the row
//! inserted in one writer transaction (see `audit/`). Nothing here updates or deletes a
//! row, and the table's triggers abort anyone who tries.
//!
//! A store method that changes something worth recording calls [`append`] with its own
//! transaction (opened with `Store::write_tx`, immediate, so a writer in another process
//! is waited for rather than raced); anything else calls [`Store::audit`] or
//! `audit::record`.

use super::{now, Result, Store};
use crate::audit::chain::{self, Row, Verifier, GENESIS};
use crate::audit::{Action, Event, Outcome};
use rusqlite::{params, Connection, OptionalExtension};

/// Appends `event` inside the caller's transaction (the change it records commits or
/// rolls back with it); returns the row's id. The caller holds the one writer, so no
/// other append can come between the head read here and the insert.
pub(crate) fn append(tx: &Connection, event: &Event) -> Result<i64> {
    let head: Option<(i64, String)> = tx
        .query_row("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let (id, prev_hash) = head.map_or((1, GENESIS.to_string()), |(id, hash)| (id + 1, hash));
    let mut row = Row {
        id,
        at: now(),
        actor_id: event.actor.user_id,
        actor: event.actor.name.clone(),
        address: event.actor.address.clone(),
        action: event.action.as_str().into(),
        target: event.target.clone(),
        outcome: event.outcome.as_str().into(),
        detail: event.detail.to_string(),
        prev_hash,
        hash: String::new(),
    };
    row.hash = chain::hash_of(&row);
    tx.execute(
        "INSERT INTO audit_log (id, at, actor_id, actor, address, action, target, outcome, detail, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
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
            row.hash
        ],
    )?;
    Ok(id)
}

/// Which rows to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only rows with an id below this (the next page's cursor).
    pub before: Option<i64>,
    /// At most this many (1-500).
    pub limit: u32,
    /// The actor's name.
    pub actor: Option<String>,
    pub action: Option<Action>,
    pub outcome: Option<Outcome>,
    /// Unix seconds, inclusive.
    pub since: Option<i64>,
    /// Unix seconds, exclusive.
    pub until: Option<i64>,
}

const COLUMNS: &str = "id, at, actor_id, actor, address, action, target, outcome, detail, prev_hash, hash";

fn row_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        id: r.get(0)?,
        at: r.get(1)?,
        actor_id: r.get(2)?,
        actor: r.get(3)?,
        address: r.get(4)?,
        action: r.get(5)?,
        target: r.get(6)?,
        outcome: r.get(7)?,
        detail: r.get(8)?,
        prev_hash: r.get(9)?,
        hash: r.get(10)?,
    })
}

/// The outcome of walking the whole chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    pub rows: u64,
    /// The newest row's id and hash (note it: a removed tail is found by comparing).
    pub head: Option<(i64, String)>,
    /// The first bad row, if any.
    pub broken: Option<chain::Broken>,
}

impl Store {
    /// Appends one event in a transaction of its own; returns the row's id.
    pub fn audit(&self, event: &Event) -> Result<i64> {
        let mut conn = self.writer();
        let tx = Store::write_tx(&mut conn)?;
        let id = append(&tx, event)?;
        tx.commit()?;
        Ok(id)
    }

    /// A page of rows, newest first.
    pub fn audit_rows(&self, filter: &AuditFilter) -> Result<Vec<Row>> {
        let conn = self.reader();
        let sql = format!(
            "SELECT {COLUMNS} FROM audit_log
             WHERE (?1 IS NULL OR id < ?1) AND (?2 IS NULL OR actor = ?2) AND (?3 IS NULL OR action = ?3)
               AND (?4 IS NULL OR outcome = ?4) AND (?5 IS NULL OR at >= ?5) AND (?6 IS NULL OR at < ?6)
             ORDER BY id DESC LIMIT ?7"
        );
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt
            .query_map(
                params![
                    filter.before,
                    filter.actor,
                    filter.action.map(Action::as_str),
                    filter.outcome.map(Outcome::as_str),
                    filter.since,
                    filter.until,
                    filter.limit.clamp(1, 500),
                ],
                row_from,
            )?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// Walks every row in id order and checks the chain, stopping at the first bad row.
    pub fn audit_verify(&self) -> Result<ChainReport> {
        let conn = self.reader();
        let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM audit_log ORDER BY id"))?;
        let mut rows = stmt.query([])?;
        let mut verifier = Verifier::new();
        let mut broken = None;
        while let Some(r) = rows.next()? {
            if let Err(e) = verifier.next(&row_from(r)?) {
                broken = Some(e);
                break;
            }
        }
        let head = verifier.head().map(|(id, hash)| (id, hash.to_string()));
        Ok(ChainReport { rows: verifier.rows(), head, broken })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Actor, Event};
    use crate::store::temp_store;

    fn event(n: i64) -> Event {
        Event::new(&Actor::user(n, "alice", Some("10.0.0.1".into())), Action::Login)
            .target(format!("user:{n}"))
    }

    #[test]
    fn appends_chain_and_list_newest_first_with_filters() {
        let (_dir, store) = temp_store();
        for n in 1..=5 {
            store.audit(&event(n)).unwrap();
        }
        store
            .audit(&Event::new(&Actor::anonymous(None), Action::LoginFailed).outcome(Outcome::Failure))
            .unwrap();
        let report = store.audit_verify().unwrap();
        assert_eq!((report.rows, report.broken), (6, None));
        let page = store.audit_rows(&AuditFilter { limit: 2, ..Default::default() }).unwrap();
        assert_eq!(page.iter().map(|r| r.id).collect::<Vec<_>>(), [6, 5]);
        let next =
            store.audit_rows(&AuditFilter { limit: 2, before: Some(5), ..Default::default() }).unwrap();
        assert_eq!(next.iter().map(|r| r.id).collect::<Vec<_>>(), [4, 3]);
        let failed = AuditFilter { limit: 50, outcome: Some(Outcome::Failure), ..Default::default() };
        assert_eq!(store.audit_rows(&failed).unwrap().len(), 1);
        let by = AuditFilter {
            limit: 50,
            actor: Some("alice".into()),
            action: Some(Action::Login),
            ..Default::default()
        };
        assert_eq!(store.audit_rows(&by).unwrap().len(), 5);
    }

    #[test]
    fn the_table_refuses_updates_and_deletes() {
        let (_dir, store) = temp_store();
        store.audit(&event(1)).unwrap();
        let conn = store.writer();
        let update = conn.execute("UPDATE audit_log SET outcome = 'failure'", []).unwrap_err();
        assert!(update.to_string().contains("append-only"), "{update}");
        let delete = conn.execute("DELETE FROM audit_log", []).unwrap_err();
        assert!(delete.to_string().contains("append-only"), "{delete}");
    }

    #[test]
    fn an_edit_behind_the_triggers_is_found() {
        let (_dir, store) = temp_store();
        for n in 1..=3 {
            store.audit(&event(n)).unwrap();
        }
        {
            let conn = store.writer();
            conn.execute_batch(
                "DROP TRIGGER audit_log_no_update; UPDATE audit_log SET address = '6.6.6.6' WHERE id = 2;",
            )
            .unwrap();
        }
        let report = store.audit_verify().unwrap();
        assert_eq!(report.broken.map(|b| b.row()), Some(2));
        assert_eq!(report.rows, 1);
    }

    #[test]
    fn concurrent_appends_never_fork() {
        let (_dir, store) = temp_store();
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for n in 0..10 {
                        store.audit(&event(t * 100 + n)).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let report = store.audit_verify().unwrap();
        assert_eq!((report.rows, report.broken), (80, None));
    }
}
