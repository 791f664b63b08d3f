//! Prices: a versioned table shipped as a data file, overridable by the user.
//!
//! The built-in table is `data/prices.toml`, embedded at compile time, so a Sightline binary
//! always knows its prices and their version; users layer their own file of the same shape on
//! top ([`PriceTable::with_overrides`]), and their entries replace the built-in ones for the
//! same model. Cost can be recomputed for stored calls whenever the table changes.
//!
//! Model names are matched case-insensitively, after stripping host prefixes (`openai/`,
//! `models/`, `accounts/.../models/`) and Bedrock region/vendor prefixes
//! (`us.anthropic.claude-...`). An entry's name matches itself and, unless the entry is `exact`,
//! any longer name that continues it at a `-`, `:` or `@` — so `gpt-4o` prices
//! `gpt-4o-2024-08-06` and `claude-3-5-sonnet` prices `claude-3-5-sonnet@20240620`, while
//! `gpt-4` does not price `gpt-4o`. The longest matching name wins. Among one model's entries,
//! the one in effect at the call's start time is used.
//!
//! Token accounting follows the OTel GenAI conventions: input counts include cache reads and
//! writes, and output counts include reasoning. Cached tokens are priced at their cache price
//! and removed from the uncached input; reasoning tokens at the reasoning price (the output
//! price unless the entry says otherwise). When a client reports cache counts larger than the
//! input count, its input count evidently excludes them (Anthropic's raw usage does), and it is
//! then taken as the uncached input as is; the same holds for reasoning and output. A model with
//! no entry has no cost at all — never a cost of zero.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::llm::{Cost, LlmCall};
use crate::semconv::value::parse_date_days;

/// The built-in table, embedded from `data/prices.toml`.
const BUILTIN_TOML: &str = include_str!("../data/prices.toml");

/// Nanoseconds in a day.
const DAY_NS: u64 = 86_400 * 1_000_000_000;

/// Why a price table was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PriceError {
    /// The text is not valid TOML or does not have the table's shape.
    #[error("invalid price table: {0}")]
    Parse(String),
    /// An entry has no model name.
    #[error("price entry has an empty `model`")]
    EmptyModel,
    /// An entry's `effective_from` is not a `YYYY-MM-DD` date.
    #[error("price entry `{model}`: invalid `effective_from` `{value}` (expected YYYY-MM-DD)")]
    InvalidDate {
        /// The entry's model.
        model: String,
        /// The value given.
        value: String,
    },
    /// A price is negative or not finite.
    #[error("price entry `{model}`: `{field}` must be a finite non-negative number, got {value}")]
    InvalidPrice {
        /// The entry's model.
        model: String,
        /// The price field.
        field: &'static str,
        /// The value given.
        value: f64,
    },
    /// Two entries for one model share an effective date.
    #[error("price entry `{model}` appears twice with `effective_from` `{effective_from}`")]
    Duplicate {
        /// The model.
        model: String,
        /// The shared date.
        effective_from: String,
    },
}

/// One price entry: a model's prices from a date on. Prices are USD per million tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceEntry {
    /// Canonical model name; also used in the price id (`model@effective_from`).
    pub model: String,
    /// Who publishes the price (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Further names that match this entry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// When true, names match only exactly (no dated or suffixed variants).
    #[serde(default)]
    pub exact: bool,
    /// First day (`YYYY-MM-DD`, UTC) the prices apply.
    pub effective_from: String,
    /// Price per million input tokens.
    pub input: f64,
    /// Price per million output tokens.
    pub output: f64,
    /// Price per million input tokens read from the prompt cache (default: `input`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read: Option<f64>,
    /// Price per million input tokens written to the prompt cache (default: `input`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write: Option<f64>,
    /// Price per million reasoning tokens (default: `output`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<f64>,
}

impl PriceEntry {
    /// The identifier recorded with a cost: `model@effective_from`.
    pub fn price_id(&self) -> String {
        format!("{}@{}", self.model, self.effective_from)
    }

    fn check(&self) -> Result<i64, PriceError> {
        if self.model.trim().is_empty() {
            return Err(PriceError::EmptyModel);
        }
        let day =
            parse_date_days(self.effective_from.trim()).ok_or_else(|| PriceError::InvalidDate {
                model: self.model.clone(),
                value: self.effective_from.clone(),
            })?;
        let prices = [
            ("input", Some(self.input)),
            ("output", Some(self.output)),
            ("cache_read", self.cache_read),
            ("cache_write", self.cache_write),
            ("reasoning", self.reasoning),
        ];
        for (field, value) in prices {
            if let Some(v) = value {
                if !v.is_finite() || v < 0.0 {
                    return Err(PriceError::InvalidPrice {
                        model: self.model.clone(),
                        field,
                        value: v,
                    });
                }
            }
        }
        Ok(day)
    }

    /// Lowercased names this entry answers to.
    fn patterns(&self) -> impl Iterator<Item = String> + '_ {
        std::iter::once(&self.model)
            .chain(&self.aliases)
            .map(|n| n.trim().to_ascii_lowercase())
            .filter(|n| !n.is_empty())
    }
}

/// The file shape of a price table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceFile {
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    models: Vec<PriceEntry>,
}

#[derive(Debug, Clone)]
struct Stored {
    entry: PriceEntry,
    /// `effective_from` in days since the unix epoch.
    day: i64,
    /// Override layer: entries from later overrides have higher ranks and shadow lower ones.
    rank: u32,
}

/// The price table.
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    version: String,
    entries: Vec<Stored>,
    /// Lowercased name → indices into `entries` (only the highest rank for that name).
    index: HashMap<String, Vec<usize>>,
}

impl PriceTable {
    /// The table shipped with Sightline (empty, never a panic, if the embedded file were bad —
    /// a unit test guarantees it is not).
    pub fn builtin() -> Self {
        static BUILTIN: OnceLock<PriceTable> = OnceLock::new();
        BUILTIN
            .get_or_init(|| Self::from_toml_str(BUILTIN_TOML).unwrap_or_default())
            .clone()
    }

    /// Parses a table in the format of `data/prices.toml`. A missing `version` reads as
    /// `custom`.
    pub fn from_toml_str(text: &str) -> Result<PriceTable, PriceError> {
        let file: PriceFile = toml::from_str(text).map_err(|e| PriceError::Parse(e.to_string()))?;
        let mut seen = HashSet::new();
        let mut entries = Vec::with_capacity(file.models.len());
        for entry in file.models {
            let day = entry.check()?;
            if !seen.insert((entry.model.trim().to_ascii_lowercase(), day)) {
                return Err(PriceError::Duplicate {
                    model: entry.model,
                    effective_from: entry.effective_from,
                });
            }
            entries.push(Stored {
                entry,
                day,
                rank: 0,
            });
        }
        let version = file
            .version
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "custom".to_string());
        Ok(Self::build(version, entries))
    }

    /// This table with `other` layered on top: every model `other` prices loses all its entries
    /// here, and a name `other` matches is matched only by `other`'s entries. The version
    /// becomes `self+other` (or stays when `other`'s is the same or empty).
    pub fn with_overrides(self, other: PriceTable) -> PriceTable {
        let overridden: HashSet<String> = other
            .entries
            .iter()
            .map(|s| s.entry.model.trim().to_ascii_lowercase())
            .collect();
        let base = self
            .entries
            .iter()
            .map(|s| s.rank)
            .max()
            .map_or(0, |r| r + 1);
        let version = if other.version.is_empty() || other.version == self.version {
            self.version
        } else if self.version.is_empty() {
            other.version
        } else {
            format!("{}+{}", self.version, other.version)
        };
        let mut entries: Vec<Stored> = self
            .entries
            .into_iter()
            .filter(|s| !overridden.contains(&s.entry.model.trim().to_ascii_lowercase()))
            .collect();
        entries.extend(other.entries.into_iter().map(|mut s| {
            s.rank = s.rank.saturating_add(base);
            s
        }));
        Self::build(version, entries)
    }

    fn build(version: String, entries: Vec<Stored>) -> Self {
        let mut index: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, stored) in entries.iter().enumerate() {
            for pattern in stored.entry.patterns() {
                let list = index.entry(pattern).or_default();
                match list.first().map(|&j| entries[j].rank) {
                    Some(r) if r > stored.rank => {}
                    Some(r) if r < stored.rank => *list = vec![i],
                    _ => {
                        if !list.contains(&i) {
                            list.push(i);
                        }
                    }
                }
            }
        }
        Self {
            version,
            entries,
            index,
        }
    }

    /// The table's version (`2026-11-01`, or `builtin+user` after overrides).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every entry, in file order (overrides last).
    pub fn entries(&self) -> impl Iterator<Item = &PriceEntry> {
        self.entries.iter().map(|s| &s.entry)
    }

    /// The entry pricing `model` for a call starting at `at_unix_nano` (0: now, i.e. the
    /// latest entry), `None` when no entry matches.
    pub fn lookup(&self, model: &str, at_unix_nano: u64) -> Option<&PriceEntry> {
        let day = if at_unix_nano == 0 {
            i64::MAX
        } else {
            i64::try_from(at_unix_nano / DAY_NS).unwrap_or(i64::MAX)
        };
        candidates(model)
            .iter()
            .find_map(|name| self.best_match(name))
            .and_then(|list| self.in_effect(list, day))
    }

    /// Entries of the longest name matching `name` at a boundary.
    fn best_match(&self, name: &str) -> Option<Vec<usize>> {
        if let Some(list) = self.index.get(name) {
            return Some(list.clone());
        }
        let cuts = name
            .char_indices()
            .filter(|(_, c)| matches!(c, '-' | ':' | '@'))
            .map(|(i, _)| i)
            .rev();
        for cut in cuts {
            let Some(prefix) = name.get(..cut) else {
                continue;
            };
            if let Some(list) = self.index.get(prefix) {
                let open: Vec<usize> = list
                    .iter()
                    .copied()
                    .filter(|&i| !self.entries[i].entry.exact)
                    .collect();
                if !open.is_empty() {
                    return Some(open);
                }
            }
        }
        None
    }

    /// The entry in effect on `day`: the latest one not after it, else the earliest.
    fn in_effect(&self, list: Vec<usize>, day: i64) -> Option<&PriceEntry> {
        let stored = list.iter().map(|&i| &self.entries[i]);
        stored
            .clone()
            .filter(|s| s.day <= day)
            .max_by_key(|s| (s.day, s.rank))
            .or_else(|| stored.min_by_key(|s| s.day))
            .map(|s| &s.entry)
    }

    /// Cost of a call, `None` when its model has no price or it reports no token usage.
    pub fn cost(&self, call: &LlmCall) -> Option<Cost> {
        let usage = &call.usage;
        if usage.input_tokens.is_none() && usage.output_tokens.is_none() {
            return None;
        }
        let at = call.start_time_unix_nano;
        let entry = [
            call.response_model.as_deref(),
            call.request_model.as_deref(),
        ]
        .into_iter()
        .flatten()
        .find_map(|m| self.lookup(m, at))?;

        let input = usage.input_tokens.unwrap_or(0);
        let cache_read = usage.cache_read_tokens.unwrap_or(0);
        let cache_write = usage.cache_write_tokens.unwrap_or(0);
        let cached = cache_read.saturating_add(cache_write);
        let uncached = if cached > input {
            input
        } else {
            input - cached
        };
        let output = usage.output_tokens.unwrap_or(0);
        let reasoning = usage.reasoning_tokens.unwrap_or(0);
        let plain_output = if reasoning > output {
            output
        } else {
            output - reasoning
        };

        let per_token = |tokens: u64, price: f64| tokens as f64 * price / 1e6;
        let input_usd = per_token(uncached, entry.input)
            + per_token(cache_read, entry.cache_read.unwrap_or(entry.input))
            + per_token(cache_write, entry.cache_write.unwrap_or(entry.input));
        let output_usd = per_token(plain_output, entry.output)
            + per_token(reasoning, entry.reasoning.unwrap_or(entry.output));
        Some(Cost {
            input_usd,
            output_usd,
            total_usd: input_usd + output_usd,
            price_id: entry.price_id(),
            price_table_version: self.version.clone(),
        })
    }
}

/// Lowercased forms of a model name to try, most specific first: as given, without a host path
/// (`openai/gpt-4o`, `models/gemini-2.0-flash`), and without Bedrock region and vendor prefixes
/// (`us.anthropic.claude-3-5-sonnet-20241022-v2:0`).
fn candidates(model: &str) -> Vec<String> {
    const REGIONS: [&str; 8] = [
        "us.", "eu.", "apac.", "au.", "jp.", "ca.", "us-gov.", "global.",
    ];
    const VENDORS: [&str; 11] = [
        "anthropic.",
        "meta.",
        "amazon.",
        "mistral.",
        "cohere.",
        "ai21.",
        "deepseek.",
        "openai.",
        "qwen.",
        "google.",
        "writer.",
    ];
    let full = model.trim().to_ascii_lowercase();
    let mut out = vec![full.clone()];
    let last = full.rsplit('/').next().unwrap_or_default().to_string();
    if !last.is_empty() && last != full {
        out.push(last.clone());
    }
    let mut bare = last.as_str();
    if let Some(rest) = REGIONS.iter().find_map(|r| bare.strip_prefix(r)) {
        bare = rest;
    }
    if let Some(rest) = VENDORS.iter().find_map(|v| bare.strip_prefix(v)) {
        bare = rest;
    }
    if !bare.is_empty() && bare != last {
        out.push(bare.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::Usage;

    /// 2025-07-01T00:00:00Z.
    const JULY_2025: u64 = 1_751_328_000 * 1_000_000_000;

    fn call(model: &str, usage: Usage, at: u64) -> LlmCall {
        LlmCall {
            request_model: Some(model.to_string()),
            usage,
            start_time_unix_nano: at,
            ..LlmCall::default()
        }
    }

    fn io(input: u64, output: u64) -> Usage {
        Usage {
            input_tokens: Some(input),
            output_tokens: Some(output),
            ..Usage::default()
        }
    }

    fn approx(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn builtin_parses_with_many_entries() {
        let parsed = PriceTable::from_toml_str(BUILTIN_TOML).unwrap();
        assert!(parsed.len() > 40, "only {} entries", parsed.len());
        let t = PriceTable::builtin();
        assert_eq!(t.len(), parsed.len());
        assert_eq!(t.version(), "2026-11-01");
    }

    #[test]
    fn builtin_covers_the_major_providers() {
        let t = PriceTable::builtin();
        for model in [
            "gpt-4o",
            "gpt-4o-mini",
            "gpt-4.1-nano",
            "o1",
            "o3",
            "o3-mini",
            "o4-mini",
            "gpt-5",
            "gpt-5-mini",
            "text-embedding-3-small",
            "text-embedding-3-large",
            "claude-3-5-sonnet-20241022",
            "claude-3-7-sonnet-20250219",
            "claude-sonnet-4-20250514",
            "claude-sonnet-4-5",
            "claude-opus-4-1-20250805",
            "claude-3-5-haiku-latest",
            "claude-haiku-4-5",
            "gemini-1.5-pro-002",
            "gemini-2.0-flash-001",
            "gemini-2.5-flash-lite",
            "mistral-large-latest",
            "codestral-2501",
            "llama-3.3-70b-versatile",
            "deepseek-chat",
        ] {
            assert!(t.lookup(model, JULY_2025).is_some(), "no price for {model}");
        }
    }

    #[test]
    fn longest_prefix_and_boundaries() {
        let t = PriceTable::builtin();
        let id = |m: &str| t.lookup(m, JULY_2025).map(|e| e.model.clone());
        assert_eq!(id("gpt-4o-mini-2024-07-18").as_deref(), Some("gpt-4o-mini"));
        assert_eq!(id("gpt-4o-2024-11-20").as_deref(), Some("gpt-4o"));
        assert_eq!(id("gpt-4-0613").as_deref(), Some("gpt-4"));
        assert_eq!(id("o3-mini-2025-01-31").as_deref(), Some("o3-mini"));
        assert_eq!(
            id("gemini-2.0-flash-lite-001").as_deref(),
            Some("gemini-2.0-flash-lite")
        );
        // `gpt-4` must not price `gpt-4o`-like names at a non-boundary.
        assert_eq!(id("gpt-4x"), None);
        assert_eq!(id("totally-unknown-model"), None);
        // Exact entries do not match suffixed names: the dated snapshot keeps its own price,
        // other names fall back to the family entry.
        assert_eq!(
            id("gpt-4o-2024-05-13").as_deref(),
            Some("gpt-4o-2024-05-13")
        );
        assert_eq!(
            id("llama-3.1-8b-instant").as_deref(),
            Some("llama-3.1-8b-instant")
        );
        assert_eq!(
            id("llama-3.1-8b-instant-2").as_deref(),
            Some("llama-3.1-8b")
        );
    }

    #[test]
    fn case_and_provider_prefixes() {
        let t = PriceTable::builtin();
        let id = |m: &str| t.lookup(m, JULY_2025).map(|e| e.model.clone());
        assert_eq!(id("GPT-4o").as_deref(), Some("gpt-4o"));
        assert_eq!(id("openai/gpt-4o").as_deref(), Some("gpt-4o"));
        assert_eq!(
            id("models/gemini-2.5-pro").as_deref(),
            Some("gemini-2.5-pro")
        );
        assert_eq!(
            id("anthropic.claude-3-5-sonnet-20240620-v1:0").as_deref(),
            Some("claude-3-5-sonnet")
        );
        assert_eq!(
            id("us.anthropic.claude-3-7-sonnet-20250219-v1:0").as_deref(),
            Some("claude-3-7-sonnet")
        );
        assert_eq!(
            id("claude-3-5-sonnet@20240620").as_deref(),
            Some("claude-3-5-sonnet")
        );
        assert_eq!(
            id("anthropic/claude-3.5-sonnet").as_deref(),
            Some("claude-3-5-sonnet")
        );
        assert_eq!(
            id("meta-llama/Meta-Llama-3.1-70B-Instruct-Turbo").as_deref(),
            Some("llama-3.1-70b")
        );
        assert_eq!(
            id("accounts/fireworks/models/llama-v3p1-405b-instruct").as_deref(),
            Some("llama-v3p1-405b-instruct")
        );
        assert_eq!(id("amazon.nova-pro-v1:0").as_deref(), Some("nova-pro"));
        assert_eq!(id("ft:gpt-4o-mini-2024-07-18:acme::abc"), None);
    }

    #[test]
    fn effective_dates_pick_the_price_in_force() {
        let t = PriceTable::builtin();
        let day = |y: i64, m: u32, d: u32| {
            crate::semconv::value::days_from_civil(y, m, d) as u64 * DAY_NS
        };
        let o3_april = t.lookup("o3", day(2025, 5, 1)).unwrap();
        assert_eq!(o3_april.input, 10.0);
        assert_eq!(o3_april.price_id(), "o3@2025-04-16");
        let o3_july = t.lookup("o3-2025-04-16", day(2025, 7, 1)).unwrap();
        assert_eq!(o3_july.input, 2.0);
        assert_eq!(o3_july.price_id(), "o3@2025-06-10");
        // Older than every entry: the earliest applies. Unknown time (0): the latest.
        assert_eq!(t.lookup("o3", day(2020, 1, 1)).unwrap().input, 10.0);
        assert_eq!(t.lookup("o3", 0).unwrap().input, 2.0);
    }

    #[test]
    fn cost_of_plain_call() {
        let t = PriceTable::builtin();
        let c = t
            .cost(&call("gpt-4o", io(1_000_000, 100_000), JULY_2025))
            .unwrap();
        assert!(approx(c.input_usd, 2.5));
        assert!(approx(c.output_usd, 1.0));
        assert!(approx(c.total_usd, 3.5));
        assert_eq!(c.price_id, "gpt-4o@2024-10-02");
        assert_eq!(c.price_table_version, "2026-11-01");
    }

    #[test]
    fn response_model_first_then_request_model() {
        let t = PriceTable::builtin();
        let mut c = call("gpt-4o", io(1_000_000, 0), JULY_2025);
        c.response_model = Some("gpt-4o-mini-2024-07-18".into());
        assert_eq!(t.cost(&c).unwrap().price_id, "gpt-4o-mini@2024-07-18");
        c.response_model = Some("some-deployment-name".into());
        assert_eq!(t.cost(&c).unwrap().price_id, "gpt-4o@2024-10-02");
    }

    #[test]
    fn cache_and_reasoning_tokens() {
        let t = PriceTable::builtin();
        // Input includes the cache counts (OTel convention).
        let usage = Usage {
            input_tokens: Some(1_000_000),
            output_tokens: Some(1_000_000),
            cache_read_tokens: Some(400_000),
            cache_write_tokens: Some(100_000),
            reasoning_tokens: Some(250_000),
            ..Usage::default()
        };
        let c = t
            .cost(&call("claude-sonnet-4-5", usage.clone(), JULY_2025))
            .unwrap();
        // 500k uncached × $3 + 400k × $0.30 + 100k × $3.75
        assert!(approx(c.input_usd, 1.5 + 0.12 + 0.375));
        assert!(approx(c.output_usd, 15.0));

        // Cache counts larger than input: input was reported without them.
        let anthropic_raw = Usage {
            input_tokens: Some(100),
            output_tokens: Some(0),
            cache_read_tokens: Some(1_000_000),
            ..Usage::default()
        };
        let c = t
            .cost(&call("claude-sonnet-4-5", anthropic_raw, JULY_2025))
            .unwrap();
        assert!(approx(c.input_usd, 100.0 * 3.0 / 1e6 + 0.3));

        // A separate reasoning price applies to reasoning tokens only.
        let thinking = Usage {
            input_tokens: Some(0),
            output_tokens: Some(1_000_000),
            reasoning_tokens: Some(600_000),
            ..Usage::default()
        };
        let may_2025 = crate::semconv::value::days_from_civil(2025, 5, 1) as u64 * DAY_NS;
        let c = t
            .cost(&call("gemini-2.5-flash", thinking, may_2025))
            .unwrap();
        assert!(approx(c.output_usd, 0.4 * 0.6 + 0.6 * 3.5));
    }

    #[test]
    fn unknown_model_or_no_usage_is_none_never_zero() {
        let t = PriceTable::builtin();
        assert!(t
            .cost(&call("my-private-model", io(10, 10), JULY_2025))
            .is_none());
        assert!(t
            .cost(&call("gpt-4o", Usage::default(), JULY_2025))
            .is_none());
        assert!(t.cost(&LlmCall::default()).is_none());
        assert!(PriceTable::default()
            .cost(&call("gpt-4o", io(1, 1), JULY_2025))
            .is_none());
        let zero = t.cost(&call("gpt-4o", io(0, 0), JULY_2025)).unwrap();
        assert_eq!(zero.total_usd, 0.0);
    }

    #[test]
    fn overrides_win() {
        let user = PriceTable::from_toml_str(
            r#"
            version = "acme-1"
            [[models]]
            model = "gpt-4o"
            effective_from = "2030-01-01"
            input = 1.0
            output = 2.0

            [[models]]
            model = "acme-llm"
            aliases = ["claude-sonnet-4-5"]
            effective_from = "2024-01-01"
            input = 7.0
            output = 7.0
            "#,
        )
        .unwrap();
        let t = PriceTable::builtin().with_overrides(user);
        assert_eq!(t.version(), "2026-11-01+acme-1");
        // The user's only gpt-4o entry applies even before its date: built-in ones are gone.
        let c = t.cost(&call("gpt-4o-2024-11-20", io(1_000_000, 0), JULY_2025));
        assert_eq!(c.unwrap().price_id, "gpt-4o@2030-01-01");
        // A user alias shadows the built-in entry with the same name.
        let c = t.cost(&call("claude-sonnet-4-5", io(1_000_000, 0), JULY_2025));
        assert_eq!(c.unwrap().price_id, "acme-llm@2024-01-01");
        // Other built-in entries are untouched.
        assert!(t.lookup("o3", JULY_2025).is_some());
    }

    #[test]
    fn rejects_bad_tables() {
        let bad = |s: &str| PriceTable::from_toml_str(s).unwrap_err();
        assert!(matches!(bad("models = 3"), PriceError::Parse(_)));
        assert!(matches!(
            bad("[[models]]\nmodel = \"m\"\neffective_from = \"2024-01-01\"\ninput = 1\noutput = 1\ncache_reads = 1"),
            PriceError::Parse(_)
        ));
        assert!(matches!(
            bad("[[models]]\nmodel = \"\"\neffective_from = \"2024-01-01\"\ninput = 1\noutput = 1"),
            PriceError::EmptyModel
        ));
        assert!(matches!(
            bad(
                "[[models]]\nmodel = \"m\"\neffective_from = \"2024-02-30\"\ninput = 1\noutput = 1"
            ),
            PriceError::InvalidDate { .. }
        ));
        assert!(matches!(
            bad("[[models]]\nmodel = \"m\"\neffective_from = \"2024-01-01\"\ninput = -1\noutput = 1"),
            PriceError::InvalidPrice { field: "input", .. }
        ));
        assert!(matches!(
            bad("[[models]]\nmodel = \"m\"\neffective_from = \"2024-01-01\"\ninput = 1\noutput = inf"),
            PriceError::InvalidPrice { field: "output", .. }
        ));
        let dup = "[[models]]\nmodel = \"m\"\neffective_from = \"2024-01-01\"\ninput = 1\noutput = 1\n\
                   [[models]]\nmodel = \"M\"\neffective_from = \"2024-01-01\"\ninput = 2\noutput = 2";
        assert!(matches!(bad(dup), PriceError::Duplicate { .. }));
        let t = PriceTable::from_toml_str("").unwrap();
        assert!(t.is_empty());
        assert_eq!(t.version(), "custom");
    }

    #[test]
    fn error_messages_name_the_field() {
        let e = PriceError::InvalidPrice {
            model: "m".into(),
            field: "input",
            value: -1.0,
        };
        assert_eq!(
            e.to_string(),
            "price entry `m`: `input` must be a finite non-negative number, got -1"
        );
    }
}
