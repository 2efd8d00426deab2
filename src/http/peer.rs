//! Whether a request's client is still connected.
//!
//! actix-web does not drop a handler's future when its client goes away
//! (actix/actix-web#3462). A streamed reply notices, because writing to a closed
//! connection fails, but a handler that answers once, at the end, would keep the engine
//! generating for nobody and hold its slot. So each connection keeps a duplicate of its
//! socket ([`on_connect`]), and such handlers race their work against the client
//! leaving ([`unless_gone`]).
//!
//! "Gone" means the client closed its side or the connection failed. A client that
//! half-closes after sending its request (`shutdown(SHUT_WR)`, which HTTP clients seldom
//! do) counts as gone too.

use crate::error::ApiError;
use actix_web::dev::Extensions;
use actix_web::HttpRequest;
use std::any::Any;
use std::future::Future;
use std::io::ErrorKind;
use std::os::fd::AsFd;
use std::time::Duration;

/// How often a waiting handler looks at its connection.
const CHECK_EVERY: Duration = Duration::from_millis(200);

/// The connection's socket, shared with actix (a duplicate descriptor of the same socket).
struct Peer(std::net::TcpStream);

/// `HttpServer::on_connect` hook: keeps a duplicate of each TCP connection's socket
/// (under TLS too: closing is seen on the socket beneath).
pub fn on_connect(connection: &dyn Any, data: &mut Extensions) {
    type Tls = actix_tls::accept::rustls_0_23::TlsStream<actix_web::rt::net::TcpStream>;
    let tcp = match connection.downcast_ref::<actix_web::rt::net::TcpStream>() {
        Some(tcp) => tcp,
        None => match connection.downcast_ref::<Tls>() {
            Some(tls) => tls.get_ref().0,
            None => return,
        },
    };
    match tcp.as_fd().try_clone_to_owned() {
        Ok(fd) => {
            data.insert(Peer(std::net::TcpStream::from(fd)));
        }
        Err(e) => tracing::debug!(error = %e, "cannot watch a connection for its client leaving"),
    }
}

impl Peer {
    /// Looks without reading. The socket is non-blocking (the descriptor's flags are
    /// shared with tokio's), so this never waits.
    fn gone(&self) -> bool {
        match self.0.peek(&mut [0u8; 1]) {
            Ok(0) => true,  // orderly close
            Ok(_) => false, // a pipelined request waits
            Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted),
        }
    }
}

/// Runs `work` unless the request's client leaves first; then `work` is dropped (which
/// cancels an engine request waiting on it) and an error is returned for nobody to read.
pub async fn unless_gone<F: Future>(request: &HttpRequest, work: F) -> Result<F::Output, ApiError> {
    let Some(peer) = request.conn_data::<Peer>() else { return Ok(work.await) };
    let watch = async {
        let mut tick = tokio::time::interval(CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if peer.gone() {
                return;
            }
        }
    };
    tokio::select! {
        output = work => Ok(output),
        () = watch => {
            tracing::debug!("the client went away before its reply was ready");
            Err(crate::engine::EngineError::Failed("the client went away".into()).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Peer;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};

    fn pair() -> (TcpStream, Peer) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        (client, Peer(server))
    }

    #[test]
    fn a_connected_client_is_not_gone_even_with_unread_data() {
        let (mut client, peer) = pair();
        assert!(!peer.gone());
        client.write_all(b"GET / HTTP/1.1\r\n").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!peer.gone(), "unread bytes are not a close");
        assert!(!peer.gone(), "looking does not consume them");
    }

    #[test]
    fn a_closed_client_is_gone() {
        let (client, peer) = pair();
        drop(client);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !peer.gone() {
            assert!(std::time::Instant::now() < deadline, "the close was never seen");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}
