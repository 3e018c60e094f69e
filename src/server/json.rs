//! JSON in and out at the edge: request bodies parsed with an error that says where they broke,
//! JSON responses, the OpenAI error response, and times as JSON shows them.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use http::{header, HeaderMap, HeaderValue, StatusCode};
use serde::de::DeserializeOwned;

use super::{body::ServerBody, headers::insert_call_id};
use crate::error::LlmError;

pub(super) fn to_json<T: serde::Serialize>(value: &T) -> Bytes {
    let mut w = BytesMut::with_capacity(1024).writer();
    // Serializing wire types into memory cannot fail.
    let _ = serde_json::to_writer(&mut w, value);
    w.into_inner().freeze()
}

pub(super) fn json_response(
    status: StatusCode,
    body: Bytes,
    call_id: &Arc<str>,
) -> http::Response<ServerBody> {
    let mut r = http::Response::new(ServerBody::full(body));
    *r.status_mut() = status;
    // Room for the provider's forwarded headers and the x-litellm-* ones without growing.
    *r.headers_mut() = HeaderMap::with_capacity(24);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    insert_call_id(r.headers_mut(), call_id);
    r
}

/// The OpenAI error JSON response for an error, with its status and forwarded headers.
#[must_use]
pub fn error_response(err: &LlmError, call_id: &Arc<str>) -> http::Response<ServerBody> {
    let (status, headers, body) = err.to_http_parts();
    let mut r = http::Response::new(ServerBody::full(body));
    *r.status_mut() = status;
    *r.headers_mut() = headers;
    super::headers::insert_error_meta(r.headers_mut(), err.meta());
    insert_call_id(r.headers_mut(), call_id);
    r.extensions_mut().insert(err.kind());
    r
}

/// Unix ms → RFC 3339 (UTC).
#[must_use]
pub fn iso(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms.rem_euclid(1000)
    )
}

/// Parses a request body, with an error that says where the JSON broke.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, LlmError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(LlmError::bad_request(
            "Request body is empty; send a JSON object",
        ));
    }
    match serde_json::from_slice::<T>(bytes) {
        Ok(v) => Ok(v),
        Err(_) => {
            // Slow path only on error: parse again while tracking the path of the failing field.
            let mut de = serde_json::Deserializer::from_slice(bytes);
            let Err(err) = serde_path_to_error::deserialize::<_, T>(&mut de) else {
                return Err(match de.end() {
                    Err(e) => LlmError::bad_request(format!("Invalid JSON body: {e}")),
                    Ok(()) => LlmError::bad_request("Invalid JSON body"),
                });
            };
            let path = err.path().to_string();
            let inner = err.into_inner();
            let mut e = if path == "." || inner.is_syntax() || inner.is_eof() {
                LlmError::bad_request(format!("Invalid JSON body: {inner}"))
            } else {
                LlmError::bad_request(format!("Invalid request body at `{path}`: {inner}"))
                    .with_param(path.as_str())
            };
            if e.param().is_none() {
                let msg = inner.to_string();
                if let Some(field) = msg
                    .strip_prefix("missing field `")
                    .and_then(|rest| rest.split('`').next())
                {
                    let param = if path == "." {
                        field.to_owned()
                    } else {
                        format!("{path}.{field}")
                    };
                    e = e.with_param(param);
                }
            }
            Err(e)
        }
    }
}
