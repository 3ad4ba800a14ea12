//! Pulls metric names out of PromQL expressions, so the dashboard and the
//! alert rules can be checked against the metric catalog (and, by the
//! integration tests, against a live `/metrics`).
//!
//! This is a tokenizer, not a parser: it knows enough PromQL to tell metric
//! names from function names, keywords, label names, label values, durations
//! and Grafana variables (`$queue`, `$__rate_interval`).

use std::collections::BTreeSet;

/// Words that look like identifiers but are PromQL syntax.
const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "inf",
    "nan",
    "atan2",
    "start",
    "end",
    // Aggregation operators may be followed by `by (...)` instead of `(`.
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];
/// Keywords followed by a parenthesized list of label names.
const LABEL_LIST_KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}
fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// Every metric name an expression reads, including ones chosen with
/// `{__name__="..."}`.
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    // Inside `{...}`: identifiers there are label names.
    let mut in_braces = false;
    // Inside `[...]`: durations and Grafana variables only.
    let mut in_brackets = false;
    // The last `__name__` matcher seen in braces waits for its value.
    let mut name_matcher = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => {
                let quote = c;
                let start = i + 1;
                i += 1;
                while i < chars.len() && chars[i] != quote {
                    if chars[i] == '\\' && quote != '`' {
                        i += 1;
                    }
                    i += 1;
                }
                if name_matcher {
                    let value: String = chars[start..i.min(chars.len())].iter().collect();
                    names.insert(value);
                    name_matcher = false;
                }
                i += 1;
            }
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '{' => {
                in_braces = true;
                i += 1;
            }
            '}' => {
                in_braces = false;
                name_matcher = false;
                i += 1;
            }
            '[' => {
                in_brackets = true;
                i += 1;
            }
            ']' => {
                in_brackets = false;
                i += 1;
            }
            '$' => {
                // Grafana variable: `$name` or `${name}` or `[[name]]`-free forms.
                i += 1;
                if i < chars.len() && chars[i] == '{' {
                    while i < chars.len() && chars[i] != '}' {
                        i += 1;
                    }
                    i += 1;
                } else {
                    while i < chars.len() && is_ident_char(chars[i]) {
                        i += 1;
                    }
                }
            }
            c if c.is_ascii_digit()
                || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                // Numbers and durations (5m, 1h30m, 1e3, 0x1f).
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            c if is_ident_start(c) => {
                let start = i;
                while i < chars.len() && is_ident_char(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                if in_braces {
                    name_matcher = word == "__name__";
                    continue;
                }
                if in_brackets {
                    continue;
                }
                let mut j = i;
                while j < chars.len() && chars[j].is_whitespace() {
                    j += 1;
                }
                let next = chars.get(j).copied();
                let lower = word.to_ascii_lowercase();
                if LABEL_LIST_KEYWORDS.contains(&lower.as_str()) {
                    if next == Some('(') {
                        while j < chars.len() && chars[j] != ')' {
                            j += 1;
                        }
                        i = j + 1;
                    }
                    continue;
                }
                if KEYWORDS.contains(&lower.as_str()) || next == Some('(') {
                    continue;
                }
                names.insert(word);
            }
            _ => i += 1,
        }
    }
    names
}

/// Metric names in a Grafana variable query for Prometheus:
/// `label_values(expr, label)`, `query_result(expr)`, `metrics(regex)`,
/// `label_names()`, or a plain expression.
pub fn grafana_variable_metric_names(query: &str) -> BTreeSet<String> {
    let q = query.trim();
    let inner = |prefix: &str| {
        q.strip_prefix(prefix)
            .and_then(|rest| rest.trim_start().strip_prefix('('))
            .and_then(|rest| rest.strip_suffix(')'))
    };
    if let Some(args) = inner("label_values") {
        // The label is the last argument; with one argument there is no metric.
        return match top_level_comma(args) {
            Some(i) => metric_names(&args[..i]),
            None => BTreeSet::new(),
        };
    }
    if let Some(expr) = inner("query_result") {
        return metric_names(expr);
    }
    if inner("metrics").is_some() || inner("label_names").is_some() {
        return BTreeSet::new();
    }
    metric_names(q)
}

/// Byte index of the last comma outside braces, parentheses and quotes.
fn top_level_comma(s: &str) -> Option<usize> {
    let (mut depth, mut quote, mut last) = (0i32, None::<char>, None);
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'' | '`') => quote = Some(c),
            (None, '(' | '{' | '[') => depth += 1,
            (None, ')' | '}' | ']') => depth -= 1,
            (None, ',') if depth == 0 => last = Some(i),
            _ => {}
        }
    }
    last
}

/// Series names Prometheus itself creates for every target; not ours.
pub fn is_prometheus_builtin(name: &str) -> bool {
    name == "up" || name.starts_with("scrape_") || name == "ALERTS" || name == "ALERTS_FOR_STATE"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(e: &str) -> Vec<String> {
        metric_names(e).into_iter().collect()
    }

    #[test]
    fn functions_keywords_labels_and_durations_are_not_metrics() {
        assert_eq!(
            names(
                r#"histogram_quantile(0.95, sum by (le, queue) (rate(conmutador_queue_wait_answered_seconds_bucket{queue=~"$queue"}[$__rate_interval])))"#
            ),
            vec!["conmutador_queue_wait_answered_seconds_bucket"]
        );
        assert_eq!(
            names(
                "sum(rate(a_total[5m])) / ignoring(x) group_left(y) sum(rate(b_total[1h30m] offset 5m)) > bool 0.5"
            ),
            vec!["a_total", "b_total"]
        );
        assert_eq!(
            names(
                r#"(sum(conmutador_operators{state!="logged_out"}) or vector(0)) == 0 and on() hour() >= 14"#
            ),
            vec!["conmutador_operators"]
        );
        assert_eq!(names(r#"up{job="conmutador"} == 0"#), vec!["up"]);
        assert_eq!(
            names(r#"{__name__="conmutador_calls_active", state="ivr"}"#),
            vec!["conmutador_calls_active"]
        );
        assert_eq!(
            names("max_over_time(x:recorded[10m:1m]) * 1e3 + Inf"),
            vec!["x:recorded"]
        );
        assert_eq!(
            names(r#"label_replace(m, "dst", "$1", "src", "(.*)")"#),
            vec!["m"]
        );
        assert!(names("vector(1) + time()").is_empty());
    }

    #[test]
    fn grafana_variable_queries() {
        let v = |q: &str| {
            grafana_variable_metric_names(q)
                .into_iter()
                .collect::<Vec<_>>()
        };
        assert_eq!(
            v(r#"label_values(up{job="conmutador", x=~"a,b"}, instance)"#),
            vec!["up"]
        );
        assert!(v("label_values(queue)").is_empty());
        assert_eq!(
            v("query_result(topk(5, conmutador_calls_active))"),
            vec!["conmutador_calls_active"]
        );
        assert!(v("metrics(conmutador_.*)").is_empty());
        assert_eq!(v("conmutador_operators"), vec!["conmutador_operators"]);
    }
}
