//! Hostile uploads against a real server (issue 25): text extraction runs in a child
//! process bounded in time and memory, so a PDF that would hang the parser or exhaust
//! memory fails its own job with a clear message while the job thread and the server
//! carry on.

use crate::common::{small_model, Server, ServerOptions};
use flate2::{write::ZlibEncoder, Compression};
use serde_json::Value;
use std::io::Write;

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
