//! Realistic agent traces, built as OTLP protobuf messages with a seeded RNG.
//!
//! One trace is one application request: an `invoke_agent` root span, optionally a retrieval step
//! (`embeddings` then `vector_search`), then rounds of `chat {model}` calls that ask for tools and
//! `execute_tool` spans that run them, ending with a chat call that answers. Attributes follow the
//! current OpenTelemetry GenAI conventions (`gen_ai.provider.name`, `gen_ai.input.messages`,
//! `gen_ai.usage.*`, `gen_ai.conversation.id`, ...). Children lie inside their parent in time, token
//! counts follow the text lengths, durations follow each model's speed, and a few calls fail
//! (rate limits, timeouts, server errors) or run slow.
//!
//! Traces are built with start time [`TEMPLATE_EPOCH_NS`]; `template.rs` moves them to the time
//! they are sent and gives them fresh identifiers, so one built trace can be sent many times.

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use rand::rngs::SmallRng;
use rand::seq::IndexedRandom;
use rand::{Rng, RngCore};
use serde_json::{json, Value as Json};

use super::corpus;

/// Start time of every built trace (2023-11-14T22:13:20Z); instantiation moves it.
pub(crate) const TEMPLATE_EPOCH_NS: u64 = 1_700_000_000_000_000_000;

/// The most spans a trace holds.
pub(crate) const MAX_SPANS: usize = 12;

/// What the traffic looks like beyond the per-trace randomness.
#[derive(Debug, Clone)]
pub(crate) struct Shape {
    /// Distinct end users.
    pub users: u32,
    /// Distinct conversations (sessions); each belongs to one user.
    pub sessions: u32,
    /// Whether prompts, completions and tool payloads are recorded.
    pub content: bool,
    /// Mixed into session and user identifiers so that runs with different seeds do not share them.
    pub salt: u64,
}

/// One built trace, with template identifiers and times starting at [`TEMPLATE_EPOCH_NS`].
#[derive(Debug, Clone)]
pub(crate) struct BuiltTrace {
    /// The trace under its resource.
    pub resource_spans: ResourceSpans,
    /// Spans in the trace.
    pub span_count: usize,
    /// Latest end time of any span.
    pub end_ns: u64,
}

struct Model {
    provider: &'static str,
    request: &'static str,
    response: &'static str,
    server: &'static str,
    /// Output tokens per second while streaming.
    tokens_per_s: f64,
    /// Typical time to first token, milliseconds.
    ttft_ms: f64,
    /// Instrumentation scope that reports calls to this provider.
    scope: (&'static str, &'static str),
}

const OPENAI_SCOPE: (&str, &str) = ("opentelemetry.instrumentation.openai_v2", "2.1b0");
const ANTHROPIC_SCOPE: (&str, &str) = ("opentelemetry.instrumentation.anthropic", "0.1b0");
const GEMINI_SCOPE: (&str, &str) = ("opentelemetry.instrumentation.google_genai", "0.3b0");

static GPT_4O: Model = Model {
    provider: "openai",
    request: "gpt-4o",
    response: "gpt-4o-2024-08-06",
    server: "api.openai.com",
    tokens_per_s: 85.0,
    ttft_ms: 450.0,
    scope: OPENAI_SCOPE,
};
static GPT_4O_MINI: Model = Model {
    provider: "openai",
    request: "gpt-4o-mini",
    response: "gpt-4o-mini-2024-07-18",
    server: "api.openai.com",
    tokens_per_s: 120.0,
    ttft_ms: 320.0,
    scope: OPENAI_SCOPE,
};
static GPT_41: Model = Model {
    provider: "openai",
    request: "gpt-4.1",
    response: "gpt-4.1-2025-04-14",
    server: "api.openai.com",
    tokens_per_s: 75.0,
    ttft_ms: 520.0,
    scope: OPENAI_SCOPE,
};
static CLAUDE_SONNET: Model = Model {
    provider: "anthropic",
    request: "claude-sonnet-4-5",
    response: "claude-sonnet-4-5-20250929",
    server: "api.anthropic.com",
    tokens_per_s: 70.0,
    ttft_ms: 800.0,
    scope: ANTHROPIC_SCOPE,
};
static CLAUDE_HAIKU: Model = Model {
    provider: "anthropic",
    request: "claude-haiku-4-5",
    response: "claude-haiku-4-5-20251001",
    server: "api.anthropic.com",
    tokens_per_s: 140.0,
    ttft_ms: 420.0,
    scope: ANTHROPIC_SCOPE,
};
static GEMINI_FLASH: Model = Model {
    provider: "gcp.gemini",
    request: "gemini-2.5-flash",
    response: "gemini-2.5-flash",
    server: "generativelanguage.googleapis.com",
    tokens_per_s: 190.0,
    ttft_ms: 380.0,
    scope: GEMINI_SCOPE,
};
static GEMINI_PRO: Model = Model {
    provider: "gcp.gemini",
    request: "gemini-2.5-pro",
    response: "gemini-2.5-pro",
    server: "generativelanguage.googleapis.com",
    tokens_per_s: 95.0,
    ttft_ms: 1200.0,
    scope: GEMINI_SCOPE,
};
static MISTRAL_SMALL: Model = Model {
    provider: "mistral_ai",
    request: "mistral-small-latest",
    response: "mistral-small-2503",
    server: "api.mistral.ai",
    tokens_per_s: 150.0,
    ttft_ms: 300.0,
    scope: OPENAI_SCOPE,
};
/// A fine-tuned model no price table knows: its calls must show as unpriced.
static CUSTOM_FT: Model = Model {
    provider: "openai",
    request: "ft:gpt-4o-mini-2024-07-18:acme:support-v3:B7xQ2kLm",
    response: "ft:gpt-4o-mini-2024-07-18:acme:support-v3:B7xQ2kLm",
    server: "api.openai.com",
    tokens_per_s: 110.0,
    ttft_ms: 350.0,
    scope: OPENAI_SCOPE,
};
/// A self-hosted model behind an OpenAI-compatible server, also unpriced.
static SELF_HOSTED: Model = Model {
    provider: "vllm",
    request: "acme-llama-3.1-8b-instruct",
    response: "acme-llama-3.1-8b-instruct",
    server: "llm.internal.acme.dev",
    tokens_per_s: 210.0,
    ttft_ms: 120.0,
    scope: OPENAI_SCOPE,
};
static EMBEDDING: Model = Model {
    provider: "openai",
    request: "text-embedding-3-small",
    response: "text-embedding-3-small",
    server: "api.openai.com",
    tokens_per_s: 0.0,
    ttft_ms: 0.0,
    scope: OPENAI_SCOPE,
};

type ToolRun = fn(&mut SmallRng) -> (Json, Json);

struct Tool {
    name: &'static str,
    description: &'static str,
    parameters: &'static str,
    /// Typical duration in milliseconds.
    typical_ms: f64,
    run: ToolRun,
}

struct Service {
    name: &'static str,
    version: &'static str,
    environment: &'static str,
    hosts: &'static [&'static str],
    agent: &'static str,
    agent_id: &'static str,
    system: &'static str,
    /// Whether the instructions travel as a `system` message rather than `gen_ai.system_instructions`.
    system_as_message: bool,
    models: &'static [(u32, &'static Model)],
    tools: &'static [Tool],
    /// Weights of 0, 1, 2 and 3 tool rounds.
    rounds: [u32; 4],
    /// Probability that a round calls two tools in parallel.
    parallel_tools: f64,
    /// Vector collection searched before the first chat call, if any.
    retrieval: Option<&'static str>,
    questions: &'static [&'static str],
    sentences: &'static [&'static str],
    weight: u32,
}

fn pick<T>(rng: &mut SmallRng, items: &'static [T]) -> &'static T {
    // Every list is a non-empty constant; fall back to the first item rather than panic.
    items.choose(rng).unwrap_or(&items[0])
}

fn slot(rng: &mut SmallRng, name: &str) -> &'static str {
    pick::<&'static str>(rng, corpus::slot_values(name))
}

fn fill(rng: &mut SmallRng, template: &str) -> String {
    corpus::fill(template, |name| slot(rng, name))
}

static SUPPORT_TOOLS: [Tool; 4] = [
    Tool {
        name: "lookup_order",
        description: "Look up an order's status, carrier and delivery estimate.",
        parameters: r#"{"type":"object","properties":{"order_id":{"type":"string"}},"required":["order_id"]}"#,
        typical_ms: 90.0,
        run: |rng| {
            let order = slot(rng, "order");
            let eta_day = rng.random_range(1..28);
            (
                json!({ "order_id": order }),
                json!({
                    "order_id": order,
                    "status": slot(rng, "status"),
                    "carrier": slot(rng, "carrier"),
                    "eta": format!("2025-11-{eta_day:02}"),
                    "items": rng.random_range(1..4),
                    "total_usd": (rng.random_range(1999..49999) as f64) / 100.0,
                }),
            )
        },
    },
    Tool {
        name: "search_kb",
        description: "Search the help center for articles matching a query.",
        parameters: r#"{"type":"object","properties":{"query":{"type":"string"},"limit":{"type":"integer"}},"required":["query"]}"#,
        typical_ms: 140.0,
        run: |rng| {
            let a = pick(rng, corpus::KB_TITLES);
            let b = pick(rng, corpus::KB_TITLES);
            (
                json!({ "query": a.to_lowercase(), "limit": 3 }),
                json!({ "articles": [
                    { "id": format!("kb-{}", rng.random_range(1000..9999)), "title": a, "score": 0.91 },
                    { "id": format!("kb-{}", rng.random_range(1000..9999)), "title": b, "score": 0.74 },
                ]}),
            )
        },
    },
    Tool {
        name: "create_ticket",
        description: "Open a ticket for the billing or logistics team.",
        parameters: r#"{"type":"object","properties":{"subject":{"type":"string"},"priority":{"type":"string","enum":["low","normal","high"]}},"required":["subject"]}"#,
        typical_ms: 260.0,
        run: |rng| {
            let priority = *pick(rng, &["low", "normal", "high"]);
            (
                json!({ "subject": format!("Customer issue with order {}", slot(rng, "order")), "priority": priority }),
                json!({ "ticket_id": format!("T-{}", rng.random_range(10000..99999)), "status": "open", "queue": "billing" }),
            )
        },
    },
    Tool {
        name: "refund_order",
        description: "Refund part or all of an order.",
        parameters: r#"{"type":"object","properties":{"order_id":{"type":"string"},"amount_usd":{"type":"number"}},"required":["order_id","amount_usd"]}"#,
        typical_ms: 420.0,
        run: |rng| {
            let amount = (rng.random_range(999..19999) as f64) / 100.0;
            (
                json!({ "order_id": slot(rng, "order"), "amount_usd": amount }),
                json!({ "refund_id": format!("re_{:016x}", rng.next_u64()), "status": "pending", "amount_usd": amount }),
            )
        },
    },
];

static RESEARCH_TOOLS: [Tool; 3] = [
    Tool {
        name: "web_search",
        description: "Search the web and return the top results with snippets.",
        parameters: r#"{"type":"object","properties":{"query":{"type":"string"},"num_results":{"type":"integer"}},"required":["query"]}"#,
        typical_ms: 650.0,
        run: |rng| {
            let topic = slot(rng, "topic");
            let results: Vec<Json> = (0..3)
                    .map(|_| {
                        let (title, url) = pick(rng, corpus::WEB_RESULTS);
                        json!({ "title": title, "url": url, "snippet": format!("{title}. We study {topic} and report results on standard benchmarks.") })
                    })
                    .collect();
            (
                json!({ "query": format!("{topic} 2025"), "num_results": 3 }),
                json!({ "results": results }),
            )
        },
    },
    Tool {
        name: "fetch_url",
        description: "Download a web page and return its main text.",
        parameters: r#"{"type":"object","properties":{"url":{"type":"string"}},"required":["url"]}"#,
        typical_ms: 900.0,
        run: |rng| {
            let (title, url) = pick(rng, corpus::WEB_RESULTS);
            (
                json!({ "url": url }),
                json!({ "status": 200, "title": title, "content_length": rng.random_range(8_000..120_000),
                            "excerpt": format!("Abstract. {title}. We present an analysis and release our code.") }),
            )
        },
    },
    Tool {
        name: "run_python",
        description: "Run a short Python snippet in a sandbox and return stdout.",
        parameters: r#"{"type":"object","properties":{"code":{"type":"string"}},"required":["code"]}"#,
        typical_ms: 1300.0,
        run: |rng| {
            let n = rng.random_range(3..40);
            (
                json!({ "code": format!("import statistics\nxs = [1.2, 3.4, 2.2, {n}.0]\nprint(statistics.median(xs))") }),
                json!({ "stdout": format!("{:.2}\n", 2.8 + n as f64 / 100.0), "exit_code": 0 }),
            )
        },
    },
];

static SERVICES: [Service; 3] = [
    Service {
        name: "support-bot",
        version: "2.3.1",
        environment: "production",
        hosts: &[
            "support-bot-7d9f8c-xk2lp",
            "support-bot-7d9f8c-q8m4z",
            "support-bot-7d9f8c-hv71c",
        ],
        agent: "support-agent",
        agent_id: "asst_5hQ2cW9pLx3",
        system: corpus::SUPPORT_SYSTEM,
        system_as_message: false,
        models: &[
            (55, &GPT_4O_MINI),
            (15, &GPT_4O),
            (15, &CLAUDE_HAIKU),
            (15, &CUSTOM_FT),
        ],
        tools: &SUPPORT_TOOLS,
        rounds: [15, 45, 30, 10],
        parallel_tools: 0.15,
        retrieval: None,
        questions: corpus::SUPPORT_QUESTIONS,
        sentences: corpus::SUPPORT_SENTENCES,
        weight: 45,
    },
    Service {
        name: "research-agent",
        version: "0.9.4",
        environment: "staging",
        hosts: &["research-agent-0", "research-agent-1"],
        agent: "researcher",
        agent_id: "agent_research_v2",
        system: corpus::RESEARCH_SYSTEM,
        system_as_message: true,
        models: &[
            (40, &CLAUDE_SONNET),
            (25, &GPT_41),
            (20, &GEMINI_PRO),
            (15, &GEMINI_FLASH),
        ],
        tools: &RESEARCH_TOOLS,
        rounds: [5, 30, 40, 25],
        parallel_tools: 0.4,
        retrieval: None,
        questions: corpus::RESEARCH_QUESTIONS,
        sentences: corpus::RESEARCH_SENTENCES,
        weight: 25,
    },
    Service {
        name: "rag-api",
        version: "1.12.0",
        environment: "production",
        hosts: &["rag-api-5c6b9-2tqwe", "rag-api-5c6b9-9zx8k"],
        agent: "docs-assistant",
        agent_id: "docs-assistant",
        system: corpus::RAG_SYSTEM,
        system_as_message: true,
        models: &[
            (40, &GPT_4O_MINI),
            (30, &GEMINI_FLASH),
            (15, &MISTRAL_SMALL),
            (15, &SELF_HOSTED),
        ],
        tools: &[],
        rounds: [100, 0, 0, 0],
        parallel_tools: 0.0,
        retrieval: Some("docs-v3"),
        questions: corpus::RAG_QUESTIONS,
        sentences: corpus::RAG_SENTENCES,
        weight: 30,
    },
];

fn weighted<T>(rng: &mut SmallRng, items: &'static [T], weight: impl Fn(&T) -> u32) -> &'static T {
    let total: u32 = items.iter().map(&weight).sum();
    let mut x = rng.random_range(0..total.max(1));
    for item in items {
        let w = weight(item);
        if x < w {
            return item;
        }
        x -= w;
    }
    &items[0]
}

/// A 64-bit mixer (splitmix64's finalizer) so identifiers derived from small numbers look random.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn s(key: &str, value: impl Into<String>) -> KeyValue {
    kv(key, Value::StringValue(value.into()))
}

fn i(key: &str, value: i64) -> KeyValue {
    kv(key, Value::IntValue(value))
}

fn f(key: &str, value: f64) -> KeyValue {
    kv(key, Value::DoubleValue(value))
}

fn string_array(key: &str, values: &[&str]) -> KeyValue {
    kv(
        key,
        Value::ArrayValue(ArrayValue {
            values: values
                .iter()
                .map(|v| AnyValue {
                    value: Some(Value::StringValue((*v).to_string())),
                })
                .collect(),
        }),
    )
}

fn alnum(rng: &mut SmallRng, len: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..len)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

fn ms(x: f64) -> u64 {
    (x.max(0.0) * 1e6) as u64
}

/// Roughly four characters a token, as English text tokenizes.
fn tokens_of(chars: usize) -> i64 {
    (chars / 4).max(1) as i64
}

/// A multiplier around 1 with a long right tail, like real latencies.
fn jitter(rng: &mut SmallRng) -> f64 {
    let u: f64 = rng.random_range(0.0..1.0);
    0.6 + 0.8 * u + if rng.random_bool(0.1) { u * 1.5 } else { 0.0 }
}

enum ChatOutcome {
    /// The model asked for these tools: (call id, tool, arguments, result).
    Tools(Vec<(String, &'static Tool, Json, Json)>),
    /// The model answered.
    Answer(String),
    /// The call failed with this kind.
    Failed(ErrorKind),
}

#[derive(Clone, Copy)]
enum ErrorKind {
    RateLimit,
    Timeout,
    ServerError,
}

impl ErrorKind {
    fn error_type(self) -> &'static str {
        match self {
            Self::RateLimit => "rate_limit",
            Self::Timeout => "timeout",
            Self::ServerError => "server_error",
        }
    }

    fn exception(self, provider: &str) -> (String, &'static str) {
        let module = match provider {
            "anthropic" => "anthropic",
            "gcp.gemini" => "google.genai.errors",
            "mistral_ai" => "mistralai",
            _ => "openai",
        };
        let (class, message) = match self {
            Self::RateLimit => (
                "RateLimitError",
                "Error code: 429 - Rate limit reached for requests per minute. Please try again in 1.2s.",
            ),
            Self::Timeout => ("APITimeoutError", "Request timed out after 60.0 seconds."),
            Self::ServerError => (
                "InternalServerError",
                "Error code: 500 - The server had an error while processing your request.",
            ),
        };
        (format!("{module}.{class}"), message)
    }

    fn duration_ms(self, rng: &mut SmallRng) -> f64 {
        match self {
            Self::RateLimit => rng.random_range(40.0..300.0),
            Self::Timeout => 60_000.0,
            Self::ServerError => rng.random_range(400.0..3000.0),
        }
    }
}

struct Context<'a> {
    service: &'a Service,
    session_id: String,
    user_id: String,
    content: bool,
}

/// Builds the spans of one trace in time order.
struct Builder<'r> {
    rng: &'r mut SmallRng,
    trace_id: Vec<u8>,
    /// Spans per instrumentation scope, in first-use order.
    scopes: Vec<((&'static str, &'static str), Vec<Span>)>,
    count: usize,
}

impl Builder<'_> {
    fn span_id(&mut self) -> Vec<u8> {
        loop {
            let id = self.rng.next_u64();
            if id != 0 {
                return id.to_le_bytes().to_vec();
            }
        }
    }

    fn push(&mut self, scope: (&'static str, &'static str), span: Span) {
        self.count += 1;
        match self.scopes.iter_mut().find(|(s, _)| *s == scope) {
            Some((_, spans)) => spans.push(span),
            None => self.scopes.push((scope, vec![span])),
        }
    }

    fn span(
        &mut self,
        parent: &[u8],
        name: String,
        kind: SpanKind,
        start: u64,
        end: u64,
        attributes: Vec<KeyValue>,
    ) -> Span {
        Span {
            trace_id: self.trace_id.clone(),
            span_id: self.span_id(),
            parent_span_id: parent.to_vec(),
            flags: 0x101,
            name,
            kind: kind as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            attributes,
            status: Some(Status {
                message: String::new(),
                code: StatusCode::Unset as i32,
            }),
            ..Default::default()
        }
    }
}

fn fail(span: &mut Span, kind: ErrorKind, provider: &str, at: u64) {
    let (exception_type, message) = kind.exception(provider);
    span.status = Some(Status {
        message: message.to_string(),
        code: StatusCode::Error as i32,
    });
    span.attributes.push(s("error.type", kind.error_type()));
    span.events.push(Event {
        time_unix_nano: at,
        name: "exception".to_string(),
        attributes: vec![
            s("exception.type", exception_type),
            s("exception.message", message),
        ],
        dropped_attributes_count: 0,
    });
}

fn text_part(text: &str) -> Json {
    json!({ "type": "text", "content": text })
}

fn answer(rng: &mut SmallRng, sentences: &'static [&'static str], target_chars: usize) -> String {
    let mut out = String::new();
    while out.len() < target_chars {
        if !out.is_empty() {
            out.push(' ');
        }
        let sentence = *pick(rng, sentences);
        out.push_str(&fill(rng, sentence));
    }
    out
}

fn finish_reason(provider: &str, tools: bool) -> &'static str {
    match (provider, tools) {
        ("anthropic", true) => "tool_use",
        ("anthropic", false) => "end_turn",
        ("gcp.gemini", _) => "STOP",
        (_, true) => "tool_calls",
        (_, false) => "stop",
    }
}

fn response_id(rng: &mut SmallRng, provider: &str) -> String {
    match provider {
        "anthropic" => format!("msg_01{}", alnum(rng, 22)),
        "gcp.gemini" => alnum(rng, 24),
        "mistral_ai" => format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64()),
        _ => format!("chatcmpl-{}", alnum(rng, 29)),
    }
}

/// One `chat {model}` span; returns it and its end time.
fn chat(
    b: &mut Builder<'_>,
    ctx: &Context<'_>,
    parent: &[u8],
    model: &Model,
    messages: &[Json],
    outcome: &ChatOutcome,
    start: u64,
) -> (Span, u64) {
    let svc = ctx.service;
    let input_json = Json::Array(messages.to_vec()).to_string();
    let system_tokens = if svc.system_as_message {
        0
    } else {
        tokens_of(svc.system.len())
    };
    // Tool definitions count as input too: providers render them into the prompt.
    let tool_definitions = (!svc.tools.is_empty()).then(|| {
        let defs: Vec<Json> = svc
            .tools
            .iter()
            .map(|t| {
                json!({
                    "type": "function",
                    "name": t.name,
                    "description": t.description,
                    "parameters": serde_json::from_str::<Json>(t.parameters).unwrap_or(Json::Null),
                })
            })
            .collect();
        Json::Array(defs).to_string()
    });
    let tool_tokens = tool_definitions.as_ref().map_or(0, |d| tokens_of(d.len()));
    let input_tokens = tokens_of(input_json.len()) * 85 / 100 + system_tokens + tool_tokens + 8;
    let temperature = *pick(b.rng, &[0.0, 0.2, 0.3, 0.7, 1.0]);
    let max_tokens = *pick(b.rng, &[512i64, 1024, 2048, 4096]);
    let streamed = b.rng.random_bool(0.6);
    let slow = b.rng.random_bool(0.02);
    let slowness = if slow {
        b.rng.random_range(4.0..12.0)
    } else {
        1.0
    };
    let ttft_ms = model.ttft_ms * jitter(b.rng) * slowness;

    let mut attrs = vec![
        s("gen_ai.operation.name", "chat"),
        s("gen_ai.provider.name", model.provider),
        s("gen_ai.request.model", model.request),
        f("gen_ai.request.temperature", temperature),
        i("gen_ai.request.max_tokens", max_tokens),
        s("server.address", model.server),
        i("server.port", 443),
        s("gen_ai.conversation.id", ctx.session_id.clone()),
        s("user.id", ctx.user_id.clone()),
    ];
    if b.rng.random_bool(0.3) {
        attrs.push(f("gen_ai.request.top_p", 0.95));
    }
    if ctx.content {
        attrs.push(s("gen_ai.input.messages", input_json));
        if !svc.system_as_message {
            attrs.push(s(
                "gen_ai.system_instructions",
                Json::Array(vec![text_part(svc.system)]).to_string(),
            ));
        }
        if let Some(defs) = tool_definitions {
            attrs.push(s("gen_ai.tool.definitions", defs));
        }
    }

    let (output_tokens, duration_ms, finish, output) = match outcome {
        ChatOutcome::Failed(kind) => {
            let d = kind.duration_ms(b.rng);
            let mut span = b.span(
                parent,
                format!("chat {}", model.request),
                SpanKind::Client,
                start,
                start + ms(d),
                attrs,
            );
            fail(&mut span, *kind, model.provider, start + ms(d));
            let end = span.end_time_unix_nano;
            return (span, end);
        }
        ChatOutcome::Tools(calls) => {
            let parts: Vec<Json> = calls
                .iter()
                .map(|(id, tool, args, _)| {
                    json!({ "type": "tool_call", "id": id, "name": tool.name, "arguments": args })
                })
                .collect();
            let out_tokens = 18 * calls.len() as i64 + b.rng.random_range(0..20);
            let gen_ms = out_tokens as f64 / model.tokens_per_s * 1000.0 * jitter(b.rng);
            let finish = finish_reason(model.provider, true);
            let output = json!([{ "role": "assistant", "parts": parts, "finish_reason": finish }]);
            (out_tokens, ttft_ms + gen_ms * slowness, finish, output)
        }
        ChatOutcome::Answer(text) => {
            let mut out_tokens = tokens_of(text.len());
            let mut finish = finish_reason(model.provider, false);
            if b.rng.random_bool(0.02) {
                out_tokens = max_tokens;
                finish = if model.provider == "anthropic" {
                    "max_tokens"
                } else {
                    "length"
                };
            }
            let gen_ms = out_tokens as f64 / model.tokens_per_s * 1000.0 * jitter(b.rng);
            let output = json!([{ "role": "assistant", "parts": [text_part(text)], "finish_reason": finish }]);
            (out_tokens, ttft_ms + gen_ms * slowness, finish, output)
        }
    };
    let end = start + ms(duration_ms);
    attrs.extend([
        s("gen_ai.response.model", model.response),
        s("gen_ai.response.id", response_id(b.rng, model.provider)),
        string_array("gen_ai.response.finish_reasons", &[finish]),
        i("gen_ai.usage.input_tokens", input_tokens),
        i("gen_ai.usage.output_tokens", output_tokens),
    ]);
    if streamed {
        attrs.push(f("gen_ai.response.time_to_first_chunk", ttft_ms / 1000.0));
    }
    if ctx.content {
        attrs.push(s("gen_ai.output.messages", output.to_string()));
    }
    let span = b.span(
        parent,
        format!("chat {}", model.request),
        SpanKind::Client,
        start,
        end,
        attrs,
    );
    (span, end)
}

/// Builds one trace.
pub(crate) fn build(rng: &mut SmallRng, shape: &Shape) -> BuiltTrace {
    let svc = weighted(rng, &SERVICES, |s| s.weight);
    let sessions = u64::from(shape.sessions.max(1));
    let session = rng.random_range(0..sessions);
    let user = mix(shape.salt ^ mix(session)) % u64::from(shape.users.max(1));
    let ctx = Context {
        service: svc,
        session_id: format!("conv_{:016x}", mix(shape.salt.wrapping_add(session))),
        user_id: format!("user-{:05}", user),
        content: shape.content,
    };
    let model = weighted(rng, svc.models, |(w, _)| *w).1;
    let mut trace_id = vec![0u8; 16];
    rng.fill_bytes(&mut trace_id);
    trace_id[0] |= 1;
    let mut b = Builder {
        rng,
        trace_id,
        scopes: Vec::new(),
        count: 0,
    };
    let agent_scope = (svc.agent, svc.version);
    let root_id = b.span_id();
    let start = TEMPLATE_EPOCH_NS;
    let mut t = start + ms(b.rng.random_range(0.2..3.0));

    // The conversation so far: system message, earlier turns of the session, the new question.
    let template = pick(b.rng, svc.questions);
    let question = fill(b.rng, template);
    let mut messages: Vec<Json> = Vec::new();
    if svc.system_as_message {
        messages.push(json!({ "role": "system", "parts": [text_part(svc.system)] }));
    }
    for _ in 0..b.rng.random_range(0..3) {
        let template = pick(b.rng, svc.questions);
        let earlier = fill(b.rng, template);
        let target = b.rng.random_range(80..300);
        let reply = answer(b.rng, svc.sentences, target);
        messages.push(json!({ "role": "user", "parts": [text_part(&earlier)] }));
        messages.push(json!({ "role": "assistant", "parts": [text_part(&reply)] }));
    }
    messages.push(json!({ "role": "user", "parts": [text_part(&question)] }));

    // Retrieval: embed the question, search the collection, hand the passages to the model.
    if let Some(collection) = svc.retrieval {
        let d = 60.0 * jitter(b.rng);
        let q_tokens = tokens_of(question.len());
        let attrs = vec![
            s("gen_ai.operation.name", "embeddings"),
            s("gen_ai.provider.name", EMBEDDING.provider),
            s("gen_ai.request.model", EMBEDDING.request),
            s("gen_ai.response.model", EMBEDDING.response),
            i("gen_ai.usage.input_tokens", q_tokens),
            i("gen_ai.embeddings.dimension.count", 1536),
            s("server.address", EMBEDDING.server),
            i("server.port", 443),
        ];
        let span = b.span(
            &root_id,
            format!("embeddings {}", EMBEDDING.request),
            SpanKind::Client,
            t,
            t + ms(d),
            attrs,
        );
        b.push(EMBEDDING.scope, span);
        t += ms(d + b.rng.random_range(0.1..1.0));

        let d = 18.0 * jitter(b.rng);
        let docs: Vec<Json> = (0..4u32)
            .map(|k| {
                json!({
                    "id": format!("doc-{}", b.rng.random_range(100..999)),
                    "title": pick(b.rng, corpus::DOC_TITLES),
                    "score": 0.9 - 0.07 * f64::from(k) - b.rng.random_range(0.0..0.05),
                })
            })
            .collect();
        let mut attrs = vec![
            s("db.system.name", "qdrant"),
            s("db.operation.name", "search"),
            s("db.collection.name", collection),
            i("db.response.returned_rows", docs.len() as i64),
            s("server.address", "qdrant.internal"),
            i("server.port", 6334),
        ];
        if ctx.content {
            attrs.push(s(
                "retrieval.documents",
                Json::Array(docs.clone()).to_string(),
            ));
        }
        let span = b.span(
            &root_id,
            "vector_search".to_string(),
            SpanKind::Client,
            t,
            t + ms(d),
            attrs,
        );
        b.push(agent_scope, span);
        t += ms(d + b.rng.random_range(0.1..1.0));
        let passages: Vec<String> = docs
            .iter()
            .map(|d| {
                let title = d["title"].as_str().unwrap_or_default();
                let body = answer(b.rng, svc.sentences, 120);
                format!("[{title}] {body}")
            })
            .collect();
        if let Some(last) = messages.last_mut() {
            *last = json!({ "role": "user", "parts": [
                text_part(&format!("Documentation excerpts:\n{}", passages.join("\n"))),
                text_part(&question),
            ]});
        }
    }

    let mut rounds = *weighted(b.rng, &[0usize, 1, 2, 3], |r| svc.rounds[*r]);
    if svc.tools.is_empty() {
        rounds = 0;
    } else if rounds == 0 && b.count == 0 {
        rounds = 1; // root, one tool round and the answer: at least three spans.
    }
    let mut failure: Option<ErrorKind> = None;
    let mut round = 0;
    loop {
        // Spans still to come after this point, the root included.
        let (outcome, needed) = if round >= rounds {
            let target = b.rng.random_range(120..1400);
            (
                ChatOutcome::Answer(answer(b.rng, svc.sentences, target)),
                1 + 1,
            )
        } else {
            let n = if b.rng.random_bool(svc.parallel_tools) {
                2
            } else {
                1
            };
            // This chat, its tools, the answering chat and the root.
            let needed = 1 + n + 1 + 1;
            if b.count + needed > MAX_SPANS {
                rounds = round;
                continue;
            }
            let calls = (0..n)
                .map(|_| {
                    let tool = pick(b.rng, svc.tools);
                    let (args, result) = (tool.run)(b.rng);
                    let id = format!("call_{}", alnum(b.rng, 24));
                    (id, tool, args, result)
                })
                .collect();
            (ChatOutcome::Tools(calls), needed)
        };

        // A call may fail first; the agent retries rate limits and server errors once.
        if b.rng.random_bool(0.04) && b.count + 1 + needed <= MAX_SPANS {
            let kind = *pick(
                b.rng,
                &[
                    ErrorKind::RateLimit,
                    ErrorKind::RateLimit,
                    ErrorKind::ServerError,
                    ErrorKind::Timeout,
                ],
            );
            // A timeout ends the trace, which must still hold three spans.
            let kind = match kind {
                ErrorKind::Timeout if b.count == 0 => ErrorKind::RateLimit,
                other => other,
            };
            let (span, end) = chat(
                &mut b,
                &ctx,
                &root_id,
                model,
                &messages,
                &ChatOutcome::Failed(kind),
                t,
            );
            b.push(model.scope, span);
            t = end + ms(b.rng.random_range(200.0..1500.0));
            if matches!(kind, ErrorKind::Timeout) {
                failure = Some(kind);
                break;
            }
        }

        let (span, end) = chat(&mut b, &ctx, &root_id, model, &messages, &outcome, t);
        b.push(model.scope, span);
        t = end + ms(b.rng.random_range(0.2..2.0));
        match outcome {
            ChatOutcome::Answer(text) => {
                messages.push(json!({ "role": "assistant", "parts": [text_part(&text)] }));
                break;
            }
            ChatOutcome::Tools(calls) => {
                let parts: Vec<Json> = calls
                    .iter()
                    .map(|(id, tool, args, _)| json!({ "type": "tool_call", "id": id, "name": tool.name, "arguments": args }))
                    .collect();
                messages.push(json!({ "role": "assistant", "parts": parts }));
                // Parallel tool calls start together; the round ends with the slowest.
                let mut round_end = t;
                for (id, tool, args, result) in calls {
                    let d = tool.typical_ms * jitter(b.rng);
                    let broke = b.rng.random_bool(0.04);
                    let mut attrs = vec![
                        s("gen_ai.operation.name", "execute_tool"),
                        s("gen_ai.tool.name", tool.name),
                        s("gen_ai.tool.type", "function"),
                        s("gen_ai.tool.call.id", id.clone()),
                        s("gen_ai.tool.description", tool.description),
                    ];
                    let result = if broke {
                        json!({ "error": "upstream service returned 503 Service Unavailable" })
                    } else {
                        result
                    };
                    if ctx.content {
                        attrs.push(s("gen_ai.tool.call.arguments", args.to_string()));
                        attrs.push(s("gen_ai.tool.call.result", result.to_string()));
                    }
                    let mut span = b.span(
                        &root_id,
                        format!("execute_tool {}", tool.name),
                        SpanKind::Internal,
                        t,
                        t + ms(d),
                        attrs,
                    );
                    if broke {
                        span.status = Some(Status {
                            message: "upstream service returned 503 Service Unavailable"
                                .to_string(),
                            code: StatusCode::Error as i32,
                        });
                        span.attributes
                            .push(s("error.type", "upstream_unavailable"));
                    }
                    round_end = round_end.max(span.end_time_unix_nano);
                    b.push(agent_scope, span);
                    messages.push(json!({ "role": "tool", "parts": [
                        { "type": "tool_call_response", "id": id, "response": result }
                    ]}));
                }
                t = round_end + ms(b.rng.random_range(0.2..2.0));
            }
            ChatOutcome::Failed(_) => break,
        }
        round += 1;
    }

    // The root span wraps everything.
    let end = t + ms(b.rng.random_range(0.1..1.5));
    let mut attrs = vec![
        s("gen_ai.operation.name", "invoke_agent"),
        s("gen_ai.agent.name", svc.agent),
        s("gen_ai.agent.id", svc.agent_id),
        s("gen_ai.conversation.id", ctx.session_id.clone()),
        s("user.id", ctx.user_id.clone()),
    ];
    if ctx.content {
        attrs.push(s(
            "gen_ai.input.messages",
            json!([{ "role": "user", "parts": [text_part(&question)] }]).to_string(),
        ));
        if let (None, Some(last)) = (failure, messages.last()) {
            attrs.push(s(
                "gen_ai.output.messages",
                Json::Array(vec![last.clone()]).to_string(),
            ));
        }
    }
    let mut root = b.span(
        &[],
        format!("invoke_agent {}", svc.agent),
        SpanKind::Internal,
        start,
        end,
        attrs,
    );
    root.span_id = root_id;
    if let Some(kind) = failure {
        fail(&mut root, kind, model.provider, end);
    }
    b.push(agent_scope, root);

    let span_count = b.count;
    let host = *pick(b.rng, svc.hosts);
    let resource = Resource {
        attributes: vec![
            s("service.name", svc.name),
            s("service.version", svc.version),
            s("deployment.environment.name", svc.environment),
            s("host.name", host),
            s("telemetry.sdk.name", "opentelemetry"),
            s("telemetry.sdk.language", "python"),
            s("telemetry.sdk.version", "1.38.0"),
        ],
        dropped_attributes_count: 0,
        entity_refs: Vec::new(),
    };
    let scope_spans = b
        .scopes
        .into_iter()
        .map(|((name, version), spans)| ScopeSpans {
            scope: Some(InstrumentationScope {
                name: name.to_string(),
                version: version.to_string(),
                ..Default::default()
            }),
            spans,
            schema_url: String::new(),
        })
        .collect();
    BuiltTrace {
        resource_spans: ResourceSpans {
            resource: Some(resource),
            scope_spans,
            schema_url: "https://opentelemetry.io/schemas/1.37.0".to_string(),
        },
        span_count,
        end_ns: end,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use std::collections::HashMap;

    fn shape() -> Shape {
        Shape {
            users: 50,
            sessions: 200,
            content: true,
            salt: 7,
        }
    }

    fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a Value> {
        span.attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| v.value.as_ref())
    }

    fn str_attr<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
        match attr(span, key) {
            Some(Value::StringValue(v)) => Some(v),
            _ => None,
        }
    }

    fn spans(t: &BuiltTrace) -> Vec<&Span> {
        t.resource_spans
            .scope_spans
            .iter()
            .flat_map(|s| &s.spans)
            .collect()
    }

    #[test]
    fn traces_are_well_formed_trees_inside_their_root() {
        let mut rng = SmallRng::seed_from_u64(1);
        for _ in 0..500 {
            let t = build(&mut rng, &shape());
            let spans = spans(&t);
            assert_eq!(spans.len(), t.span_count);
            assert!(
                (3..=MAX_SPANS).contains(&spans.len()),
                "{} spans",
                spans.len()
            );
            let roots: Vec<_> = spans
                .iter()
                .filter(|s| s.parent_span_id.is_empty())
                .collect();
            assert_eq!(roots.len(), 1);
            let root = roots[0];
            assert_eq!(
                str_attr(root, "gen_ai.operation.name"),
                Some("invoke_agent")
            );
            assert_eq!(root.end_time_unix_nano, t.end_ns);
            let mut ids = std::collections::HashSet::new();
            for s in &spans {
                assert_eq!(s.trace_id, root.trace_id);
                assert!(ids.insert(s.span_id.clone()), "duplicate span id");
                assert!(s.start_time_unix_nano <= s.end_time_unix_nano);
                assert!(s.start_time_unix_nano >= root.start_time_unix_nano);
                assert!(s.end_time_unix_nano <= root.end_time_unix_nano);
                if !s.parent_span_id.is_empty() {
                    assert_eq!(s.parent_span_id, root.span_id);
                }
            }
        }
    }

    #[test]
    fn chat_spans_carry_the_genai_conventions() {
        let mut rng = SmallRng::seed_from_u64(2);
        let mut models: HashMap<String, usize> = HashMap::new();
        let mut errors = 0;
        let mut chats = 0;
        let mut tools = 0;
        for _ in 0..300 {
            let t = build(&mut rng, &shape());
            for s in spans(&t) {
                match str_attr(s, "gen_ai.operation.name") {
                    Some("chat") => {
                        chats += 1;
                        let model = str_attr(s, "gen_ai.request.model").unwrap();
                        assert_eq!(s.name, format!("chat {model}"));
                        *models.entry(model.to_string()).or_default() += 1;
                        assert!(str_attr(s, "gen_ai.provider.name").is_some());
                        assert!(str_attr(s, "gen_ai.conversation.id")
                            .unwrap()
                            .starts_with("conv_"));
                        assert!(str_attr(s, "user.id").unwrap().starts_with("user-"));
                        let input: Json =
                            serde_json::from_str(str_attr(s, "gen_ai.input.messages").unwrap())
                                .unwrap();
                        assert!(input
                            .as_array()
                            .unwrap()
                            .iter()
                            .any(|m| m["role"] == "user"));
                        if s.status.as_ref().unwrap().code == StatusCode::Error as i32 {
                            errors += 1;
                            assert!(str_attr(s, "error.type").is_some());
                            assert_eq!(s.events[0].name, "exception");
                        } else {
                            assert!(
                                matches!(attr(s, "gen_ai.usage.output_tokens"), Some(Value::IntValue(n)) if *n > 0)
                            );
                            let out: Json = serde_json::from_str(
                                str_attr(s, "gen_ai.output.messages").unwrap(),
                            )
                            .unwrap();
                            assert_eq!(out[0]["role"], "assistant");
                            assert!(out[0]["finish_reason"].is_string());
                        }
                    }
                    Some("execute_tool") => {
                        tools += 1;
                        let name = str_attr(s, "gen_ai.tool.name").unwrap();
                        assert_eq!(s.name, format!("execute_tool {name}"));
                        let _: Json = serde_json::from_str(
                            str_attr(s, "gen_ai.tool.call.arguments").unwrap(),
                        )
                        .unwrap();
                    }
                    _ => {}
                }
            }
        }
        assert!(models.len() >= 8, "{models:?}");
        assert!(models.contains_key(CUSTOM_FT.request));
        assert!(
            errors > 0 && errors < chats / 10,
            "{errors} errors in {chats} chats"
        );
        assert!(tools > chats / 4, "{tools} tools, {chats} chats");
    }

    #[test]
    fn without_content_no_messages_are_recorded() {
        let mut rng = SmallRng::seed_from_u64(3);
        let shape = Shape {
            content: false,
            ..shape()
        };
        for _ in 0..100 {
            let t = build(&mut rng, &shape);
            for s in spans(&t) {
                for key in [
                    "gen_ai.input.messages",
                    "gen_ai.output.messages",
                    "gen_ai.tool.call.arguments",
                    "retrieval.documents",
                ] {
                    assert!(str_attr(s, key).is_none(), "{key} on {}", s.name);
                }
            }
        }
    }

    #[test]
    fn the_same_seed_builds_the_same_traces() {
        let a = build(&mut SmallRng::seed_from_u64(9), &shape());
        let b = build(&mut SmallRng::seed_from_u64(9), &shape());
        assert_eq!(a.resource_spans, b.resource_spans);
    }
}
