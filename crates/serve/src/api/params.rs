//! Query parameters of the API, parsed by hand from the decoded `key=value` pairs.
//!
//! Deserializing into a struct with axum's `Query` would reject a bad value without saying which
//! parameter it was, and cannot express `attr.<key>=<value>`. Reading the pairs ourselves lets
//! every bad value become a 400 that names its parameter, ignores unknown parameters (so older
//! servers tolerate newer clients), and treats an empty value as absent (as HTML forms send it).
//! A known parameter given twice is rejected rather than silently picking one.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Uri};
use sightline_model::{is_project_name, CallStatus, DEFAULT_PROJECT, MAX_PROJECT_LEN};
use sightline_store::{Filter, PageRequest};

use super::timestamp::{parse_timestamp, TimestampError};
use crate::error::ApiError;

/// Rows per page when the client sets no `limit`.
pub const DEFAULT_LIMIT: usize = 50;
/// Largest `limit` accepted.
pub const MAX_LIMIT: usize = 1000;
/// Header naming the project, used when the query has no `project`.
pub const PROJECT_HEADER: &str = "x-sightline-project";
/// Prefix of attribute filters: `attr.<key>=<value>`.
pub const ATTR_PREFIX: &str = "attr.";

/// The single-valued parameters list endpoints understand.
const SCALARS: [&str; 12] = [
    "project",
    "from",
    "to",
    "limit",
    "cursor",
    "service",
    "model",
    "provider",
    "user_id",
    "session_id",
    "status",
    "q",
];

/// Longest piece of a rejected value echoed back in an error message.
const SHOWN_CHARS: usize = 64;

/// A rejected query parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// A single-valued parameter appeared more than once.
    #[error("`{field}` is given more than once")]
    Repeated {
        /// The parameter.
        field: &'static str,
    },
    /// `limit` was not an integer in range.
    #[error("`limit` must be an integer from 1 to {MAX_LIMIT}, got `{value}`")]
    Limit {
        /// The value sent.
        value: String,
    },
    /// `status` was neither `ok` nor `error`.
    #[error("`status` must be `ok` or `error`, got `{value}`")]
    Status {
        /// The value sent.
        value: String,
    },
    /// `from` or `to` was not a usable timestamp.
    #[error("`{field}`: {reason}, got `{value}`")]
    Timestamp {
        /// `from` or `to`.
        field: &'static str,
        /// The value sent.
        value: String,
        /// What was wrong with it.
        reason: TimestampError,
    },
    /// `from` is later than `to`.
    #[error("`from` must not be later than `to`")]
    EmptyRange,
    /// `attr.` with nothing after the dot.
    #[error("attribute filters need a key: `attr.<key>=<value>`")]
    AttrKey,
    /// The project header was not UTF-8.
    #[error("the `{PROJECT_HEADER}` header is not valid UTF-8")]
    ProjectHeader,
    /// The project (query parameter or header) is not a project name.
    #[error(
        "`{0}` is not a project name (1 to {MAX_PROJECT_LEN} ASCII letters, digits, `.`, `_` or `-`)"
    )]
    Project(String),
    /// The query string could not be decoded at all.
    #[error("malformed query string: {0}")]
    Query(String),
    /// More attribute filters than a list request may carry.
    #[error("at most {MAX_ATTR_FILTERS} attribute filters (`attr.<key>=<value>`) are allowed, got {count}")]
    TooManyAttrs {
        /// How many were sent.
        count: usize,
    },
    /// A full-text query longer than allowed.
    #[error("`q` may have at most {MAX_Q_WORDS} words and {MAX_Q_CHARS} characters, got {words} words and {chars} characters")]
    QueryTooLong {
        /// Words sent.
        words: usize,
        /// Characters sent.
        chars: usize,
    },
}

/// Most `attr.*` filters in one list request: each is a condition on the spans of every trace
/// the list walks.
pub const MAX_ATTR_FILTERS: usize = 16;
/// Most words in `q`, each a term the full-text index is searched for.
pub const MAX_Q_WORDS: usize = 32;
/// Longest `q`, in characters.
pub const MAX_Q_CHARS: usize = 1024;

impl ParamError {
    /// The parameter to name in the error body, when there is one.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Self::Repeated { field } | Self::Timestamp { field, .. } => Some(field),
            Self::Limit { .. } => Some("limit"),
            Self::Status { .. } => Some("status"),
            Self::EmptyRange => Some("from"),
            Self::AttrKey => Some("attr"),
            Self::ProjectHeader | Self::Project(_) => Some("project"),
            Self::TooManyAttrs { .. } => Some("attr"),
            Self::QueryTooLong { .. } => Some("q"),
            Self::Query(_) => None,
        }
    }
}

/// A value echoed in a message, cut short so a huge parameter does not make a huge error.
fn shown(value: &str) -> String {
    match value.char_indices().nth(SHOWN_CHARS) {
        Some((end, _)) => format!("{}…", &value[..end]),
        None => value.to_owned(),
    }
}

/// The decoded `key=value` pairs of a URI's query, in order.
pub fn query_pairs(uri: &Uri) -> Result<Vec<(String, String)>, ParamError> {
    Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|Query(pairs)| pairs)
        .map_err(|e| ParamError::Query(e.body_text()))
}

/// The project a request reads: the `project` parameter, else the [`PROJECT_HEADER`] header,
/// else [`DEFAULT_PROJECT`].
pub fn parse_project(
    pairs: &[(String, String)],
    headers: &HeaderMap,
) -> Result<String, ParamError> {
    let mut from_query = None;
    for (key, value) in pairs {
        if key == "project" {
            if from_query.is_some() {
                return Err(ParamError::Repeated { field: "project" });
            }
            from_query = Some(value.as_str());
        }
    }
    project_or_header(from_query, headers)
}

fn project_or_header(from_query: Option<&str>, headers: &HeaderMap) -> Result<String, ParamError> {
    let checked = |p: &str| {
        if is_project_name(p.as_bytes()) {
            Ok(p.to_owned())
        } else {
            Err(ParamError::Project(
                p.chars().take(MAX_PROJECT_LEN + 1).collect(),
            ))
        }
    };
    if let Some(p) = from_query.filter(|p| !p.is_empty()) {
        return checked(p);
    }
    if let Some(value) = headers.get(PROJECT_HEADER) {
        let p = std::str::from_utf8(value.as_bytes()).map_err(|_| ParamError::ProjectHeader)?;
        if !p.is_empty() {
            return checked(p);
        }
    }
    Ok(DEFAULT_PROJECT.to_owned())
}

/// The filter and page of a list request.
#[derive(Debug, Clone, PartialEq)]
pub struct ListParams {
    /// What to match.
    pub filter: Filter,
    /// Which page.
    pub page: PageRequest,
}

impl ListParams {
    /// Parses the query pairs (and the project header) of a list request.
    pub fn parse(pairs: &[(String, String)], headers: &HeaderMap) -> Result<Self, ParamError> {
        let mut scalars: HashMap<&'static str, &str> = HashMap::new();
        let mut attrs = Vec::new();
        for (key, value) in pairs {
            if let Some(attr) = key.strip_prefix(ATTR_PREFIX) {
                if attr.is_empty() {
                    return Err(ParamError::AttrKey);
                }
                attrs.push((attr.to_owned(), value.clone()));
            } else if let Some(name) = SCALARS.iter().find(|name| **name == key) {
                if scalars.insert(name, value.as_str()).is_some() {
                    return Err(ParamError::Repeated { field: name });
                }
            }
        }
        if attrs.len() > MAX_ATTR_FILTERS {
            return Err(ParamError::TooManyAttrs { count: attrs.len() });
        }
        // Empty values count as absent.
        scalars.retain(|_, value| !value.is_empty());
        if let Some(q) = scalars.get("q") {
            let (words, chars) = (q.split_whitespace().count(), q.chars().count());
            if words > MAX_Q_WORDS || chars > MAX_Q_CHARS {
                return Err(ParamError::QueryTooLong { words, chars });
            }
        }
        let text = |name: &str| scalars.get(name).map(|v| (*v).to_owned());

        let limit = match scalars.get("limit") {
            None => DEFAULT_LIMIT,
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| ParamError::Limit { value: shown(v) })?,
        };
        let status = match scalars.get("status") {
            None => None,
            Some(&"ok") => Some(CallStatus::Ok),
            Some(&"error") => Some(CallStatus::Error),
            Some(v) => return Err(ParamError::Status { value: shown(v) }),
        };
        let time = |field: &'static str| -> Result<Option<u64>, ParamError> {
            scalars
                .get(field)
                .map(|v| {
                    parse_timestamp(v).map_err(|reason| ParamError::Timestamp {
                        field,
                        value: shown(v),
                        reason,
                    })
                })
                .transpose()
        };
        let from_unix_nano = time("from")?;
        let to_unix_nano = time("to")?;
        if let (Some(from), Some(to)) = (from_unix_nano, to_unix_nano) {
            if from > to {
                return Err(ParamError::EmptyRange);
            }
        }

        Ok(Self {
            filter: Filter {
                project: project_or_header(scalars.get("project").copied(), headers)?,
                from_unix_nano,
                to_unix_nano,
                service: text("service"),
                model: text("model"),
                provider: text("provider"),
                user_id: text("user_id"),
                session_id: text("session_id"),
                status,
                q: text("q"),
                attrs,
            },
            page: PageRequest {
                limit,
                cursor: text("cursor"),
            },
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ListParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let pairs = query_pairs(&parts.uri)?;
        Ok(Self::parse(&pairs, &parts.headers)?)
    }
}

/// The project of a single-item request (`/traces/{id}`, `/sessions/{id}`); other parameters are
/// ignored there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Project {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let pairs = query_pairs(&parts.uri)?;
        Ok(Self(parse_project(&pairs, &parts.headers)?))
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn pairs(query: &str) -> Vec<(String, String)> {
        let uri: Uri = format!("/x?{query}").parse().unwrap();
        query_pairs(&uri).unwrap()
    }

    fn parse(query: &str) -> Result<ListParams, ParamError> {
        ListParams::parse(&pairs(query), &HeaderMap::new())
    }

    #[test]
    fn defaults_when_nothing_is_given() {
        let p = parse("").unwrap();
        assert_eq!(
            p.filter,
            Filter {
                project: DEFAULT_PROJECT.to_owned(),
                ..Filter::default()
            }
        );
        assert_eq!(p.page, PageRequest::default());
        assert_eq!(p.page.limit, DEFAULT_LIMIT);
    }

    #[test]
    fn reads_every_filter() {
        let p = parse(
            "project=p1&from=1000&to=2024-05-01T10:00:00Z&limit=7&cursor=abc&service=svc\
             &model=gpt-4o&provider=openai&user_id=u%201&session_id=s1&status=error&q=hello+world\
             &attr.http.method=GET&attr.tier=gold&attr.tier=silver&unknown=whatever",
        )
        .unwrap();
        assert_eq!(
            p.filter,
            Filter {
                project: "p1".into(),
                from_unix_nano: Some(1_000_000_000),
                to_unix_nano: Some(1_714_557_600_000_000_000),
                service: Some("svc".into()),
                model: Some("gpt-4o".into()),
                provider: Some("openai".into()),
                user_id: Some("u 1".into()),
                session_id: Some("s1".into()),
                status: Some(CallStatus::Error),
                q: Some("hello world".into()),
                attrs: vec![
                    ("http.method".into(), "GET".into()),
                    ("tier".into(), "gold".into()),
                    ("tier".into(), "silver".into()),
                ],
            }
        );
        assert_eq!(
            p.page,
            PageRequest {
                limit: 7,
                cursor: Some("abc".into())
            }
        );
        assert_eq!(
            parse("status=ok").unwrap().filter.status,
            Some(CallStatus::Ok)
        );
    }

    #[test]
    fn empty_values_are_absent() {
        let p = parse("service=&limit=&status=&from=&cursor=&project=").unwrap();
        assert_eq!(p.filter.service, None);
        assert_eq!(p.filter.status, None);
        assert_eq!(p.filter.from_unix_nano, None);
        assert_eq!(p.filter.project, DEFAULT_PROJECT);
        assert_eq!(p.page, PageRequest::default());
        // but an attribute may be required to be empty
        assert_eq!(
            parse("attr.k=").unwrap().filter.attrs,
            vec![("k".to_owned(), String::new())]
        );
    }

    #[test]
    fn the_work_a_list_asks_for_is_bounded() {
        let attrs: Vec<String> = (0..=MAX_ATTR_FILTERS)
            .map(|i| format!("attr.k{i}=v"))
            .collect();
        let err = parse(&attrs.join("&")).unwrap_err();
        assert_eq!(err.field(), Some("attr"));
        assert!(parse(&attrs[..MAX_ATTR_FILTERS].join("&")).is_ok());

        let words = vec!["t*"; MAX_Q_WORDS + 1].join("+");
        let err = parse(&format!("q={words}")).unwrap_err();
        assert_eq!(err.field(), Some("q"));
        assert_eq!(
            err.to_string(),
            format!("`q` may have at most {MAX_Q_WORDS} words and {MAX_Q_CHARS} characters, got 33 words and 98 characters")
        );
        let long = "a".repeat(MAX_Q_CHARS + 1);
        assert_eq!(parse(&format!("q={long}")).unwrap_err().field(), Some("q"));
        assert!(parse(&format!("q={}", vec!["t*"; MAX_Q_WORDS].join("+"))).is_ok());
    }

    #[test]
    fn limit_must_be_in_range() {
        assert_eq!(parse("limit=1").unwrap().page.limit, 1);
        assert_eq!(parse("limit=1000").unwrap().page.limit, MAX_LIMIT);
        for bad in ["abc", "0", "1001", "-1", "1.5", "99999999999999999999999"] {
            let err = parse(&format!("limit={bad}")).unwrap_err();
            assert_eq!(err.field(), Some("limit"), "{bad}");
            assert!(matches!(err, ParamError::Limit { .. }), "{bad}");
        }
    }

    #[test]
    fn status_must_be_ok_or_error() {
        let err = parse("status=maybe").unwrap_err();
        assert_eq!(
            err,
            ParamError::Status {
                value: "maybe".into()
            }
        );
        assert_eq!(err.field(), Some("status"));
        assert_eq!(
            err.to_string(),
            "`status` must be `ok` or `error`, got `maybe`"
        );
        assert!(parse("status=OK").is_err());
    }

    #[test]
    fn bad_times_name_their_parameter() {
        let err = parse("from=garbage").unwrap_err();
        assert_eq!(err.field(), Some("from"));
        assert_eq!(
            err.to_string(),
            "`from`: expected an RFC 3339 timestamp or unix milliseconds, got `garbage`"
        );
        assert_eq!(parse("to=-1").unwrap_err().field(), Some("to"));
        assert_eq!(
            parse("from=2000&to=1000").unwrap_err(),
            ParamError::EmptyRange
        );
        assert!(parse("from=1000&to=1000").is_ok());
        // `+` in the offset sent unescaped
        assert_eq!(
            parse("from=2024-05-01T12:00:00+02:00")
                .unwrap()
                .filter
                .from_unix_nano,
            Some(1_714_557_600_000_000_000)
        );
    }

    #[test]
    fn repeated_parameters_are_rejected() {
        let err = parse("service=a&service=b").unwrap_err();
        assert_eq!(err, ParamError::Repeated { field: "service" });
        assert_eq!(err.field(), Some("service"));
        assert_eq!(parse("limit=1&limit=1").unwrap_err().field(), Some("limit"));
    }

    #[test]
    fn attribute_filters_need_a_key() {
        let err = parse("attr.=x").unwrap_err();
        assert_eq!(err, ParamError::AttrKey);
        assert_eq!(err.field(), Some("attr"));
        // `attr` without the dot is simply unknown
        assert!(parse("attr=x").unwrap().filter.attrs.is_empty());
    }

    #[test]
    fn long_values_are_cut_short_in_messages() {
        let long = "x".repeat(10_000);
        let msg = parse(&format!("limit={long}")).unwrap_err().to_string();
        assert!(msg.len() < 200, "{msg}");
        assert!(msg.contains('…'));
        assert_eq!(shown("é".repeat(64).as_str()), "é".repeat(64));
        assert_eq!(
            shown("é".repeat(65).as_str()),
            format!("{}…", "é".repeat(64))
        );
    }

    #[test]
    fn project_comes_from_query_then_header_then_default() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            parse_project(&pairs(""), &headers).unwrap(),
            DEFAULT_PROJECT
        );
        headers.insert(PROJECT_HEADER, HeaderValue::from_static("from-header"));
        assert_eq!(parse_project(&pairs(""), &headers).unwrap(), "from-header");
        assert_eq!(
            parse_project(&pairs("project=from-query"), &headers).unwrap(),
            "from-query"
        );
        assert_eq!(
            ListParams::parse(&pairs("limit=5"), &headers)
                .unwrap()
                .filter
                .project,
            "from-header"
        );
        assert_eq!(
            parse_project(&pairs("project=a&project=b"), &headers).unwrap_err(),
            ParamError::Repeated { field: "project" }
        );
        headers.insert(
            PROJECT_HEADER,
            HeaderValue::from_bytes("équipe".as_bytes()).unwrap(),
        );
        // UTF-8, but not a name ingest accepts: refused by name, as ingest refuses it.
        assert_eq!(
            parse_project(&pairs(""), &headers).unwrap_err(),
            ParamError::Project("équipe".into())
        );
        assert_eq!(
            parse_project(&pairs("project=a%20b"), &HeaderMap::new()).unwrap_err(),
            ParamError::Project("a b".into())
        );
        let long = "p".repeat(MAX_PROJECT_LEN + 1);
        assert!(matches!(
            parse_project(&pairs(&format!("project={long}")), &HeaderMap::new()),
            Err(ParamError::Project(_))
        ));
        assert_eq!(
            parse_project(&pairs("project=team-a.prod_2"), &HeaderMap::new()).unwrap(),
            "team-a.prod_2"
        );
        headers.insert(
            PROJECT_HEADER,
            HeaderValue::from_bytes(&[0xff, 0xfe]).unwrap(),
        );
        assert_eq!(
            parse_project(&pairs(""), &headers).unwrap_err(),
            ParamError::ProjectHeader
        );
    }

    #[test]
    fn undecodable_percent_escapes_do_not_fail() {
        // invalid UTF-8 after percent-decoding is replaced, not rejected
        let p = parse("service=%FF%FE&q=%").unwrap();
        assert_eq!(p.filter.service.as_deref(), Some("\u{fffd}\u{fffd}"));
        assert_eq!(p.filter.q.as_deref(), Some("%"));
    }
}
