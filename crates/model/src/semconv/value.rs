//! Tolerant readers for attribute values.
//!
//! Instrumentations disagree on types: a token count may arrive as an integer, a double or a
//! string; a message list as a JSON string or as an already structured OTLP array/kvlist. Every
//! reader here accepts all of those shapes and answers `None` for anything it cannot use, so the
//! convention modules never have to care and never panic.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// A read-only view over one or two attribute maps: the first map wins, the second fills in
/// (span attributes over resource attributes, event attributes over an event body). Null values
/// count as absent.
#[derive(Clone, Copy)]
pub(crate) struct Attrs<'a> {
    primary: &'a Map<String, Value>,
    fallback: Option<&'a Map<String, Value>>,
}

impl<'a> Attrs<'a> {
    /// A view over one map.
    pub(crate) fn new(primary: &'a Map<String, Value>) -> Self {
        Self {
            primary,
            fallback: None,
        }
    }

    /// A view over two maps, the first one winning.
    pub(crate) fn with_fallback(
        primary: &'a Map<String, Value>,
        fallback: Option<&'a Map<String, Value>>,
    ) -> Self {
        Self { primary, fallback }
    }

    /// The value of a key, `None` when absent or null.
    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
        self.primary.get(key).filter(|v| !v.is_null()).or_else(|| {
            self.fallback
                .and_then(|f| f.get(key))
                .filter(|v| !v.is_null())
        })
    }

    /// The first of several keys that is present.
    pub(crate) fn first(&self, keys: &[&str]) -> Option<&'a Value> {
        keys.iter().find_map(|k| self.get(k))
    }

    /// A string value.
    pub(crate) fn str(&self, key: &str) -> Option<String> {
        self.get(key).and_then(as_string)
    }

    /// The first of several keys holding a string.
    pub(crate) fn first_str(&self, keys: &[&str]) -> Option<String> {
        keys.iter().find_map(|k| self.str(k))
    }

    /// An unsigned integer value.
    pub(crate) fn u64(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(as_u64)
    }

    /// The first of several keys holding an unsigned integer.
    pub(crate) fn first_u64(&self, keys: &[&str]) -> Option<u64> {
        keys.iter().find_map(|k| self.u64(k))
    }

    /// A float value.
    pub(crate) fn f64(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(as_f64)
    }

    /// A boolean value.
    pub(crate) fn bool(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(as_bool)
    }

    /// Every entry, primary map first (a key in both maps appears twice).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&'a str, &'a Value)> + 'a {
        self.primary
            .iter()
            .chain(self.fallback.into_iter().flat_map(|f| f.iter()))
            .map(|(k, v)| (k.as_str(), v))
    }

    /// Whether any key starts with `prefix`.
    pub(crate) fn any_prefix(&self, prefix: &str) -> bool {
        self.iter().any(|(k, _)| k.starts_with(prefix))
    }

    /// Entries of an indexed list spelled either flat (`prefix.0.x`) or as one structured value
    /// (`prefix = [{"x": ..}]`, possibly a JSON string), grouped by index.
    pub(crate) fn indexed(&self, prefix: &str) -> BTreeMap<usize, Vec<(String, Value)>> {
        let mut groups = group_indexed(self.iter(), prefix);
        if let Some(v) = self.get(prefix) {
            let structured = as_json(v);
            if structured.is_array() {
                let mut flat = Vec::new();
                flatten_into(prefix, &structured, &mut flat);
                for (i, entries) in group_indexed(flat.iter().map(|(k, v)| (k.as_str(), v)), prefix)
                {
                    groups.entry(i).or_insert(entries);
                }
            }
        }
        groups
    }
}

/// Whether any key of `attrs` starts with one of `prefixes` (a cheap gate before a convention
/// module does its many lookups).
pub(crate) fn has_any_prefix(attrs: &Map<String, Value>, prefixes: &[&str]) -> bool {
    attrs
        .keys()
        .any(|k| prefixes.iter().any(|p| k.starts_with(p)))
}

/// A non-empty string form of a scalar value (numbers and booleans are rendered).
pub(crate) fn as_string(v: &Value) -> Option<String> {
    let s = match v {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    (!s.is_empty()).then_some(s)
}

/// A finite float from a number or a numeric string.
pub(crate) fn as_f64(v: &Value) -> Option<f64> {
    let f = match v {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    f.is_finite().then_some(f)
}

/// A non-negative integer from an integer, a float with no fraction, or a numeric string.
pub(crate) fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64().or_else(|| float_to_u64(n.as_f64()?)),
        Value::String(s) => {
            let s = s.trim();
            s.parse::<u64>()
                .ok()
                .or_else(|| float_to_u64(s.parse::<f64>().ok()?))
        }
        _ => None,
    }
}

fn float_to_u64(f: f64) -> Option<u64> {
    (f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f <= u64::MAX as f64).then_some(f as u64)
}

/// A signed integer from an integer, a float with no fraction, or a numeric string.
pub(crate) fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            let f = n.as_f64()?;
            (f.is_finite() && f.fract() == 0.0 && f.abs() <= i64::MAX as f64).then_some(f as i64)
        }),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
}

/// A boolean from a boolean, `"true"`/`"false"` (any case), or 0/1.
pub(crate) fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Some(true),
            "false" | "0" | "no" => Some(false),
            _ => None,
        },
        Value::Number(n) => {
            let f = n.as_f64()?;
            if f == 0.0 {
                Some(false)
            } else if f == 1.0 {
                Some(true)
            } else {
                None
            }
        }
        _ => None,
    }
}

/// The structured form of a value: a string holding a JSON object or array is parsed, anything
/// else is returned as is (borrowed, not copied). Strings that are not JSON stay strings.
pub(crate) fn as_json(v: &Value) -> Cow<'_, Value> {
    if let Value::String(s) = v {
        let t = s.trim_start();
        if t.starts_with('{') || t.starts_with('[') || t.starts_with('"') {
            if let Ok(parsed) = serde_json::from_str::<Value>(s) {
                return Cow::Owned(parsed);
            }
        }
    }
    Cow::Borrowed(v)
}

/// A JSON object, from an object or a string holding one.
pub(crate) fn as_object(v: &Value) -> Option<Map<String, Value>> {
    match as_json(v) {
        Cow::Owned(Value::Object(m)) => Some(m),
        Cow::Borrowed(Value::Object(m)) => Some(m.clone()),
        _ => None,
    }
}

/// A list of strings: an array (of scalars), a string holding a JSON array, or one string.
pub(crate) fn as_string_list(v: &Value) -> Vec<String> {
    match &*as_json(v) {
        Value::Array(items) => items.iter().filter_map(as_string).collect(),
        other => as_string(other).into_iter().collect(),
    }
}

/// Renders any value as text: strings as they are, anything structured as compact JSON.
pub(crate) fn to_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => (!s.is_empty()).then(|| s.clone()),
        other => Some(other.to_string()),
    }
}

/// Attribute entries under `prefix.` grouped by the numeric index that follows the prefix:
/// `gen_ai.prompt.0.role` → `{0: [("role", v)]}`. Keys whose next segment is not a number are
/// skipped. The suffix keeps any further dots, so groups can be split again.
pub(crate) fn group_indexed<'a, I>(items: I, prefix: &str) -> BTreeMap<usize, Vec<(String, Value)>>
where
    I: IntoIterator<Item = (&'a str, &'a Value)>,
{
    let mut out: BTreeMap<usize, Vec<(String, Value)>> = BTreeMap::new();
    for (key, value) in items {
        let Some(rest) = key.strip_prefix(prefix).and_then(|r| r.strip_prefix('.')) else {
            continue;
        };
        let (index, suffix) = match rest.split_once('.') {
            Some((i, s)) => (i, s),
            None => (rest, ""),
        };
        if let Ok(i) = index.parse::<usize>() {
            out.entry(i)
                .or_default()
                .push((suffix.to_string(), value.clone()));
        }
    }
    out
}

/// Like [`group_indexed`] over owned entries (used for nested lists inside one group).
pub(crate) fn group_indexed_owned(
    items: &[(String, Value)],
    prefix: &str,
) -> BTreeMap<usize, Vec<(String, Value)>> {
    group_indexed(items.iter().map(|(k, v)| (k.as_str(), v)), prefix)
}

/// Looks a suffix up in one group's entries.
pub(crate) fn field<'a>(items: &'a [(String, Value)], key: &str) -> Option<&'a Value> {
    items.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// Flattens a structured value into dotted keys under `prefix`, the way flat OTLP attributes
/// spell it: `{"a": [{"b": 1}]}` under `p` → `p.a.0.b = 1`. Depth is bounded.
pub(crate) fn flatten_into(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
    flatten_depth(prefix, v, out, 0);
}

fn flatten_depth(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>, depth: usize) {
    const MAX_DEPTH: usize = 12;
    match v {
        Value::Object(m) if depth < MAX_DEPTH => {
            for (k, child) in m {
                flatten_depth(&format!("{prefix}.{k}"), child, out, depth + 1);
            }
        }
        Value::Array(items) if depth < MAX_DEPTH => {
            for (i, child) in items.iter().enumerate() {
                flatten_depth(&format!("{prefix}.{i}"), child, out, depth + 1);
            }
        }
        other => out.push((prefix.to_string(), other.clone())),
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = (if y >= 0 { y } else { y - 399 }) / 400;
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// Parses `YYYY-MM-DD` into days since the unix epoch, rejecting impossible dates.
pub(crate) fn parse_date_days(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year: i64 = s.get(0..4)?.parse().ok()?;
    let month: u32 = s.get(5..7)?.parse().ok()?;
    let day: u32 = s.get(8..10)?.parse().ok()?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    Some(days_from_civil(year, month, day))
}

/// Parses an RFC 3339 / ISO 8601 timestamp (`2025-01-02T03:04:05.678Z`, offsets, a space
/// instead of `T`, no zone meaning UTC) into unix nanoseconds. A JSON-quoted string is accepted
/// too, as some SDKs serialize datetimes with `json.dumps`.
pub(crate) fn parse_timestamp_ns(s: &str) -> Option<i128> {
    let s = s.trim().trim_matches('"');
    let date = parse_date_days(s.get(0..10)?)?;
    let rest = s.get(10..)?;
    let rest = rest
        .strip_prefix('T')
        .or_else(|| rest.strip_prefix('t'))
        .or_else(|| rest.strip_prefix(' '))?;
    let hour: i128 = rest.get(0..2)?.parse().ok()?;
    if rest.get(2..3)? != ":" || rest.get(5..6)? != ":" {
        return None;
    }
    let minute: i128 = rest.get(3..5)?.parse().ok()?;
    let second: i128 = rest.get(6..8)?.parse().ok()?;
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut tail = rest.get(8..)?;
    let mut nanos: i128 = 0;
    if let Some(frac) = tail.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let ds = frac.get(..digits)?;
        for (i, c) in ds.bytes().take(9).enumerate() {
            nanos += i128::from(c - b'0') * 10i128.pow(8 - i as u32);
        }
        tail = frac.get(digits..)?;
    }
    let offset_s: i128 = match tail {
        "" | "Z" | "z" => 0,
        t => {
            let sign = match t.get(0..1)? {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            let t = t.get(1..)?;
            let (h, m) = match t.len() {
                5 if t.get(2..3)? == ":" => (t.get(0..2)?, t.get(3..5)?),
                4 => (t.get(0..2)?, t.get(2..4)?),
                2 => (t, "00"),
                _ => return None,
            };
            let h: i128 = h.parse().ok()?;
            let m: i128 = m.parse().ok()?;
            sign * (h * 3600 + m * 60)
        }
    };
    let secs = i128::from(date) * 86_400 + hour * 3600 + minute * 60 + second - offset_s;
    Some(secs * 1_000_000_000 + nanos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_from_any_shape() {
        assert_eq!(as_u64(&json!(12)), Some(12));
        assert_eq!(as_u64(&json!("12")), Some(12));
        assert_eq!(as_u64(&json!(" 12.0 ")), Some(12));
        assert_eq!(as_u64(&json!(12.5)), None);
        assert_eq!(as_u64(&json!(-3)), None);
        assert_eq!(as_u64(&json!(true)), None);
        assert_eq!(as_f64(&json!("0.7")), Some(0.7));
        assert_eq!(as_f64(&json!("NaN")), None);
        assert_eq!(as_i64(&json!("-4")), Some(-4));
        assert_eq!(as_bool(&json!("True")), Some(true));
        assert_eq!(as_bool(&json!(0)), Some(false));
    }

    #[test]
    fn json_strings_are_parsed() {
        assert_eq!(*as_json(&json!("[1,2]")), json!([1, 2]));
        assert_eq!(*as_json(&json!("{\"a\":1}")), json!({"a": 1}));
        assert_eq!(*as_json(&json!("{not json")), json!("{not json"));
        assert!(matches!(as_json(&json!([1])), Cow::Borrowed(_)));
        assert_eq!(as_string_list(&json!("[\"stop\"]")), vec!["stop"]);
        assert_eq!(as_string_list(&json!(["a", 1])), vec!["a", "1"]);
        assert_eq!(as_string_list(&json!("length")), vec!["length"]);
    }

    #[test]
    fn groups_indexed_keys() {
        let attrs = json!({
            "gen_ai.prompt.0.role": "user",
            "gen_ai.prompt.1.content": "hi",
            "gen_ai.prompt.0.tool_calls.2.name": "f",
            "gen_ai.prompt.x.role": "ignored",
            "gen_ai.prompts.0.role": "ignored",
        });
        let m = attrs.as_object().unwrap();
        let g = group_indexed(m.iter().map(|(k, v)| (k.as_str(), v)), "gen_ai.prompt");
        assert_eq!(g.len(), 2);
        assert_eq!(field(&g[&0], "role"), Some(&json!("user")));
        let nested = group_indexed_owned(&g[&0], "tool_calls");
        assert_eq!(field(&nested[&2], "name"), Some(&json!("f")));
    }

    #[test]
    fn flattens_structured_values() {
        let mut out = Vec::new();
        flatten_into("p", &json!([{"message": {"role": "user"}}]), &mut out);
        assert_eq!(out, vec![("p.0.message.role".to_string(), json!("user"))]);
    }

    #[test]
    fn parses_dates_and_timestamps() {
        assert_eq!(parse_date_days("1970-01-01"), Some(0));
        assert_eq!(parse_date_days("2024-03-01"), Some(19783));
        assert_eq!(parse_date_days("2023-02-29"), None);
        assert_eq!(parse_date_days("2024-13-01"), None);
        assert_eq!(
            parse_timestamp_ns("1970-01-01T00:00:01.5Z"),
            Some(1_500_000_000)
        );
        assert_eq!(parse_timestamp_ns("\"1970-01-01T01:00:00+01:00\""), Some(0));
        assert_eq!(parse_timestamp_ns("1970-01-01 00:00:00"), Some(0));
        assert_eq!(parse_timestamp_ns("garbage"), None);
        assert_eq!(parse_timestamp_ns("1970-01-01T00:00:00.Z"), None);
    }
}
