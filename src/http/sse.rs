//! Server-sent events: framing one event, and a streamed response of them.

use actix_web::http::header;
use actix_web::HttpResponse;
use bytes::Bytes;
use futures_util::Stream;

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
