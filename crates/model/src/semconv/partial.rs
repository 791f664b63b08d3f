//! What one convention knows about a span, and the precedence merge.
//!
//! Each convention module reads only its own attributes into a [`Partial`], every field
//! optional. The merge walks the partials from the highest-precedence convention down and fills
//! only fields that are still empty, so a higher convention's value always wins and a lower one
//! can still contribute what the higher one lacks (Langfuse's model name with gen_ai's usage, say).

use serde_json::{Map, Value};

use crate::llm::{Cost, Message, RequestParams, Usage};

/// One convention's reading of a span.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Partial {
    /// Whether this convention says the span is a model call (or a tool/agent operation).
    pub recognised: bool,
    /// Canonical operation name (`chat`, `embeddings`, `execute_tool`, ...).
    pub operation: Option<String>,
    /// Normalized provider name.
    pub provider: Option<String>,
    /// Model the caller asked for.
    pub request_model: Option<String>,
    /// Model that answered.
    pub response_model: Option<String>,
    /// Provider response id.
    pub response_id: Option<String>,
    /// Request parameters.
    pub params: RequestParams,
    /// Token usage.
    pub usage: Usage,
    /// Cost the client computed and reported itself.
    pub reported_cost: Option<Cost>,
    /// Input messages.
    pub input_messages: Vec<Message>,
    /// Output messages.
    pub output_messages: Vec<Message>,
    /// System instructions given apart from the messages.
    pub system_instructions: Option<String>,
    /// Tool definitions.
    pub tool_definitions: Option<Value>,
    /// Finish reasons.
    pub finish_reasons: Vec<String>,
    /// Token logprobs.
    pub logprobs: Option<Value>,
    /// Whether this convention says the call failed.
    pub error: bool,
    /// Error class.
    pub error_type: Option<String>,
    /// Error message.
    pub error_message: Option<String>,
    /// Time to first token in milliseconds.
    pub ttft_ms: Option<f64>,
    /// Service version.
    pub service_version: Option<String>,
    /// Deployment environment.
    pub environment: Option<String>,
    /// End user.
    pub user_id: Option<String>,
    /// Session / conversation.
    pub session_id: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Prompt template name.
    pub prompt_name: Option<String>,
    /// Prompt template version.
    pub prompt_version: Option<String>,
    /// Other metadata.
    pub metadata: Map<String, Value>,
}

macro_rules! fill_options {
    ($dst:expr, $src:expr, $($field:ident),+ $(,)?) => {
        $( if $dst.$field.is_none() { $dst.$field = $src.$field; } )+
    };
}

macro_rules! fill_vecs {
    ($dst:expr, $src:expr, $($field:ident),+ $(,)?) => {
        $( if $dst.$field.is_empty() { $dst.$field = $src.$field; } )+
    };
}

impl Partial {
    /// Fills every field still empty in `self` from `lower` (a lower-precedence reading).
    /// Metadata merges key by key, `self`'s keys winning.
    pub(crate) fn fill_from(&mut self, lower: Partial) {
        self.recognised |= lower.recognised;
        self.error |= lower.error;
        fill_options!(
            self,
            lower,
            operation,
            provider,
            request_model,
            response_model,
            response_id,
            reported_cost,
            system_instructions,
            tool_definitions,
            logprobs,
            error_type,
            error_message,
            ttft_ms,
            service_version,
            environment,
            user_id,
            session_id,
            prompt_name,
            prompt_version,
        );
        fill_vecs!(
            self,
            lower,
            input_messages,
            output_messages,
            finish_reasons,
            tags
        );
        fill_options!(
            self.params,
            lower.params,
            temperature,
            top_p,
            top_k,
            max_tokens,
            stream,
            frequency_penalty,
            presence_penalty,
            seed,
            choice_count,
        );
        fill_vecs!(self.params, lower.params, stop_sequences);
        fill_options!(
            self.usage,
            lower.usage,
            input_tokens,
            output_tokens,
            total_tokens,
            cache_read_tokens,
            cache_write_tokens,
            reasoning_tokens,
        );
        for (k, v) in lower.metadata {
            self.metadata.entry(k).or_insert(v);
        }
    }

    /// Whether nothing at all was read.
    pub(crate) fn is_empty(&self) -> bool {
        *self == Partial::default()
    }

    /// `Some(self)` unless nothing was read.
    pub(crate) fn non_empty(self) -> Option<Partial> {
        (!self.is_empty()).then_some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn higher_wins_lower_fills() {
        let mut high = Partial {
            request_model: Some("a".into()),
            usage: Usage {
                input_tokens: Some(1),
                ..Usage::default()
            },
            metadata: json!({"k": 1}).as_object().cloned().unwrap(),
            ..Partial::default()
        };
        let low = Partial {
            recognised: true,
            request_model: Some("b".into()),
            response_model: Some("c".into()),
            usage: Usage {
                input_tokens: Some(9),
                output_tokens: Some(2),
                ..Usage::default()
            },
            tags: vec!["t".into()],
            metadata: json!({"k": 2, "j": 3}).as_object().cloned().unwrap(),
            ..Partial::default()
        };
        high.fill_from(low);
        assert!(high.recognised);
        assert_eq!(high.request_model.as_deref(), Some("a"));
        assert_eq!(high.response_model.as_deref(), Some("c"));
        assert_eq!(high.usage.input_tokens, Some(1));
        assert_eq!(high.usage.output_tokens, Some(2));
        assert_eq!(high.tags, vec!["t"]);
        assert_eq!(high.metadata["k"], json!(1));
        assert_eq!(high.metadata["j"], json!(3));
    }

    #[test]
    fn empty_partial_is_dropped() {
        assert!(Partial::default().non_empty().is_none());
        let p = Partial {
            recognised: true,
            ..Partial::default()
        };
        assert!(p.non_empty().is_some());
    }
}
