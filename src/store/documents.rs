//! Documents of the knowledge base and their chunks. A document's bytes are kept once
//! per sha256 in `blobs` (two users uploading the same file share one copy); each user
//! sees only their own documents. Chunks appear in one transaction when ingestion
//! finishes, so a document is either fully searchable or not at all.

use super::jobs::insert_job;
use super::{now, Result, Store, StoreError};
use rusqlite::{params, DatabaseName, OptionalExtension, Transaction};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Document {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub sha256: String,
    pub size: i64,
    /// `pending` (waiting for its ingest job), `ready` or `failed`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub chunk_count: i64,
    pub created_at: i64,
}

/// What an upload stored: the document, the job that ingests it, and whether the same
/// content was already there (then nothing new was stored).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Enqueued {
    pub document: Document,
    pub job_id: Option<String>,
    pub duplicate: bool,
}

/// One chunk to store: its text and, when an embedding model is configured, its vector.
#[derive(Debug, Clone)]
pub struct NewChunk {
    pub text: String,
    pub embedding: Option<Vec<f32>>,
}

/// A stored chunk with its document, as retrieval and search return it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ChunkRow {
    pub id: i64,
    pub document_id: i64,
    pub document_name: String,
    pub ord: i64,
    pub text: String,
}

const DOCUMENT_COLUMNS: &str = "id, name, kind, sha256, size, status, error, chunk_count, created_at";

fn document_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Document> {
    Ok(Document {
        id: row.get(0)?,
        name: row.get(1)?,
        kind: row.get(2)?,
        sha256: row.get(3)?,
        size: row.get(4)?,
        status: row.get(5)?,
        error: row.get(6)?,
        chunk_count: row.get(7)?,
        created_at: row.get(8)?,
    })
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn encode_vector(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn decode_vector(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

fn document_in(tx: &Transaction<'_>, user_id: i64, id: i64) -> Result<Document> {
    tx.query_row(
        &format!("SELECT {DOCUMENT_COLUMNS} FROM documents WHERE id = ?1 AND user_id = ?2"),
        params![id, user_id],
        document_from_row,
    )
    .optional()?
    .ok_or_else(|| StoreError::NotFound(format!("document {id}")))
}

/// An uploaded file waiting on disk to be stored (see [`Store::add_documents`]).
#[derive(Debug, Clone)]
pub struct NewDocument {
    pub name: String,
    pub kind: String,
    /// The content's sha256 in hex, computed as it arrived.
    pub sha256: String,
    pub size: u64,
    pub path: PathBuf,
    /// On an encrypted box the file is sealed with this key (`http/spool.rs`).
    pub key: Option<std::sync::Arc<crate::crypt::FileKey>>,
}

/// The user's document with this content, if any.
fn owned_with(tx: &Transaction<'_>, user_id: i64, sha: &str) -> Result<Option<i64>> {
    Ok(tx
        .query_row(
            "SELECT id FROM documents WHERE user_id = ?1 AND sha256 = ?2",
            params![user_id, sha],
            |r| r.get(0),
        )
        .optional()?)
}

fn used_in(conn: &rusqlite::Connection, user_id: i64) -> Result<u64> {
    let used: i64 =
        conn.query_row("SELECT COALESCE(SUM(size), 0) FROM documents WHERE user_id = ?1", [user_id], |r| {
            r.get(0)
        })?;
    Ok(used as u64)
}

/// Copies a file into a new blob row without holding it in memory: the row is made
/// with a zero-filled blob of the right size, which SQLite's incremental I/O then fills.
fn insert_blob_from_file(tx: &Transaction<'_>, file: &NewDocument, t: i64) -> Result<()> {
    let inserted = tx.execute(
        "INSERT OR IGNORE INTO blobs (sha256, size, data, created_at) VALUES (?1, ?2, zeroblob(?2), ?3)",
        params![file.sha256, file.size as i64, t],
    )?;
    if inserted == 0 {
        return Ok(()); // another user already stored this content
    }
    let io = |e: std::io::Error| StoreError::Io(format!("cannot store {}: {e}", file.path.display()));
    let source = std::io::BufReader::new(std::fs::File::open(&file.path).map_err(io)?);
    let mut source: Box<dyn std::io::Read> = match &file.key {
        None => Box::new(source),
        Some(key) => {
            Box::new(crate::crypt::aead::OpenReader::new(source, key.clone(), crate::crypt::UPLOAD_AAD))
        }
    };
    let mut blob = tx.blob_open(DatabaseName::Main, "blobs", "data", tx.last_insert_rowid(), false)?;
    let copied = std::io::copy(&mut source, &mut blob).map_err(io)?;
    if copied != file.size {
        return Err(StoreError::Io(format!("{} changed while it was stored", file.path.display())));
    }
    Ok(())
}

impl Store {
    /// Bytes of documents this user owns: what `knowledge.user_quota_bytes` limits. A
    /// file two users share counts for each of them, as each could have uploaded it alone.
    pub fn storage_used(&self, user_id: i64) -> Result<u64> {
        used_in(&self.reader(), user_id)
    }

    /// Documents the user uploaded since `since` (Unix seconds) and when the oldest of
    /// them came (`since` when none), for the uploads-per-day limit.
    pub fn uploads_since(&self, user_id: i64, since: i64) -> Result<(u32, i64)> {
        let (count, oldest): (u32, Option<i64>) = self.reader().query_row(
            "SELECT COUNT(*), MIN(created_at) FROM documents WHERE user_id = ?1 AND created_at >= ?2",
            rusqlite::params![user_id, since],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        Ok((count, oldest.unwrap_or(since)))
    }

    /// Stores uploaded files from disk and queues their ingest jobs, all in one
    /// transaction: when the files would take the user past `quota` bytes (0: no
    /// quota), nothing is stored. Content the user already has costs nothing.
    pub fn add_documents(&self, user_id: i64, files: &[NewDocument], quota: u64) -> Result<Vec<Enqueued>> {
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        let t = now();
        let used = used_in(&tx, user_id)?;
        let mut needed = 0u64;
        let mut stored = Vec::with_capacity(files.len());
        for file in files {
            if owned_with(&tx, user_id, &file.sha256)?.is_none() {
                needed += file.size;
                if quota > 0 && used + needed > quota {
                    let needed = files.iter().map(|f| f.size).sum();
                    return Err(StoreError::QuotaExceeded { used, needed, quota });
                }
                insert_blob_from_file(&tx, file, t)?;
            }
            let meta = Meta { name: &file.name, kind: &file.kind, sha256: &file.sha256, size: file.size };
            stored.push(enqueue(&tx, user_id, meta)?);
        }
        tx.commit()?;
        Ok(stored)
    }

    /// Stores a document held in memory (`hearth ingest` on the box) and queues its
    /// ingest job, all in one transaction.
    pub fn add_document(&self, user_id: i64, name: &str, kind: &str, data: &[u8]) -> Result<Enqueued> {
        let sha = sha256_hex(data);
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        let t = now();
        tx.execute(
            "INSERT OR IGNORE INTO blobs (sha256, size, data, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![sha, data.len() as i64, data, t],
        )?;
        let meta = Meta { name, kind, sha256: &sha, size: data.len() as u64 };
        let enqueued = enqueue(&tx, user_id, meta)?;
        tx.commit()?;
        Ok(enqueued)
    }
}

/// What [`enqueue`] records about a document whose content is already in `blobs`.
struct Meta<'a> {
    name: &'a str,
    kind: &'a str,
    sha256: &'a str,
    size: u64,
}

/// Adds the document for a stored blob and queues its ingest job. The same content
/// uploaded again by the same user returns the existing document (a failed one is
/// queued again).
fn enqueue(tx: &Transaction<'_>, user_id: i64, meta: Meta<'_>) -> Result<Enqueued> {
    let (id, duplicate) = match owned_with(tx, user_id, meta.sha256)? {
        Some(id) => (id, true),
        None => {
            tx.execute(
                "INSERT INTO documents (user_id, name, kind, sha256, size, status, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6)",
                params![user_id, meta.name, meta.kind, meta.sha256, meta.size as i64, now()],
            )?;
            (tx.last_insert_rowid(), false)
        }
    };
    let mut document = document_in(tx, user_id, id)?;
    let job_id = if !duplicate || document.status == "failed" {
        tx.execute("UPDATE documents SET status = 'pending', error = NULL WHERE id = ?1", [id])?;
        document.status = "pending".into();
        document.error = None;
        Some(insert_job(tx, user_id, "ingest", Some(id))?)
    } else {
        tx.query_row(
            "SELECT id FROM jobs WHERE document_id = ?1 ORDER BY created_at DESC, rowid DESC LIMIT 1",
            [id],
            |r| r.get(0),
        )
        .optional()?
    };
    Ok(Enqueued { document, job_id, duplicate })
}

impl Store {
    /// One of this user's documents.
    pub fn document(&self, user_id: i64, id: i64) -> Result<Document> {
        self.reader()
            .query_row(
                &format!("SELECT {DOCUMENT_COLUMNS} FROM documents WHERE id = ?1 AND user_id = ?2"),
                params![id, user_id],
                document_from_row,
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("document {id}")))
    }

    /// This user's documents, newest first.
    pub fn documents(&self, user_id: i64, limit: u32, offset: u32) -> Result<Vec<Document>> {
        let conn = self.reader();
        let mut stmt = conn.prepare(&format!(
            "SELECT {DOCUMENT_COLUMNS} FROM documents WHERE user_id = ?1 ORDER BY id DESC LIMIT ?2 OFFSET ?3"
        ))?;
        let rows = stmt.query_map(params![user_id, limit, offset], document_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Deletes a document, its chunks (which leave the index through the outbox) and,
    /// when no other document shares it, its content. Its unfinished jobs fail.
    pub fn delete_document(&self, user_id: i64, id: i64) -> Result<()> {
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        let document = document_in(&tx, user_id, id)?;
        tx.execute(
            "UPDATE jobs SET state = 'failed', error = 'the document was deleted', updated_at = ?2
             WHERE document_id = ?1 AND state IN ('queued', 'running')",
            params![id, now()],
        )?;
        tx.execute("DELETE FROM chunks WHERE document_id = ?1", [id])?;
        tx.execute("DELETE FROM documents WHERE id = ?1", [id])?;
        tx.execute(
            "DELETE FROM blobs WHERE sha256 = ?1 AND NOT EXISTS (SELECT 1 FROM documents WHERE sha256 = ?1)",
            [&document.sha256],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// A document and its bytes, for the ingest job (any user).
    pub fn document_content(&self, id: i64) -> Result<(Document, Vec<u8>)> {
        let conn = self.reader();
        let document = conn
            .query_row(
                &format!("SELECT {DOCUMENT_COLUMNS} FROM documents WHERE id = ?1"),
                [id],
                document_from_row,
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("document {id}")))?;
        let data =
            conn.query_row("SELECT data FROM blobs WHERE sha256 = ?1", [&document.sha256], |r| r.get(0))?;
        Ok((document, data))
    }

    /// Replaces a document's chunks and marks it ready, in one transaction. Returns
    /// `NotFound` when the document was deleted meanwhile.
    pub fn finish_document(&self, id: i64, chunks: &[NewChunk]) -> Result<()> {
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        let user_id: i64 = tx
            .query_row("SELECT user_id FROM documents WHERE id = ?1", [id], |r| r.get(0))
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("document {id}")))?;
        tx.execute("DELETE FROM chunks WHERE document_id = ?1", [id])?;
        {
            let mut insert = tx.prepare(
                "INSERT INTO chunks (document_id, user_id, ord, text, embedding) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (ord, chunk) in chunks.iter().enumerate() {
                let vector = chunk.embedding.as_deref().map(encode_vector);
                insert.execute(params![id, user_id, ord as i64, chunk.text, vector])?;
            }
        }
        tx.execute(
            "UPDATE documents SET status = 'ready', error = NULL, chunk_count = ?2 WHERE id = ?1",
            params![id, chunks.len() as i64],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Marks a document as failed to ingest, with the reason.
    pub fn fail_document(&self, id: i64, error: &str) -> Result<()> {
        self.writer().execute(
            "UPDATE documents SET status = 'failed', error = ?2 WHERE id = ?1",
            params![id, error],
        )?;
        Ok(())
    }

    /// This user's chunks among `ids`, in the order of `ids`; others' ids are skipped.
    pub fn chunks_by_ids(&self, user_id: i64, ids: &[i64]) -> Result<Vec<ChunkRow>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT c.id, c.document_id, d.name, c.ord, c.text FROM chunks c
             JOIN documents d ON d.id = c.document_id WHERE c.id = ?1 AND d.user_id = ?2",
        )?;
        let mut rows = Vec::with_capacity(ids.len());
        for id in ids {
            let row = stmt
                .query_row(params![id, user_id], |r| {
                    Ok(ChunkRow {
                        id: r.get(0)?,
                        document_id: r.get(1)?,
                        document_name: r.get(2)?,
                        ord: r.get(3)?,
                        text: r.get(4)?,
                    })
                })
                .optional()?;
            rows.extend(row);
        }
        Ok(rows)
    }

    /// Every embedded chunk of this user: (chunk id, unit vector).
    pub fn chunk_vectors(&self, user_id: i64) -> Result<Vec<(i64, Vec<f32>)>> {
        let conn = self.reader();
        let mut stmt =
            conn.prepare("SELECT id, embedding FROM chunks WHERE user_id = ?1 AND embedding IS NOT NULL")?;
        let rows = stmt.query_map([user_id], |r| Ok((r.get(0)?, decode_vector(&r.get::<_, Vec<u8>>(1)?))))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Whether this user has any document ready to retrieve from.
    pub fn has_ready_documents(&self, user_id: i64) -> Result<bool> {
        Ok(self.reader().query_row(
            "SELECT EXISTS (SELECT 1 FROM documents WHERE user_id = ?1 AND status = 'ready')",
            [user_id],
            |r| r.get(0),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{temp_store, Role};

    fn spooled(dir: &std::path::Path, name: &str, data: &[u8]) -> NewDocument {
        let path = dir.join(format!("{name}.part"));
        std::fs::write(&path, data).unwrap();
        let (kind, sha256, size) = ("text".into(), sha256_hex(data), data.len() as u64);
        NewDocument { name: name.into(), kind, sha256, size, path, key: None }
    }

    #[test]
    fn uploads_over_the_quota_store_nothing_and_duplicates_cost_nothing() {
        let (dir, store) = temp_store();
        let alice = store.create_user("alice", Role::User).unwrap();
        let bob = store.create_user("bob", Role::User).unwrap();
        let a = spooled(dir.path(), "a", &[b'a'; 600]);
        let b = spooled(dir.path(), "b", &[b'b'; 500]);
        let stored = store.add_documents(alice.id, std::slice::from_ref(&a), 1000).unwrap();
        assert_eq!((stored[0].duplicate, stored[0].document.size), (false, 600));
        let (_, content) = store.document_content(stored[0].document.id).unwrap();
        assert_eq!(content, vec![b'a'; 600], "the blob is the file, copied in pieces");

        let refused = store.add_documents(alice.id, &[a.clone(), b.clone()], 1000);
        assert!(
            matches!(refused, Err(StoreError::QuotaExceeded { used: 600, needed: 1100, quota: 1000 })),
            "{refused:?}"
        );
        assert_eq!(store.storage_used(alice.id).unwrap(), 600, "nothing of the refused upload");
        assert_eq!(store.documents(alice.id, 10, 0).unwrap().len(), 1);
        let again = store.add_documents(alice.id, std::slice::from_ref(&a), 600).unwrap();
        assert!(again[0].duplicate, "content already owned costs nothing");

        // The quota is per user; shared content is stored once but counts for each.
        store.add_documents(bob.id, &[a, b], 2000).unwrap();
        assert_eq!(store.storage_used(bob.id).unwrap(), 1100);
        let blobs: i64 = store.reader().query_row("SELECT COUNT(*) FROM blobs", [], |r| r.get(0)).unwrap();
        assert_eq!(blobs, 2);
        assert!(store.add_documents(bob.id, &[spooled(dir.path(), "c", b"c")], 0).is_ok(), "0: no quota");
    }
}
