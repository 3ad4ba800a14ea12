//! Timestamps on the wire and on disk: RFC 3339 in JSON (chrono is built
//! without its serde feature) and epoch milliseconds in storage, so SQLite and
//! PostgreSQL compare and sort them the same way.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};

/// RFC 3339 with millisecond precision and a `Z` suffix.
pub fn to_rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Milliseconds since the Unix epoch, the storage form.
pub fn to_millis(t: &DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// Back from storage; out-of-range values (a corrupted row) become the epoch
/// rather than a panic.
pub fn from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// `#[serde(with = "crate::ops::time::rfc3339")]` for `DateTime<Utc>`.
pub mod rfc3339 {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::to_rfc3339(t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

/// `#[serde(with = "crate::ops::time::rfc3339_opt")]` for `Option<DateTime<Utc>>`.
pub mod rfc3339_opt {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&super::to_rfc3339(t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| {
                DateTime::parse_from_rfc3339(&s)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(serde::de::Error::custom)
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_round_trip_and_rfc3339_shape() {
        let t = Utc.with_ymd_and_hms(2026, 11, 29, 12, 30, 5).unwrap()
            + chrono::Duration::milliseconds(250);
        assert_eq!(from_millis(to_millis(&t)), t);
        assert_eq!(to_rfc3339(&t), "2026-11-29T12:30:05.250Z");
        assert_eq!(from_millis(i64::MAX), DateTime::<Utc>::default());
    }
}
