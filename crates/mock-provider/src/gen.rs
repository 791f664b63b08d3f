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

/// A reply of between 8 and 48 tokens (at most `max_tokens`), split into its tokens' text.
/// Returns the pieces and whether the length limit cut it short.
pub(crate) fn reply_pieces(rng: &mut Rng, max_tokens: Option<u64>) -> (Vec<String>, bool) {
    let words = rng.range(6, 40);
    let mut text = String::new();
    for i in 0..words {
        let w = WORDS[(rng.next_u64() % WORDS.len() as u64) as usize];
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
    split_tokens(&text, max_tokens)
}

/// Splits `text` into the text of each of its tokens, cut at `max_tokens`.
pub(crate) fn split_tokens(text: &str, max_tokens: Option<u64>) -> (Vec<String>, bool) {
    let tokens = bpe().encode_ordinary(text);
    let limit = max_tokens.map_or(usize::MAX, |m| m as usize);
    let truncated = tokens.len() > limit;
    let pieces = tokens
        .into_iter()
        .take(limit)
        .map(|t| {
            bpe()
                .decode_bytes(&[t])
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        })
        .collect();
    (pieces, truncated)
}

/// A log probability for a generated token and `top` alternatives, OpenAI chat format.
pub(crate) fn token_logprob(rng: &mut Rng, token: &str, top: u64) -> Value {
    let lp = -(rng.next_f64() * 2.0);
    let lp = (lp * 1e4).round() / 1e4;
    let mut alternatives = vec![json!({
        "token": token,
        "logprob": lp,
        "bytes": token.as_bytes(),
    })];
    for i in 1..top {
        let w = WORDS[(rng.next_u64() % WORDS.len() as u64) as usize];
        let alt = format!(" {w}");
        let alp = ((lp - 0.5 * i as f64 - rng.next_f64()) * 1e4).round() / 1e4;
        alternatives.push(json!({"token": alt, "logprob": alp, "bytes": alt.as_bytes()}));
    }
    alternatives.truncate(top as usize);
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
            args.insert(name.clone(), value_for_schema(rng, schema));
        }
    }
    Value::Object(args).to_string()
}

fn value_for_schema(rng: &mut Rng, schema: &Value) -> Value {
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    match schema
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("string")
    {
        "integer" => json!(rng.range(1, 100)),
        "number" => json!((rng.next_f64() * 1000.0).round() / 10.0),
        "boolean" => json!(rng.next_u64().is_multiple_of(2)),
        "array" => json!([]),
        "object" => json!({}),
        _ => json!(WORDS[(rng.next_u64() % WORDS.len() as u64) as usize]),
    }
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
        let a = reply_pieces(&mut Rng::new(7), None);
        let b = reply_pieces(&mut Rng::new(7), None);
        assert_eq!(a, b);
        let c = reply_pieces(&mut Rng::new(8), None);
        assert_ne!(a, c);
        assert!(!a.0.is_empty());
    }

    #[test]
    fn pieces_are_tokens_and_limit_cuts() {
        let (pieces, cut) = reply_pieces(&mut Rng::new(1), Some(3));
        assert_eq!(pieces.len(), 3);
        assert!(cut);
        let (pieces, _) = split_tokens("Hello world, hello Sightline.", None);
        assert_eq!(pieces.concat(), "Hello world, hello Sightline.");
        assert_eq!(
            pieces.len() as u64,
            count_tokens("Hello world, hello Sightline.")
        );
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
