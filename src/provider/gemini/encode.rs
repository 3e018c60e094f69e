//! OpenAI chat request → Gemini `generateContent` request body.

use std::collections::HashMap;

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{json, Map, Value};

use crate::{
    error::LlmError,
    types::chat::{ChatRequest, Content, ContentPart, Message, PartKind},
};

/// The Gemini `generateContent` body for an OpenAI chat request.
///
/// - `system` / `developer` messages → `systemInstruction.parts` (one part each);
/// - `assistant` → role `model`, its `tool_calls` → `functionCall` parts (arguments parsed);
/// - `tool` (and legacy `function`) messages → `functionResponse` parts of a `user` turn, named after
///   the call they answer; a result that is a JSON object is the `response`, anything else is
///   wrapped as `{"content": …}`;
/// - consecutive turns of one role are merged into one content (Gemini wants user/model turns);
/// - sampling parameters → `generationConfig`, `tools` → `functionDeclarations`, `tool_choice` →
///   `toolConfig.functionCallingConfig`, `reasoning_effort` → `thinkingConfig`.
pub fn generate_content_body(chat: &ChatRequest, model: &str) -> Result<Bytes, LlmError> {
    let mut body = Map::new();
    let (contents, system) = contents(&chat.messages)?;
    body.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        body.insert("systemInstruction".into(), json!({ "parts": system }));
    }
    if let Some(tools) = tools(chat) {
        body.insert("tools".into(), tools);
    }
    if let Some(config) = tool_config(chat)? {
        body.insert("toolConfig".into(), config);
    }
    let config = generation_config(chat, model)?;
    if !config.is_empty() {
        body.insert("generationConfig".into(), Value::Object(config));
    }
    // LiteLLM passes these Gemini request fields through by their OpenAI-style names.
    for (from, to) in [
        ("safety_settings", "safetySettings"),
        ("safetySettings", "safetySettings"),
        ("cached_content", "cachedContent"),
        ("cachedContent", "cachedContent"),
        ("labels", "labels"),
    ] {
        if let Some(v) = chat.extra.get_as::<Value>(from) {
            body.insert(to.into(), v);
        }
    }
    let mut w = BytesMut::with_capacity(256 + chat.messages.len() * 128).writer();
    serde_json::to_writer(&mut w, &Value::Object(body))
        .map_err(|e| LlmError::internal(format!("cannot encode the upstream request: {e}")))?;
    Ok(w.into_inner().freeze())
}

/// `contents` and the `systemInstruction` parts.
fn contents(messages: &[Message]) -> Result<(Vec<Value>, Vec<Value>), LlmError> {
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::with_capacity(messages.len());
    let mut system = Vec::new();
    let mut call_names: HashMap<&str, &str> = HashMap::new();
    for (i, m) in messages.iter().enumerate() {
        let (role, parts) = match m.role.as_str() {
            "system" | "developer" => {
                if let Some(c) = &m.content {
                    system.extend(text_parts(c));
                }
                continue;
            }
            "user" => ("user", user_parts(m.content.as_ref(), i)?),
            "assistant" => {
                let mut parts = m.content.as_ref().map(text_parts).unwrap_or_default();
                for call in m.tool_calls.iter().flatten() {
                    let Some(f) = &call.function else { continue };
                    let name = f.name.as_deref().unwrap_or_default();
                    if let Some(id) = &call.id {
                        call_names.insert(id, name);
                    }
                    let args = parse_arguments(f.arguments.as_deref().unwrap_or(""), i)?;
                    parts.push(json!({ "functionCall": { "name": name, "args": args } }));
                }
                ("model", parts)
            }
            "tool" | "function" => {
                let name = m
                    .tool_call_id
                    .as_deref()
                    .and_then(|id| call_names.get(id).copied())
                    .or(m.name.as_deref())
                    .unwrap_or_default();
                let text = m.text();
                let response = match serde_json::from_str::<Value>(&text) {
                    Ok(obj @ Value::Object(_)) => obj,
                    _ => json!({ "content": text }),
                };
                (
                    "user",
                    vec![json!({ "functionResponse": { "name": name, "response": response } })],
                )
            }
            other => {
                return Err(LlmError::bad_request(format!(
                    "messages[{i}]: role `{other}` is not supported by Gemini"
                ))
                .with_param("messages"))
            }
        };
        if parts.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last, prev)) if *last == role => prev.extend(parts),
            _ => turns.push((role, parts)),
        }
    }
    // Gemini refuses a request without contents: a system-only conversation is sent as the user's.
    if turns.is_empty() && !system.is_empty() {
        turns.push(("user", std::mem::take(&mut system)));
    }
    let contents = turns
        .into_iter()
        .map(|(role, parts)| json!({ "role": role, "parts": parts }))
        .collect();
    Ok((contents, system))
}

/// The non-empty text of a content as `{text}` parts (one per text part).
fn text_parts(content: &Content) -> Vec<Value> {
    match content {
        Content::Text(s) if s.is_empty() => Vec::new(),
        Content::Text(s) => vec![json!({ "text": s })],
        Content::Parts(parts) => parts
            .iter()
            .filter_map(|p| p.text.as_deref())
            .filter(|t| !t.is_empty())
            .map(|t| json!({ "text": t }))
            .collect(),
    }
}

fn user_parts(content: Option<&Content>, i: usize) -> Result<Vec<Value>, LlmError> {
    match content {
        None => Ok(Vec::new()),
        Some(c @ Content::Text(_)) => Ok(text_parts(c)),
        Some(Content::Parts(parts)) => {
            let mut out = Vec::with_capacity(parts.len());
            for (j, p) in parts.iter().enumerate() {
                if let Some(v) = user_part(p).map_err(|e| {
                    LlmError::bad_request(format!("messages[{i}].content[{j}]: {e}"))
                        .with_param("messages")
                })? {
                    out.push(v);
                }
            }
            Ok(out)
        }
    }
}

fn user_part(p: &ContentPart) -> Result<Option<Value>, String> {
    match p.kind() {
        PartKind::Text => Ok(p
            .text
            .as_deref()
            .filter(|t| !t.is_empty())
            .map(|t| json!({ "text": t }))),
        PartKind::ImageUrl => {
            let img = p
                .image_url
                .as_ref()
                .ok_or("image_url part without image_url")?;
            media_part(&img.url, img.format.as_deref()).map(Some)
        }
        PartKind::InputAudio => {
            let a = p
                .input_audio
                .as_ref()
                .ok_or("input_audio part without input_audio")?;
            Ok(Some(json!({ "inlineData": {
                "mimeType": format!("audio/{}", a.format),
                "data": a.data,
            }})))
        }
        PartKind::File => {
            let f = p.file.as_ref().ok_or("file part without file")?;
            let format = f.extra.get_as::<String>("format");
            match (&f.file_data, &f.file_id) {
                (Some(data), _) => media_part(data, format.as_deref()).map(Some),
                (None, Some(id)) => media_part(id, format.as_deref()).map(Some),
                (None, None) => Err("file part without file_data or file_id".into()),
            }
        }
        PartKind::Other => Err(format!(
            "content part type `{}` is not supported by Gemini",
            p.kind_name
        )),
    }
}

/// A `data:` URL → `inlineData`; any other URL (`gs://`, `https://`) → `fileData`.
fn media_part(url: &str, format: Option<&str>) -> Result<Value, String> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest
            .split_once(',')
            .ok_or("a data: URL needs a comma before its data")?;
        let mime = meta
            .strip_suffix(";base64")
            .ok_or("only base64 data: URLs are supported")?;
        let mime = format.unwrap_or(if mime.is_empty() {
            "application/octet-stream"
        } else {
            mime
        });
        return Ok(json!({ "inlineData": { "mimeType": mime, "data": data } }));
    }
    let mut file = Map::new();
    if let Some(mime) = format.or_else(|| mime_from_extension(url)) {
        file.insert("mimeType".into(), mime.into());
    }
    file.insert("fileUri".into(), url.into());
    Ok(json!({ "fileData": file }))
}

/// A MIME type guessed from a URL's file extension.
fn mime_from_extension(url: &str) -> Option<&'static str> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "heif" => "image/heif",
        "pdf" => "application/pdf",
        "txt" => "text/plain",
        "mp3" => "audio/mp3",
        "wav" => "audio/wav",
        "flac" => "audio/flac",
        "mp4" => "video/mp4",
        "mov" => "video/mov",
        "webm" => "video/webm",
        _ => return None,
    })
}

fn parse_arguments(args: &str, i: usize) -> Result<Value, LlmError> {
    if args.trim().is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_str(args).map_err(|e| {
        LlmError::bad_request(format!(
            "messages[{i}].tool_calls: function arguments are not valid JSON: {e}"
        ))
        .with_param("messages")
    })
}

/// `tools` → one `{functionDeclarations: [...]}` tool.
fn tools(chat: &ChatRequest) -> Option<Value> {
    let tools = chat.tools.as_ref()?;
    let decls: Vec<Value> = tools
        .iter()
        .filter(|t| t.kind_name == "function")
        .filter_map(|t| t.function.as_ref())
        .map(|f| {
            let mut d = Map::new();
            d.insert("name".into(), f.name.clone().into());
            if let Some(desc) = &f.description {
                d.insert("description".into(), desc.clone().into());
            }
            if let Some(params) = f
                .parameters
                .as_ref()
                .and_then(|raw| serde_json::from_str::<Value>(raw.get()).ok())
            {
                let params = clean_schema(params);
                // Gemini rejects an object schema without properties; LiteLLM drops it too.
                let empty_object = params
                    .get("properties")
                    .and_then(Value::as_object)
                    .is_none_or(Map::is_empty)
                    && params.get("type").and_then(Value::as_str) == Some("object");
                if !empty_object {
                    d.insert("parameters".into(), params);
                }
            }
            Value::Object(d)
        })
        .collect();
    (!decls.is_empty()).then(|| json!([{ "functionDeclarations": decls }]))
}

/// Removes JSON Schema keywords Gemini's `Schema` does not know (`$schema`, `additionalProperties`,
/// `strict`), at every level but inside `properties` maps (whose keys are property names).
fn clean_schema(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(k, _)| {
                    !matches!(k.as_str(), "$schema" | "additionalProperties" | "strict")
                })
                .map(|(k, v)| {
                    let v = match (k.as_str(), v) {
                        ("properties" | "$defs" | "definitions", Value::Object(props)) => {
                            Value::Object(
                                props
                                    .into_iter()
                                    .map(|(name, s)| (name, clean_schema(s)))
                                    .collect(),
                            )
                        }
                        (_, v) => clean_schema(v),
                    };
                    (k, v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(clean_schema).collect()),
        other => other,
    }
}

/// `tool_choice` → `toolConfig.functionCallingConfig`.
fn tool_config(chat: &ChatRequest) -> Result<Option<Value>, LlmError> {
    let Some(choice) = &chat.tool_choice else {
        return Ok(None);
    };
    let config = match choice {
        Value::String(s) => match s.as_str() {
            "auto" => json!({ "mode": "AUTO" }),
            "none" => json!({ "mode": "NONE" }),
            "required" | "any" => json!({ "mode": "ANY" }),
            other => {
                return Err(LlmError::bad_request(format!(
                    "tool_choice `{other}` is not one of none, auto, required"
                ))
                .with_param("tool_choice"))
            }
        },
        Value::Object(o) => {
            let name = o
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    LlmError::bad_request("tool_choice must name a function")
                        .with_param("tool_choice")
                })?;
            json!({ "mode": "ANY", "allowedFunctionNames": [name] })
        }
        Value::Null => return Ok(None),
        _ => {
            return Err(
                LlmError::bad_request("tool_choice must be a string or an object")
                    .with_param("tool_choice"),
            )
        }
    };
    Ok(Some(json!({ "functionCallingConfig": config })))
}

fn generation_config(chat: &ChatRequest, model: &str) -> Result<Map<String, Value>, LlmError> {
    let mut c = Map::new();
    let mut put = |k: &str, v: Value| {
        c.insert(k.into(), v);
    };
    if let Some(t) = chat.temperature {
        put("temperature", t.into());
    }
    if let Some(p) = chat.top_p {
        put("topP", p.into());
    }
    if let Some(k) = chat.extra.get_as::<u64>("top_k") {
        put("topK", k.into());
    }
    if let Some(stop) = &chat.stop {
        let seqs = stop.to_vec();
        if !seqs.is_empty() {
            put("stopSequences", seqs.into());
        }
    }
    if let Some(max) = chat.max_completion_tokens.or(chat.max_tokens) {
        put("maxOutputTokens", max.into());
    }
    if let Some(n) = chat.n {
        put("candidateCount", n.into());
    }
    if let Some(seed) = chat.seed {
        put("seed", seed.into());
    }
    if let Some(p) = chat.presence_penalty {
        put("presencePenalty", p.into());
    }
    if let Some(p) = chat.frequency_penalty {
        put("frequencyPenalty", p.into());
    }
    if let Some(raw) = &chat.response_format {
        let rf: Value = serde_json::from_str(raw.get()).map_err(|e| {
            LlmError::bad_request(format!("response_format: {e}")).with_param("response_format")
        })?;
        match rf.get("type").and_then(Value::as_str) {
            Some("json_object") => put("responseMimeType", "application/json".into()),
            Some("json_schema") => {
                put("responseMimeType", "application/json".into());
                let schema = rf.get("json_schema").and_then(|s| s.get("schema")).cloned();
                if let Some(schema) = schema {
                    put("responseJsonSchema", schema);
                }
            }
            _ => {}
        }
    }
    if let Some(thinking) = thinking_config(chat, model) {
        put("thinkingConfig", thinking);
    }
    Ok(c)
}

/// `reasoning_effort` (or Anthropic-style `thinking`) → `thinkingConfig`, with LiteLLM's budgets:
/// minimal → 1 (2.5 Flash), 512 (2.5 Flash-Lite), 128 (others); low 1024; medium 2048; high 4096;
/// none / disable → 0 without thoughts.
fn thinking_config(chat: &ChatRequest, model: &str) -> Option<Value> {
    if let Some(effort) = chat.reasoning_effort.as_deref() {
        let budget: u64 = match effort {
            "minimal" if model.contains("gemini-2.5-flash-lite") => 512,
            "minimal" if model.contains("gemini-2.5-flash") => 1,
            "minimal" => 128,
            "low" => 1024,
            "medium" => 2048,
            "high" => 4096,
            "none" | "disable" => {
                return Some(json!({ "thinkingBudget": 0, "includeThoughts": false }))
            }
            _ => return None,
        };
        return Some(json!({ "thinkingBudget": budget, "includeThoughts": true }));
    }
    let thinking = chat.extra.get_as::<Value>("thinking")?;
    match thinking.get("type").and_then(Value::as_str) {
        Some("enabled") => {
            let mut c = json!({ "includeThoughts": true });
            if let Some(b) = thinking.get("budget_tokens").and_then(Value::as_u64) {
                c["thinkingBudget"] = b.into();
            }
            Some(c)
        }
        Some("disabled") => Some(json!({ "thinkingBudget": 0, "includeThoughts": false })),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(req: &str) -> Value {
        let chat: ChatRequest = serde_json::from_str(req).unwrap();
        serde_json::from_slice(&generate_content_body(&chat, "gemini-2.5-flash").unwrap()).unwrap()
    }

    #[test]
    fn merges_roles_and_maps_tool_history() {
        let b = body(
            r#"{"model":"m","messages":[
            {"role":"user","content":"a"},
            {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\"x\":1}"}}]},
            {"role":"tool","tool_call_id":"c1","content":"plain"},
            {"role":"user","content":"next"}]}"#,
        );
        assert_eq!(
            b["contents"],
            json!([
                {"role":"user","parts":[{"text":"a"}]},
                {"role":"model","parts":[{"functionCall":{"name":"f","args":{"x":1}}}]},
                {"role":"user","parts":[
                    {"functionResponse":{"name":"f","response":{"content":"plain"}}},
                    {"text":"next"}]}
            ])
        );
    }

    #[test]
    fn cleans_tool_schemas_but_keeps_property_names() {
        let b = body(
            r#"{"model":"m","messages":[{"role":"user","content":"a"}],
            "tools":[{"type":"function","function":{"name":"f","parameters":{"$schema":"x","type":"object",
            "additionalProperties":false,"properties":{"additionalProperties":{"type":"string"}}}}},
            {"type":"function","function":{"name":"g","parameters":{"type":"object","properties":{}}}}]}"#,
        );
        assert_eq!(
            b["tools"],
            json!([{"functionDeclarations":[
                {"name":"f","parameters":{"type":"object","properties":{"additionalProperties":{"type":"string"}}}},
                {"name":"g"}]}])
        );
    }

    #[test]
    fn system_only_becomes_user() {
        let b = body(r#"{"model":"m","messages":[{"role":"system","content":"hi"}]}"#);
        assert_eq!(
            b["contents"],
            json!([{"role":"user","parts":[{"text":"hi"}]}])
        );
        assert!(b.get("systemInstruction").is_none());
    }

    #[test]
    fn https_image_becomes_file_data() {
        let b = body(
            r#"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"gs://b/cat.png"}}]}]}"#,
        );
        assert_eq!(
            b["contents"][0]["parts"][0],
            json!({"fileData":{"mimeType":"image/png","fileUri":"gs://b/cat.png"}})
        );
    }
}
