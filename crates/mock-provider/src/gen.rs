//! Deterministic content: a seeded generator, reply text, tool arguments, embeddings and token
//! counts from a real tokenizer.
//!
//! Everything a response contains is a function of the configured seed and the request bytes, so
//! the same request gets the same answer byte for byte (ids and `created` included). That is what
//! lets a test compare a call made through the gateway with the same call made directly.

use serde_json::{json, Map, Value};
use tiktoken_rs::CoreBPE;

/// FNV-1a over bytes: stable across platforms and Rust versions, unlike `DefaultHasher`.
pub(crate) fn fnv1a(seed: u64, parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for part in parts {
        for b in *part {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// SplitMix64: tiny, fast, and the same sequence everywhere.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    pub(crate) fn alnum(&mut self, chars: usize) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        (0..chars)
            .map(|_| char::from(ALPHABET[(self.next_u64() % ALPHABET.len() as u64) as usize]))
            .collect()
    }
}

const WORDS: [&str; 64] = [
    "the",
    "model",
    "answer",
    "is",
    "based",
    "on",
    "your",
    "question",
    "and",
    "context",
    "we",
    "can",
    "check",
    "weather",
    "in",
    "Paris",
    "today",
    "with",
    "light",
    "rain",
    "expected",
    "later",
    "a",
    "summary",
    "of",
    "report",
    "shows",
    "steady",
    "growth",
    "across",
    "all",
    "regions",
    "latency",
    "stayed",
    "low",
    "while",
    "tokens",
    "per",
    "second",
    "improved",
    "please",
    "note",
    "that",
    "this",
    "reply",
    "comes",
    "from",
    "Sightline",
    "mock",
    "provider",
    "results",
    "look",
    "good",
    "next",
    "step",
    "would",
    "be",
    "to",
    "review",
    "data",
    "carefully",
    "then",
    "ship",
    "it",
];

/// The shared tokenizer (`o200k_base`, the GPT-4o family's encoding).
pub(crate) fn bpe() -> &'static CoreBPE {
    tiktoken_rs::o200k_base_singleton()
}

/// Tokens in `text`.
pub(crate) fn count_tokens(text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    bpe().encode_ordinary(text).len() as u64
}

/// Reply text of 6 to 40 words (about 8 to 48 tokens), a sentence.
pub(crate) fn reply_text(rng: &mut Rng) -> String {
    let words = rng.range(6, 40);
    let mut text = String::new();
    for i in 0..words {
        let w = word(rng);
        if i > 0 {
            text.push(' ');
        }
        if i == 0 {
            let mut c = w.chars();
            if let Some(first) = c.next() {
                text.extend(first.to_uppercase());
                text.push_str(c.as_str());
            }
        } else {
            text.push_str(w);
        }
    }
    text.push('.');
    text
}

/// Text split into the pieces a stream sends, one per token.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pieces {
    /// The text of each token; where a character's bytes span tokens, those tokens make one
    /// piece, so every piece is whole characters and the pieces concatenate to the text.
    pub pieces: Vec<String>,
    /// Tokens in the pieces (more than `pieces.len()` where tokens were joined).
    pub tokens: u64,
    /// Whether `max_tokens` cut the text short.
    pub truncated: bool,
}

impl Pieces {
    pub(crate) fn text(&self) -> String {
        self.pieces.concat()
    }
}

/// A tool call the model "makes", in any of the APIs.
pub(crate) struct ToolCall {
    /// `<prefix>_` and 24 letters and digits.
    pub id: String,
    pub name: String,
    /// The name's tokens, as counted within `max_tokens`.
    pub name_tokens: u64,
    /// The arguments (JSON following the tool's schema) as sent, cut where `max_tokens` ran out.
    pub pieces: Pieces,
}

/// A call of the tool named `name` (`tool` when it has none) with arguments that follow
/// `schema`: the name takes from `max_tokens` first, the arguments have what is left. The
/// arguments are drawn before the id.
pub(crate) fn tool_call(
    rng: &mut Rng,
    name: Option<&str>,
    schema: Option<&Value>,
    id_prefix: &str,
    max_tokens: Option<u64>,
) -> ToolCall {
    let name = name.unwrap_or("tool").to_string();
    let args = tool_arguments(rng, schema);
    let id = format!("{id_prefix}_{}", rng.alnum(24));
    let name_tokens = count_tokens(&name);
    let counted = max_tokens.map_or(name_tokens, |m| name_tokens.min(m));
    let budget = max_tokens.map(|m| m - counted);
    ToolCall {
        id,
        name,
        name_tokens: counted,
        pieces: split_tokens(&args, budget),
    }
}

/// Splits `text` into the text of its tokens, cut at `max_tokens`. Pieces end only at
/// character boundaries (a token that ends inside a character is joined with the next).
pub(crate) fn split_tokens(text: &str, max_tokens: Option<u64>) -> Pieces {
    let all = bpe().encode_ordinary(text);
    let limit = max_tokens.map_or(usize::MAX, |m| usize::try_from(m).unwrap_or(usize::MAX));
    let truncated = all.len() > limit;
    let mut pieces = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut tokens = 0;
    for t in all.into_iter().take(limit) {
        tokens += 1;
        pending.extend(bpe().decode_bytes(&[t]).unwrap_or_default());
        let valid = match std::str::from_utf8(&pending) {
            Ok(_) => pending.len(),
            Err(e) => e.valid_up_to(),
        };
        if valid > 0 {
            let rest = pending.split_off(valid);
            pieces.push(String::from_utf8_lossy(&pending).into_owned());
            pending = rest;
        }
    }
    // Only a cut inside a character leaves bytes over; they are dropped, not sent broken.
    Pieces {
        pieces,
        tokens,
        truncated,
    }
}

/// Why generated text ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Finish {
    /// The reply was complete.
    Complete,
    /// `max_tokens` cut it.
    Length,
    /// A stop sequence (this one, not included in the text) ended it.
    Stop(String),
}

/// Generated text as sent: cut before the first stop sequence, then at `max_tokens`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reply {
    pub pieces: Pieces,
    pub finish: Finish,
}

/// Ends `text` the way a model would: at the first occurrence of any of `stops` (which is not
/// sent), or after `max_tokens` tokens, whichever comes first.
pub(crate) fn finish_text(text: &str, max_tokens: Option<u64>, stops: &[String]) -> Reply {
    let first_stop = stops
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()).map(|at| (at, s)))
        .min_by_key(|(at, _)| *at);
    if let Some((at, stop)) = first_stop {
        let pieces = split_tokens(&text[..at], max_tokens);
        if !pieces.truncated {
            return Reply {
                pieces,
                finish: Finish::Stop(stop.clone()),
            };
        }
    }
    let pieces = split_tokens(text, max_tokens);
    let finish = if pieces.truncated {
        Finish::Length
    } else {
        Finish::Complete
    };
    Reply { pieces, finish }
}

/// Rounds a log probability down to 4 decimals, so its probability never grows.
fn round_down(lp: f64) -> f64 {
    (lp * 1e4).floor() / 1e4
}

/// A log probability for a generated token and `top` alternatives, OpenAI chat format.
///
/// The chosen token is the most likely one and comes first; the others are distinct tokens,
/// each less likely than the one before it, and all the probabilities add up to less than 1.
pub(crate) fn token_logprob(rng: &mut Rng, token: &str, top: u64) -> Value {
    let lp = round_down(-(0.01 + rng.next_f64() * 1.99));
    let chosen = lp.exp();
    let mut alternatives = Vec::new();
    if top > 0 {
        alternatives.push(json!({"token": token, "logprob": lp, "bytes": token.as_bytes()}));
    }
    // What is left of the probability mass, shared out in halves: alternative i gets less than
    // 2^-i of it, and never as much as half the chosen token's.
    let mass = (1.0 - chosen).min(chosen);
    // An odd stride visits all 64 words once, so no word repeats.
    let start = rng.next_u64();
    let stride = rng.next_u64() | 1;
    let mut candidates = (0..WORDS.len() as u64)
        .map(|j| WORDS[(start.wrapping_add(j.wrapping_mul(stride)) % WORDS.len() as u64) as usize])
        .map(|w| format!(" {w}"))
        .filter(|w| w != token);
    let mut share = 1.0;
    for _ in 1..top {
        let Some(alt) = candidates.next() else {
            break;
        };
        share /= 2.0;
        let p = mass * share * (0.5 + 0.5 * rng.next_f64());
        let alp = round_down(p.ln());
        alternatives.push(json!({"token": alt, "logprob": alp, "bytes": alt.as_bytes()}));
    }
    json!({
        "token": token,
        "logprob": lp,
        "bytes": token.as_bytes(),
        "top_logprobs": alternatives,
    })
}

/// Arguments for a tool, generated from its JSON-schema `parameters`.
pub(crate) fn tool_arguments(rng: &mut Rng, parameters: Option<&Value>) -> String {
    let mut args = Map::new();
    if let Some(props) = parameters
        .and_then(|p| p.get("properties"))
        .and_then(Value::as_object)
    {
        for (name, schema) in props {
            args.insert(
                name.clone(),
                value_for_schema(rng, schema, parameters, SCHEMA_DEPTH),
            );
        }
    }
    Value::Object(args).to_string()
}

/// A JSON document that validates against `schema` (`response_format` `json_schema`).
pub(crate) fn json_for_schema(rng: &mut Rng, schema: &Value) -> String {
    value_for_schema(rng, schema, Some(schema), SCHEMA_DEPTH).to_string()
}

/// A JSON object for `response_format` `json_object`.
pub(crate) fn json_object(rng: &mut Rng) -> String {
    json!({"answer": reply_text(rng)}).to_string()
}

/// How deep generated values nest (and `$ref`s are followed), so a recursive schema ends.
const SCHEMA_DEPTH: u32 = 12;

fn word(rng: &mut Rng) -> &'static str {
    WORDS[(rng.next_u64() % WORDS.len() as u64) as usize]
}

/// `#/$defs/name` (or `#/definitions/name`, or `#`) resolved in the root schema.
fn resolve<'a>(root: Option<&'a Value>, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    root?.pointer(pointer)
}

/// A value that validates against `schema`: the first `enum` value or `const`, the first
/// branch of `anyOf`/`oneOf`, every property of an object, `minItems` items of an array,
/// numbers within their bounds and strings of an allowed length in common formats.
fn value_for_schema(rng: &mut Rng, schema: &Value, root: Option<&Value>, depth: u32) -> Value {
    if let Some(c) = schema.get("const") {
        return c.clone();
    }
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    if depth == 0 {
        return Value::Null;
    }
    if let Some(target) = schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| resolve(root, r))
    {
        return value_for_schema(rng, target, root, depth - 1);
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(first) = schema
            .get(key)
            .and_then(Value::as_array)
            .and_then(|b| b.first())
        {
            return value_for_schema(rng, first, root, depth - 1);
        }
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        // Good enough for the common case of one branch or object branches to merge.
        let mut merged = Map::new();
        for branch in all {
            match value_for_schema(rng, branch, root, depth - 1) {
                Value::Object(o) => merged.extend(o),
                other if all.len() == 1 => return other,
                _ => {}
            }
        }
        return Value::Object(merged);
    }
    let kind = match schema.get("type") {
        Some(Value::String(t)) => t.as_str(),
        // A list of types: the first that is not "null".
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ if schema.get("properties").is_some() => "object",
        _ if schema.get("items").is_some() => "array",
        _ => "string",
    };
    let bound = |name: &str| schema.get(name).and_then(Value::as_f64);
    match kind {
        "integer" => {
            let lo = bound("minimum")
                .map(f64::ceil)
                .or_else(|| bound("exclusiveMinimum").map(|m| m.floor() + 1.0))
                .unwrap_or(1.0);
            let hi = bound("maximum")
                .map(f64::floor)
                .or_else(|| bound("exclusiveMaximum").map(|m| m.ceil() - 1.0))
                .unwrap_or(lo.max(1.0) + 99.0);
            if hi < lo || !lo.is_finite() || !hi.is_finite() {
                return json!(lo as i64);
            }
            let span = (hi - lo).min(1e15) as u64;
            json!((lo + rng.range(0, span) as f64) as i64)
        }
        "number" => {
            let lo = bound("minimum")
                .or(bound("exclusiveMinimum"))
                .unwrap_or(0.0);
            let hi = bound("maximum")
                .or(bound("exclusiveMaximum"))
                .unwrap_or(lo + 100.0);
            let v = lo + (hi - lo) * (0.25 + 0.5 * rng.next_f64());
            if v.is_finite() {
                json!(v)
            } else {
                json!(0.0)
            }
        }
        "boolean" => json!(rng.next_u64().is_multiple_of(2)),
        "null" => Value::Null,
        "array" => {
            let min = schema.get("minItems").and_then(Value::as_u64).unwrap_or(1);
            let max = schema.get("maxItems").and_then(Value::as_u64).unwrap_or(3);
            let n = if max < min { min } else { rng.range(min, max) }.min(16);
            let items = schema.get("items").cloned().unwrap_or(json!({}));
            let values: Vec<Value> = (0..n)
                .map(|_| value_for_schema(rng, &items, root, depth - 1))
                .collect();
            Value::Array(values)
        }
        "object" => {
            let mut out = Map::new();
            let required: Vec<&str> = schema
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (name, prop) in props {
                    // Deep down, optional properties are left out, so a recursive schema ends.
                    if depth <= SCHEMA_DEPTH / 2 && !required.contains(&name.as_str()) {
                        continue;
                    }
                    out.insert(name.clone(), value_for_schema(rng, prop, root, depth - 1));
                }
            }
            Value::Object(out)
        }
        _ => json!(string_for_schema(rng, schema)),
    }
}

fn string_for_schema(rng: &mut Rng, schema: &Value) -> String {
    let s = match schema.get("format").and_then(Value::as_str) {
        Some("date-time") => format!("2024-0{}-1{}T12:00:00Z", rng.range(1, 9), rng.range(0, 9)),
        Some("date") => format!("2024-0{}-1{}", rng.range(1, 9), rng.range(0, 9)),
        Some("time") => "12:00:00Z".to_string(),
        Some("email") => format!("{}@example.com", word(rng).to_lowercase()),
        Some("uri") | Some("url") => format!("https://example.com/{}", word(rng)),
        Some("uuid") => {
            let h = format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64());
            format!(
                "{}-{}-4{}-a{}-{}",
                &h[..8],
                &h[8..12],
                &h[13..16],
                &h[17..20],
                &h[20..32]
            )
        }
        _ => word(rng).to_string(),
    };
    let min = schema
        .get("minLength")
        .and_then(Value::as_u64)
        .unwrap_or(0)
        .min(4096) as usize;
    let max = schema
        .get("maxLength")
        .and_then(Value::as_u64)
        .map_or(usize::MAX, |m| usize::try_from(m).unwrap_or(usize::MAX));
    let mut s = s;
    while s.chars().count() < min {
        s.push('x');
    }
    s.chars().take(max.max(min)).collect()
}

/// A unit-length embedding of `dims` dimensions for `text`, the same for the same text and seed.
pub(crate) fn embedding(seed: u64, text: &[u8], dims: usize) -> Vec<f32> {
    let mut rng = Rng::new(fnv1a(seed, &[b"embedding", text]));
    let mut v: Vec<f32> = (0..dims)
        .map(|_| (rng.next_f64() * 2.0 - 1.0) as f32)
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        for x in &mut v {
            *x /= norm;
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_reply() {
        let a = reply_text(&mut Rng::new(7));
        assert_eq!(a, reply_text(&mut Rng::new(7)));
        assert_ne!(a, reply_text(&mut Rng::new(8)));
        assert!(!a.is_empty());
    }

    #[test]
    fn pieces_are_tokens_and_limit_cuts() {
        let cut = split_tokens(&reply_text(&mut Rng::new(1)), Some(3));
        assert_eq!(cut.pieces.len(), 3);
        assert_eq!(cut.tokens, 3);
        assert!(cut.truncated);
        let all = split_tokens("Hello world, hello Sightline.", None);
        assert_eq!(all.text(), "Hello world, hello Sightline.");
        assert_eq!(all.tokens, count_tokens("Hello world, hello Sightline."));
        assert_eq!(all.pieces.len() as u64, all.tokens);
    }

    /// Regression: pieces were decoded token by token with `from_utf8_lossy`, so a character
    /// split across tokens streamed as U+FFFD.
    #[test]
    fn split_tokens_keeps_characters_whole() {
        let text = r#"{"city":"東京 🌧️ naïve Ωmega ∑ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢"}"#;
        let split = split_tokens(text, None);
        assert!(
            split.tokens > split.pieces.len() as u64,
            "some tokens end inside a character"
        );
        assert_eq!(split.text(), text);
        assert!(split
            .pieces
            .iter()
            .all(|p| !p.is_empty() && !p.contains('\u{FFFD}')));
        assert_eq!(split.tokens, count_tokens(text));
        // A cut never sends a broken character either.
        for max in 0..split.tokens {
            let cut = split_tokens(text, Some(max));
            assert!(text.starts_with(&cut.text()));
            assert!(cut.tokens <= max);
        }
    }

    /// Regression: alternatives could repeat each other or the chosen token, be likelier than
    /// it, and add up to more than 1.
    #[test]
    fn top_logprobs_are_distinct_less_likely_and_sum_below_one() {
        let mut rng = Rng::new(5);
        for token in [" the", "The", " model", ".", " Paris", "x"] {
            for top in 0..=20u64 {
                let lp = token_logprob(&mut rng, token, top);
                let chosen = lp["logprob"].as_f64().unwrap();
                let list = lp["top_logprobs"].as_array().unwrap();
                assert_eq!(list.len() as u64, top);
                if top == 0 {
                    continue;
                }
                assert_eq!(list[0]["token"], token);
                let mut seen = std::collections::HashSet::new();
                let mut total = 0.0;
                for (i, alt) in list.iter().enumerate() {
                    let t = alt["token"].as_str().unwrap();
                    assert!(seen.insert(t.to_string()), "{t} repeats");
                    let alp = alt["logprob"].as_f64().unwrap();
                    assert!(alp <= 0.0 && alp.is_finite());
                    if i > 0 {
                        assert_ne!(t, token);
                        assert!(alp < chosen);
                    }
                    total += alp.exp();
                }
                assert!(total <= 1.0, "probabilities add up to {total}");
            }
        }
    }

    #[test]
    fn stop_sequences_cut_before_the_first_match() {
        let text = "Alpha beta gamma beta delta.";
        let r = finish_text(text, None, &["gamma".into(), " beta".into()]);
        assert_eq!(r.pieces.text(), "Alpha");
        assert_eq!(r.finish, Finish::Stop(" beta".into()));
        assert_eq!(r.pieces.tokens, count_tokens("Alpha"));
        let r = finish_text(text, None, &["zeta".into()]);
        assert_eq!(
            (r.pieces.text().as_str(), r.finish),
            (text, Finish::Complete)
        );
        // The length limit comes first when the stop sequence lies beyond it.
        let r = finish_text(text, Some(2), &["delta".into()]);
        assert_eq!(r.finish, Finish::Length);
        assert_eq!(r.pieces.tokens, 2);
    }

    #[test]
    fn json_schema_values_validate() {
        let schema = json!({
            "type": "object",
            "properties": {
                "name": {"type": "string", "minLength": 12, "maxLength": 20},
                "age": {"type": "integer", "minimum": 18, "maximum": 20},
                "score": {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 1},
                "tags": {"type": "array", "items": {"type": "string", "enum": ["a"]}, "minItems": 2},
                "kind": {"const": "k"},
                "when": {"type": "string", "format": "date-time"},
                "owner": {"$ref": "#/$defs/Person"},
                "maybe": {"anyOf": [{"type": "boolean"}, {"type": "null"}]}
            },
            "required": ["name", "age", "score", "tags", "kind", "when", "owner", "maybe"],
            "additionalProperties": false,
            "$defs": {"Person": {"type": "object", "properties": {
                "email": {"type": "string", "format": "email"},
                "friend": {"$ref": "#/$defs/Person"}}}}
        });
        for seed in 0..20 {
            let v: Value =
                serde_json::from_str(&json_for_schema(&mut Rng::new(seed), &schema)).unwrap();
            let name = v["name"].as_str().unwrap();
            assert!((12..=20).contains(&name.chars().count()));
            assert!((18..=20).contains(&v["age"].as_i64().unwrap()));
            let score = v["score"].as_f64().unwrap();
            assert!(score > 0.0 && score <= 1.0);
            let tags = v["tags"].as_array().unwrap();
            assert!(tags.len() >= 2 && tags.iter().all(|t| t == "a"));
            assert_eq!(v["kind"], "k");
            assert!(v["when"].as_str().unwrap().ends_with('Z'));
            assert!(v["owner"]["email"].as_str().unwrap().contains('@'));
            assert!(v["maybe"].is_boolean());
        }
    }

    #[test]
    fn tool_arguments_follow_the_schema() {
        let schema = json!({"type": "object", "properties": {
            "city": {"type": "string"}, "days": {"type": "integer"}, "unit": {"enum": ["c", "f"]}}});
        let args: Value =
            serde_json::from_str(&tool_arguments(&mut Rng::new(3), Some(&schema))).unwrap();
        assert!(args["city"].is_string());
        assert!(args["days"].is_u64());
        assert_eq!(args["unit"], "c");
    }

    #[test]
    fn embeddings_are_unit_and_stable() {
        let a = embedding(1, b"hi", 64);
        assert_eq!(a, embedding(1, b"hi", 64));
        assert_ne!(a, embedding(1, b"ho", 64));
        let norm: f32 = a.iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-4);
    }
}
