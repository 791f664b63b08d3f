//! Convention mapping: from span attributes and events to an [`LlmCall`].
//!
//! One module per convention. Precedence (highest first): Langfuse > OTel `gen_ai.*` current >
//! `gen_ai.*` legacy > OpenInference > OpenLLMetry > Vercel AI SDK. A higher convention's value
//! wins; lower ones only fill fields still empty.
// (filled in by the convention modules)

use crate::llm::LlmCall;
use crate::span::Span;

/// Normalizes a span into an LLM call, or `None` when no convention recognises it as one.
pub fn normalize(span: &Span) -> Option<LlmCall> {
    let _ = span;
    None
}
