//! Enrichment: a span becomes its LLM call, priced.
//!
//! The mapping itself lives in the model (`semconv::normalize`, one module per convention) and
//! the prices in `prices::PriceTable`; this is the seam that combines them, used both by the
//! pipeline at ingest and by the store when GenAI log events meet their span later.

use sightline_model::prices::PriceTable;
use sightline_model::{semconv, LlmCall, Span};
use sightline_store::{Enricher, SpanWithCall};

/// Normalizes with every known convention, then prices with a [`PriceTable`]. A call whose
/// model has no price keeps `cost: None` (unpriced, never $0).
#[derive(Debug, Clone)]
pub struct StandardEnricher {
    prices: PriceTable,
}

impl StandardEnricher {
    /// An enricher pricing with `prices`.
    pub fn new(prices: PriceTable) -> Self {
        Self { prices }
    }

    /// An enricher pricing with the table shipped with Sightline.
    pub fn builtin() -> Self {
        Self::new(PriceTable::builtin())
    }

    /// The price table in use.
    pub fn prices(&self) -> &PriceTable {
        &self.prices
    }
}

impl Enricher for StandardEnricher {
    fn enrich(&self, span: &Span) -> Option<LlmCall> {
        let mut call = semconv::normalize(span)?;
        // The table's price wins; a model it does not know keeps the cost the client reported
        // (Langfuse `cost_details`, OpenInference `llm.cost.*`), else stays unpriced (`None`).
        if let Some(cost) = self.prices.cost(&call) {
            call.cost = Some(cost);
        }
        // Some conventions (Langfuse generations) name the model but not the provider; the price
        // table knows which provider serves a model.
        if call.provider.is_none() {
            if let Some(model) = call.model() {
                call.provider = self
                    .prices
                    .lookup(model, call.start_time_unix_nano)
                    .and_then(|entry| entry.provider.clone());
            }
        }
        Some(call)
    }
}

/// Pairs every span with its call.
pub fn enrich_all(enricher: &dyn Enricher, spans: Vec<Span>) -> Vec<SpanWithCall> {
    spans
        .into_iter()
        .map(|span| {
            let llm = enricher.enrich(&span);
            SpanWithCall { span, llm }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sightline_model::{SpanId, TraceId};

    fn span(attributes: serde_json::Value) -> Span {
        Span {
            project: "default".into(),
            trace_id: TraceId([1; 16]),
            span_id: SpanId([2; 8]),
            parent_span_id: None,
            name: "chat gpt-4o-mini".into(),
            kind: sightline_model::SpanKind::Client,
            service: "svc".into(),
            start_time_unix_nano: 1_700_000_000_000_000_000,
            end_time_unix_nano: 1_700_000_001_000_000_000,
            status: Default::default(),
            attributes: attributes.as_object().cloned().unwrap_or_default(),
            resource: Default::default(),
            scope: Default::default(),
            events: vec![],
            links: vec![],
        }
    }

    #[test]
    fn a_genai_span_becomes_a_priced_call() {
        let s = span(json!({
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
            "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.output_tokens": 500,
        }));
        let e = StandardEnricher::builtin();
        let call = e.enrich(&s).expect("a gen_ai chat span is an LLM call");
        assert_eq!(call.request_model.as_deref(), Some("gpt-4o-mini"));
        assert_eq!(call.usage.input_tokens, Some(1000));
        assert_eq!(call.cost, e.prices().cost(&call));
        let cost = call
            .cost
            .expect("gpt-4o-mini is in the built-in price table");
        assert!(cost.total_usd > 0.0);
    }

    #[test]
    fn unknown_models_stay_unpriced_and_plain_spans_have_no_call() {
        let e = StandardEnricher::builtin();
        let call = e
            .enrich(&span(json!({
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "no-such-model-xyz",
                "gen_ai.usage.input_tokens": 10,
            })))
            .expect("still an LLM call");
        assert_eq!(call.cost, None);
        assert_eq!(e.enrich(&span(json!({"http.method": "GET"}))), None);
        let pairs = enrich_all(&e, vec![span(json!({"http.method": "GET"}))]);
        assert_eq!(pairs.len(), 1);
        assert_eq!(pairs[0].llm, None);
    }

    #[test]
    fn provider_is_taken_from_the_price_table_when_the_span_names_none() {
        let e = StandardEnricher::builtin();
        let call = e
            .enrich(&span(json!({
                "langfuse.observation.type": "generation",
                "langfuse.observation.model.name": "claude-sonnet-4-5",
                "langfuse.observation.usage_details": "{\"input\": 10, \"output\": 5}",
            })))
            .expect("a langfuse generation is an LLM call");
        assert_eq!(call.provider.as_deref(), Some("anthropic"));
        assert!(call.cost.is_some());
    }
}
