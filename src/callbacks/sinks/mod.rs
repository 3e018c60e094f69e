//! Logging sinks: every call's [`CallRecord`](crate::callbacks::CallRecord) written to Langfuse,
//! a generic HTTP webhook or a JSON-lines file, batched off the request path.
//!
//! Each sink is a [`QueuedSink`]: a bounded queue (default [`DEFAULT_QUEUE`] records) that the
//! request path offers each record to with `try_send`, never waiting; a full queue drops the
//! record and counts it ([`SinkStats::dropped`]). A task per sink takes batches (up to
//! [`DEFAULT_BATCH`] records, or what arrived within [`DEFAULT_FLUSH`]) and writes them; a
//! batch the destination refuses or that gets no answer within [`HTTP_TIMEOUT`] is counted as
//! failed ([`SinkStats::failed`]) and logged, not retried. A slow or dead destination therefore
//! slows nothing but its own queue.
//!
//! - `langfuse` ([`LangfuseWriter`]): Langfuse's public ingestion API,
//!   `POST {LANGFUSE_HOST}/api/public/ingestion`, basic auth with `LANGFUSE_PUBLIC_KEY` and
//!   `LANGFUSE_SECRET_KEY`, a `trace-create` and a `generation-create` event per call.
//! - `generic_api` ([`GenericApiWriter`]): LiteLLM's generic logger: a JSON array of
//!   `StandardLoggingPayload`s POSTed to `GENERIC_LOGGER_ENDPOINT` with
//!   `GENERIC_LOGGER_HEADERS`.
//! - `jsonl` ([`JsonlWriter`]): one `StandardLoggingPayload` per line appended to
//!   `LLMGATE_CALLBACK_LOG_FILE`.
//!
//! Message content (the request's messages, the answer's text) is in the records only while
//! `litellm_settings.turn_off_message_logging` is not true.

mod payload;
mod queue;
mod writers;

pub use self::{
    payload::{langfuse_events, standard_logging_payload},
    queue::{
        BatchWriter, QueueOptions, QueuedSink, SinkStats, DEFAULT_BATCH, DEFAULT_FLUSH,
        DEFAULT_QUEUE,
    },
    writers::{GenericApiWriter, JsonlWriter, LangfuseWriter, HTTP_TIMEOUT},
};
