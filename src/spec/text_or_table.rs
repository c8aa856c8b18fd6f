//! A value written either as one string or as a table, read by a hand-written visitor that keeps the table's own errors (an unknown key) which `#[serde(untagged)]` would drop, and holds what untagged's buffering cannot (an `i128`).

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};

/// Reads a string as `text(..)` and a table as `table(T)`; any other value
/// is refused with `expecting` ("a path string, or a table with ...").
pub(crate) fn deserialize<'de, D, T, R>(
    deserializer: D,
    expecting: &'static str,
    text: fn(String) -> R,
    table: fn(T) -> R,
) -> Result<R, D::Error>
where
    D: de::Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Either<T, R> {
        expecting: &'static str,
        text: fn(String) -> R,
        table: fn(T) -> R,
    }
    impl<'de, T: Deserialize<'de>, R> Visitor<'de> for Either<T, R> {
        type Value = R;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str(self.expecting)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<R, E> {
            Ok((self.text)(v.to_string()))
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<R, A::Error> {
            T::deserialize(de::value::MapAccessDeserializer::new(map)).map(self.table)
        }
    }
    deserializer.deserialize_any(Either { expecting, text, table })
}
