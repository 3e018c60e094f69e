//! One incremental stream driver: watch a stream item by item and act once at its end.
//!
//! Layers that need the end of a streamed answer (the rate limiter's tpm and parallel slot, the
//! cache fill, cost, health) wrap the stream once in an [`Observe`] with their own
//! [`Observer`], through [`ResponseBody::observe_with`](crate::types::ResponseBody::observe_with),
//! whichever kind of stream the answer has: a [`ChatStream`]'s chunks reach [`Observer::chunk`],
//! a dialect [`EventStream`](crate::types::EventStream)'s events (Anthropic's Messages, OpenAI's
//! Responses) reach [`Observer::event`], which reads the facts each event states (usage, text
//! delivered, model) rather than the dialect's JSON. Each item is shown to the observer on its way to the client (never collected);
//! the observer may let it pass, leave it out, or turn it into an error. The observer's
//! [`Observer::end`] runs exactly once, at the first of:
//!
//! - the stream's end ([`End::Complete`]),
//! - its first error, or a chunk the observer failed ([`End::Failed`]); later items pass
//!   unobserved,
//! - the wrapper being dropped before either ([`End::Dropped`]: the client went away, or the
//!   server cut the call).
//!
//! On drop, [`Observer::end`] runs before the inner stream is dropped.
//!
//! ```
//! use llmgate::observe::{End, Flow, Observe, Observer};
//! use llmgate::types::ChunkBody;
//!
//! /// Counts chunks, and says how the stream ended.
//! struct Count(usize);
//!
//! impl Observer for Count {
//!     fn chunk(&mut self, _chunk: &mut ChunkBody) -> Flow {
//!         self.0 += 1;
//!         Flow::Pass
//!     }
//!     fn end(self, end: End) {
//!         println!("{} chunks, {end:?}", self.0);
//!     }
//! }
//! # let stream: llmgate::types::ChatStream = Box::pin(futures_util::stream::empty());
//! let observed: llmgate::types::ChatStream = Box::pin(Observe::new(stream, Count(0)));
//! # let _ = observed;
//! ```

use std::{
    fmt,
    pin::Pin,
    task::{ready, Context, Poll},
};

use futures_core::Stream;
use pin_project_lite::pin_project;

#[allow(unused_imports)] // named in the module docs
use super::ChatStream;
use super::{ChunkBody, StreamEvent};
use crate::error::LlmError;

/// How an observed stream ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The stream ended (`None`) without an error.
    Complete,
    /// The stream yielded an error, or the observer failed a chunk.
    Failed,
    /// The stream was dropped before its end.
    Dropped,
}

/// What to do with an observed chunk.
#[derive(Debug)]
pub enum Flow {
    /// Pass it on.
    Pass,
    /// Leave it out of the stream.
    Skip,
    /// Pass this error on instead; the stream counts as failed.
    Fail(LlmError),
}

/// Watches a stream for [`Observe`].
pub trait Observer {
    /// Sees each chunk before it is passed on, and may change it.
    fn chunk(&mut self, chunk: &mut ChunkBody) -> Flow {
        let _ = chunk;
        Flow::Pass
    }

    /// Sees each event of a dialect event stream before it is passed on. The default passes it
    /// on unread: an observer that counts (usage, text delivered) reads the event's facts here.
    fn event(&mut self, event: &mut StreamEvent) -> Flow {
        let _ = event;
        Flow::Pass
    }

    /// The stream's first error, just before [`Observer::end`] with [`End::Failed`].
    fn error(&mut self, err: &LlmError) {
        let _ = err;
    }

    /// Runs once, when the stream ends, fails or is dropped.
    fn end(self, end: End);
}

pin_project! {
    /// A chat stream shown to an [`Observer`]. See the [module docs](self).
    #[must_use = "streams do nothing unless polled"]
    pub struct Observe<S, O>
    where
        O: Observer,
    {
        #[pin]
        inner: S,
        observer: Option<O>,
    }

    impl<S, O> PinnedDrop for Observe<S, O>
    where
        O: Observer,
    {
        fn drop(this: Pin<&mut Self>) {
            if let Some(o) = this.project().observer.take() {
                o.end(End::Dropped);
            }
        }
    }
}

impl<S, O: Observer> Observe<S, O> {
    /// Shows `inner` to `observer`.
    pub fn new(inner: S, observer: O) -> Self {
        Self {
            inner,
            observer: Some(observer),
        }
    }

    /// Whether the observer is still watching (the stream has not ended, failed or been dropped).
    pub fn is_observing(&self) -> bool {
        self.observer.is_some()
    }
}

impl<S, O: Observer> fmt::Debug for Observe<S, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Observe")
            .field("observer", &std::any::type_name::<O>())
            .field("observing", &self.observer.is_some())
            .finish_non_exhaustive()
    }
}

/// An item of a stream [`Observe`] can watch: a chat chunk or a dialect event.
pub trait Observed: sealed::Sealed {
    /// Shows the item to the observer's method for its kind.
    fn show<O: Observer>(&mut self, observer: &mut O) -> Flow;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::super::ChunkBody {}
    impl Sealed for super::super::StreamEvent {}
}

impl Observed for ChunkBody {
    fn show<O: Observer>(&mut self, observer: &mut O) -> Flow {
        observer.chunk(self)
    }
}

impl Observed for StreamEvent {
    fn show<O: Observer>(&mut self, observer: &mut O) -> Flow {
        observer.event(self)
    }
}

impl<S, O, T> Stream for Observe<S, O>
where
    S: Stream<Item = Result<T, LlmError>>,
    O: Observer,
    T: Observed,
{
    type Item = Result<T, LlmError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            let item = ready!(this.inner.as_mut().poll_next(cx));
            let Some(observer) = this.observer.as_mut() else {
                return Poll::Ready(item);
            };
            match item {
                Some(Ok(mut chunk)) => match chunk.show(observer) {
                    Flow::Pass => return Poll::Ready(Some(Ok(chunk))),
                    Flow::Skip => {}
                    Flow::Fail(e) => {
                        if let Some(o) = this.observer.take() {
                            o.end(End::Failed);
                        }
                        return Poll::Ready(Some(Err(e)));
                    }
                },
                Some(Err(e)) => {
                    if let Some(mut o) = this.observer.take() {
                        o.error(&e);
                        o.end(End::Failed);
                    }
                    return Poll::Ready(Some(Err(e)));
                }
                None => {
                    if let Some(o) = this.observer.take() {
                        o.end(End::Complete);
                    }
                    return Poll::Ready(None);
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        // Skipped chunks make the lower bound unknowable.
        (0, self.inner.size_hint().1)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use futures_util::StreamExt as _;

    use super::*;
    use crate::error::ErrorKind;

    fn chunk(text: &str) -> Result<ChunkBody, LlmError> {
        let json =
            format!(r#"{{"id":"c","choices":[{{"index":0,"delta":{{"content":"{text}"}}}}]}}"#);
        Ok(serde_json::from_str::<crate::types::chat::ChatChunk>(&json)
            .unwrap()
            .into())
    }

    #[derive(Clone, Default)]
    struct Log(Arc<Mutex<Vec<String>>>);

    struct Rec {
        log: Log,
        skip_every_second: bool,
        seen: usize,
    }

    impl Observer for Rec {
        fn chunk(&mut self, _c: &mut ChunkBody) -> Flow {
            self.seen += 1;
            if self.skip_every_second && self.seen.is_multiple_of(2) {
                Flow::Skip
            } else {
                Flow::Pass
            }
        }
        fn error(&mut self, e: &LlmError) {
            self.log
                .0
                .lock()
                .unwrap()
                .push(format!("error {:?}", e.kind()));
        }
        fn end(self, end: End) {
            self.log
                .0
                .lock()
                .unwrap()
                .push(format!("{end:?} after {}", self.seen));
        }
    }

    fn rec(log: &Log, skip: bool) -> Rec {
        Rec {
            log: log.clone(),
            skip_every_second: skip,
            seen: 0,
        }
    }

    /// Counts a dialect event stream's facts through [`Observer::event`].
    struct Facts(Arc<Mutex<(u64, usize, Option<End>)>>);

    impl Observer for Facts {
        fn event(&mut self, e: &mut StreamEvent) -> Flow {
            let mut g = self.0.lock().unwrap();
            if let Some(u) = e.usage {
                g.0 = u.total();
            }
            g.1 += e.text_bytes;
            Flow::Pass
        }
        fn end(self, end: End) {
            self.0.lock().unwrap().2 = Some(end);
        }
    }

    #[tokio::test]
    async fn event_streams_reach_the_event_method_with_their_facts() {
        use crate::types::{EventStream, ResponseBody, TokenUsage};
        let events: EventStream = Box::pin(futures_util::stream::iter(vec![
            Ok(StreamEvent::sse("message_start", b"{}").with_usage(Some(TokenUsage::new(7, 0)))),
            Ok(StreamEvent::sse("content_block_delta", b"{}").with_text_bytes(12)),
            Ok(StreamEvent::sse("message_delta", b"{}").with_usage(Some(TokenUsage::new(7, 3)))),
        ]));
        let seen = Arc::new(Mutex::new((0, 0, None)));
        let body = ResponseBody::Events(events).observe_with(|| Facts(seen.clone()));
        let ResponseBody::Events(s) = body else {
            panic!("still an event stream")
        };
        let out: Vec<_> = s.collect().await;
        assert_eq!(out.len(), 3);
        assert_eq!(*seen.lock().unwrap(), (10, 12, Some(End::Complete)));
        // A complete answer is not watched: the observer is never made.
        let json = ResponseBody::Json(Box::new(crate::types::JsonBody::new("{}".into())));
        let json = json.observe_with(|| -> Facts { panic!("not a stream") });
        assert!(!json.is_stream());
    }

    #[tokio::test]
    async fn end_runs_once_on_complete_and_skipped_chunks_are_left_out() {
        let log = Log::default();
        let s = futures_util::stream::iter(vec![chunk("a"), chunk("b"), chunk("c")]);
        let out: Vec<_> = Observe::new(s, rec(&log, true)).collect().await;
        assert_eq!(out.len(), 2);
        assert_eq!(*log.0.lock().unwrap(), vec!["Complete after 3".to_owned()]);
    }

    #[tokio::test]
    async fn end_runs_once_on_the_first_error_and_later_items_pass() {
        let log = Log::default();
        let s = futures_util::stream::iter(vec![
            chunk("a"),
            Err(LlmError::new(ErrorKind::ServiceUnavailable, "cut")),
            chunk("b"),
        ]);
        let out: Vec<_> = Observe::new(s, rec(&log, false)).collect().await;
        assert_eq!(out.len(), 3);
        assert!(out[1].is_err());
        assert_eq!(
            *log.0.lock().unwrap(),
            vec![
                "error ServiceUnavailable".to_owned(),
                "Failed after 1".to_owned()
            ]
        );
    }

    #[tokio::test]
    async fn end_runs_on_drop_midway_and_not_again() {
        let log = Log::default();
        let s = futures_util::stream::iter(vec![chunk("a"), chunk("b")]);
        let mut o = Box::pin(Observe::new(s, rec(&log, false)));
        assert!(o.next().await.unwrap().is_ok());
        assert!(o.is_observing());
        drop(o);
        assert_eq!(*log.0.lock().unwrap(), vec!["Dropped after 1".to_owned()]);

        let log = Log::default();
        let s = futures_util::stream::iter(vec![chunk("a")]);
        let mut o = Box::pin(Observe::new(s, rec(&log, false)));
        while o.next().await.is_some() {}
        assert!(!o.is_observing());
        drop(o);
        assert_eq!(*log.0.lock().unwrap(), vec!["Complete after 1".to_owned()]);
    }
}
