//! `ProxyBody`: the one response/request body type, without boxing on the cache-hit path.

use crate::error::BoxError;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A body that is either in memory (hits, errors), streamed from a peer, or both: the prefix a fill
/// already buffered followed by the rest of the stream, when a response turned out too large to store.
#[derive(Debug)]
pub enum ProxyBody {
    Full(Option<Bytes>),
    Stream(Incoming),
    Prefixed {
        prefix: VecDeque<Bytes>,
        rest: Option<Incoming>,
    },
    /// A request body on its way to the backend, which fails with [`BodyTooLarge`] (aborting
    /// the backend request) once more than `limit` bytes have come.
    Limited {
        body: Incoming,
        read: u64,
        limit: u64,
    },
}

/// The error a [`ProxyBody::Limited`] body ends with past its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request body exceeds {0} bytes")]
pub struct BodyTooLarge(pub u64);

impl ProxyBody {
    pub fn empty() -> Self {
        ProxyBody::Full(None)
    }

    /// A request body forwarded with at most `limit` bytes.
    pub fn limited(body: Incoming, limit: u64) -> Self {
        ProxyBody::Limited {
            body,
            read: 0,
            limit,
        }
    }

    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        if bytes.is_empty() {
            ProxyBody::Full(None)
        } else {
            ProxyBody::Full(Some(bytes))
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ProxyBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            ProxyBody::Stream(incoming) => Pin::new(incoming).poll_frame(cx).map_err(Into::into),
            ProxyBody::Limited { body, read, limit } => {
                let frame = std::task::ready!(Pin::new(body).poll_frame(cx));
                if let Some(Ok(data)) = frame.as_ref().map(|f| f.as_ref().map(Frame::data_ref)) {
                    *read += data.map_or(0, |d| d.len() as u64);
                    if *read > *limit {
                        return Poll::Ready(Some(Err(Box::new(BodyTooLarge(*limit)))));
                    }
                }
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            ProxyBody::Prefixed { prefix, rest } => {
                if let Some(chunk) = prefix.pop_front() {
                    return Poll::Ready(Some(Ok(Frame::data(chunk))));
                }
                match rest {
                    Some(incoming) => Pin::new(incoming).poll_frame(cx).map_err(Into::into),
                    None => Poll::Ready(None),
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Full(bytes) => bytes.is_none(),
            ProxyBody::Stream(incoming) => incoming.is_end_stream(),
            ProxyBody::Limited { body, .. } => body.is_end_stream(),
            ProxyBody::Prefixed { prefix, rest } => {
                prefix.is_empty() && rest.as_ref().is_none_or(|r| r.is_end_stream())
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            ProxyBody::Stream(incoming) => incoming.size_hint(),
            ProxyBody::Limited { body, .. } => body.size_hint(),
            ProxyBody::Prefixed { prefix, rest } => {
                let buffered: u64 = prefix.iter().map(|b| b.len() as u64).sum();
                let Some(rest) = rest else {
                    return SizeHint::with_exact(buffered);
                };
                let inner = rest.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(inner.lower() + buffered);
                if let Some(upper) = inner.upper() {
                    hint.set_upper(upper + buffered);
                }
                hint
            }
        }
    }
}
