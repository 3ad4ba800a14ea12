//! The validator: everything about a parsed plan that can be known without
//! a call. Unknown node references, unreachable nodes, digits used twice,
//! missing prompt files in any enabled language, loops with no way out or
//! that never wait, unknown queues and holiday lists, variables never set.
//!
//! Reads prompt folders (to see which files exist) through a closure so
//! tests can fake the file system; touches nothing else.

use std::collections::{BTreeMap, BTreeSet};

use super::diag::Diagnostic;
use super::model::*;
use super::parse::suggest;
use super::say;

/// Variables the interpreter provides without a collect node.
pub const BUILTIN_VARS: &[&str] = &["language", "caller", "called", "queue_key"];

/// Checks one plan. `prompt_exists(lang, name)` says whether
/// `prompts/<lang>/<name>.wav` exists; `queues` are the queue names the
/// gateway configuration defines (empty: not known, not checked).
pub fn validate(
    plan: &Plan,
    queues: &[String],
    prompt_exists: &dyn Fn(&str, &str) -> bool,
) -> Vec<Diagnostic> {
    let src = &plan.source;
    let mut d = Vec::new();
    let names: Vec<&str> = plan.nodes.keys().map(String::as_str).collect();

    // Unknown node references.
    let check_ref = |r: &Sp<String>, d: &mut Vec<Diagnostic>| {
        if !plan.nodes.contains_key(&r.v) && !plan.broken.contains(&r.v) {
            let hint = suggest(&r.v, names.iter().copied())
                .map(|s| format!("; did you mean \"{s}\"?"))
                .unwrap_or_default();
            d.push(src.error(r.span.clone(), format!("unknown node \"{}\"{hint}", r.v)));
        }
    };
    check_ref(&plan.start, &mut d);
    for node in plan.nodes.values() {
        for r in node.kind.refs() {
            check_ref(r, &mut d);
        }
    }

    // Unreachable nodes.
    let mut seen = BTreeSet::new();
    let mut stack = vec![plan.start.v.as_str()];
    while let Some(n) = stack.pop() {
        if !seen.insert(n) {
            continue;
        }
        if let Some(node) = plan.nodes.get(n) {
            stack.extend(node.kind.refs().into_iter().map(|r| r.v.as_str()));
        }
    }
    for node in plan.nodes.values() {
        if !seen.contains(node.name.as_str()) {
            d.push(src.warning(
                node.span.clone(),
                format!(
                    "node \"{}\" is unreachable from \"{}\"",
                    node.name, plan.start.v
                ),
            ));
        }
    }

    // Per-node checks.
    let mut set_vars: BTreeSet<&str> = BUILTIN_VARS.iter().copied().collect();
    for node in plan.nodes.values() {
        if let NodeKind::Collect(c) = &node.kind {
            set_vars.insert(c.variable.v.as_str());
        }
    }
    let mut uses_say = false;
    let mut queue_list_warned = false;
    for node in plan.nodes.values() {
        match &node.kind {
            NodeKind::Menu(m) => {
                if let Some(k) = &m.repeat_key
                    && let Some(o) = m.options.iter().find(|o| o.digits.v == k.v.to_string())
                {
                    d.push(src.error(
                        k.span.clone(),
                        format!("digit \"{}\" is used twice in menu \"{}\": as repeat_key and for option \"{}\"", k.v, node.name, o.next.v),
                    ));
                }
                for o in &m.options {
                    if let Some(longer) = m.options.iter().find(|x| {
                        x.digits.v.len() > o.digits.v.len() && x.digits.v.starts_with(&o.digits.v)
                    }) {
                        d.push(src.warning(
                            o.digits.span.clone(),
                            format!(
                                "option \"{}\" is a prefix of \"{}\": callers pressing {} wait digit_timeout before it is taken",
                                o.digits.v, longer.digits.v, o.digits.v
                            ),
                        ));
                    }
                }
                if m.options.is_empty() {
                    d.push(src.error(
                        node.span.clone(),
                        format!("menu \"{}\" has no options", node.name),
                    ));
                }
            }
            NodeKind::Branch(b) => {
                for c in &b.cases {
                    for cond in &c.conditions {
                        match cond {
                            Condition::Holiday(h) if !plan.holidays.contains_key(&h.v) => {
                                let hint = suggest(&h.v, plan.holidays.keys().map(String::as_str))
                                    .map(|s| format!("; did you mean \"{s}\"?"))
                                    .unwrap_or_default();
                                d.push(src.error(
                                    h.span.clone(),
                                    format!("unknown holiday list \"{}\"{hint}", h.v),
                                ));
                            }
                            Condition::Var { name, .. } if !set_vars.contains(name.v.as_str()) => {
                                d.push(src.warning(
                                    name.span.clone(),
                                    format!(
                                        "variable \"{}\" is never set by a collect node",
                                        name.v
                                    ),
                                ));
                            }
                            _ => {}
                        }
                    }
                }
            }
            NodeKind::Language(l) if !plan.languages.iter().any(|x| x.v == l.language.v) => {
                let enabled: Vec<&str> = plan.languages.iter().map(|x| x.v.as_str()).collect();
                d.push(src.error(
                    l.language.span.clone(),
                    format!(
                        "language \"{}\" is not enabled in [plan] languages ({}): its prompts are not checked",
                        l.language.v,
                        enabled.join(", ")
                    ),
                ));
            }
            NodeKind::Queue(q) => {
                if queues.is_empty() {
                    if !queue_list_warned {
                        queue_list_warned = true;
                        d.push(src.warning(q.queue.span.clone(), "no queue list given (gateway configuration): queue names are not checked"));
                    }
                } else if !queues.contains(&q.queue.v) {
                    let hint = suggest(&q.queue.v, queues.iter().map(String::as_str))
                        .map(|s| format!("; did you mean \"{s}\"?"))
                        .unwrap_or_else(|| format!(" (configured: {})", queues.join(", ")));
                    d.push(src.error(
                        q.queue.span.clone(),
                        format!("unknown queue \"{}\"{hint}", q.queue.v),
                    ));
                }
                if [
                    &q.on_full,
                    &q.on_timeout,
                    &q.on_empty,
                    &q.on_key,
                    &q.overflow,
                ]
                .iter()
                .all(|x| x.is_none())
                {
                    d.push(src.warning(
                        node.span.clone(),
                        format!("queue node \"{}\" has no on_full/on_timeout/on_empty/on_key/overflow: callers the queue lets go are hung up", node.name),
                    ));
                }
                uses_say = true; // position and wait announcements
            }
            _ => {}
        }
        for p in node.kind.prompts() {
            match &p.v {
                PromptRef::File { lang, name } => {
                    let langs: Vec<&str> = match lang {
                        Some(l) => vec![l.as_str()],
                        None => plan.languages.iter().map(|l| l.v.as_str()).collect(),
                    };
                    for l in langs {
                        if !prompt_exists(l, name) {
                            d.push(src.error(
                                p.span.clone(),
                                format!("missing prompt file prompts/{l}/{name}.wav"),
                            ));
                        }
                    }
                }
                PromptRef::Say { var, .. } => {
                    uses_say = true;
                    if !set_vars.contains(var.as_str()) {
                        d.push(src.warning(
                            p.span.clone(),
                            format!("variable \"{var}\" is never set by a collect node"),
                        ));
                    }
                }
            }
        }
    }
    if uses_say {
        for l in &plan.languages {
            let missing: Vec<&str> = say::words_table(&l.v)
                .iter()
                .map(|(n, _)| *n)
                .filter(|n| !prompt_exists(&l.v, n))
                .collect();
            if !missing.is_empty() {
                let span = if l.span.is_empty() {
                    plan.start.span.clone()
                } else {
                    l.span.clone()
                };
                d.push(src.error(
                    span,
                    format!(
                        "missing number prompts for \"{}\" (needed to say numbers and waits): {}{}",
                        l.v,
                        missing.iter().take(5).map(|n| format!("{n}.wav")).collect::<Vec<_>>().join(", "),
                        if missing.len() > 5 { format!(" and {} more", missing.len() - 5) } else { String::new() }
                    ),
                ));
            }
        }
    }

    loops(plan, &mut d);

    // Journey tests that name nodes.
    for t in &plan.tests {
        for v in &t.visits {
            check_ref(v, &mut d);
        }
        if let Expect::Node(n) = &t.expect.v
            && !plan.nodes.contains_key(n)
        {
            d.push(src.error(t.expect.span.clone(), format!("unknown node \"{n}\"")));
        }
        if let Some(l) = &t.language
            && !LANGUAGES.contains(&l.v.as_str())
        {
            d.push(src.error(l.span.clone(), format!("unknown language \"{}\"", l.v)));
        }
    }
    d
}

/// A node that ends the IVR or waits for the caller.
fn waits(kind: &NodeKind) -> bool {
    matches!(
        kind,
        NodeKind::Menu(_)
            | NodeKind::Collect(_)
            | NodeKind::Queue(_)
            | NodeKind::Transfer(_)
            | NodeKind::Hangup(_)
    )
}

/// A node the interpreter passes through without waiting at all.
fn instant(kind: &NodeKind) -> bool {
    match kind {
        NodeKind::Branch(_) | NodeKind::Language(_) => true,
        NodeKind::Play(p) => p.prompts.is_empty(),
        _ => false,
    }
}

fn loops(plan: &Plan, d: &mut Vec<Diagnostic>) {
    let src = &plan.source;
    let edges: BTreeMap<&str, Vec<&str>> = plan
        .nodes
        .iter()
        .map(|(n, node)| {
            let next = node
                .kind
                .refs()
                .into_iter()
                .map(|r| r.v.as_str())
                .filter(|r| plan.nodes.contains_key(*r))
                .collect();
            (n.as_str(), next)
        })
        .collect();

    // Live: waits itself, or can reach a node that does. The rest are
    // stuck in a loop of plays, branches and language switches.
    let mut live: BTreeSet<&str> = plan
        .nodes
        .iter()
        .filter(|(_, n)| waits(&n.kind))
        .map(|(k, _)| k.as_str())
        .collect();
    loop {
        let before = live.len();
        for (n, next) in &edges {
            if !live.contains(n) && next.iter().any(|x| live.contains(x)) {
                live.insert(n);
            }
        }
        if live.len() == before {
            break;
        }
    }
    let mut reported: BTreeSet<&str> = BTreeSet::new();
    for n in plan.nodes.keys() {
        if live.contains(n.as_str()) || reported.contains(n.as_str()) {
            continue;
        }
        // Follow dead edges until a node repeats: that is the loop.
        let mut walk = vec![n.as_str()];
        let mut cur = n.as_str();
        while let Some(next) = edges[cur].iter().find(|x| !live.contains(*x)) {
            if let Some(pos) = walk.iter().position(|w| w == next) {
                let cycle: Vec<&str> = walk[pos..].to_vec();
                if cycle.iter().all(|c| !reported.contains(c)) {
                    let first = plan.nodes[cycle[0]].span.clone();
                    d.push(src.error(
                        first,
                        format!(
                            "loop with no way out: {} → {} never waits for the caller nor ends the call",
                            cycle.join(" → "),
                            cycle[0]
                        ),
                    ));
                }
                reported.extend(cycle);
                break;
            }
            walk.push(next);
            cur = next;
        }
        reported.insert(n.as_str());
    }

    // Cycles made only of instant nodes spin without waiting even when a
    // way out exists (a branch whose condition keeps holding).
    let inst: BTreeSet<&str> = plan
        .nodes
        .iter()
        .filter(|(_, n)| instant(&n.kind))
        .map(|(k, _)| k.as_str())
        .collect();
    let mut color: BTreeMap<&str, u8> = BTreeMap::new();
    for &startn in &inst {
        if color.contains_key(startn) || reported.contains(startn) {
            continue;
        }
        // Iterative DFS with an explicit path to print the cycle.
        let mut stack: Vec<(&str, usize)> = vec![(startn, 0)];
        color.insert(startn, 1);
        while let Some((n, i)) = stack.pop() {
            let next: Vec<&str> = edges[n]
                .iter()
                .copied()
                .filter(|x| inst.contains(x))
                .collect();
            if i < next.len() {
                stack.push((n, i + 1));
                let m = next[i];
                match color.get(m) {
                    None => {
                        color.insert(m, 1);
                        stack.push((m, 0));
                    }
                    Some(1) => {
                        let pos = stack.iter().position(|(s, _)| *s == m).unwrap_or(0);
                        let cycle: Vec<&str> = stack[pos..].iter().map(|(s, _)| *s).collect();
                        if cycle.iter().all(|c| !reported.contains(c)) {
                            d.push(src.error(
                                plan.nodes[m].span.clone(),
                                format!(
                                    "loop that never waits: {} → {} can repeat without playing a prompt or waiting for a key",
                                    cycle.join(" → "),
                                    m
                                ),
                            ));
                            reported.extend(cycle);
                        }
                    }
                    _ => {}
                }
            } else {
                color.insert(n, 2);
            }
        }
    }
}
