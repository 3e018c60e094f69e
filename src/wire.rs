//! The machinery behind the OpenAI wire types: typed fields plus every other field kept as raw JSON.
//!
//! Each wire object is declared with `wire_object!`: the fields a layer or a translation reads are
//! typed; every other key is kept in [`Extra`] as the exact bytes the client sent
//! ([`serde_json::value::RawValue`]) and written back unchanged. Optional typed fields also remember
//! whether the sender wrote an explicit `null`, so a relayed object keeps `"refusal": null` and an
//! object built by a translation does not grow keys it never had.
//!
//! Deserialization walks the JSON map once (no `#[serde(flatten)]`, which buffers every value into an
//! intermediate tree and cannot hold raw values).

use std::fmt;

use serde::ser::SerializeMap;
use serde_json::value::RawValue;

/// Keys an object carried that no typed field reads, kept byte-for-byte, plus which optional typed
/// fields were an explicit `null`.
#[derive(Clone, Default)]
pub struct Extra {
    fields: Vec<(Box<str>, Box<RawValue>)>,
    nulls: u64,
}

impl Extra {
    /// An empty set.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            fields: Vec::new(),
            nulls: 0,
        }
    }

    /// The raw JSON of an unknown key.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&RawValue> {
        self.fields
            .iter()
            .find(|(k, _)| &**k == key)
            .map(|(_, v)| &**v)
    }

    /// Parses an unknown key's value into `T`; `None` when absent or of another shape.
    #[must_use]
    pub fn get_as<T: serde::de::DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.get(key)
            .and_then(|raw| serde_json::from_str(raw.get()).ok())
    }

    /// Sets an unknown key to a value, replacing any previous one.
    pub fn insert<T: serde::Serialize + ?Sized>(
        &mut self,
        key: &str,
        value: &T,
    ) -> Result<(), serde_json::Error> {
        let raw = serde_json::value::to_raw_value(value)?;
        self.insert_raw(key, raw);
        Ok(())
    }

    /// Sets an unknown key to raw JSON, replacing any previous one.
    pub fn insert_raw(&mut self, key: &str, raw: Box<RawValue>) {
        if let Some(slot) = self.fields.iter_mut().find(|(k, _)| &**k == key) {
            slot.1 = raw;
        } else {
            self.fields.push((key.into(), raw));
        }
    }

    /// Removes an unknown key and returns its raw JSON.
    pub fn remove(&mut self, key: &str) -> Option<Box<RawValue>> {
        let pos = self.fields.iter().position(|(k, _)| &**k == key)?;
        Some(self.fields.remove(pos).1)
    }

    /// Iterates over unknown keys in the order they arrived.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &RawValue)> {
        self.fields.iter().map(|(k, v)| (&**k, &**v))
    }

    /// How many unknown keys are kept.
    #[must_use]
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether no unknown key is kept.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Whether the typed field with this bit was an explicit `null`.
    #[doc(hidden)]
    #[must_use]
    pub const fn is_null_bit(&self, bit: u32) -> bool {
        self.nulls & (1u64 << bit) != 0
    }

    /// Marks the typed field with this bit as an explicit `null` (or not).
    #[doc(hidden)]
    pub fn set_null_bit(&mut self, bit: u32, null: bool) {
        if null {
            self.nulls |= 1u64 << bit;
        } else {
            self.nulls &= !(1u64 << bit);
        }
    }

    #[doc(hidden)]
    pub fn push_raw(&mut self, key: String, raw: Box<RawValue>) {
        self.fields.push((key.into_boxed_str(), raw));
    }

    #[doc(hidden)]
    pub fn serialize_into<M: SerializeMap>(
        &self,
        map: &mut M,
        keep: &dyn Fn(&str) -> bool,
    ) -> Result<(), M::Error> {
        for (k, v) in &self.fields {
            if keep(k) {
                map.serialize_entry(&**k, &**v)?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Extra {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (k, v) in &self.fields {
            m.entry(&k, &v.get());
        }
        m.finish()
    }
}

impl PartialEq for Extra {
    fn eq(&self, other: &Self) -> bool {
        self.nulls == other.nulls
            && self.fields.len() == other.fields.len()
            && self
                .fields
                .iter()
                .zip(&other.fields)
                .all(|((ka, va), (kb, vb))| ka == kb && va.get() == vb.get())
    }
}

/// Implemented by every `wire_object!` type: serialize with a key filter, for translations that
/// rewrite or drop keys without cloning the object.
pub trait WireObject {
    /// Writes every field (typed first, then unknown in arrival order) for which `keep` says yes.
    fn serialize_fields<M: SerializeMap>(
        &self,
        map: &mut M,
        keep: &dyn Fn(&str) -> bool,
    ) -> Result<(), M::Error>;
}

/// Declares a wire object: `req` fields must be present, `opt` fields are `Option<T>` that remember an
/// explicit `null`; every other key lands in the `extra: Extra` field.
macro_rules! wire_object {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( req $(#[$rmeta:meta])* $rfield:ident : $rty:ty = $rkey:literal, )*
            $( opt $(#[$ometa:meta])* $ofield:ident : $oty:ty = $okey:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, Default)]
        pub struct $name {
            $( $(#[$rmeta])* pub $rfield: $rty, )*
            $( $(#[$ometa])* pub $ofield: Option<$oty>, )*
            /// Every key without a typed field, kept byte-for-byte.
            pub extra: $crate::wire::Extra,
        }

        impl $name {
            #[allow(dead_code)]
            const OPT_KEYS: &'static [&'static str] = &[$($okey),*];

            /// Whether the optional typed field `key` was sent as an explicit `null`.
            #[must_use]
            pub fn is_explicit_null(&self, key: &str) -> bool {
                Self::OPT_KEYS
                    .iter()
                    .position(|k| *k == key)
                    .is_some_and(|bit| self.extra.is_null_bit(bit as u32))
            }

            /// Writes the optional typed field `key` as `null` when it is `None`.
            pub fn set_explicit_null(&mut self, key: &str, null: bool) {
                if let Some(bit) = Self::OPT_KEYS.iter().position(|k| *k == key) {
                    self.extra.set_null_bit(bit as u32, null);
                }
            }
        }

        impl $crate::wire::WireObject for $name {
            #[allow(unused_variables, unused_mut, unused_assignments)]
            fn serialize_fields<M: ::serde::ser::SerializeMap>(
                &self,
                map: &mut M,
                keep: &dyn Fn(&str) -> bool,
            ) -> Result<(), M::Error> {
                $( if keep($rkey) { map.serialize_entry($rkey, &self.$rfield)?; } )*
                let mut bit: u32 = 0;
                $(
                    if keep($okey) {
                        match &self.$ofield {
                            Some(v) => map.serialize_entry($okey, v)?,
                            None if self.extra.is_null_bit(bit) => map.serialize_entry($okey, &())?,
                            None => {}
                        }
                    }
                    bit += 1;
                )*
                self.extra.serialize_into(map, keep)
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                use ::serde::ser::SerializeMap as _;
                let mut map = serializer.serialize_map(None)?;
                $crate::wire::WireObject::serialize_fields(self, &mut map, &|_| true)?;
                map.end()
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> ::serde::de::Visitor<'de> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                        f.write_str(concat!("a JSON object (", stringify!($name), ")"))
                    }
                    #[allow(unused_mut, unused_assignments)]
                    fn visit_map<A: ::serde::de::MapAccess<'de>>(self, mut access: A) -> Result<$name, A::Error> {
                        $( let mut $rfield: Option<$rty> = None; )*
                        let mut out = $name::default();
                        #[allow(unused_variables, unused_mut, unused_assignments)]
                        while let Some(key) = access.next_key::<$crate::wire::Key<'de>>()? {
                            let key = key.0;
                            let mut bit: u32 = 0;
                            match &*key {
                                $( $rkey => {
                                    if $rfield.is_some() {
                                        return Err(::serde::de::Error::duplicate_field($rkey));
                                    }
                                    $rfield = Some(access.next_value()?);
                                    continue;
                                } )*
                                _ => {}
                            }
                            $(
                                if &*key == $okey {
                                    out.$ofield = access.next_value()?;
                                    if out.$ofield.is_none() {
                                        out.extra.set_null_bit(bit, true);
                                    }
                                    continue;
                                }
                                bit += 1;
                            )*
                            let raw: Box<::serde_json::value::RawValue> = access.next_value()?;
                            out.extra.push_raw(key.into_owned(), raw);
                        }
                        $( out.$rfield = match $rfield {
                            Some(v) => v,
                            None => return Err(::serde::de::Error::missing_field($rkey)),
                        }; )*
                        Ok(out)
                    }
                }
                deserializer.deserialize_map(V)
            }
        }
    };
}

pub(crate) use wire_object;

/// A map key that borrows from the input when it can (no allocation for plain keys).
#[doc(hidden)]
#[derive(Debug)]
pub struct Key<'de>(pub std::borrow::Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KV;
        impl<'de> serde::de::Visitor<'de> for KV {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(v)))
            }
        }
        d.deserialize_str(KV)
    }
}
