//! Hostile uploads against a real server (issue 25): text extraction runs in a child
//! process bounded in time and memory, so a PDF that would hang the parser or exhaust
//! memory fails its own job with a clear message while the job thread and the server
//! carry on; uploads stream to disk instead of memory, and each user has a quota.

use crate::common::{code, response_parts, small_model, Server, ServerOptions};
use flate2::{write::ZlibEncoder, Compression};
use serde_json::Value;
use std::io::{Read, Write};

const NOTE: &str = "The boiler is serviced every October by Hartley Heating.";

/// A PDF with these objects (numbered from 1; object 1 is the catalog) and a valid xref.
fn pdf(objects: &[Vec<u8>]) -> Vec<u8> {
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(object);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for offset in offsets {
        out.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    let trailer =
        format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1);
    out.extend_from_slice(trailer.as_bytes());
    out
}

/// A page content stream, deflated (the parser inflates it whole).
fn content(text: &[u8], filler: &[u8], repeat: usize) -> Vec<u8> {
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(b"BT /F1 12 Tf 72 720 Td (").unwrap();
    encoder.write_all(text).unwrap();
    encoder.write_all(b") Tj ET\n").unwrap();
    let block = filler.repeat((1usize << 16) / filler.len());
    let mut left = filler.len() * repeat;
    while left > 0 {
        let n = left.min(block.len());
        encoder.write_all(&block[..n]).unwrap();
        left -= n;
    }
    let deflated = encoder.finish().unwrap();
    let mut stream = format!("<< /Length {} /Filter /FlateDecode >>\nstream\n", deflated.len()).into_bytes();
    stream.extend_from_slice(&deflated);
    stream.extend_from_slice(b"\nendstream");
    stream
}

/// `pages` pages that all show the same content stream (object 3).
fn pages_pdf(stream: Vec<u8>, pages: usize) -> Vec<u8> {
    let kids: Vec<String> = (0..pages).map(|i| format!("{} 0 R", 5 + i)).collect();
    let mut objects = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        format!("<< /Type /Pages /Kids [{}] /Count {pages} >>", kids.join(" ")).into_bytes(),
        stream,
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_vec(),
    ];
    let page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 3 0 R \
                 /Resources << /Font << /F1 4 0 R >> >> >>";
    objects.extend(std::iter::repeat_n(page.to_vec(), pages));
    pdf(&objects)
}

/// Uploads one file and waits for its job.
fn ingest_one(server: &Server, token: &str, name: &str, bytes: &[u8]) -> Value {
    let (status, body) = server.upload(token, &[(name, bytes)]);
    assert_eq!(status, 202, "{body}");
    server.wait_job(token, body["documents"][0]["job_id"].as_str().unwrap())
}

#[test]
fn hostile_pdfs_fail_their_own_job_and_the_server_carries_on() {
    let options = ServerOptions::new(small_model())
        .env("HEARTH_EXTRACT_TIMEOUT_SECS", "2")
        .env("HEARTH_EXTRACT_MEMORY_BYTES", &(256u64 << 20).to_string());
    let mut server = Server::start(options);
    let token = server.user("alice");

    // A deflate bomb: under 1 MB uploaded, 600 MB once the parser inflates it.
    let bomb = pages_pdf(content(b"boom", b" ", 600 << 20), 1);
    assert!(bomb.len() < 1 << 20, "{}", bomb.len());
    let job = ingest_one(&server, &token, "bomb.pdf", &bomb);
    assert_eq!(job["state"], "failed", "{job}");
    let error = job["error"].as_str().unwrap();
    assert!(error.contains("needed more memory than allowed (256 MiB"), "{job}");

    // Thousands of pages sharing one stream of 100,000 operators: a small file that
    // takes the parser minutes, stopped after 2 seconds.
    let slow = pages_pdf(content(b"slow", b"q Q\n", 100_000), 2000);
    assert!(slow.len() < 1 << 20, "{}", slow.len());
    let job = ingest_one(&server, &token, "slow.pdf", &slow);
    assert_eq!(job["state"], "failed", "{job}");
    assert!(job["error"].as_str().unwrap().starts_with("extraction timed out after 2 s"), "{job}");
    let (_, documents) = server.call("GET", "/api/documents", Some(&token), None);
    let failed =
        documents["documents"].as_array().unwrap().iter().filter(|d| d["status"] == "failed").count();
    assert_eq!(failed, 2, "{documents}");

    // The server, the job thread and extraction itself are fine afterwards.
    assert!(server.child.try_wait().unwrap().is_none(), "the server died:\n{}", server.log());
    assert_eq!(server.call("GET", "/api/health", None, None).0, 200);
    let job = ingest_one(&server, &token, "boiler.md", NOTE.as_bytes());
    assert_eq!(job["state"], "done", "{job}");
    let job = ingest_one(&server, &token, "house.pdf", include_bytes!("../data/house.pdf"));
    assert_eq!(job["state"], "done", "{job}");
    let (_, found) = server.call("GET", "/api/search?q=flowerpot", Some(&token), None);
    assert_eq!(found["results"][0]["document_name"], "house.pdf", "{found}");
    assert!(server.log().lines().all(|l| !l.contains("panicked")), "{}", server.log());
}

const BOUNDARY: &str = "hearth-test-boundary-stream";

/// Uploads `files` generated files of `size` bytes each (a distinct PDF header, then
/// zeros) in one multipart request, made as it is sent: nothing is held whole here either.
fn upload_generated(server: &Server, token: &str, files: usize, size: usize) -> (u16, Value) {
    let mut parts: Vec<Box<dyn Read + Send>> = Vec::new();
    let mut length = 0;
    for i in 0..files {
        let head = format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big-{i}.pdf\"\r\n\
             Content-Type: application/pdf\r\n\r\n%PDF-1.4\n%{i:08}\n"
        );
        let zeros = size - 19; // after the 19-byte PDF header
        length += head.len() + zeros + 2;
        parts.push(Box::new(std::io::Cursor::new(head.into_bytes())));
        parts.push(Box::new(std::io::repeat(0).take(zeros as u64)));
        parts.push(Box::new(&b"\r\n"[..]));
    }
    let tail = format!("--{BOUNDARY}--\r\n");
    length += tail.len();
    parts.push(Box::new(std::io::Cursor::new(tail.into_bytes())));
    let body = parts.into_iter().reduce(|a, b| Box::new(a.chain(b))).unwrap();
    let result = server
        .agent()
        .post(&format!("{}/api/documents", server.url))
        .set("Authorization", &format!("Bearer {token}"))
        .set("Content-Type", &format!("multipart/form-data; boundary={BOUNDARY}"))
        .set("Content-Length", &length.to_string())
        .send(body);
    response_parts(result)
}

/// The server's peak resident memory so far (VmHWM), in bytes.
fn peak_memory(server: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status");
    kib * 1024
}

fn uploads_dir_is_empty(server: &Server) -> bool {
    let dir = server.data_dir.join("uploads");
    std::fs::read_dir(&dir).map_or(true, |mut entries| entries.next().is_none())
}

#[test]
fn uploads_stream_to_disk_so_memory_does_not_grow_with_their_size() {
    let server = Server::start(ServerOptions::new(small_model()));
    let token = server.user("alice");
    let (status, body) = upload_generated(&server, &token, 1, 1 << 20);
    assert_eq!(status, 202, "{body}");
    let before = peak_memory(&server);
    // 20 files of 19 MiB in one request: 380 MiB that used to be held in memory at once.
    let (status, body) = upload_generated(&server, &token, 20, 19 << 20);
    assert_eq!(status, 202, "{body}");
    let grown = peak_memory(&server).saturating_sub(before);
    eprintln!("peak memory grew by {} MiB for a 380 MiB upload", grown >> 20);
    assert!(grown < 190 << 20, "peak memory grew by {} MiB for a 380 MiB upload", grown >> 20);
    let (_, listed) = server.call("GET", "/api/documents", Some(&token), None);
    assert_eq!(listed["documents"].as_array().unwrap().len(), 21, "{listed}");
    assert_eq!(listed["storage"]["used_bytes"], (1u64 << 20) + 20 * (19 << 20), "{listed}");
    assert_eq!(listed["storage"]["quota_bytes"], 1u64 << 30, "the default quota: {listed}");
    assert!(uploads_dir_is_empty(&server), "temporary files are removed once stored");
}

#[test]
fn uploads_past_the_users_quota_are_refused_and_store_nothing() {
    // Small sizes: the refused request is read whole before the answer, as a client expects.
    let options = ServerOptions::new(small_model()).env("HEARTH_USER_QUOTA_BYTES", "8192");
    let server = Server::start(options);
    let (alice, bob) = (server.user("alice"), server.user("bob"));
    let first = vec![b'a'; 6000];
    let (status, body) = server.upload(&alice, &[("first.txt", &first)]);
    assert_eq!(status, 202, "{body}");

    // 4000 bytes more do not fit in 8192: refused whole, nothing of it kept.
    let (b, c) = (vec![b'b'; 2000], vec![b'c'; 2000]);
    let (status, body) = server.upload(&alice, &[("b.txt", &b), ("c.txt", &c)]);
    assert_eq!((status, code(&body)), (413, "quota_exceeded"), "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("knowledge.user_quota_bytes") && message.contains("delete documents"), "{body}");
    let (_, listed) = server.call("GET", "/api/documents", Some(&alice), None);
    assert_eq!(listed["documents"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["storage"], serde_json::json!({"used_bytes": 6000, "quota_bytes": 8192}));
    assert!(uploads_dir_is_empty(&server), "the refused upload left files behind");

    // The quota is per user, and deleting frees it.
    let (status, body) = server.upload(&bob, &[("b.txt", &b), ("c.txt", &c)]);
    assert_eq!(status, 202, "{body}");
    let id = &listed["documents"][0]["id"];
    assert_eq!(server.call("DELETE", &format!("/api/documents/{id}"), Some(&alice), None).0, 204);
    let (status, body) = server.upload(&alice, &[("b.txt", &b), ("c.txt", &c)]);
    assert_eq!(status, 202, "{body}");
    let job = server.wait_job(&alice, body["documents"][1]["job_id"].as_str().unwrap());
    assert_eq!(job["state"], "done", "{job}");
}

#[test]
fn extraction_works_after_an_upgrade_replaced_the_binary() {
    // A package upgrade replaces /usr/bin/hearth under the running server; the
    // extractor must still be this server's own binary.
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("hearth");
    std::fs::copy(crate::common::BIN, &bin).unwrap();
    let options = ServerOptions { bin: Some(bin.clone()), ..ServerOptions::new(small_model()) };
    let server = Server::start(options);
    let token = server.user("alice");
    std::fs::remove_file(&bin).unwrap();
    let job = ingest_one(&server, &token, "house.pdf", include_bytes!("../data/house.pdf"));
    assert_eq!(job["state"], "done", "{job}");
}

/// Processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let parent_of = |stat: &str| stat.rsplit_once(") ")?.1.split(' ').nth(1)?.parse::<u32>().ok();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{child}/stat")).ok().and_then(|s| parent_of(&s))
                == Some(pid)
        })
        .collect()
}

#[test]
fn an_extractor_does_not_outlive_a_killed_server() {
    let options = ServerOptions::new(small_model()).env("HEARTH_EXTRACT_TIMEOUT_SECS", "600");
    let mut server = Server::start(options);
    let token = server.user("alice");
    let (status, body) =
        server.upload(&token, &[("slow.pdf", &pages_pdf(content(b"slow", b"q Q\n", 100_000), 2000))]);
    assert_eq!(status, 202, "{body}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let extractor = loop {
        if let Some(&pid) = children_of(server.child.id()).first() {
            break pid;
        }
        assert!(std::time::Instant::now() < deadline, "no extractor started:\n{}", server.log());
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let cmdline = std::fs::read(format!("/proc/{extractor}/cmdline")).unwrap_or_default();
    assert!(String::from_utf8_lossy(&cmdline).contains("extract"), "{cmdline:?}");
    // Killed once it is parsing (half a second of CPU), not while it still reads its input.
    let cpu_ticks = || -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{extractor}/stat")).unwrap_or_default();
        stat.rsplit_once(") ").and_then(|(_, rest)| rest.split(' ').nth(11)?.parse().ok()).unwrap_or(0)
    };
    while cpu_ticks() < 50 {
        assert!(std::time::Instant::now() < deadline, "the extractor does not work:\n{}", server.log());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    server.child.kill().unwrap(); // SIGKILL: no chance to clean up
    server.child.wait().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::path::Path::new(&format!("/proc/{extractor}")).exists() {
        let state = std::fs::read_to_string(format!("/proc/{extractor}/stat")).unwrap_or_default();
        if state.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')) {
            break; // a zombie has ended; only its parent's reaper is missing
        }
        assert!(std::time::Instant::now() < deadline, "the extractor {extractor} outlived the server");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
