//! The reference's message struct and how a payload fills it: the six keys ([`Field`]),
//! the extension keys, and the serde visitor that reads a JSON object into [`Fields`] the
//! way `json.Unmarshal` does.

use core::fmt;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::go_json::{fold_eq, parse_int, parse_uint};
use super::MessageError;

/// The six keys of a message, in wire order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    /// `Type`: which message (an integer).
    Type,
    /// `Data`: the Request's text.
    Data,
    /// `Lower`: the Request's first nonce.
    Lower,
    /// `Upper`: the Request's last nonce.
    Upper,
    /// `Hash`: the Result's minimum hash.
    Hash,
    /// `Nonce`: the Result's nonce.
    Nonce,
}

impl Field {
    const ALL: [Field; 6] = [
        Field::Type,
        Field::Data,
        Field::Lower,
        Field::Upper,
        Field::Hash,
        Field::Nonce,
    ];

    /// The key as the reference writes it.
    pub fn key(self) -> &'static str {
        match self {
            Field::Type => "Type",
            Field::Data => "Data",
            Field::Lower => "Lower",
            Field::Upper => "Upper",
            Field::Hash => "Hash",
            Field::Nonce => "Nonce",
        }
    }

    /// The field a JSON key names, matched like Go: exactly or under simple case folding.
    fn from_key(key: &str) -> Option<Field> {
        Field::ALL
            .into_iter()
            .find(|field| fold_eq(key, field.key()))
    }
}

/// The reference's message struct, filled the way `json.Unmarshal` fills it.
#[derive(Default)]
pub(super) struct Fields {
    pub(super) kind: i64,
    pub(super) data: String,
    pub(super) lower: u64,
    pub(super) upper: u64,
    pub(super) hash: u64,
    pub(super) nonce: u64,
    /// The extension key `Progress` was `true`.
    pub(super) progress: bool,
    /// The raw values of the extension keys `Caps`, `Zeros`, `Algo`, `Found` and `Job` (the last
    /// one of each; `None` when absent or `null`). Bounded by the payload's size.
    pub(super) caps: Option<Box<str>>,
    pub(super) zeros: Option<Box<str>>,
    pub(super) algo: Option<Box<str>>,
    pub(super) found: Option<Box<str>>,
    pub(super) job: Option<Box<str>>,
}

impl Fields {
    /// Stores one raw JSON value under `field`, with Go's type rules.
    fn set(&mut self, field: Field, raw: &str) -> Result<(), MessageError> {
        if raw == "null" {
            return Ok(()); // Go leaves the field as it was.
        }
        let bad = || MessageError::Field(field);
        match field {
            Field::Type => self.kind = parse_int(raw).ok_or_else(bad)?,
            Field::Data => {
                if !raw.starts_with('"') {
                    return Err(bad());
                }
                self.data = serde_json::from_str(raw).map_err(|_| bad())?;
            }
            Field::Lower => self.lower = parse_uint(raw).ok_or_else(bad)?,
            Field::Upper => self.upper = parse_uint(raw).ok_or_else(bad)?,
            Field::Hash => self.hash = parse_uint(raw).ok_or_else(bad)?,
            Field::Nonce => self.nonce = parse_uint(raw).ok_or_else(bad)?,
        }
        Ok(())
    }
}

/// Reads a JSON object into [`Fields`]; field errors are returned as the visitor's value so
/// they keep their type.
pub(super) struct FieldsVisitor;

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = Result<Fields, MessageError>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = Fields::default();
        let mut first_error = None;
        while let Some(key) = map.next_key::<Key>()? {
            let raw: &RawValue = map.next_value()?;
            if let (Some(field), None) = (key.0, &first_error) {
                first_error = fields.set(field, raw.get()).err();
            } else if let Some(ext) = key.1 {
                // An extension key: never an error here, as the reference ignores it.
                let raw = raw.get();
                let value = (raw != "null").then(|| Box::from(raw));
                match ext {
                    // `true` asks, anything else does not.
                    ExtKey::Progress => fields.progress = raw == "true",
                    ExtKey::Caps => fields.caps = value,
                    ExtKey::Zeros => fields.zeros = value,
                    ExtKey::Algo => fields.algo = value,
                    ExtKey::Found => fields.found = value,
                    ExtKey::Job => fields.job = value,
                }
            }
        }
        Ok(match first_error {
            Some(error) => Err(error),
            None => Ok(fields),
        })
    }
}

/// An object key: one of the message's fields, or `None` for a key Go would ignore; and
/// which extension key it is, if any.
struct Key(Option<Field>, Option<ExtKey>);

/// The extension keys, matched like the others.
#[derive(Clone, Copy)]
enum ExtKey {
    Progress,
    Caps,
    Zeros,
    Algo,
    Found,
    Job,
}

impl ExtKey {
    const ALL: [(ExtKey, &'static str); 6] = [
        (ExtKey::Progress, "Progress"),
        (ExtKey::Caps, "Caps"),
        (ExtKey::Zeros, "Zeros"),
        (ExtKey::Algo, "Algo"),
        (ExtKey::Found, "Found"),
        (ExtKey::Job, "Job"),
    ];

    fn from_key(key: &str) -> Option<ExtKey> {
        ExtKey::ALL
            .into_iter()
            .find(|(_, name)| fold_eq(key, name))
            .map(|(k, _)| k)
    }
}

impl<'de> de::Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Key, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
                Ok(Key(Field::from_key(key), ExtKey::from_key(key)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}
