use super::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;

/// Names the test decides the addresses of.
struct Names(Vec<(&'static str, Vec<&'static str>)>);

impl Resolve for Names {
    fn resolve(&self, host: &str, _port: u16) -> std::io::Result<Vec<IpAddr>> {
        let found = self.0.iter().find(|(name, _)| *name == host);
        Ok(found.map(|(_, ips)| ips.iter().map(|ip| ip.parse().unwrap()).collect()).unwrap_or_default())
    }
}

fn guard(allowed: &[&str], names: Names) -> Guard {
    let policy =
        Policy { allowed_hosts: allowed.iter().map(|h| h.to_string()).collect(), ..Policy::default() };
    Guard::new(policy).with_resolver(Arc::new(names))
}

fn check(guard: &Guard, url: &str) -> Result<Vec<SocketAddr>, OutboundError> {
    guard.check(&Url::parse(url).unwrap())
}

fn refused(result: Result<impl std::fmt::Debug, OutboundError>) -> String {
    match result {
        Err(OutboundError::Refused(why)) => why,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn forbidden_addresses_are_refused_by_address_and_by_name() {
    let names = Names(vec![
        ("api.example.com", vec!["93.184.215.14"]),
        ("rebind.example.com", vec!["93.184.215.14", "169.254.169.254"]),
        ("inside.example.com", vec!["::ffff:127.0.0.1"]),
        ("lan.example.com", vec!["192.168.1.20"]),
    ]);
    let allowed = ["*.example.com", "127.0.0.1", "::1", "169.254.169.254", "0.0.0.0", "192.168.1.20"];
    let g = guard(&allowed, names);
    assert_eq!(check(&g, "https://api.example.com/x").unwrap(), ["93.184.215.14:443".parse().unwrap()]);
    assert_eq!(refused(check(&g, "http://127.0.0.1:8123/")), "127.0.0.1 is a loopback address");
    assert_eq!(refused(check(&g, "http://[::1]/")), "::1 is a loopback address");
    assert_eq!(
        refused(check(&g, "http://169.254.169.254/latest/")),
        "169.254.169.254 is a cloud metadata address"
    );
    assert_eq!(refused(check(&g, "http://0.0.0.0/")), "0.0.0.0 is an unspecified address");
    // url parses other spellings of an IPv4 address into the address itself.
    assert_eq!(refused(check(&g, "http://2130706433/")), "127.0.0.1 is a loopback address");
    assert_eq!(
        refused(check(&g, "http://rebind.example.com/")),
        "rebind.example.com resolves to 169.254.169.254, a cloud metadata address",
        "one bad address among good ones is enough"
    );
    assert_eq!(
        refused(check(&g, "http://inside.example.com/")),
        "inside.example.com resolves to ::ffff:127.0.0.1, a loopback address"
    );
    assert_eq!(refused(check(&g, "http://192.168.1.20/")), "192.168.1.20 is a private (LAN) address");
    assert!(
        matches!(check(&g, "http://nowhere.example.com/"), Err(OutboundError::Failed(m)) if m.contains("no address"))
    );
}

#[test]
fn the_allowlist_and_the_url_shape_are_checked_before_any_lookup() {
    let g = guard(&["api.example.com", "*.example.org"], Names(vec![("a.b.example.org.", vec!["8.8.8.8"])]));
    assert_eq!(
        refused(check(&g, "https://evil.example.net/")),
        "evil.example.net is not on the allowed hosts"
    );
    assert_eq!(refused(check(&g, "https://example.org/")), "example.org is not on the allowed hosts");
    assert!(check(&g, "https://A.B.Example.org./").is_ok(), "case and a trailing dot do not matter");
    assert!(refused(check(&g, "ftp://api.example.com/")).contains("not an http or https URL"));
    assert!(refused(check(&g, "https://user:pw@api.example.com/")).contains("user name or password"));
}

#[test]
fn an_opt_in_allows_one_host_and_port_to_be_local_and_never_the_metadata_service() {
    let names = Names(vec![("ha.lan", vec!["192.168.1.5"]), ("meta.lan", vec!["169.254.169.254"])]);
    let mut policy = Policy {
        allowed_hosts: vec!["ha.lan".into(), "127.0.0.1".into(), "meta.lan".into()],
        ..Policy::default()
    };
    policy.allow_local(&Url::parse("http://ha.lan:8123/").unwrap());
    policy.allow_local(&Url::parse("http://127.0.0.1:8123/").unwrap());
    policy.allow_local(&Url::parse("http://meta.lan/").unwrap());
    let g = Guard::new(policy.clone()).with_resolver(Arc::new(names));
    assert!(check(&g, "http://ha.lan:8123/api/").is_ok());
    assert!(check(&g, "http://127.0.0.1:8123/api/").is_ok());
    assert_eq!(
        refused(check(&g, "http://127.0.0.1:8124/")),
        "127.0.0.1 is a loopback address",
        "another port"
    );
    assert_eq!(
        refused(check(&g, "http://ha.lan:22/")),
        "ha.lan resolves to 192.168.1.5, a private (LAN) address"
    );
    assert!(refused(check(&g, "http://meta.lan/")).contains("cloud metadata"), "never, even opted in");

    let lan = Guard::new(Policy { allow_private: true, ..policy })
        .with_resolver(Arc::new(Names(vec![("ha.lan", vec!["192.168.1.5"])])));
    assert!(check(&lan, "http://ha.lan:22/").is_ok(), "allow_private opens the LAN");
    assert!(refused(check(&lan, "http://127.0.0.1:22/")).contains("loopback"), "but not the box itself");
}

/// A one-shot HTTP server on 127.0.0.1: answers each connection with the next of
/// `answers` and reports each request's head and body.
fn server(answers: Vec<String>) -> (u16, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for answer in answers {
            let Ok((mut stream, _)) = listener.accept() else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                head.push_str(&line);
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let _ = tx.send(format!("{head}\n{}", String::from_utf8_lossy(&body)));
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    (port, rx)
}

fn answer(status: &str, headers: &str, body: &str) -> String {
    format!("HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
}

fn loopback_guard(opted_in: &[u16], policy: Policy) -> Guard {
    let mut policy = Policy { allowed_hosts: vec!["127.0.0.1".into(), "localhost".into()], ..policy };
    for port in opted_in {
        policy.allow_local(&Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap());
    }
    Guard::new(policy)
}

#[tokio::test]
async fn an_opted_in_server_is_reached_and_redirects_are_checked_hop_by_hop() {
    let (forbidden, forbidden_saw) = server(vec![answer("200 OK", "", "secret")]);
    let (allowed, allowed_saw) = server(vec![
        answer("302 Found", "Location: /moved\r\n", ""),
        answer("200 OK", "Content-Type: text/plain\r\n", "hello"),
        answer("302 Found", &format!("Location: http://127.0.0.1:{forbidden}/\r\n"), ""),
        answer("307 Temporary Redirect", &format!("Location: http://localhost:{forbidden}/\r\n"), ""),
    ]);
    let g = loopback_guard(&[allowed], Policy::default());
    let base = format!("http://127.0.0.1:{allowed}");

    let response = g.send(Request::get(format!("{base}/start")).header("X-Key", "k", true)).await.unwrap();
    assert_eq!((response.status, response.text().as_str()), (200, "hello"));
    let first = allowed_saw.recv().unwrap();
    let second = allowed_saw.recv().unwrap();
    assert!(first.starts_with("GET /start ") && second.starts_with("GET /moved "), "{first}\n{second}");
    assert!(second.contains("X-Key: k"), "a secret header stays with its own origin: {second}");

    let e = g.send(Request::get(format!("{base}/a"))).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("refused: the redirect to http://127.0.0.1:{forbidden}/ was refused: 127.0.0.1 is a loopback address")
    );
    let e = g.send(Request::post_json(format!("{base}/b"), &serde_json::json!({}))).await.unwrap_err();
    assert!(e.to_string().contains("localhost resolves to 127.0.0.1, a loopback address"), "{e}");
    assert_eq!(allowed_saw.iter().take(2).count(), 2);
    assert!(
        forbidden_saw.recv_timeout(Duration::from_millis(200)).is_err(),
        "the forbidden server saw no request"
    );
}

#[tokio::test]
async fn answers_too_large_too_slow_or_redirecting_forever_fail() {
    let big = "x".repeat(2000);
    let (port, _saw) = server(vec![
        answer("200 OK", "", &big),
        answer("301 Moved", "Location: /again\r\n", ""),
        answer("301 Moved", "Location: /again\r\n", ""),
    ]);
    let policy = Policy { max_response_bytes: 1000, max_redirects: 1, ..Policy::default() };
    let g = loopback_guard(&[port], policy);
    let url = format!("http://127.0.0.1:{port}/");
    let e = g.send(Request::get(&url)).await.unwrap_err();
    assert_eq!(e.to_string(), "the answer from 127.0.0.1 is larger than 1000 bytes");
    let e = g.send(Request::get(&url)).await.unwrap_err();
    assert_eq!(e.to_string(), "127.0.0.1 redirected more than 1 times");

    // Accepts and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let g = loopback_guard(&[port], Policy { timeout: Duration::from_millis(300), ..Policy::default() });
    let started = std::time::Instant::now();
    let e = g.send(Request::get(format!("http://127.0.0.1:{port}/"))).await.unwrap_err();
    assert_eq!(e.to_string(), "127.0.0.1 did not answer within 300 ms");
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(silent);
}
