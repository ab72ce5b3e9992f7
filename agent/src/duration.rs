//! Durations in the config are written the way people say them: "500ms", "10s", "2h".

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer, de::Error};

pub fn serialize<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*value).to_string())
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse(&text).map_err(D::Error::custom)
}

/// Parses a human duration, with an error that says what was expected.
pub fn parse(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|_| {
        format!("expected a duration such as \"500ms\", \"10s\", \"5m\" or \"2h\", found {text:?}")
    })
}

/// The check of a duration that must not be zero (a batch age, a shutdown deadline).
pub fn check_positive(value: Duration) -> Result<(), String> {
    if value.is_zero() {
        Err("expected a duration above 0, found 0s".into())
    } else {
        Ok(())
    }
}

/// An optional duration (`#[serde(default, with = "duration::option")]`): absent or written
/// as above.
pub mod option {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => super::serialize(value, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map(|text| super::parse(&text).map_err(serde::de::Error::custom))
            .transpose()
    }
}
