//! A structural scan of JSON that the gateway relays rather than parses.
//!
//! An OpenAI-format request goes upstream as the client's bytes with `model` spliced in, and an
//! OpenAI-format answer or stream chunk goes back as the provider's bytes with a few members read
//! (`model`, `usage`, the choices' finish reasons). Both need the position of each top-level
//! member, not a parse of every value: this module walks an object's members and an array's
//! elements, skipping values by their structure (strings eight bytes at a time, containers by
//! depth).
//!
//! It checks structure (quotes, colons, commas, brackets), not the grammar inside values: a
//! malformed number or an invalid escape inside a string is passed over, as a pass-through proxy
//! would pass it on. The members that are read are checked when they are read (by serde, or by the
//! reader's own plain-shape check).
//! Every function is total: any input gives `None` or a result, never a panic or a loop.

use std::ops::Range;

/// One member of an object, by position in the scanned bytes.
#[derive(Clone, Debug)]
pub(crate) struct Member<'a> {
    /// The key's text between its quotes (escapes not decoded).
    pub(crate) key: &'a [u8],
    /// Whether the key's text holds a backslash escape (then `key` is not its name).
    pub(crate) escaped: bool,
    /// Just past the `{` or `,` before the member (its leading whitespace starts here).
    pub(crate) start: usize,
    /// The value's bytes.
    pub(crate) value: Range<usize>,
    /// The `,` or `}` after the member.
    pub(crate) sep: usize,
}

/// Calls `f` with each member of the object that starts at `raw[at..]` (after whitespace), in
/// order; returns the index just past the object's `}`. `None` when the bytes are not an object.
pub(crate) fn for_each_member<'a>(
    raw: &'a [u8],
    at: usize,
    f: impl FnMut(Member<'a>),
) -> Option<usize> {
    walk_members(raw, at, |_, value_at| skip_value(raw, value_at), f)
}

/// [`for_each_member`] where `end_of(key, value_at)` finds where each value ends: a caller that
/// reads into a value (with [`walk_elements`] or [`walk_members`]) does so while finding its
/// end, instead of skipping it first and reading it again. `end_of` returning `None` makes the
/// whole walk `None`.
pub(crate) fn walk_members<'a>(
    raw: &'a [u8],
    at: usize,
    mut end_of: impl FnMut(&'a [u8], usize) -> Option<usize>,
    mut f: impl FnMut(Member<'a>),
) -> Option<usize> {
    let mut i = match open_container(raw, at, b'{', b'}')? {
        Opened::Empty(end) => return Some(end),
        Opened::At(open) => open,
    };
    loop {
        let start = i + 1;
        let key_at = skip_ws(raw, start);
        if raw.get(key_at) != Some(&b'"') {
            return None;
        }
        let (key_end, escaped) = string_end(raw, key_at + 1)?;
        let key = raw.get(key_at + 1..key_end - 1)?;
        let colon = skip_ws(raw, key_end);
        if raw.get(colon) != Some(&b':') {
            return None;
        }
        let value_at = skip_ws(raw, colon + 1);
        // An escaped key is not the name its text spells: it never gets a reader.
        let value_end = if escaped {
            skip_value(raw, value_at)?
        } else {
            end_of(key, value_at)?
        };
        if value_end <= value_at || value_end > raw.len() {
            return None;
        }
        let (sep, last) = separator(raw, value_end, b'}')?;
        f(Member {
            key,
            escaped,
            start,
            value: value_at..value_end,
            sep,
        });
        i = sep;
        if last {
            return Some(sep + 1);
        }
    }
}

/// Calls `f` with each element of the array that starts at `raw[at..]` (after whitespace), where
/// `end_of(value_at)` finds where each element ends (see [`walk_members`]); returns the index just
/// past the `]`. `None` when the bytes are not an array.
pub(crate) fn walk_elements(
    raw: &[u8],
    at: usize,
    mut end_of: impl FnMut(usize) -> Option<usize>,
    mut f: impl FnMut(Range<usize>),
) -> Option<usize> {
    let mut i = match open_container(raw, at, b'[', b']')? {
        Opened::Empty(end) => return Some(end),
        Opened::At(open) => open,
    };
    loop {
        let value_at = skip_ws(raw, i + 1);
        let value_end = end_of(value_at)?;
        if value_end <= value_at || value_end > raw.len() {
            return None;
        }
        let (sep, last) = separator(raw, value_end, b']')?;
        f(value_at..value_end);
        i = sep;
        if last {
            return Some(sep + 1);
        }
    }
}

/// Where a container starts, or where it ends when it is empty.
enum Opened {
    /// The index of the opening bracket of a container with at least one item.
    At(usize),
    /// One past the closing bracket of an empty container.
    Empty(usize),
}

/// The container opened by `open` at `raw[at..]` (after whitespace); `None` when it is not one.
fn open_container(raw: &[u8], at: usize, open: u8, close: u8) -> Option<Opened> {
    let at = skip_ws(raw, at);
    if raw.get(at) != Some(&open) {
        return None;
    }
    let first = skip_ws(raw, at + 1);
    Some(if raw.get(first) == Some(&close) {
        Opened::Empty(first + 1)
    } else {
        Opened::At(at)
    })
}

/// The `,` or `close` after a value that ends at `value_end`: its index, and whether it closes
/// the container; `None` when neither follows.
fn separator(raw: &[u8], value_end: usize, close: u8) -> Option<(usize, bool)> {
    let sep = skip_ws(raw, value_end);
    match *raw.get(sep)? {
        b',' => Some((sep, false)),
        c if c == close => Some((sep, true)),
        _ => None,
    }
}

/// Whether only JSON whitespace follows `raw[at..]`.
pub(crate) fn only_ws_after(raw: &[u8], at: usize) -> bool {
    skip_ws(raw, at) == raw.len()
}

/// The first index at or after `i` that is not JSON whitespace.
pub(crate) fn skip_ws(raw: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = raw.get(i) {
        i += 1;
    }
    i
}

/// One past the closing quote of the string whose text starts at `i`, and whether the text holds
/// a backslash escape.
fn string_end(raw: &[u8], mut i: usize) -> Option<(usize, bool)> {
    let mut escaped = false;
    loop {
        i += find_quote_or_backslash(raw.get(i..)?)?;
        if raw.get(i) == Some(&b'"') {
            return Some((i + 1, escaped));
        }
        // A backslash: the next byte is escaped (`\"`, `\\`, `\u`, …).
        escaped = true;
        i += 2;
    }
}

/// The index of the first `"` or `\\` in `s`, eight bytes at a time. Strings in these bodies are
/// mostly short keys and values, where a vector search's setup costs more than it saves.
fn find_quote_or_backslash(s: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    const HIGH: u64 = u64::from_le_bytes([0x80; 8]);
    const QUOTES: u64 = u64::from_le_bytes([b'"'; 8]);
    const BACKSLASHES: u64 = u64::from_le_bytes([b'\\'; 8]);
    // The lowest set high bit marks the first zero byte (higher ones may be false positives).
    let zero_bytes = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let mut words = s.chunks_exact(8);
    let mut at = 0;
    for word in &mut words {
        let mut bytes = [0; 8];
        bytes.copy_from_slice(word);
        let word = u64::from_le_bytes(bytes);
        let hits = zero_bytes(word ^ QUOTES) | zero_bytes(word ^ BACKSLASHES);
        if hits != 0 {
            return Some(at + (hits.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&b| b == b'"' || b == b'\\')
        .map(|n| at + n)
}

/// The deepest nesting scanned (serde_json refuses deeper documents too).
const MAX_DEPTH: u32 = 128;

/// One past the end of the JSON value starting at `i`.
pub(crate) fn skip_value(raw: &[u8], i: usize) -> Option<usize> {
    match raw.get(i)? {
        b'"' => string_end(raw, i + 1).map(|(end, _)| end),
        b'{' | b'[' => {
            // Open containers as a bit stack (1 = object), as deep as serde_json's own limit.
            let mut open: u128 = 0;
            let mut depth = 0_u32;
            let mut j = i;
            loop {
                match *raw.get(j)? {
                    b'"' => {
                        j = string_end(raw, j + 1)?.0;
                        continue;
                    }
                    c @ (b'{' | b'[') => {
                        if depth == MAX_DEPTH {
                            return None;
                        }
                        open = (open << 1) | u128::from(c == b'{');
                        depth += 1;
                    }
                    c @ (b'}' | b']') => {
                        if depth == 0 || (open & 1 == 1) != (c == b'}') {
                            return None;
                        }
                        open >>= 1;
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        // A number, `true`, `false` or `null`: up to the next delimiter.
        _ => {
            let rest = raw.get(i..)?;
            let n = rest
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                .unwrap_or(rest.len());
            (n > 0).then_some(i + n)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn members(raw: &str) -> Option<Vec<(String, String, bool)>> {
        let mut out = Vec::new();
        let end = for_each_member(raw.as_bytes(), 0, |m| {
            out.push((
                String::from_utf8(m.key.to_vec()).unwrap(),
                raw[m.value].to_owned(),
                m.escaped,
            ));
        })?;
        only_ws_after(raw.as_bytes(), end).then_some(out)
    }

    #[test]
    fn walks_members_with_nested_values_and_awkward_strings() {
        let raw = r#" { "a" : {"x":[1,{"y":"}]"}]} , "b\"c":"q\\\"}" ,"n":-1.5e3,"t":true,"z":null,"e":{},"l":[] } "#;
        let got = members(raw).unwrap();
        assert_eq!(
            got,
            vec![
                ("a".into(), r#"{"x":[1,{"y":"}]"}]}"#.into(), false),
                (r#"b\"c"#.into(), r#""q\\\"}""#.into(), true),
                ("n".into(), "-1.5e3".into(), false),
                ("t".into(), "true".into(), false),
                ("z".into(), "null".into(), false),
                ("e".into(), "{}".into(), false),
                ("l".into(), "[]".into(), false),
            ]
        );
        assert_eq!(members("{}").unwrap(), vec![]);
        assert_eq!(members(" { } ").unwrap(), vec![]);
    }

    #[test]
    fn nesting_is_bounded_like_serde() {
        let ok = format!("{{\"a\":{}{}}}", "[".repeat(127), "]".repeat(127));
        assert!(members(&ok).is_some());
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(129), "]".repeat(129));
        assert!(members(&deep).is_none());
    }

    #[test]
    fn walks_array_elements() {
        let raw = br#"[ {"a":[1]} , "x]" ,3,[]]"#;
        let mut got = Vec::new();
        let end = walk_elements(
            raw,
            0,
            |at| skip_value(raw, at),
            |r| got.push(raw[r].to_vec()),
        )
        .unwrap();
        assert_eq!(end, raw.len());
        assert_eq!(
            got,
            vec![
                br#"{"a":[1]}"#.to_vec(),
                br#""x]""#.to_vec(),
                b"3".to_vec(),
                b"[]".to_vec()
            ]
        );
        assert_eq!(walk_elements(b"[]", 0, |_| panic!(), |_| panic!()), Some(2));
        assert_eq!(
            walk_elements(b"{}", 0, |at| skip_value(b"{}", at), |_| {}),
            None
        );
    }

    #[test]
    fn refuses_what_is_not_structured_json() {
        for bad in [
            "",
            "[1]",
            "{",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\":1,}",
            "{\"a\":1 \"b\":2}",
            "{a:1}",
            "{\"a\":\"x}",
            "{\"a\":[1,2}",
            "{\"a\":{]}",
            "{\"a\":1]",
            "{,}",
        ] {
            assert!(members(bad).is_none(), "{bad:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn finds_quotes_and_backslashes_like_a_plain_search(
            s in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::prelude::Just(b'"'),
                    proptest::prelude::Just(b'\\'),
                    proptest::prelude::Just(b'a'),
                    proptest::prelude::any::<u8>(),
                ],
                0..100,
            ),
            quiet in 0_usize..80,
        ) {
            // Long runs without a hit reach the vector search.
            let mut s = s;
            s.splice(0..0, std::iter::repeat_n(b'a', quiet));
            let want = s.iter().position(|&b| b == b'"' || b == b'\\');
            proptest::prop_assert_eq!(find_quote_or_backslash(&s), want);
        }

        #[test]
        fn never_panics_on_any_bytes(raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let _ = for_each_member(&raw, 0, |_| {});
            let _ = walk_elements(&raw, 0, |at| skip_value(&raw, at), |_| {});
            let _ = skip_value(&raw, 0);
        }

        /// On JSON objects serde accepts, the scan sees the same members.
        #[test]
        fn agrees_with_serde_on_real_objects(
            map in proptest::collection::btree_map("[a-z\"\\\\\\]{}]{0,6}", proptest::prelude::any::<(i32, String, bool)>(), 0..6)
        ) {
            let value = serde_json::Value::Object(
                map.iter()
                    .map(|(k, (n, s, b))| (k.clone(), serde_json::json!([n, s, {"b": b}])))
                    .collect(),
            );
            let raw = serde_json::to_string(&value).unwrap();
            let mut seen = Vec::new();
            let end = for_each_member(raw.as_bytes(), 0, |m| {
                let key: String = serde_json::from_slice(&[&b"\""[..], m.key, b"\""].concat()).unwrap();
                let v: serde_json::Value = serde_json::from_slice(&raw.as_bytes()[m.value]).unwrap();
                seen.push((key, v));
            }).unwrap();
            proptest::prop_assert_eq!(end, raw.len());
            let want: Vec<_> = value.as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            proptest::prop_assert_eq!(seen, want);
        }

        /// On any JSON value (nested, with awkward strings, compact or pretty), the scan finds
        /// where each value ends, and an object's members are serde's members.
        #[test]
        fn agrees_with_serde_on_any_json(value in json_value(), pretty in proptest::prelude::any::<bool>()) {
            let raw = if pretty {
                serde_json::to_vec_pretty(&value).unwrap()
            } else {
                serde_json::to_vec(&value).unwrap()
            };
            proptest::prop_assert_eq!(skip_value(&raw, 0), Some(raw.len()));
            // Compared with serde's reading of the same text (a float may read back a unit in
            // the last place away from the value it was written from).
            if let serde_json::Value::Object(map) = serde_json::from_slice(&raw).unwrap() {
                let seen = serde_members(&raw);
                let want: Vec<_> = map.into_iter().collect();
                proptest::prop_assert_eq!(seen, Some(want));
            }
        }

        /// Valid JSON with bytes inserted, removed or replaced: whenever serde still reads an
        /// object, the scan reads the same members; whatever the scan reads lies inside the input.
        #[test]
        fn agrees_with_serde_on_mutated_json(
            value in json_value(),
            edits in proptest::collection::vec(
                (0_u8..3, proptest::prelude::any::<proptest::sample::Index>(), proptest::prop_oneof![
                    proptest::sample::select(b"{}[]\",: \t\r\n\\u0e-1".to_vec()),
                    proptest::prelude::any::<u8>(),
                ]),
                1..6,
            ),
        ) {
            let mut raw = serde_json::to_vec(&serde_json::json!({ "k": value, "z": [1] })).unwrap();
            for (op, at, byte) in edits {
                let i = at.index(raw.len() + 1);
                match op {
                    0 => raw.insert(i, byte),
                    1 if i < raw.len() => { raw.remove(i); }
                    _ if i < raw.len() => raw[i] = byte,
                    _ => {}
                }
            }
            let mut inside = true;
            let end = for_each_member(&raw, 0, |m| {
                inside &= m.value.start < m.value.end && m.value.end <= raw.len() && m.sep < raw.len();
            });
            proptest::prop_assert!(inside);
            proptest::prop_assert!(end.is_none_or(|e| e <= raw.len()));
            if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(&raw) {
                let want: Vec<_> = map.into_iter().collect();
                // serde keeps the last of duplicate keys; the scan reports each.
                let seen = serde_members(&raw).map(|mut s| {
                    let mut dedup: Vec<(String, serde_json::Value)> = Vec::new();
                    s.reverse();
                    for (k, v) in s {
                        if !dedup.iter().any(|(d, _)| *d == k) {
                            dedup.push((k, v));
                        }
                    }
                    dedup.sort_by(|a, b| a.0.cmp(&b.0));
                    dedup
                });
                proptest::prop_assert_eq!(seen, Some(want));
            }
        }
    }

    /// The members the scan finds in `raw`, keys and values read by serde; `None` when the scan
    /// refuses the object or anything follows it.
    fn serde_members(raw: &[u8]) -> Option<Vec<(String, serde_json::Value)>> {
        let mut seen = Vec::new();
        let mut readable = true;
        let end = for_each_member(raw, 0, |m| {
            let key = serde_json::from_slice::<String>(&[&b"\""[..], m.key, b"\""].concat());
            let value = serde_json::from_slice::<serde_json::Value>(&raw[m.value]);
            match (key, value) {
                (Ok(k), Ok(v)) => seen.push((k, v)),
                _ => readable = false,
            }
        })?;
        (readable && only_ws_after(raw, end)).then_some(seen)
    }

    /// Any JSON value: nested containers, strings with quotes, backslashes, control characters
    /// and non-ASCII text, integers and floats.
    fn json_value() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        let text = prop_oneof!["[a-z\"\\\\{}\\[\\],: ]{0,12}", "\\PC{0,8}", any::<String>(),];
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(serde_json::Value::from),
            text.clone().prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(6, 64, 6, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
                proptest::collection::btree_map(text.clone(), inner, 0..6)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
