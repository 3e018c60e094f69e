//! Call ids: the client's `x-litellm-call-id` when usable, else a new UUID v7.

use std::sync::Arc;

use http::HeaderMap;

use super::headers::EdgeHeaders;
pub use crate::types::extensions::new_call_id;
pub(super) use crate::types::extensions::write_uuid;

pub(super) fn call_id(headers: &HeaderMap) -> Arc<str> {
    EdgeHeaders::read(headers).call_id()
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;
    use crate::server::headers::X_LITELLM_CALL_ID;

    #[test]
    fn call_id_prefers_the_clients_header() {
        let mut h = HeaderMap::new();
        h.insert(X_LITELLM_CALL_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(&*call_id(&h), "abc-123");
        assert_eq!(call_id(&HeaderMap::new()).len(), 36);
    }
}
