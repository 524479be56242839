//! The response body: a whole JSON document, or an SSE stream fed by a channel.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Response;
use http::StatusCode;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

/// Body of every response.
pub type ResponseBody = UnsyncBoxBody<Bytes, Infallible>;

pub fn json(status: StatusCode, value: &impl serde::Serialize) -> Response<ResponseBody> {
    let bytes = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Full::new(Bytes::from(bytes)).boxed_unsync());
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// An SSE response whose body is whatever is sent on the returned channel; dropping the
/// sender ends the stream, and a failed send means the client is gone. `buffer` frames wait
/// at most: a stream blocks (and drops a client that stays slow) rather than buffering more.
pub fn event_stream(buffer: usize) -> (mpsc::Sender<Bytes>, Response<ResponseBody>) {
    let (tx, rx) = mpsc::channel::<Bytes>(buffer);
    let frames = ReceiverStream::new(rx).map(|b| Ok::<_, Infallible>(Frame::data(b)));
    let mut response = Response::new(BodyExt::boxed_unsync(StreamBody::new(frames)));
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-cache"),
    );
    // Proxies that buffer (nginx) would hold events back.
    headers.insert("x-accel-buffering", http::HeaderValue::from_static("no"));
    (tx, response)
}

/// `response` with `guard` kept until its body is dropped: when the stream ended and its last
/// frame went out, or when its client left.
pub fn holding<G: Send + Unpin + 'static>(
    response: Response<ResponseBody>,
    guard: G,
) -> Response<ResponseBody> {
    response.map(|body| {
        Held {
            body,
            _guard: guard,
        }
        .boxed_unsync()
    })
}

struct Held<G> {
    body: ResponseBody,
    _guard: G,
}

impl<G: Unpin> Body for Held<G> {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
