//! Sightline's own attributes, for what the GenAI convention has no name for: `sightline.tags`
//! (a list, or one comma-separated string), `sightline.metadata.<key>`, `sightline.prompt.name`,
//! `sightline.prompt.version` and `sightline.response.logprobs` (the provider's token logprobs,
//! as JSON). The gateway writes them next to `gen_ai.*`; any OTel client may set them too.
//!
//! They are not a convention of their own — a span is not a call because of them — and they
//! fill only what the recognised conventions left empty. A span carrying
//! `sightline.gateway.provider` was recorded by the gateway, whose calls say so in
//! [`crate::LlmCall::convention`] (`gateway`).

use super::partial::Partial;
use super::value::{as_json, as_string_list, Attrs};
use crate::span::Span;

/// Key marking a span the gateway recorded.
pub(crate) const GATEWAY_MARKER: &str = "sightline.gateway.provider";

const METADATA_PREFIX: &str = "sightline.metadata.";

/// Reads the `sightline.*` attributes of a span.
pub(crate) fn extract(span: &Span) -> Partial {
    if !span.attributes.keys().any(|k| k.starts_with("sightline.")) {
        return Partial::default();
    }
    let a = Attrs::new(&span.attributes);
    let tags = a
        .get("sightline.tags")
        .map(|v| {
            as_string_list(v)
                .iter()
                .flat_map(|t| t.split(','))
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let metadata = span
        .attributes
        .iter()
        .filter_map(|(k, v)| {
            let key = k.strip_prefix(METADATA_PREFIX)?;
            (!key.is_empty() && !v.is_null()).then(|| (key.to_string(), v.clone()))
        })
        .collect();
    Partial {
        tags,
        metadata,
        prompt_name: a.str("sightline.prompt.name"),
        prompt_version: a.str("sightline.prompt.version"),
        logprobs: a
            .get("sightline.response.logprobs")
            .map(|v| as_json(v).into_owned()),
        ..Partial::default()
    }
}

/// Whether the gateway recorded the span.
pub(crate) fn from_gateway(span: &Span) -> bool {
    span.attributes.contains_key(GATEWAY_MARKER)
}

#[cfg(test)]
mod tests {
    use crate::semconv::normalize;
    use serde_json::json;

    #[test]
    fn reads_tags_metadata_prompt_and_logprobs() {
        let mut s = crate::semconv::test_span();
        s.attributes = json!({
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "sightline.tags": ["a", "b"],
            "sightline.metadata.team": "search",
            "sightline.metadata.tier": 2,
            "sightline.prompt.name": "greet",
            "sightline.prompt.version": "3",
            "sightline.response.logprobs": "[{\"token\":\"Hi\",\"logprob\":-0.1}]",
        })
        .as_object()
        .cloned()
        .unwrap();
        let c = normalize(&s).unwrap();
        assert_eq!(c.convention, "gen_ai");
        assert_eq!(c.tags, vec!["a", "b"]);
        assert_eq!(c.metadata["team"], json!("search"));
        assert_eq!(c.metadata["tier"], json!(2));
        assert_eq!(c.prompt_name.as_deref(), Some("greet"));
        assert_eq!(c.prompt_version.as_deref(), Some("3"));
        assert_eq!(c.logprobs, Some(json!([{"token": "Hi", "logprob": -0.1}])));
    }

    #[test]
    fn comma_separated_tags_and_gateway_convention() {
        let mut s = crate::semconv::test_span();
        s.attributes = json!({
            "gen_ai.provider.name": "anthropic",
            "sightline.gateway.provider": "anthropic",
            "sightline.tags": "x, y,,z",
        })
        .as_object()
        .cloned()
        .unwrap();
        let c = normalize(&s).unwrap();
        assert_eq!(c.tags, vec!["x", "y", "z"]);
        assert_eq!(c.convention, "gateway");
    }

    #[test]
    fn sightline_attributes_alone_are_not_a_call() {
        let mut s = crate::semconv::test_span();
        s.attributes = json!({"sightline.tags": ["a"], "sightline.gateway.provider": "openai"})
            .as_object()
            .cloned()
            .unwrap();
        assert!(normalize(&s).is_none());
    }

    #[test]
    fn a_higher_convention_wins() {
        let mut s = crate::semconv::test_span();
        s.attributes = json!({
            "langfuse.observation.type": "generation",
            "langfuse.observation.prompt.name": "from-langfuse",
            "sightline.prompt.name": "from-sightline",
        })
        .as_object()
        .cloned()
        .unwrap();
        let c = normalize(&s).unwrap();
        assert_eq!(c.prompt_name.as_deref(), Some("from-langfuse"));
    }
}
