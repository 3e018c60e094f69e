//! Reading a pass-through request's body at the edge: a body that ends within
//! [`BUFFER_BYTES`] is read whole (a JSON call: the usual case, exactly as any other route reads
//! its body); a larger one is read only that far, and the rest is streamed to the provider as the
//! client sends it ([`Upload`]), never held whole. The body limit (`max_request_size_mb`) holds
//! either way: a declared length beyond it is refused before reading, and a streamed body that
//! grows past it is cut there.

use bytes::{Buf, Bytes, BytesMut};
use http_body::Body;
use http_body_util::BodyExt as _;

use crate::{error::BoxError, types::passthrough::Upload};

/// How much of a pass-through body the edge reads before deciding to stream the rest: 1 MiB.
pub const BUFFER_BYTES: usize = 1 << 20;

/// Why a pass-through body could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// Larger than the limit (declared or read).
    TooLarge,
    /// The client's body failed.
    Read(BoxError),
}

/// The body read whole, or its first [`BUFFER_BYTES`] (at least) and the rest as an [`Upload`].
///
/// # Errors
///
/// [`ReadError::TooLarge`] when the declared length or the bytes read exceed `limit`;
/// [`ReadError::Read`] when the client's body fails.
pub async fn read<B>(
    body: B,
    declared: Option<u64>,
    limit: usize,
    buffer: usize,
) -> Result<(Bytes, Option<Upload>), ReadError>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ReadError::TooLarge);
    }
    let mut body = Box::pin(body);
    let mut first: Option<Bytes> = None;
    let mut more: Option<BytesMut> = None;
    let mut len = 0usize;
    loop {
        if len >= buffer {
            let head = match more {
                Some(m) => m.freeze(),
                None => first.unwrap_or_default(),
            };
            let rest = body
                .map_frame(|f| f.map_data(|mut d| d.copy_to_bytes(d.remaining())))
                .map_err(Into::into);
            return Ok((head, Some(Upload::new(rest, declared, limit as u64))));
        }
        let Some(frame) = body.frame().await else {
            break;
        };
        let frame = frame.map_err(|e| ReadError::Read(e.into()))?;
        let Ok(mut data) = frame.into_data() else {
            continue; // trailers: not sent on
        };
        let data = data.copy_to_bytes(data.remaining());
        len += data.len();
        if len > limit {
            return Err(ReadError::TooLarge);
        }
        match (&mut first, &mut more) {
            (None, None) => first = Some(data),
            (Some(f), None) => {
                let mut m = BytesMut::with_capacity(len.max(f.len() * 2));
                m.extend_from_slice(f);
                m.extend_from_slice(&data);
                first = None;
                more = Some(m);
            }
            (_, Some(m)) => m.extend_from_slice(&data),
        }
    }
    let whole = match more {
        Some(m) => m.freeze(),
        None => first.unwrap_or_default(),
    };
    Ok((whole, None))
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http_body::Frame;
    use http_body_util::{Full, StreamBody};

    use super::*;

    fn chunks(
        n: usize,
        size: usize,
    ) -> StreamBody<impl futures_core::Stream<Item = Result<Frame<Bytes>, Infallible>>> {
        StreamBody::new(futures_util::stream::iter(
            (0..n).map(move |i| Ok(Frame::data(Bytes::from(vec![i as u8; size])))),
        ))
    }

    #[tokio::test]
    async fn a_small_body_is_read_whole() {
        let (b, up) = read(Full::new(Bytes::from_static(b"{}")), Some(2), 100, 10)
            .await
            .unwrap();
        assert_eq!(&b[..], b"{}");
        assert!(up.is_none());
        let (b, up) = read(chunks(3, 3), None, 100, 10).await.unwrap();
        assert_eq!(b.len(), 9);
        assert_eq!(&b[..], &[0, 0, 0, 1, 1, 1, 2, 2, 2]);
        assert!(up.is_none());
    }

    #[tokio::test]
    async fn a_large_body_streams_its_rest_once_under_the_limit() {
        let (head, up) = read(chunks(10, 4), Some(40), 100, 10).await.unwrap();
        assert_eq!(head.len(), 12, "read up to the buffer, in whole frames");
        let up = up.expect("streamed");
        assert_eq!(up.declared_len(), Some(40));
        let body = up.take_body(head).expect("the first take");
        assert_eq!(body.size_hint().exact(), Some(40));
        let all = body.collect().await.unwrap().to_bytes();
        assert_eq!(all.len(), 40);
        assert_eq!(all[39], 9);
        assert!(up.take_body(Bytes::new()).is_none(), "taken once");
        assert!(!up.exceeded());

        // Past the limit while streaming: the stream fails and says why.
        let (head, up) = read(chunks(10, 4), None, 30, 10).await.unwrap();
        let up = up.unwrap();
        let err = up.take_body(head).unwrap().collect().await;
        assert!(err.is_err());
        assert!(up.exceeded());
    }

    #[tokio::test]
    async fn too_large_is_refused_declared_or_read() {
        assert!(matches!(
            read(chunks(1, 1), Some(101), 100, 10).await,
            Err(ReadError::TooLarge)
        ));
        assert!(matches!(
            read(chunks(30, 4), None, 100, 1000).await,
            Err(ReadError::TooLarge)
        ));
    }
}
