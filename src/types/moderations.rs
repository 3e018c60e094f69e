//! OpenAI moderation wire types (`POST /v1/moderations`).

use serde_json::value::RawValue;

use super::wire::wire_object;

wire_object! {
    /// The body of `POST /v1/moderations`. `input` (a text, a list of texts, or multimodal
    /// parts) is kept as sent and relayed byte for byte.
    pub struct ModerationsRequest {
        req /// What to classify, as sent.
        input: Box<RawValue> = "input",
        opt /// The model group (optional in OpenAI's API).
        model: String = "model",
        opt /// LiteLLM request metadata; never sent upstream.
        metadata: serde_json::Value = "metadata",
    }
}

impl ModerationsRequest {
    /// The model group asked for (empty when the body names none).
    #[must_use]
    pub fn model_name(&self) -> &str {
        self.model.as_deref().unwrap_or_default()
    }

    /// The input's tokens, estimated from its bytes as sent.
    #[must_use]
    pub fn estimate_tokens(&self) -> u64 {
        super::usage::estimate_tokens(self.input.get().len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_or_without_a_model_and_keeps_the_input_as_sent() {
        let r: ModerationsRequest =
            serde_json::from_str(r#"{"input":["a", "b"],"model":"m"}"#).unwrap();
        assert_eq!(r.input.get(), r#"["a", "b"]"#);
        assert_eq!(r.model_name(), "m");
        let r: ModerationsRequest = serde_json::from_str(r#"{"input":"12345678"}"#).unwrap();
        assert_eq!(r.model_name(), "");
        assert_eq!(r.estimate_tokens(), 3);
        assert!(serde_json::from_str::<ModerationsRequest>(r#"{"model":"m"}"#).is_err());
    }
}
