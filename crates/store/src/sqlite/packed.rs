//! Large JSON documents (span attributes, events, log bodies, calls) stored compressed.
//!
//! Message content makes most of a span's bytes, and every byte a commit adds is written twice
//! (WAL, then the database at checkpoint) and checksummed on the way. A document of at least
//! [`COMPRESS_MIN`] bytes is therefore stored as a zstd frame in a BLOB; a shorter one stays JSON
//! TEXT. The storage class tells the two apart, so rows written before compression existed read
//! as they always did. SQL that looks inside a document (attribute filters) goes through the
//! `sl_attr_eq(x, key, value)` function, which every connection registers and which reads either
//! form.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::functions::FunctionFlags;
use rusqlite::types::{ToSql, ToSqlOutput, ValueRef};
use rusqlite::{Connection, Row};
use serde_json::value::RawValue;
use zstd::zstd_safe::{CCtx, DCtx};

use super::codec::db_err;
use super::dictionary::{self, Dictionaries, Encoder};
use crate::error::StoreError;

/// Documents shorter than this stay uncompressed: below it zstd's frame overhead eats the gain.
pub(crate) const COMPRESS_MIN: usize = 192;

/// zstd level: the fastest standard level, which still shrinks message JSON about 2.5×.
const LEVEL: i32 = 1;

/// Most bytes one stored document may decompress to; a larger claim means a corrupt row.
const MAX_DOCUMENT: usize = 512 * 1024 * 1024;

thread_local! {
    static COMPRESSOR: RefCell<Option<CCtx<'static>>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<DCtx<'static>>> = const { RefCell::new(None) };
}

/// A JSON document as stored: TEXT when short, a zstd frame otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Packed {
    Text(String),
    Zstd(Vec<u8>),
}

impl Packed {
    /// Packs `json`, compressing it when it is long enough to gain: with the store's
    /// dictionary when it has one, else alone; offered to a training while one samples.
    pub fn new(json: String, dictionaries: &Arc<Dictionaries>) -> Result<Self, StoreError> {
        if json.len() < COMPRESS_MIN {
            return Ok(Self::Text(json));
        }
        dictionaries.sample(json.as_bytes());
        let encoder = dictionaries.encoder();
        let frame = compress(encoder.as_deref(), json.as_bytes());
        if let (Some(encoder), Ok(f)) = (&encoder, &frame) {
            dictionaries.observe(encoder, json.len(), f.len());
        }
        match frame {
            Ok(frame) if frame.len() < json.len() => Ok(Self::Zstd(frame)),
            Ok(_) => Ok(Self::Text(json)),
            Err(e) => Err(StoreError::Database(format!(
                "cannot compress a document: {e}"
            ))),
        }
    }

    /// Bytes as stored.
    #[cfg(test)]
    pub fn stored_len(&self) -> usize {
        match self {
            Self::Text(s) => s.len(),
            Self::Zstd(b) => b.len(),
        }
    }
}

impl ToSql for Packed {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Self::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Self::Zstd(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

/// One frame of `src`: with `encoder`'s dictionary (its id in the frame header), else alone at
/// [`LEVEL`].
fn compress(encoder: Option<&Encoder>, src: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut frame = Vec::with_capacity(zstd::zstd_safe::compress_bound(src.len()));
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let cctx = match &mut *slot {
            Some(c) => c,
            None => slot.insert(
                CCtx::try_create()
                    .ok_or_else(|| std::io::Error::other("cannot allocate a zstd context"))?,
            ),
        };
        match encoder {
            Some(encoder) => cctx.compress_using_cdict(&mut frame, src, &encoder.cdict),
            None => cctx.compress(&mut frame, src, LEVEL),
        }
        .map_err(|code| std::io::Error::other(zstd::zstd_safe::get_error_name(code)))
    })?;
    Ok(frame)
}

/// The JSON text of a stored document (`what` names it in errors).
pub(crate) fn unpack<'a>(value: ValueRef<'a>, what: &str) -> Result<Cow<'a, str>, StoreError> {
    match value {
        ValueRef::Text(t) => std::str::from_utf8(t)
            .map(Cow::Borrowed)
            .map_err(|e| StoreError::Corrupt(format!("stored {what} is not UTF-8: {e}"))),
        ValueRef::Blob(b) => decompress(b, what).map(Cow::Owned),
        other => Err(StoreError::Corrupt(format!(
            "stored {what} has type {:?}",
            other.data_type()
        ))),
    }
}

/// [`unpack`] of column `idx` of `row`; `None` for NULL.
pub(crate) fn column<'r>(
    row: &'r Row<'_>,
    idx: usize,
    what: &str,
) -> Result<Option<Cow<'r, str>>, StoreError> {
    match row.get_ref(idx).map_err(db_err)? {
        ValueRef::Null => Ok(None),
        value => unpack(value, what).map(Some),
    }
}

/// [`column`] for a NOT NULL column.
pub(crate) fn required<'r>(
    row: &'r Row<'_>,
    idx: usize,
    what: &str,
) -> Result<Cow<'r, str>, StoreError> {
    column(row, idx, what)?.ok_or_else(|| StoreError::Corrupt(format!("stored {what} is NULL")))
}

fn decompress(frame: &[u8], what: &str) -> Result<String, StoreError> {
    let size = zstd::zstd_safe::get_frame_content_size(frame)
        .ok()
        .flatten()
        .ok_or_else(|| StoreError::Corrupt(format!("stored {what} is not a zstd frame")))?;
    let size = usize::try_from(size)
        .ok()
        .filter(|s| *s <= MAX_DOCUMENT)
        .ok_or_else(|| StoreError::Corrupt(format!("stored {what} claims {size} bytes")))?;
    let dictionary = match zstd::zstd_safe::get_dict_id_from_frame(frame) {
        None => None,
        Some(id) => Some(dictionary::decoder(id.get()).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "stored {what} names zstd dictionary {id}, which is not in the store"
            ))
        })?),
    };
    let mut bytes = Vec::with_capacity(size);
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let dctx = match &mut *slot {
            Some(d) => d,
            None => slot
                .insert(DCtx::try_create().ok_or_else(|| {
                    StoreError::Database("cannot allocate a zstd context".into())
                })?),
        };
        match &dictionary {
            Some(ddict) => dctx.decompress_using_ddict(&mut bytes, frame, ddict),
            None => dctx.decompress(&mut bytes, frame),
        }
        .map_err(|code| {
            StoreError::Corrupt(format!(
                "stored {what} does not decompress: {}",
                zstd::zstd_safe::get_error_name(code)
            ))
        })
    })?;
    String::from_utf8(bytes)
        .map_err(|e| StoreError::Corrupt(format!("stored {what} is not UTF-8: {e}")))
}

/// Whether the JSON object `doc` has `key` equal to `value`: a string equal to it, or another
/// value whose JSON text is it (numbers, booleans and null as written). Only the top level is
/// read, and only the matching value is decoded.
fn attr_equals(doc: &str, key: &str, value: &str) -> bool {
    let found = match serde_json::from_str::<HashMap<&str, &RawValue>>(doc) {
        Ok(map) => map.get(key).map(|raw| raw.get()),
        // A key with escapes cannot be borrowed: decode the keys.
        Err(_) => {
            return serde_json::from_str::<HashMap<String, &RawValue>>(doc)
                .ok()
                .and_then(|map| map.get(key).map(|raw| raw_equals(raw.get(), value)))
                .unwrap_or(false)
        }
    };
    found.is_some_and(|raw| raw_equals(raw, value))
}

/// `raw` (a JSON value as stored: compact) equals `value` as a string, or as JSON text — so
/// `"x"` with its quotes also matches the string `x`, as SQLite's `->` did.
fn raw_equals(raw: &str, value: &str) -> bool {
    raw == value
        || (raw.starts_with('"')
            && serde_json::from_str::<Cow<'_, str>>(raw).is_ok_and(|s| s == value))
}

/// Registers `sl_attr_eq(x, key, value)`: whether the stored attribute document `x` has `key` equal to
/// `value` (see [`attr_equals`]): one decompression and one pass per row, where SQLite's `->>`
/// and `->` would each parse the whole document.
pub(crate) fn register(conn: &Connection) -> Result<(), StoreError> {
    conn.create_scalar_function(
        "sl_attr_eq",
        3,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| -> rusqlite::Result<bool> {
            let doc = match ctx.get_raw(0) {
                ValueRef::Null => return Ok(false),
                value => unpack(value, "document")
                    .map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e)))?,
            };
            let key = ctx
                .get_raw(1)
                .as_str()
                .map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e)))?;
            let value = ctx
                .get_raw(2)
                .as_str()
                .map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e)))?;
            Ok(attr_equals(&doc, key, value))
        },
    )
    .map_err(db_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_equality_matches_strings_and_json_text() {
        let doc =
            r#"{"a":"x","n":5,"f":0.5,"b":true,"z":null,"o":{"k":1},"q":"say \"hi\"","l":"long"}"#;
        for (key, value, want) in [
            ("a", "x", true),
            ("a", "\"x\"", true),
            ("n", "5", true),
            ("f", "0.5", true),
            ("b", "true", true),
            ("z", "null", true),
            ("o", r#"{"k":1}"#, true),
            ("q", r#"say "hi""#, true),
            ("missing", "x", false),
            ("n", "6", false),
        ] {
            assert_eq!(attr_equals(doc, key, value), want, "{key}={value}");
        }
        let escaped_key = r#"{"we\"ird":"v","a":"x"}"#;
        assert!(attr_equals(escaped_key, "a", "x"));
        assert!(attr_equals(escaped_key, "we\"ird", "v"));
        assert!(!attr_equals("not json", "a", "x"));
    }

    #[test]
    fn short_documents_stay_text_and_long_ones_shrink() {
        let short = Packed::new("{\"a\":1}".into(), &Dictionaries::without_training()).unwrap();
        assert_eq!(short, Packed::Text("{\"a\":1}".into()));
        let long = format!("{{\"m\":\"{}\"}}", "hello world ".repeat(100));
        let packed = Packed::new(long.clone(), &Dictionaries::without_training()).unwrap();
        assert!(matches!(packed, Packed::Zstd(_)));
        assert!(packed.stored_len() < long.len() / 4);
        let value = match &packed {
            Packed::Zstd(b) => ValueRef::Blob(b),
            Packed::Text(_) => unreachable!(),
        };
        assert_eq!(unpack(value, "x").unwrap(), long);
    }

    #[test]
    fn corrupt_blobs_are_errors_not_panics() {
        for bad in [
            &b""[..],
            b"\x28\xb5\x2f\xfd",
            b"not zstd at all",
            &[0xff; 64],
        ] {
            assert!(unpack(ValueRef::Blob(bad), "x").is_err());
        }
        assert!(unpack(ValueRef::Integer(3), "x").is_err());
    }

    #[test]
    fn sql_function_reads_both_forms() {
        let conn = Connection::open_in_memory().unwrap();
        register(&conn).unwrap();
        conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, doc)")
            .unwrap();
        let long = format!("{{\"k\":\"v\",\"pad\":\"{}\"}}", "x".repeat(500));
        for doc in [
            Packed::new("{\"k\":\"v\"}".into(), &Dictionaries::without_training()).unwrap(),
            Packed::new(long, &Dictionaries::without_training()).unwrap(),
        ] {
            conn.execute("INSERT INTO t (doc) VALUES (?1)", [&doc])
                .unwrap();
        }
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM t WHERE sl_attr_eq(doc, 'k', 'v')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 2);
    }
}
