//! Reading a reply from the engine: all at once, or as an SSE stream.

use crate::engine::{EngineError, Event, Finished};
use crate::error::ApiError;
use actix_web::http::header;
use actix_web::HttpResponse;
use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::mpsc::UnboundedReceiver;

/// A reply that has started: the engine accepted the prompt and sent a first event.
pub struct Reply {
    rx: UnboundedReceiver<Event>,
    first: Option<Event>,
}

/// A finished reply.
pub struct Complete {
    pub text: String,
    pub finished: Finished,
}

fn stopped() -> ApiError {
    EngineError::Failed("the engine stopped before finishing the reply".into()).into()
}

impl Reply {
    /// Waits for the first event, so that a request the engine rejects (such as a
    /// prompt longer than the context) is answered with its error status instead of
    /// an already-started 200 stream.
    pub async fn start(mut rx: UnboundedReceiver<Event>) -> Result<Reply, ApiError> {
        match rx.recv().await {
            Some(Event::Error(e)) => Err(e.into()),
            Some(event) => Ok(Reply { rx, first: Some(event) }),
            None => Err(stopped()),
        }
    }

    pub async fn next(&mut self) -> Option<Event> {
        match self.first.take() {
            Some(event) => Some(event),
            None => self.rx.recv().await,
        }
    }

    /// Reads the whole reply.
    pub async fn collect(mut self) -> Result<Complete, ApiError> {
        let mut text = String::new();
        loop {
            match self.next().await {
                Some(Event::Token(t)) => text.push_str(&t),
                Some(Event::Done(finished)) => return Ok(Complete { text, finished }),
                Some(Event::Error(e)) => return Err(e.into()),
                None => return Err(stopped()),
            }
        }
    }
}

/// One server-sent event; `name` is the `event:` field when given.
pub fn sse_event(name: Option<&str>, data: &str) -> Bytes {
    let mut out = String::with_capacity(data.len() + 32);
    if let Some(name) = name {
        out.push_str("event: ");
        out.push_str(name);
        out.push('\n');
    }
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

/// An SSE response over a stream of ready-made events.
pub fn sse_response<S>(events: S) -> HttpResponse
where
    S: Stream<Item = Result<Bytes, actix_web::Error>> + 'static,
{
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_split_multiline_data() {
        assert_eq!(sse_event(Some("token"), "a\nb"), Bytes::from("event: token\ndata: a\ndata: b\n\n"));
        assert_eq!(sse_event(None, "[DONE]"), Bytes::from("data: [DONE]\n\n"));
    }
}
