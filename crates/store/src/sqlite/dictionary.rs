//! zstd dictionaries for stored documents.
//!
//! Stored documents (span attributes, calls, log bodies) are a few KB each and much alike: the
//! same keys, the same system prompts, tool definitions and message structure again and again.
//! Compressed one by one, every frame builds its own entropy tables and finds no earlier text to
//! refer to. A dictionary trained on the store's own documents gives every frame both: on the
//! load generator's documents a frame is a quarter the size and costs a third of the CPU, and a
//! stored span half the bytes (BENCHMARKS.md, "zstd dictionaries").
//!
//! - **Training.** A store without a dictionary copies the documents it compresses (up to
//!   [`MAX_SAMPLE`] bytes each) until it has [`SAMPLE_BYTES`] of them, then trains a
//!   [`DICT_SIZE`] dictionary on a thread of its own. A failed training starts a new sample, at
//!   most [`ATTEMPTS`] times per open.
//! - **Retraining.** A dictionary remembers how well it compressed a tenth of its samples held
//!   out of its training. Every [`WINDOW_SAMPLES`] samples' worth of documents compressed with
//!   it, the store compares: when the documents of the window came out [`DRIFT`] times larger
//!   than that, they no longer look like the ones it was trained on (the first documents were a
//!   demo, or the application changed), and the store samples again and trains a new dictionary,
//!   which then replaces it (one replacement at a time, at most [`MAX_REPLACEMENTS`] per open).
//! - **Durable before used.** The trainer commits the dictionary to the `dictionaries` table on a
//!   connection of its own, and only then hands it to the compressors: no stored frame can name
//!   a dictionary that is not on disk.
//! - **Reading.** A frame names its dictionary by id in its header (id 0: none). Dictionaries are
//!   found in a process-wide registry, filled from the table by the writer before it migrates,
//!   by every read connection when it opens and again each time it is taken from the pool (for
//!   a dictionary another process trained), and by the trainer; so SQL functions and every read
//!   path decode without knowing their store.
//!   Ids are random in zstd's unreserved range and checked against the registry when a
//!   dictionary is made, so two stores open in one process do not share an id.
//! - Dictionaries are never deleted: old frames keep needing them, and they weigh 64 KB each.
//! - **What a dictionary holds.** zstd keeps the segments most repeated across the samples
//!   (keys, system prompts, tool schemas), but a segment of one message can be among them. So
//!   whatever removes content for good (erasing a user, redacting) must also replace a dictionary
//!   trained on that content: recompress the frames that name it with a new one, then delete it.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use zstd::zstd_safe::{CDict, DDict};

use super::codec::db_err;
use crate::error::StoreError;

/// Size of a trained dictionary.
pub(crate) const DICT_SIZE: usize = 64 * 1024;
/// Document bytes sampled before training: zstd suggests about a hundred times the dictionary.
pub(crate) const SAMPLE_BYTES: usize = 4 * 1024 * 1024;
/// zstd level of frames compressed with a dictionary: with one, level 3 measured as fast as
/// level 1 at ingest and a little smaller.
const LEVEL: i32 = 3;
/// Largest document copied as a sample; longer ones are skipped.
pub(crate) const MAX_SAMPLE: usize = 128 * 1024;
/// Trainings tried per open of a store before it stays without a dictionary.
pub(crate) const ATTEMPTS: u32 = 3;
/// Documents compressed with a dictionary between two checks of how well it does, in samples.
pub(crate) const WINDOW_SAMPLES: usize = 16;
/// How much worse than on its own samples a dictionary may compress a window before it is
/// replaced.
pub(crate) const DRIFT: f64 = 1.5;
/// Replacements per open of a store at most, so that documents no dictionary fits (or a
/// dictionary that fits its samples far better than anything else) cost a bounded amount of
/// training.
pub(crate) const MAX_REPLACEMENTS: u32 = 8;
/// zstd reserves dictionary ids below 32768 and from 2^31 up.
const IDS: std::ops::Range<u32> = 32_768..(1 << 31);

/// A dictionary prepared for compression (frames made with it carry its id).
pub(crate) struct Encoder {
    pub cdict: CDict<'static>,
    /// Compressed bytes per document byte on the samples it was trained on.
    ratio: f64,
    /// Document bytes compressed with it in the current window, and the frames' bytes.
    window_raw: AtomicU64,
    window_packed: AtomicU64,
}

/// What a store's dictionaries are doing: nothing, collecting samples, or training on them.
/// Moves only by compare-and-swap, so one drift or one full sample starts one training.
const IDLE: u8 = 0;
const SAMPLING: u8 = 1;
const TRAINING: u8 = 2;

/// The dictionaries of one store: the one compressors use now, and the sampling that trains the
/// next.
pub(crate) struct Dictionaries {
    db_path: PathBuf,
    sample_bytes: usize,
    current: RwLock<Option<Arc<Encoder>>>,
    /// [`IDLE`], [`SAMPLING`] or [`TRAINING`].
    state: AtomicU8,
    samples: Mutex<Samples>,
    /// Trainings started since the store opened (or since the last replacement began).
    attempts: AtomicU32,
    /// Replacements begun since the store opened.
    replacements: AtomicU32,
    /// Set when the store closes: a training still running then stores nothing.
    closed: AtomicBool,
    /// Held by the trainer while it stores a dictionary, and by `close` to wait for that.
    storing: Mutex<()>,
}

#[derive(Default)]
struct Samples {
    docs: Vec<Vec<u8>>,
    bytes: usize,
}

impl Dictionaries {
    /// The dictionaries stored in `conn`'s database (registered for reading), the newest one
    /// used for compression; without any, documents are sampled until `sample_bytes` are
    /// collected and a dictionary is trained.
    pub fn open(
        conn: &Connection,
        db_path: &Path,
        sample_bytes: usize,
    ) -> Result<Arc<Self>, StoreError> {
        let newest = newest(conn)?;
        let current = match newest {
            Some(d) => Some(Arc::new(encoder(d.id, &d.dict, d.ratio).map_err(|e| {
                StoreError::Corrupt(format!("stored zstd dictionary {}: {e}", d.id))
            })?)),
            None => None,
        };
        let state = if current.is_none() { SAMPLING } else { IDLE };
        Ok(Self::with(
            db_path.to_path_buf(),
            sample_bytes,
            current,
            state,
        ))
    }

    fn with(
        db_path: PathBuf,
        sample_bytes: usize,
        current: Option<Arc<Encoder>>,
        state: u8,
    ) -> Arc<Self> {
        Arc::new(Self {
            db_path,
            sample_bytes,
            state: AtomicU8::new(state),
            current: RwLock::new(current),
            samples: Mutex::new(Samples::default()),
            attempts: AtomicU32::new(0),
            replacements: AtomicU32::new(0),
            closed: AtomicBool::new(false),
            storing: Mutex::new(()),
        })
    }

    /// The store is closing: a training still running stores nothing, and one storing its
    /// dictionary right now finishes first. Blocks only in that case.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        drop(self.storing.lock().unwrap_or_else(PoisonError::into_inner));
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Dictionaries that never train: every document is compressed alone.
    #[cfg(test)]
    pub fn without_training() -> Arc<Self> {
        Self::with(PathBuf::new(), usize::MAX, None, IDLE)
    }

    /// The dictionary to compress with, if there is one yet.
    pub fn encoder(&self) -> Option<Arc<Encoder>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Counts a document compressed with `encoder` into its window; at the end of a window that
    /// came out [`DRIFT`] times worse than the dictionary's own samples, sampling starts again.
    pub fn observe(&self, encoder: &Encoder, raw: usize, packed: usize) {
        let window = self.sample_bytes.saturating_mul(WINDOW_SAMPLES) as u64;
        let packed_sum = encoder
            .window_packed
            .fetch_add(packed as u64, Ordering::Relaxed)
            + packed as u64;
        let raw_sum = encoder.window_raw.fetch_add(raw as u64, Ordering::Relaxed) + raw as u64;
        if raw_sum < window || raw_sum - (raw as u64) >= window {
            return;
        }
        // This document closed the window: judge it and start the next.
        encoder.window_raw.store(0, Ordering::Relaxed);
        encoder.window_packed.store(0, Ordering::Relaxed);
        let ratio = packed_sum as f64 / raw_sum as f64;
        if ratio <= encoder.ratio * DRIFT
            || self.is_closed()
            || self.replacements.load(Ordering::Relaxed) >= MAX_REPLACEMENTS
        {
            return;
        }
        // Only from idle: a replacement already sampling or training is not started again.
        self.attempts.store(0, Ordering::Relaxed);
        if self
            .state
            .compare_exchange(IDLE, SAMPLING, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            self.replacements.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                trained = encoder.ratio,
                now = ratio,
                "stored documents compress worse than the dictionary's samples; training a new one"
            );
        }
    }

    /// Offers a document as a training sample; the one that completes the sample starts the
    /// training.
    pub fn sample(self: &Arc<Self>, doc: &[u8]) {
        if self.state.load(Ordering::Relaxed) != SAMPLING || doc.len() > MAX_SAMPLE {
            return;
        }
        let docs = {
            let mut s = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
            if self.state.load(Ordering::Relaxed) != SAMPLING {
                return;
            }
            s.docs.push(doc.to_vec());
            s.bytes += doc.len();
            if s.bytes < self.sample_bytes {
                return;
            }
            self.state.store(TRAINING, Ordering::Release);
            std::mem::take(&mut *s).docs
        };
        self.attempts.fetch_add(1, Ordering::Relaxed);
        let this = self.clone();
        let spawned = std::thread::Builder::new()
            .name("sightline-dictionary".into())
            .spawn(move || {
                crate::background::enter_background();
                crate::background::lower_current_thread(crate::background::Priority::Lowest);
                match this.train(&docs) {
                    Ok(id) => {
                        this.state.store(IDLE, Ordering::Release);
                        tracing::info!(
                            id,
                            samples = docs.len(),
                            "trained a zstd dictionary for stored documents"
                        );
                    }
                    Err(e) => this.failed(&e),
                }
            });
        if let Err(e) = spawned {
            self.failed(&StoreError::Unavailable(format!(
                "cannot start the trainer thread: {e}"
            )));
        }
    }

    /// After a failed training: sample again, unless the attempts are used up or the store closed.
    fn failed(&self, e: &StoreError) {
        let retry = self.attempts.load(Ordering::Relaxed) < ATTEMPTS && !self.is_closed();
        tracing::warn!(
            error = %e,
            retry,
            "cannot train a zstd dictionary; documents stay compressed without one"
        );
        self.state
            .store(if retry { SAMPLING } else { IDLE }, Ordering::Release);
    }

    /// Trains a dictionary on `docs`, commits it, registers it, and makes it the one compressors
    /// use, in that order.
    pub fn train(&self, docs: &[Vec<u8>]) -> Result<u32, StoreError> {
        let failed = |e: std::io::Error| StoreError::Database(format!("training failed: {e}"));
        // Every tenth sample is held out, to judge the dictionary on documents it was not
        // trained on.
        let (mut held, mut train) = (Vec::new(), Vec::new());
        for (i, doc) in docs.iter().enumerate() {
            if i % 10 == 9 {
                held.push(doc);
            } else {
                train.push(doc);
            }
        }
        let mut dict = zstd::dict::from_samples(&train, DICT_SIZE).map_err(failed)?;
        let id = fresh_id(&mut dict)?;
        let ratio = sample_ratio(&dict, &held)?;
        let encoder = encoder(id, &dict, ratio)?;
        let storing = self.storing.lock().unwrap_or_else(PoisonError::into_inner);
        if self.is_closed() {
            return Err(StoreError::Closed);
        }
        // Never creates the file: a store whose files are gone gets nothing.
        let conn = Connection::open_with_flags(
            &self.db_path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(db_err)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(db_err)?;
        conn.execute_batch("PRAGMA synchronous = FULL")
            .map_err(db_err)?;
        conn.execute(
            "INSERT INTO dictionaries (id, created_ns, dict, ratio) VALUES (?1, ?2, ?3, ?4)",
            params![id, now_ns(), dict, ratio],
        )
        .map_err(db_err)?;
        drop(conn);
        drop(storing);
        register(id, &dict)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(encoder));
        Ok(id)
    }
}

/// Registers the dictionaries stored in `conn`'s database that are not registered yet: one
/// another process trained after this connection opened. One small query when there are none.
pub(crate) fn refresh(conn: &Connection) -> Result<(), StoreError> {
    let ids: Vec<u32> = match conn.prepare_cached("SELECT id FROM dictionaries") {
        Ok(mut st) => st
            .query_map([], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(db_err)?,
        // A database older than the table has no dictionaries.
        Err(e) if e.to_string().contains("no such table") => return Ok(()),
        Err(e) => return Err(db_err(e)),
    };
    let missing = {
        let map = registry().read().unwrap_or_else(PoisonError::into_inner);
        ids.iter().any(|id| !map.contains_key(id))
    };
    if missing {
        load(conn)?;
    }
    Ok(())
}

/// A stored dictionary.
pub(crate) struct Stored {
    pub id: u32,
    pub dict: Vec<u8>,
    /// Compressed bytes per document byte on its training samples.
    pub ratio: f64,
}

/// The newest dictionary stored in `conn`'s migrated database (registered for reading), if any.
fn newest(conn: &Connection) -> Result<Option<Stored>, StoreError> {
    let stored = conn
        .query_row(
            "SELECT id, dict, ratio FROM dictionaries ORDER BY created_ns DESC, id DESC LIMIT 1",
            [],
            |r| {
                Ok(Stored {
                    id: r.get(0)?,
                    dict: r.get(1)?,
                    ratio: r.get(2)?,
                })
            },
        )
        .optional()
        .map_err(db_err)?;
    if let Some(d) = &stored {
        register(d.id, &d.dict)?;
    }
    Ok(stored)
}

/// Registers every dictionary stored in `conn`'s database for reading.
pub(crate) fn load(conn: &Connection) -> Result<(), StoreError> {
    let exists: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'dictionaries')",
            [],
            |r| r.get(0),
        )
        .map_err(db_err)?;
    if !exists {
        return Ok(());
    }
    let mut st = conn
        .prepare("SELECT id, dict FROM dictionaries")
        .map_err(db_err)?;
    let rows = st
        .query_map([], |r| Ok((r.get::<_, u32>(0)?, r.get::<_, Vec<u8>>(1)?)))
        .map_err(db_err)?;
    for row in rows {
        let (id, dict) = row.map_err(db_err)?;
        register(id, &dict)?;
    }
    Ok(())
}

/// The registered dictionary `id`, for decompressing a frame that names it.
pub(crate) fn decoder(id: u32) -> Option<Arc<DDict<'static>>> {
    registry()
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&id)
        .map(|(_, d)| d.clone())
}

type Registry = RwLock<HashMap<u32, (u64, Arc<DDict<'static>>)>>;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::default)
}

/// Registers dictionary `id` (idempotent). A different dictionary under an id already taken is
/// refused: a frame could not tell them apart.
fn register(id: u32, dict: &[u8]) -> Result<(), StoreError> {
    let digest = {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        h.write(dict);
        h.finish()
    };
    let known = |map: &HashMap<u32, (u64, Arc<DDict<'static>>)>| match map.get(&id) {
        Some((d, _)) if *d == digest => Ok(true),
        Some(_) => Err(StoreError::Corrupt(format!(
            "two different zstd dictionaries have id {id}"
        ))),
        None => Ok(false),
    };
    if known(&registry().read().unwrap_or_else(PoisonError::into_inner))? {
        return Ok(());
    }
    // Prepared outside the lock, which every decompression takes.
    let ddict = DDict::try_create(dict)
        .ok_or_else(|| StoreError::Corrupt(format!("zstd dictionary {id} cannot be loaded")))?;
    let mut map = registry().write().unwrap_or_else(PoisonError::into_inner);
    if !known(&map)? {
        map.insert(id, (digest, Arc::new(ddict)));
    }
    Ok(())
}

fn encoder(id: u32, dict: &[u8], ratio: f64) -> Result<Encoder, StoreError> {
    let cdict = CDict::try_create(dict, LEVEL)
        .ok_or_else(|| StoreError::Database(format!("zstd dictionary {id} cannot be prepared")))?;
    Ok(Encoder {
        cdict,
        ratio,
        window_raw: AtomicU64::new(0),
        window_packed: AtomicU64::new(0),
    })
}

/// Compressed bytes per document byte of `docs` with `dict`, at the level documents use.
fn sample_ratio(dict: &[u8], docs: &[&Vec<u8>]) -> Result<f64, StoreError> {
    let failed = |e: std::io::Error| StoreError::Database(format!("training failed: {e}"));
    let mut compressor = zstd::bulk::Compressor::with_dictionary(LEVEL, dict).map_err(failed)?;
    let (mut raw, mut packed) = (0usize, 0usize);
    for doc in docs {
        raw += doc.len();
        packed += compressor.compress(doc).map_err(failed)?.len();
    }
    Ok(packed as f64 / raw.max(1) as f64)
}

/// Gives a freshly trained dictionary an id no registered dictionary has (the id is the four
/// bytes after the magic number in zstd's dictionary format).
fn fresh_id(dict: &mut [u8]) -> Result<u32, StoreError> {
    if dict.len() < 8 || dict[..4] != 0xEC30_A437u32.to_le_bytes() {
        return Err(StoreError::Database(
            "zstd trained a dictionary without a header".into(),
        ));
    }
    let taken = registry().read().unwrap_or_else(PoisonError::into_inner);
    let state = std::collections::hash_map::RandomState::new();
    let mut n = 0u64;
    let id = loop {
        let mut h = state.build_hasher();
        h.write_u64(n);
        h.write_u128(now_ns() as u128);
        n += 1;
        let id = IDS.start + (h.finish() % u64::from(IDS.end - IDS.start)) as u32;
        if !taken.contains_key(&id) {
            break id;
        }
    };
    dict[4..8].copy_from_slice(&id.to_le_bytes());
    Ok(id)
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::packed::{unpack, Packed};
    use crate::sqlite::schema::open_writer;
    use crate::sqlite::Synchronous;
    use rusqlite::types::ValueRef;

    /// Documents alike in shape and much of their text, as a store's are.
    fn doc(i: usize) -> String {
        serde_json::json!({
            "gen_ai.system": "openai",
            "gen_ai.request.model": if i.is_multiple_of(3) { "gpt-4o" } else { "gpt-4o-mini" },
            "gen_ai.prompt": format!(
                "You are a careful assistant for the support team of an online bookshop. \
                 Answer briefly and cite the order number when there is one. Question {i}: \
                 where is order {} and when will it arrive at {}?",
                i * 7919 % 100_000,
                ["Lyon", "Porto", "Gdansk", "Turin"][i % 4]
            ),
            "gen_ai.usage.input_tokens": i % 500,
            "session.id": format!("session-{}", i / 10),
        })
        .to_string()
    }

    /// A dictionary trained on [`doc`]s, with zstd's id.
    fn trained() -> Vec<u8> {
        let samples: Vec<Vec<u8>> = (0..2_000).map(|i| doc(i).into_bytes()).collect();
        zstd::dict::from_samples(&samples, 16 * 1024).unwrap()
    }

    fn stored(packed: &Packed) -> ValueRef<'_> {
        match packed {
            Packed::Text(t) => ValueRef::Text(t.as_bytes()),
            Packed::Zstd(b) => ValueRef::Blob(b),
        }
    }

    #[test]
    fn a_dictionary_is_on_disk_before_any_frame_uses_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sightline.db");
        let conn = open_writer(&path, Synchronous::Full).unwrap();
        let dicts = Dictionaries::open(&conn, &path, 64 * 1024).unwrap();
        assert!(dicts.encoder().is_none());

        // Frames before the dictionary name none; sampling them starts the training.
        let mut before = Vec::new();
        let mut i = 0;
        while dicts.encoder().is_none() {
            assert!(i < 200_000, "no dictionary was trained");
            let text = doc(i);
            let packed = Packed::new(text.clone(), &dicts).unwrap();
            if let Packed::Zstd(frame) = &packed {
                if zstd::zstd_safe::get_dict_id_from_frame(frame).is_none() {
                    before.push((text, packed));
                } else {
                    break;
                }
            }
            i += 1;
            if i.is_multiple_of(100) {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let (id, created): (u32, i64) = Connection::open(&path)
            .unwrap()
            .query_row("SELECT id, created_ns FROM dictionaries", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert!(IDS.contains(&id) && created > 0);

        // Frames after it name it, are smaller, and read back exactly; so do the ones before.
        let text = doc(1_000_001);
        let alone = zstd::bulk::compress(text.as_bytes(), 1).unwrap();
        let Packed::Zstd(frame) = Packed::new(text.clone(), &dicts).unwrap() else {
            panic!("a 400-byte document is compressed");
        };
        assert_eq!(
            zstd::zstd_safe::get_dict_id_from_frame(&frame).map(|d| d.get()),
            Some(id)
        );
        assert!(
            frame.len() * 2 < alone.len(),
            "{} vs {}",
            frame.len(),
            alone.len()
        );
        assert_eq!(unpack(ValueRef::Blob(&frame), "doc").unwrap(), text);
        assert!(!before.is_empty());
        for (text, packed) in &before {
            assert_eq!(unpack(stored(packed), "doc").unwrap(), *text);
        }

        // Reopened, the store compresses with the stored dictionary at once and samples nothing.
        let again = Dictionaries::open(&conn, &path, 64 * 1024).unwrap();
        assert!(again.encoder().is_some());
        assert_eq!(again.state.load(Ordering::Relaxed), IDLE);
    }

    /// Tool-call documents, nothing like [`doc`]'s chat prompts.
    fn tool_doc(i: usize) -> String {
        const WORDS: [&str; 12] = [
            "latitude",
            "forecast",
            "kelvin",
            "humidity",
            "station",
            "gust",
            "pressure",
            "visibility",
            "dewpoint",
            "uv",
            "sunrise",
            "overcast",
        ];
        let words: Vec<&str> = (0..40).map(|k| WORDS[(i * 7 + k * 13) % 12]).collect();
        serde_json::json!({
            "tool.name": format!("weather_{}", i % 5),
            "tool.call.arguments": { "lat": i % 90, "lon": (i * 3) % 180, "units": "metric" },
            "tool.output": words.join(" "),
            "http.status_code": 200 + (i % 3),
        })
        .to_string()
    }

    /// Packs `make(i)` for rising `i` from `from` until a frame names a dictionary other than
    /// `old`; that dictionary's id and the next `i`.
    fn until_new_dictionary(
        dicts: &Arc<Dictionaries>,
        make: impl Fn(usize) -> String,
        old: Option<u32>,
        from: usize,
    ) -> (u32, usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut i = from;
        loop {
            assert!(std::time::Instant::now() < deadline, "no new dictionary");
            if let Packed::Zstd(frame) = Packed::new(make(i), dicts).unwrap() {
                let id = zstd::zstd_safe::get_dict_id_from_frame(&frame).map(|d| d.get());
                if id.is_some() && id != old {
                    return (id.unwrap_or_default(), i + 1);
                }
            }
            i += 1;
            if i.is_multiple_of(100) {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    #[test]
    fn a_dictionary_is_replaced_when_the_documents_drift() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sightline.db");
        let conn = open_writer(&path, Synchronous::Full).unwrap();
        let dicts = Dictionaries::open(&conn, &path, 32 * 1024).unwrap();
        let (first, next) = until_new_dictionary(&dicts, doc, None, 0);

        // Alike documents keep the dictionary through many windows.
        let window = 32 * 1024 * WINDOW_SAMPLES;
        let mut i = next;
        let mut bytes = 0;
        while bytes < 3 * window {
            let text = doc(i);
            bytes += text.len();
            Packed::new(text, &dicts).unwrap();
            i += 1;
        }
        std::thread::sleep(Duration::from_millis(200));
        let Packed::Zstd(frame) = Packed::new(doc(i), &dicts).unwrap() else {
            panic!("compressed");
        };
        assert_eq!(
            zstd::zstd_safe::get_dict_id_from_frame(&frame).map(|d| d.get()),
            Some(first)
        );

        // Different documents: a window later the store samples them and trains on them.
        let first_dict: Vec<u8> = conn
            .query_row(
                "SELECT dict FROM dictionaries WHERE id = ?1",
                [first],
                |r| r.get(0),
            )
            .unwrap();
        let with_first = zstd::bulk::Compressor::with_dictionary(LEVEL, &first_dict)
            .unwrap()
            .compress(tool_doc(999_999).as_bytes())
            .unwrap()
            .len();
        let (second, _) = until_new_dictionary(&dicts, tool_doc, Some(first), 0);
        let Packed::Zstd(frame) = Packed::new(tool_doc(999_999), &dicts).unwrap() else {
            panic!("compressed");
        };
        assert_eq!(
            zstd::zstd_safe::get_dict_id_from_frame(&frame).map(|d| d.get()),
            Some(second)
        );
        assert!(frame.len() < with_first, "{} vs {with_first}", frame.len());
        let stored: i64 = conn
            .query_row("SELECT count(*) FROM dictionaries", [], |r| r.get(0))
            .unwrap();
        assert_eq!(stored, 2);
        // Both kinds of frames still read back.
        assert_eq!(
            unpack(ValueRef::Blob(&frame), "doc").unwrap(),
            tool_doc(999_999)
        );
    }

    #[test]
    fn a_dictionary_that_cannot_be_stored_is_never_used() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sightline.db");
        let conn = open_writer(&path, Synchronous::Full).unwrap();
        let dicts = Dictionaries::open(&conn, &path, 32 * 1024).unwrap();
        // Every training fails at its INSERT.
        conn.execute_batch("DROP TABLE dictionaries").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut i = 0;
        loop {
            let packed = Packed::new(doc(i), &dicts).unwrap();
            if let Packed::Zstd(frame) = &packed {
                assert!(zstd::zstd_safe::get_dict_id_from_frame(frame).is_none());
            }
            assert!(dicts.encoder().is_none());
            i += 1;
            let attempts = dicts.attempts.load(Ordering::Relaxed);
            if attempts == ATTEMPTS && dicts.state.load(Ordering::Relaxed) == IDLE && i > 5_000 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{attempts} attempts");
            std::thread::sleep(Duration::from_micros(200));
        }
        assert_eq!(
            dicts.attempts.load(Ordering::Relaxed),
            ATTEMPTS,
            "no more than that"
        );
    }

    #[tokio::test]
    async fn dictionaries_stored_by_another_process_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sightline.db");
        let conn = open_writer(&path, Synchronous::Full).unwrap();
        let pool = Arc::new(crate::sqlite::read::ReadPool::new(path.clone(), 1));
        pool.run(|_| Ok(())).await.unwrap();

        // What another process would store: a dictionary this one never registered, and a
        // document compressed with it.
        let stored_elsewhere = |n: usize| {
            let mut dict = trained();
            let id = fresh_id(&mut dict).unwrap();
            conn.execute(
                "INSERT INTO dictionaries (id, created_ns, dict, ratio) VALUES (?1, ?2, ?3, 0.2)",
                params![id, now_ns(), dict],
            )
            .unwrap();
            let frame = zstd::bulk::Compressor::with_dictionary(3, &dict)
                .unwrap()
                .compress(doc(n).as_bytes())
                .unwrap();
            assert_eq!(
                zstd::zstd_safe::get_dict_id_from_frame(&frame).map(|d| d.get()),
                Some(id)
            );
            assert!(decoder(id).is_none());
            frame
        };

        // A pooled connection opened before the dictionary was stored finds it.
        let frame = stored_elsewhere(1);
        let text = pool
            .run(move |_| unpack(ValueRef::Blob(&frame), "doc").map(|t| t.into_owned()))
            .await
            .unwrap();
        assert_eq!(text, doc(1));

        // So does a connection opened after, from the table alone.
        let frame = stored_elsewhere(2);
        let _reader = crate::sqlite::schema::open_reader(&path).unwrap();
        assert_eq!(unpack(ValueRef::Blob(&frame), "doc").unwrap(), doc(2));
    }

    #[test]
    fn a_frame_naming_an_unknown_dictionary_is_corrupt() {
        let mut dict = trained();
        // An id this process never registers.
        dict[4..8].copy_from_slice(&7u32.to_le_bytes());
        let frame = zstd::bulk::Compressor::with_dictionary(1, &dict)
            .unwrap()
            .compress(doc(5).as_bytes())
            .unwrap();
        let err = unpack(ValueRef::Blob(&frame), "span attributes").unwrap_err();
        assert!(
            err.to_string().contains(
                "stored span attributes names zstd dictionary 7, which is not in the store"
            ),
            "{err}"
        );
    }

    #[test]
    fn ids_are_fresh_and_written_into_the_dictionary() {
        let mut dict = trained();
        let id = fresh_id(&mut dict).unwrap();
        assert!(IDS.contains(&id));
        assert_eq!(
            zstd::zstd_safe::get_dict_id_from_dict(&dict).map(|d| d.get()),
            Some(id)
        );
        register(id, &dict).unwrap();
        register(id, &dict).unwrap();
        let mut other = dict.clone();
        other[100] ^= 1;
        assert!(
            register(id, &other).is_err(),
            "a different dictionary under a taken id"
        );
    }
}
