//! A fill's request to the backend and its answer read for storing: sent, checked against the
//! store rules and the encodings its bucket decodes, the body buffered while it can still be
//! stored (streamed through past the size limit), and compressed once on a `compress` route.

use crate::body::ProxyBody;
use crate::error::ProxyError;
use crate::policy::cacheability::{self, NotStored, StoreRules};
use crate::policy::encoding::{self, Bucket};
use crate::policy::http_cache as http_cache_policy;
use crate::policy::vary::{self, Selection, VaryRules};
use crate::proxy::{clean_response_head, stream_response, Inner};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use std::collections::VecDeque;

/// A stored-to-be body as it arrived: its chunks are still slices of the connection's buffers,
/// which `compact` copies the entry out of.
pub(super) struct Body {
    pub(super) chunks: VecDeque<Bytes>,
    pub(super) len: usize,
}

pub(super) enum Fetched {
    /// Head, body (as it arrived, in chunks), the tags the origin declared for the entry and
    /// what its `Vary` selects on.
    Complete(http::response::Parts, Body, Vec<String>, Selection),
    Private(Response<ProxyBody>, NotStored),
    /// A `304` to the fill's validators: the held entry is still good.
    NotModified(http::response::Parts),
    /// A 5xx while a held entry could answer instead.
    Failing(u16, Response<ProxyBody>),
}

/// Sends the fill request and buffers the body while it can still be stored.
pub(super) async fn fetch(
    inner: &Inner,
    request: Request<ProxyBody>,
    rules: &StoreRules<'_>,
    vary_rules: &VaryRules<'_>,
    expect: Expect,
    switches: &http_cache_policy::Rules,
    compress: bool,
) -> Result<Fetched, ProxyError> {
    let bucket = encoding::bucket_of(request.headers());
    let authorization = request.headers().contains_key(http::header::AUTHORIZATION);
    let response = inner.upstream.send(request).await?;
    let (mut parts, mut body) = response.into_parts();
    let status = parts.status.as_u16();
    if expect.conditional && status == 304 {
        clean_response_head(&mut parts.headers, &inner.config.cache.tag_headers);
        return Ok(Fetched::NotModified(parts));
    }
    if expect.fallback && (500..=599).contains(&status) {
        let response = stream_response(
            Response::from_parts(parts, body),
            &inner.config.cache.tag_headers,
        );
        return Ok(Fetched::Failing(status, response));
    }
    let storable = http_cache_policy::response_storable(
        switches,
        parts.status,
        &parts.headers,
        rules,
        authorization,
    )
    .and_then(|decided| {
        // Fields a qualified `private` or `no-cache` names are not kept (RFC 9111 §3.1).
        for name in &decided.omit {
            parts.headers.remove(name);
        }
        stored_encoding(bucket, &parts.headers)
    })
    .and_then(|()| vary::selection(&parts.headers, vary_rules));
    let tag_headers = &inner.config.cache.tag_headers;
    let declared = cacheability::declared_tags(&parts.headers, tag_headers);
    clean_response_head(&mut parts.headers, tag_headers);
    let mut selection = match storable {
        Ok(selection) => selection,
        Err(reason) => {
            return Ok(Fetched::Private(
                Response::from_parts(parts, ProxyBody::Stream(body)),
                reason,
            ))
        }
    };
    let mut chunks: VecDeque<Bytes> = VecDeque::new();
    let mut total: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ProxyError::UpstreamProtocol(Box::new(e)))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers are not stored
        };
        total += data.len() as u64;
        chunks.push_back(data);
        if total > rules.max_object_size {
            // Too large to store: the leader streams it through, prefix first.
            let rest = Some(body);
            return Ok(Fetched::Private(
                Response::from_parts(
                    parts,
                    ProxyBody::Prefixed {
                        prefix: chunks,
                        rest,
                    },
                ),
                NotStored::TooLarge,
            ));
        }
    }
    let body = Body {
        chunks,
        len: usize::try_from(total).unwrap_or(usize::MAX),
    };
    let body = encode_for_bucket(
        bucket,
        compress,
        &mut parts,
        body,
        &mut selection,
        vary_rules,
    )
    .await?;
    Ok(Fetched::Complete(parts, body, declared, selection))
}

/// What a fill's request may bring back besides an ordinary answer.
#[derive(Clone, Copy)]
pub(super) struct Expect {
    /// It carried validators: a `304` confirms the held entry.
    pub(super) conditional: bool,
    /// A held entry answers a 5xx instead.
    pub(super) fallback: bool,
}

/// A response filled for a bucket is stored only when every client of the bucket decodes it.
fn stored_encoding(bucket: Bucket, response: &http::HeaderMap) -> Result<(), NotStored> {
    if encoding::serves(bucket, response) {
        Ok(())
    } else {
        Err(NotStored::Encoding)
    }
}

/// What a stored answer says about encodings: an encoded one names `Accept-Encoding` in `Vary`
/// (it selects on it whatever the backend wrote), and on a `compress` route a textual answer
/// is compressed once here for the fill's bucket (`encoding::plan`), its head made to match.
async fn encode_for_bucket(
    bucket: Bucket,
    compress: bool,
    parts: &mut http::response::Parts,
    body: Body,
    selection: &mut Selection,
    vary_rules: &VaryRules<'_>,
) -> Result<Body, ProxyError> {
    if encoding::encoded(&parts.headers) != encoding::Encoded::Identity {
        encoding::add_vary(&mut parts.headers);
        return Ok(body);
    }
    let plan = match compress {
        true => encoding::plan(bucket, parts.status, &parts.headers, body.len),
        false => encoding::Plan::default(),
    };
    if plan.vary {
        encoding::add_vary(&mut parts.headers);
        selection.select_encoding(vary_rules);
    }
    let Some(coding) = plan.encode else {
        return Ok(body);
    };
    let chunks = body.chunks;
    let encoded = tokio::task::spawn_blocking(move || {
        crate::compress::encode(coding, chunks.iter().map(|c| &c[..]))
    })
    .await
    .map_err(|_| ProxyError::Internal("compression task failed"))?;
    encoding::encoded_head(&mut parts.headers, coding);
    Ok(Body {
        len: encoded.len(),
        chunks: VecDeque::from([encoded]),
    })
}
