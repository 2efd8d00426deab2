//! Versioned schema migrations, tracked in SQLite's `user_version`.
//!
//! Migrations are append-only: never edit one that has shipped; add the next.

use rusqlite::Connection;

const MIGRATIONS: &[&str] = &[
    // 1: users, API tokens, conversations and messages.
    "CREATE TABLE users (
        id          INTEGER PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,
        role        TEXT NOT NULL CHECK (role IN ('admin', 'user')),
        created_at  INTEGER NOT NULL
    );
    CREATE TABLE api_tokens (
        id           INTEGER PRIMARY KEY,
        user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        label        TEXT NOT NULL,
        prefix       TEXT NOT NULL UNIQUE,
        hash         BLOB NOT NULL UNIQUE,
        created_at   INTEGER NOT NULL,
        last_used_at INTEGER,
        revoked_at   INTEGER
    );
    CREATE TABLE conversations (
        id          TEXT PRIMARY KEY,
        user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        title       TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
    );
    CREATE INDEX conversations_by_user ON conversations(user_id, updated_at DESC);
    CREATE TABLE messages (
        id                INTEGER PRIMARY KEY,
        conversation_id   TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        role              TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
        content           TEXT NOT NULL,
        model             TEXT,
        prompt_tokens     INTEGER,
        completion_tokens INTEGER,
        finish_reason     TEXT,
        created_at        INTEGER NOT NULL
    );
    CREATE INDEX messages_by_conversation ON messages(conversation_id, id);",
    // 2: documents (content stored once per sha256), their chunks, persistent jobs, and
    // the outbox through which the derived search index follows SQLite. Triggers fill
    // the outbox in the same transaction as the change, so the index can never get
    // ahead of SQLite and never miss a committed row.
    "CREATE TABLE blobs (
        sha256      TEXT PRIMARY KEY,
        size        INTEGER NOT NULL,
        data        BLOB NOT NULL,
        created_at  INTEGER NOT NULL
    );
    CREATE TABLE documents (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        name        TEXT NOT NULL,
        kind        TEXT NOT NULL CHECK (kind IN ('text', 'markdown', 'html', 'pdf')),
        sha256      TEXT NOT NULL REFERENCES blobs(sha256),
        size        INTEGER NOT NULL,
        status      TEXT NOT NULL CHECK (status IN ('pending', 'ready', 'failed')),
        error       TEXT,
        chunk_count INTEGER NOT NULL DEFAULT 0,
        created_at  INTEGER NOT NULL,
        UNIQUE (user_id, sha256)
    );
    CREATE INDEX documents_by_user ON documents(user_id, id DESC);
    CREATE TABLE chunks (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
        user_id     INTEGER NOT NULL,
        ord         INTEGER NOT NULL,
        text        TEXT NOT NULL,
        embedding   BLOB,
        UNIQUE (document_id, ord)
    );
    CREATE INDEX chunks_by_user ON chunks(user_id);
    CREATE TABLE jobs (
        id           TEXT PRIMARY KEY,
        user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        kind         TEXT NOT NULL,
        document_id  INTEGER REFERENCES documents(id) ON DELETE SET NULL,
        state        TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
        progress     REAL NOT NULL DEFAULT 0,
        error        TEXT,
        owner        TEXT,
        heartbeat_at INTEGER,
        attempts     INTEGER NOT NULL DEFAULT 0,
        created_at   INTEGER NOT NULL,
        updated_at   INTEGER NOT NULL
    );
    CREATE INDEX jobs_by_state ON jobs(state, created_at);
    CREATE TABLE index_outbox (
        seq     INTEGER PRIMARY KEY AUTOINCREMENT,
        kind    TEXT NOT NULL CHECK (kind IN ('message', 'chunk')),
        item_id INTEGER NOT NULL,
        op      TEXT NOT NULL CHECK (op IN ('add', 'delete'))
    );
    CREATE TRIGGER messages_outbox_add AFTER INSERT ON messages WHEN NEW.role != 'system' BEGIN
        INSERT INTO index_outbox (kind, item_id, op) VALUES ('message', NEW.id, 'add');
    END;
    CREATE TRIGGER messages_outbox_delete AFTER DELETE ON messages BEGIN
        INSERT INTO index_outbox (kind, item_id, op) VALUES ('message', OLD.id, 'delete');
    END;
    CREATE TRIGGER chunks_outbox_add AFTER INSERT ON chunks BEGIN
        INSERT INTO index_outbox (kind, item_id, op) VALUES ('chunk', NEW.id, 'add');
    END;
    CREATE TRIGGER chunks_outbox_delete AFTER DELETE ON chunks BEGIN
        INSERT INTO index_outbox (kind, item_id, op) VALUES ('chunk', OLD.id, 'delete');
    END;
    INSERT INTO index_outbox (kind, item_id, op)
        SELECT 'message', id, 'add' FROM messages WHERE role != 'system' ORDER BY id;
    ALTER TABLE messages ADD COLUMN citations TEXT;
    ALTER TABLE conversations ADD COLUMN knowledge INTEGER;",
    // 3: web accounts: password hashes (Argon2id PHC strings; NULL = no web login),
    // browser sessions and first-run setup codes (both stored only as sha256).
    "ALTER TABLE users ADD COLUMN password_hash TEXT;
    CREATE TABLE sessions (
        id           INTEGER PRIMARY KEY,
        user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        hash         BLOB NOT NULL UNIQUE,
        created_at   INTEGER NOT NULL,
        last_seen_at INTEGER NOT NULL,
        expires_at   INTEGER NOT NULL
    );
    CREATE INDEX sessions_by_user ON sessions(user_id);
    CREATE TABLE setup_codes (
        id          INTEGER PRIMARY KEY,
        hash        BLOB NOT NULL UNIQUE,
        created_at  INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL
    );",
    // 4: choices made in the web UI that the config file does not set (store::preferences).
    "CREATE TABLE preferences (
        key         TEXT PRIMARY KEY,
        value       TEXT NOT NULL,
        updated_at  INTEGER NOT NULL
    );",
    // 5: what a token may do (comma-separated scopes; NULL: everything) and until when
    // (Unix seconds; NULL: until revoked).
    "ALTER TABLE api_tokens ADD COLUMN scopes TEXT;
    ALTER TABLE api_tokens ADD COLUMN expires_at INTEGER;",
    // 6: disabled accounts (Unix seconds; NULL: enabled) keep their data but cannot sign in.
    "ALTER TABLE users ADD COLUMN disabled_at INTEGER;",
    // 7: the tools a reply called and what they answered (JSON, `skills::ToolRun`s).
    "ALTER TABLE messages ADD COLUMN tool_calls TEXT;",
    // 8: timers and reminders (store::reminders), fired by a job that waits for `run_at`.
    "CREATE TABLE reminders (
        id              INTEGER PRIMARY KEY,
        user_id         INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        conversation_id TEXT,
        channel         TEXT NOT NULL,
        kind            TEXT NOT NULL CHECK (kind IN ('timer', 'reminder')),
        text            TEXT NOT NULL,
        due_at          INTEGER NOT NULL,
        created_at      INTEGER NOT NULL,
        state           TEXT NOT NULL CHECK (state IN ('pending', 'fired', 'cancelled')),
        fired_at        INTEGER,
        delivered_at    INTEGER
    );
    CREATE INDEX reminders_by_user ON reminders(user_id, state, due_at);
    ALTER TABLE jobs ADD COLUMN run_at INTEGER;
    ALTER TABLE jobs ADD COLUMN reminder_id INTEGER REFERENCES reminders(id) ON DELETE CASCADE;",
    // 9: the Telegram channel (store::telegram): where long polling goes on after a restart,
    // each allowlisted chat's conversation, and replies stored but not yet all sent.
    "CREATE TABLE telegram_poll (
        id           INTEGER PRIMARY KEY CHECK (id = 1),
        next_offset  INTEGER NOT NULL
    );
    CREATE TABLE telegram_chats (
        chat_id          INTEGER PRIMARY KEY,
        user_id          INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        conversation_id  TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        updated_at       INTEGER NOT NULL
    );
    CREATE TABLE telegram_replies (
        update_id   INTEGER PRIMARY KEY,
        chat_id     INTEGER NOT NULL,
        text        TEXT NOT NULL,
        speak       TEXT,
        parts_sent  INTEGER NOT NULL DEFAULT 0,
        created_at  INTEGER NOT NULL
    );",
    // 10: workflows (store::workflows): their runs, each step's record as JSON
    // (`workflows::StepRecord`); a scheduled run waits as a timed job naming its workflow;
    // signatures of inbound webhooks seen within their replay window.
    "CREATE TABLE workflow_runs (
        id               INTEGER PRIMARY KEY,
        workflow         TEXT NOT NULL,
        user_id          INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        trigger          TEXT NOT NULL,
        state            TEXT NOT NULL CHECK (state IN ('running', 'done', 'failed', 'interrupted')),
        started_at       INTEGER NOT NULL,
        finished_at      INTEGER,
        steps            TEXT NOT NULL DEFAULT '[]',
        output           TEXT,
        error            TEXT,
        conversation_id  TEXT
    );
    CREATE INDEX workflow_runs_by_workflow ON workflow_runs(workflow, id);
    ALTER TABLE jobs ADD COLUMN workflow TEXT;
    CREATE TABLE hook_signatures (
        hook       TEXT NOT NULL,
        signature  TEXT NOT NULL,
        seen_at    INTEGER NOT NULL,
        PRIMARY KEY (hook, signature)
    );",
    // 11: a user's notes (store::notes), searchable: the outbox gets a third kind, `note`.
    // SQLite cannot change a CHECK, so the outbox is made again; with `legacy_alter_table`
    // the rename leaves the triggers that write to `index_outbox` as written, so they
    // write to the new table.
    "CREATE TABLE notes (
        id          INTEGER PRIMARY KEY,
        user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        title       TEXT NOT NULL,
        text        TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
    );
    CREATE INDEX notes_by_user ON notes(user_id, updated_at DESC);
    PRAGMA legacy_alter_table = ON;
    ALTER TABLE index_outbox RENAME TO index_outbox_before_notes;
    CREATE TABLE index_outbox (
        seq     INTEGER PRIMARY KEY AUTOINCREMENT,
        kind    TEXT NOT NULL CHECK (kind IN ('message', 'chunk', 'note')),
        item_id INTEGER NOT NULL,
        op      TEXT NOT NULL CHECK (op IN ('add', 'delete'))
    );
    INSERT INTO index_outbox (seq, kind, item_id, op)
        SELECT seq, kind, item_id, op FROM index_outbox_before_notes ORDER BY seq;
    DROP TABLE index_outbox_before_notes;
    PRAGMA legacy_alter_table = OFF;
    CREATE TRIGGER notes_outbox_add AFTER INSERT ON notes BEGIN
        INSERT INTO index_outbox (kind, item_id, op) VALUES ('note', NEW.id, 'add');
    END;
    CREATE TRIGGER notes_outbox_update AFTER UPDATE OF title, text ON notes BEGIN
        INSERT INTO index_outbox (kind, item_id, op) VALUES ('note', NEW.id, 'add');
    END;
    CREATE TRIGGER notes_outbox_delete AFTER DELETE ON notes BEGIN
        INSERT INTO index_outbox (kind, item_id, op) VALUES ('note', OLD.id, 'delete');
    END;",
    // 12: the skills the owner turned on or off for one user (store::user_skills); no row
    // for a skill: the box's default. Rows go with their user.
    "CREATE TABLE user_skills (
        user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        skill       TEXT NOT NULL,
        enabled     INTEGER NOT NULL CHECK (enabled IN (0, 1)),
        updated_at  INTEGER NOT NULL,
        PRIMARY KEY (user_id, skill)
    ) WITHOUT ROWID;",
    // 13: retention per user (store::retention; NULL: the box's `[retention]`, 0: keep
    // forever), conversations imported from an export (store::transfer: importing the same
    // export again adds nothing), and when the maintenance tasks last ran (backup, retention).
    "CREATE TABLE user_retention (
        user_id            INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
        conversations_days INTEGER CHECK (conversations_days >= 0),
        documents_days     INTEGER CHECK (documents_days >= 0),
        updated_at         INTEGER NOT NULL
    );
    CREATE TABLE conversation_imports (
        user_id         INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        source_id       TEXT NOT NULL,
        conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        PRIMARY KEY (user_id, source_id)
    ) WITHOUT ROWID;
    CREATE TABLE maintenance_runs (
        task        TEXT PRIMARY KEY,
        last_run_at INTEGER NOT NULL
    ) WITHOUT ROWID;",
    // 14: the audit log (audit/, store::audit): append-only and hash-chained. No foreign
    // key to users: a deleted user's rows stay. The triggers abort any UPDATE or DELETE;
    // `prev_hash` is UNIQUE, so two rows can never claim the same predecessor (a fork).
    "CREATE TABLE audit_log (
        id          INTEGER PRIMARY KEY,
        at          INTEGER NOT NULL,
        actor_id    INTEGER,
        actor       TEXT NOT NULL,
        address     TEXT,
        action      TEXT NOT NULL,
        target      TEXT NOT NULL,
        outcome     TEXT NOT NULL CHECK (outcome IN ('success', 'failure', 'refused')),
        detail      TEXT NOT NULL,
        prev_hash   TEXT NOT NULL UNIQUE,
        hash        TEXT NOT NULL
    );
    CREATE INDEX audit_log_by_actor ON audit_log(actor, id);
    CREATE INDEX audit_log_by_action ON audit_log(action, id);
    CREATE INDEX audit_log_by_time ON audit_log(at);
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log BEGIN
        SELECT RAISE(ABORT, 'audit_log is append-only');
    END;
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log BEGIN
        SELECT RAISE(ABORT, 'audit_log is append-only');
    END;",
    // 15: a token's own request limit (issue 25), below its user's `[limits]`; NULL: none.
    "ALTER TABLE api_tokens ADD COLUMN requests_per_minute INTEGER;",
];

/// The schema version this hearth brings its databases to.
pub fn schema_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// Brings the schema up to date in one transaction per migration.
pub fn apply(conn: &mut Connection) -> rusqlite::Result<()> {
    let current: usize = conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
    if current > MIGRATIONS.len() {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_MISMATCH),
            Some(format!(
                "database schema version {current} is newer than this hearth ({}); upgrade hearth",
                MIGRATIONS.len()
            )),
        ));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (index + 1) as i64)?;
        tx.commit()?;
        tracing::info!(version = index + 1, "applied database migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_once_and_are_idempotent() {
        let mut conn = Connection::open_in_memory().unwrap();
        apply(&mut conn).unwrap();
        apply(&mut conn).unwrap();
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version as usize, MIGRATIONS.len());
    }

    #[test]
    fn the_outbox_made_again_for_notes_keeps_its_entries_and_triggers() {
        let mut conn = Connection::open_in_memory().unwrap();
        let notes = MIGRATIONS.iter().position(|m| m.contains("CREATE TABLE notes")).unwrap();
        for sql in &MIGRATIONS[..notes] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", notes as i64).unwrap();
        conn.execute_batch(
            "INSERT INTO users (id, name, role, created_at) VALUES (1, 'alice', 'user', 0);
             INSERT INTO conversations (id, user_id, title, created_at, updated_at) VALUES ('c', 1, 't', 0, 0);
             INSERT INTO messages (conversation_id, role, content, created_at) VALUES ('c', 'user', 'before', 0);",
        )
        .unwrap();
        apply(&mut conn).unwrap();
        conn.execute_batch(
            "INSERT INTO messages (conversation_id, role, content, created_at) VALUES ('c', 'user', 'after', 0);
             INSERT INTO notes (user_id, title, text, created_at, updated_at) VALUES (1, 't', 'x', 0, 0);",
        )
        .unwrap();
        let outbox: Vec<(i64, String)> = conn
            .prepare("SELECT seq, kind FROM index_outbox ORDER BY seq")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let kinds: Vec<&str> = outbox.iter().map(|(_, k)| k.as_str()).collect();
        assert_eq!(kinds, ["message", "message", "note"], "{outbox:?}");
        assert!(outbox.windows(2).all(|w| w[0].0 < w[1].0), "in order: {outbox:?}");
        let legacy: i64 = conn.query_row("PRAGMA legacy_alter_table", [], |r| r.get(0)).unwrap();
        assert_eq!(legacy, 0, "left as it was");
        let old: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE sql LIKE '%index_outbox_before_notes%'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(old, 0, "no trigger points at the old table");
    }

    #[test]
    fn newer_schema_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", 999).unwrap();
        let err = apply(&mut conn).unwrap_err().to_string();
        assert!(err.contains("newer"), "{err}");
    }
}
