//! The Grafana dashboard (`packaging/grafana/coid.json`) against a running coid: every
//! metric name in every panel's PromQL is one that coid's `/metrics` exports, so the
//! dashboard and the metrics cannot drift apart. The names come from the exposition's
//! `# TYPE` lines (a labelled family with no sample yet still has one), each family
//! turned into the sample names Prometheus stores (`_total` for counters, `_bucket`,
//! `_sum`, `_count` for histograms).

mod common;

use std::collections::BTreeSet;

use common::coid::{Coid, CoidOpts};
use common::metrics::scrape;

/// The dashboard as shipped.
const DASHBOARD: &str = include_str!("../packaging/grafana/coid.json");

/// Sample names Prometheus stores for the families in an OpenMetrics exposition.
fn exported(exposition: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in exposition.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let (Some(family), Some(kind)) = (words.next(), words.next()) else {
            continue;
        };
        let suffixes: &[&str] = match kind {
            "counter" => &["_total", "_created"],
            "histogram" => &["_bucket", "_sum", "_count", "_created"],
            "info" => &["_info"],
            _ => &[""],
        };
        names.extend(suffixes.iter().map(|s| format!("{family}{s}")));
    }
    names
}

/// The `coid_…` names a PromQL expression uses.
fn used(expr: &str) -> Vec<String> {
    let part_of_name = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    expr.match_indices("coid_")
        .filter(|(at, _)| {
            !expr
                .get(..*at)
                .is_some_and(|before| before.ends_with(part_of_name))
        })
        .filter_map(|(at, _)| expr.get(at..))
        .map(|rest| rest.chars().take_while(|c| part_of_name(*c)).collect())
        .collect()
}

/// Every panel's queries: (panel title, expression).
fn queries(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        let title = panel["title"].as_str().unwrap_or("?").to_owned();
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {title} has no query");
        for target in targets {
            let expr = target["expr"].as_str().expect("expr");
            out.push((title.clone(), expr.to_owned()));
        }
    }
    out
}

#[test]
fn every_metric_the_dashboard_queries_is_exported() {
    let dashboard: serde_json::Value = serde_json::from_str(DASHBOARD).expect("dashboard JSON");
    let mut opts = CoidOpts::dovecot("/nonexistent/lmtp");
    opts.backend = "maildir".into();
    let coid = Coid::start(opts);
    let names = exported(&scrape(coid.metrics_addr()));
    assert!(names.contains("coid_messages_total"), "{names:?}");

    let mut missing = Vec::new();
    let mut seen = BTreeSet::new();
    for (title, expr) in queries(&dashboard) {
        let metrics = used(&expr);
        assert!(
            !metrics.is_empty(),
            "panel {title}: no coid metric in {expr}"
        );
        for name in metrics {
            if !names.contains(&name) {
                missing.push(format!("{title}: {name}"));
            }
            seen.insert(name);
        }
    }
    assert!(
        missing.is_empty(),
        "not exported by coid: {missing:?}\nexported: {names:?}"
    );
    // What the issue asks the dashboard to show is there.
    for want in [
        "coid_messages_total",
        "coid_deliveries_total",
        "coid_delivery_duration_seconds_bucket",
        "coid_backend_errors_total",
        "coid_push_outcomes_total",
        "coid_push_queue_depth",
        "coid_deltachat_notifications_total",
    ] {
        assert!(seen.contains(want), "no panel shows {want}");
    }
}

#[test]
fn names_are_found_in_promql() {
    assert_eq!(
        used("sum by (le) (rate(coid_a_bucket{job=~\"$job\"}[5m])) / coid_b_total"),
        ["coid_a_bucket", "coid_b_total"]
    );
    assert!(used("rate(xcoid_a[5m])").is_empty());
    let names = exported("# TYPE coid_x counter\n# TYPE coid_h histogram\n# TYPE coid_g gauge\n");
    assert!(
        names.contains("coid_x_total")
            && names.contains("coid_h_bucket")
            && names.contains("coid_g")
    );
    assert!(!names.contains("coid_x"));
}
