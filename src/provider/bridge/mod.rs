//! [`Bridge`]: an operation served by a provider that does not speak it, through the chat model.
//!
//! A provider declares the operations it speaks natively ([`Provider::supports`](super::Provider::supports)); an operation
//! in another dialect (Anthropic's Messages, OpenAI's Responses, legacy completions) reaches every
//! other chat provider through its bridge: the request is translated to a chat request, the
//! provider's own chat translation runs as for any chat call, and the answer (complete, or its
//! chunks one by one) is translated back into the dialect, stating its facts (usage, model, text
//! delivered) on the way. The layers above see the operation and its dialect answer only.
//!
//! [`ProviderService`](super::ProviderService) looks the bridge up with [`for_kind`] when the
//! provider does not support the operation but supports chat; an operation without a bridge is
//! a 400 naming the provider and the operation ([`unsupported`](super::unsupported)).

pub mod completions;
mod messages;
pub mod responses;

use crate::{
    error::LlmError,
    types::{LlmRequest, LlmResponse, OperationKind},
};

/// Translates one operation to the chat model and its answer back.
pub trait Bridge: Send + Sync + 'static {
    /// The chat request that serves `req` (its extensions kept: the call id, the key, …).
    fn chat_request(&self, req: &LlmRequest) -> Result<LlmRequest, LlmError>;

    /// The operation's answer made from the chat answer `resp` to the request `chat_request` made from
    /// `req`: a complete chat completion becomes the dialect's JSON
    /// ([`ResponseBody::Json`](crate::types::ResponseBody::Json)), a chunk stream its event
    /// stream ([`ResponseBody::Events`](crate::types::ResponseBody::Events)). `resp.meta` is
    /// kept.
    fn chat_answer(&self, req: &LlmRequest, resp: LlmResponse) -> Result<LlmResponse, LlmError>;

    /// The answer the gateway gives itself, without calling the provider, when the operation
    /// needs nothing of it (Anthropic's `count_tokens` for a provider without a count: the
    /// gateway's estimate). Default: none, the provider is called.
    fn answer_locally(&self, _req: &LlmRequest) -> Option<Result<LlmResponse, LlmError>> {
        None
    }
}

/// The bridge of an operation kind, if it has one.
#[must_use]
pub fn for_kind(kind: OperationKind) -> Option<&'static dyn Bridge> {
    match kind {
        OperationKind::Responses => Some(&responses::ResponsesBridge),
        OperationKind::Completions => Some(&completions::CompletionsBridge),
        OperationKind::Messages => Some(&messages::MessagesBridge),
        OperationKind::MessagesCountTokens => Some(&messages::CountTokensBridge),
        OperationKind::Chat
        | OperationKind::Embeddings
        | OperationKind::ListModels
        | OperationKind::Moderations
        | OperationKind::PassThrough
        | OperationKind::ImageGenerations
        | OperationKind::ImageEdits
        | OperationKind::AudioTranscriptions
        | OperationKind::AudioTranslations
        | OperationKind::AudioSpeech
        | OperationKind::Rerank
        | OperationKind::ResponseObject => None,
    }
}
