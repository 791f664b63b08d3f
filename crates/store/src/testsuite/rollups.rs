//! Conformance checks of the rollups and of OTLP metric points.

use std::sync::Arc;

use serde_json::json;
use sightline_model::prices::PriceTable;
use sightline_model::{Attributes, CallStatus, DdSketch, LlmCall};

use super::{failed, filter, llm, page, span, with, write, PROJECT, T0};
use crate::metrics::{
    MetricAgg, MetricField, MetricKind, MetricPoint, MetricQuery, RollupDimension, RollupQuery,
    SketchSet,
};
use crate::{ErrorKind, Filter, Store};

const MIN_MS: u64 = 60_000;
const HOUR_MS: u64 = 3_600_000;
const DAY_MS: u64 = 86_400_000;

fn stats_query(f: Filter, group_by: Vec<RollupDimension>) -> RollupQuery {
    RollupQuery {
        filter: f,
        group_by,
        sketches: SketchSet::ALL,
        sketch_top: None,
        ..RollupQuery::default()
    }
}

/// Expected numbers of a set of calls, computed in one pass over them.
#[derive(Debug, Default)]
struct Expected {
    calls: i64,
    errors: i64,
    input: i64,
    output: i64,
    cost: f64,
    priced: i64,
    latency: DdSketch,
}

fn expected<'a>(calls: impl Iterator<Item = &'a LlmCall>) -> Expected {
    let mut e = Expected::default();
    for c in calls {
        e.calls += 1;
        e.errors += i64::from(c.status == CallStatus::Error);
        e.input += c.usage.input_tokens.unwrap_or(0) as i64;
        e.output += c.usage.output_tokens.unwrap_or(0) as i64;
        if let Some(cost) = &c.cost {
            e.priced += 1;
            e.cost += cost.total_usd;
        }
        e.latency.add(c.duration_ms);
    }
    e
}

async fn all_calls(store: &Arc<dyn Store>) -> Vec<LlmCall> {
    store
        .list_calls(&filter(), &page(1000))
        .await
        .unwrap()
        .items
}

fn assert_matches(got: &crate::RollupAggregate, want: &Expected, what: &str) {
    assert_eq!(got.calls, want.calls, "{what}: calls");
    assert_eq!(got.errors, want.errors, "{what}: errors");
    assert_eq!(got.input_tokens, want.input, "{what}: input tokens");
    assert_eq!(got.output_tokens, want.output, "{what}: output tokens");
    assert_eq!(got.priced_calls, want.priced, "{what}: priced calls");
    assert!(
        (got.cost_usd - want.cost).abs() < 1e-9,
        "{what}: cost {} vs {}",
        got.cost_usd,
        want.cost
    );
    for q in [0.5, 0.9, 0.95, 0.99] {
        assert_eq!(
            got.latency_ms.quantile(q),
            want.latency.quantile(q),
            "{what}: latency p{q}"
        );
    }
}

/// With `sketch_top: Some(n)`, a read returns the same groups with the same sums as without,
/// the `n` with the most calls (ties: the smaller key) whole, and the others without sketches.
async fn assert_sketch_top(store: &Arc<dyn Store>, q: RollupQuery) {
    let whole = store.rollups(&q).await.unwrap();
    let mut busiest = whole.clone();
    busiest.sort_by(|a, b| {
        b.aggregate
            .calls
            .cmp(&a.aggregate.calls)
            .then_with(|| a.key.cmp(&b.key))
    });
    for n in 0..=whole.len() + 1 {
        let top = store
            .rollups(&RollupQuery {
                sketch_top: Some(n),
                ..q.clone()
            })
            .await
            .unwrap();
        assert_eq!(top.len(), whole.len(), "top {n}");
        for (t, w) in top.iter().zip(&whole) {
            assert_eq!(t.key, w.key, "top {n}");
            if busiest.iter().take(n).any(|b| b.key == w.key) {
                assert_eq!(t, w, "top {n}: {:?} is read whole", w.key);
                continue;
            }
            let (a, b) = (&t.aggregate, &w.aggregate);
            let sums = |g: &crate::metrics::RollupAggregate| {
                (
                    g.calls,
                    g.errors,
                    g.input_tokens,
                    g.output_tokens,
                    g.priced_calls,
                    g.cost_usd.to_bits(),
                )
            };
            assert_eq!(sums(a), sums(b), "top {n}: {:?} keeps its sums", w.key);
            for sketch in [
                &a.latency_ms,
                &a.ttft_ms,
                &a.tpot_ms,
                &a.output_tokens_per_s,
                &a.input_tokens_per_call,
                &a.output_tokens_per_call,
            ] {
                assert_eq!(sketch.count(), 0, "top {n}: {:?} has no sketch", w.key);
            }
        }
    }
}

/// Calls over three days, written out of order in several batches: every range and grouping
/// of the rollups equals one pass over the calls.
pub async fn rollups_equal_a_single_pass(store: Arc<dyn Store>) {
    let mut spans = Vec::new();
    let models = ["gpt-4o", "claude-3-5-sonnet", "llama-3"];
    for i in 0..120u64 {
        // Spread over ~3 days, at minute, hour and day boundaries and in between.
        let at = (i * 37 * MIN_MS + (i % 7) * 1_000) % (3 * DAY_MS);
        let mut s = llm(
            span(
                100 + i,
                1,
                None,
                "chat",
                ["api", "worker"][(i % 2) as usize],
                at,
                50 + i * 13,
            ),
            models[(i % 3) as usize],
            10 + i,
            5 + 2 * i,
        );
        if i % 4 == 0 {
            s = with(s, "test.cost_usd", json!(0.001 * i as f64));
        }
        if i % 5 == 0 {
            s = failed(s, "boom");
        }
        spans.push(s);
    }
    // Late and out of order: newest first, in uneven batches.
    spans.reverse();
    let mut rest = spans;
    while !rest.is_empty() {
        let n = rest.len().min(17);
        let chunk: Vec<_> = rest.drain(..n).collect();
        write(&store, chunk).await;
    }
    let calls = all_calls(&store).await;
    assert_eq!(calls.len(), 120);

    // Whole range, no grouping.
    let rows = store.rollups(&stats_query(filter(), vec![])).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_matches(&rows[0].aggregate, &expected(calls.iter()), "all");

    // Ranges with unaligned edges read minute, hour and day rows; each equals one pass.
    let ms = |c: &LlmCall| (c.start_time_unix_nano - T0) / 1_000_000;
    for (from, to) in [
        (0, 3 * DAY_MS),
        (17 * MIN_MS, 2 * DAY_MS + 5 * HOUR_MS + 3 * MIN_MS),
        (HOUR_MS - MIN_MS, HOUR_MS + MIN_MS),
        (DAY_MS + 7 * MIN_MS, DAY_MS + 9 * HOUR_MS),
    ] {
        // Rollups are read to the minute: use minute-aligned bounds relative to T0 (which is
        // minute aligned itself).
        let f = Filter {
            from_unix_nano: Some(T0 + from * 1_000_000),
            to_unix_nano: Some(T0 + to * 1_000_000),
            ..filter()
        };
        let rows = store
            .rollups(&stats_query(f, vec![RollupDimension::Model]))
            .await
            .unwrap();
        for m in models {
            let want = expected(
                calls
                    .iter()
                    .filter(|c| ms(c) >= from && ms(c) < to && c.model() == Some(m)),
            );
            match rows.iter().find(|r| r.key == vec![m.to_string()]) {
                Some(r) => assert_matches(&r.aggregate, &want, &format!("{m} {from}..{to}")),
                None => assert_eq!(want.calls, 0, "{m} {from}..{to} missing"),
            }
        }
    }

    // Several series per group (services and statuses under one model), unequal counts.
    assert_sketch_top(&store, stats_query(filter(), vec![RollupDimension::Model])).await;
    assert_sketch_top(&store, stats_query(filter(), vec![RollupDimension::Status])).await;

    // Filters on rolled-up dimensions, two-dimensional grouping.
    let f = Filter {
        service: Some("api".into()),
        status: Some(CallStatus::Error),
        ..filter()
    };
    let rows = store
        .rollups(&stats_query(
            f,
            vec![RollupDimension::Service, RollupDimension::Status],
        ))
        .await
        .unwrap();
    let want = expected(
        calls
            .iter()
            .filter(|c| c.service_name == "api" && c.status == CallStatus::Error),
    );
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].key, vec!["api".to_string(), "error".to_string()]);
    assert_matches(&rows[0].aggregate, &want, "api errors");

    // A time series: hourly buckets sum to the total, and each bucket is its hour's calls.
    let q = RollupQuery {
        step_secs: Some(3600),
        ..stats_query(filter(), vec![])
    };
    let rows = store.rollups(&q).await.unwrap();
    assert!(rows.len() > 24);
    assert_eq!(rows.iter().map(|r| r.aggregate.calls).sum::<i64>(), 120);
    for r in &rows {
        let start = r.bucket_unix_secs.unwrap();
        let want = expected(calls.iter().filter(|c| {
            let s = (c.start_time_unix_nano / 1_000_000_000) as i64;
            s >= start && s < start + 3600
        }));
        assert_matches(&r.aggregate, &want, &format!("hour {start}"));
    }
    // A step of 5 minutes reads minute rows.
    let q = RollupQuery {
        step_secs: Some(300),
        ..stats_query(filter(), vec![])
    };
    let rows = store.rollups(&q).await.unwrap();
    assert_eq!(rows.iter().map(|r| r.aggregate.calls).sum::<i64>(), 120);
    assert!(rows.iter().all(|r| r.bucket_unix_secs.unwrap() % 300 == 0));
}

/// Per-user rollups, and what cannot be asked of them.
pub async fn rollups_per_user(store: Arc<dyn Store>) {
    let mut spans = Vec::new();
    for i in 0..30u64 {
        let s = llm(
            span(300 + i, 1, None, "chat", "api", i * MIN_MS, 100 + i),
            "gpt-4o",
            10,
            i,
        );
        spans.push(if i % 3 == 0 {
            s
        } else {
            with(s, "user.id", json!(format!("user-{}", i % 3)))
        });
    }
    write(&store, spans).await;
    let calls = all_calls(&store).await;
    let rows = store
        .rollups(&stats_query(filter(), vec![RollupDimension::UserId]))
        .await
        .unwrap();
    let keys: Vec<_> = rows.iter().map(|r| r.key[0].clone()).collect();
    assert_eq!(keys, vec!["user-1", "user-2"]);
    for r in &rows {
        let want = expected(
            calls
                .iter()
                .filter(|c| c.user_id.as_deref() == Some(&r.key[0])),
        );
        assert_matches(&r.aggregate, &want, &r.key[0]);
    }
    // Sketches for the busiest group only (here a tie: the smaller key), sums for every group.
    assert_sketch_top(&store, stats_query(filter(), vec![RollupDimension::UserId])).await;
    let one = store
        .rollups(&stats_query(
            Filter {
                user_id: Some("user-2".into()),
                ..filter()
            },
            vec![],
        ))
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].aggregate.calls, 10);

    for (q, field) in [
        (
            stats_query(
                filter(),
                vec![RollupDimension::UserId, RollupDimension::Model],
            ),
            "group_by",
        ),
        (
            stats_query(
                Filter {
                    model: Some("gpt-4o".into()),
                    ..filter()
                },
                vec![RollupDimension::UserId],
            ),
            "model",
        ),
        (
            stats_query(
                Filter {
                    session_id: Some("s".into()),
                    ..filter()
                },
                vec![],
            ),
            "session_id",
        ),
    ] {
        let err = store.rollups(&q).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert!(
            matches!(err, crate::StoreError::InvalidInput { field: f, .. } if f == field),
            "{err:?}"
        );
    }
}

/// Re-pricing adjusts the rollup cost sums without counting any call twice.
pub async fn rollups_follow_recompute(store: Arc<dyn Store>) {
    let stale = with(
        llm(
            span(400, 1, None, "chat", "api", 100, 10),
            "sightline-test-unpriced-model",
            10,
            10,
        ),
        "test.cost_usd",
        json!(2.5),
    );
    let known = llm(
        span(401, 1, None, "chat", "api", 200, 10),
        "gpt-4o",
        1000,
        500,
    );
    write(&store, vec![stale, known]).await;
    let before = store.rollups(&stats_query(filter(), vec![])).await.unwrap();
    assert_eq!(before[0].aggregate.cost_usd, 2.5);
    store.recompute_costs(&PriceTable::builtin()).await.unwrap();
    let calls = all_calls(&store).await;
    let after = store
        .rollups(&stats_query(filter(), vec![RollupDimension::Model]))
        .await
        .unwrap();
    assert_eq!(after.iter().map(|r| r.aggregate.calls).sum::<i64>(), 2);
    for r in &after {
        let want = expected(calls.iter().filter(|c| c.model() == Some(&r.key[0])));
        assert_matches(&r.aggregate, &want, &r.key[0]);
    }
    let unpriced = after
        .iter()
        .find(|r| r.key[0] == "sightline-test-unpriced-model")
        .unwrap();
    assert_eq!(unpriced.aggregate.cost(), None);
}

fn point(
    name: &str,
    kind: MetricKind,
    at_ms: u64,
    value: f64,
    attrs: serde_json::Value,
) -> MetricPoint {
    let mut resource = Attributes::new();
    resource.insert("service.name".into(), json!("trainer"));
    MetricPoint {
        project: PROJECT.into(),
        name: name.into(),
        kind,
        unit: "1".into(),
        description: String::new(),
        resource,
        scope: "conformance".into(),
        attributes: attrs.as_object().cloned().unwrap_or_default(),
        start_time_unix_nano: 0,
        time_unix_nano: T0 + at_ms * 1_000_000,
        value: Some(value),
        count: None,
        sum: None,
        min: None,
        max: None,
        data: json!({}),
    }
}

/// Metric points come back as series, filtered, grouped and bucketed; histograms read their
/// count, sum and mean.
pub async fn metric_points_round_trip(store: Arc<dyn Store>) {
    let mut points = Vec::new();
    for step in 0..10u64 {
        for layer in 0..3 {
            points.push(point(
                "grad_norm",
                MetricKind::Gauge,
                step * 1000,
                (step * 10 + layer) as f64,
                json!({ "layer": layer, "run": "a" }),
            ));
        }
    }
    let mut h = point("latency", MetricKind::Histogram, 500, 0.0, json!({}));
    h.value = None;
    h.count = Some(4);
    h.sum = Some(10.0);
    h.data = json!({ "bounds": [1.0, 5.0], "counts": [1, 2, 1] });
    points.push(h);
    assert_eq!(store.write_metrics(points).await.unwrap(), 31);
    // Rewriting the same point replaces it.
    store
        .write_metrics(vec![point(
            "grad_norm",
            MetricKind::Gauge,
            0,
            0.5,
            json!({ "layer": 0, "run": "a" }),
        )])
        .await
        .unwrap();

    let q = MetricQuery {
        project: PROJECT.into(),
        name: "grad_norm".into(),
        ..MetricQuery::default()
    };
    let series = store.metric_series(&q).await.unwrap();
    assert_eq!(series.len(), 3, "one series per layer");
    let layer0 = series
        .iter()
        .find(|s| s.attributes["layer"] == json!(0))
        .unwrap();
    assert_eq!(layer0.points.len(), 10);
    assert_eq!(layer0.points[0], (((T0 / 1_000_000) as i64), 0.5));
    assert_eq!(layer0.points[9].1, 90.0);

    // Filter on an attribute, resource attributes too.
    let q1 = MetricQuery {
        attrs: vec![
            ("layer".into(), "2".into()),
            ("service.name".into(), "trainer".into()),
        ],
        ..q.clone()
    };
    let s = store.metric_series(&q1).await.unwrap();
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].points[3].1, 32.0);

    // Grouped by run, max over layers, in 2-second steps from a range.
    let q2 = MetricQuery {
        group_by: Some(vec!["run".into()]),
        agg: MetricAgg::Max,
        step_ms: Some(2000),
        from_unix_nano: Some(T0 + 2_000_000_000),
        to_unix_nano: Some(T0 + 6_000_000_000),
        ..q.clone()
    };
    let s = store.metric_series(&q2).await.unwrap();
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].key, "run=\"a\"");
    let base = (T0 / 1_000_000) as i64;
    assert_eq!(s[0].points, vec![(base + 2000, 32.0), (base + 4000, 52.0)]);

    let hist = MetricQuery {
        name: "latency".into(),
        ..q.clone()
    };
    for (field, want) in [
        (MetricField::Value, 2.5),
        (MetricField::Count, 4.0),
        (MetricField::Sum, 10.0),
    ] {
        let s = store
            .metric_series(&MetricQuery {
                field,
                ..hist.clone()
            })
            .await
            .unwrap();
        assert_eq!(s[0].points[0].1, want, "{field:?}");
    }
    let none = store
        .metric_series(&MetricQuery {
            name: "absent".into(),
            ..q
        })
        .await
        .unwrap();
    assert!(none.is_empty());
}
