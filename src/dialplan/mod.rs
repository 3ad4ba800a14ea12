//! The dialplan room: the language dialplan authors write (TOML files in
//! `dialplans/`), its loader and validator, the IVR interpreter that walks a
//! call through a plan, spoken numbers in Mexican Spanish and English, and
//! the `check` / `simulate` tools for authors.
//!
//! This room decides; it does not do. It never imports `sip`, `media`,
//! `call` or `acd`: the call layer feeds the interpreter `IvrEvent`s and
//! carries out its `IvrCommand`s, and the only I/O here is reading plan and
//! prompt files at load time (and writing what `check`/`simulate` print).
//! The language reference is the README section "The dialplan language".
//!
//! A loaded `Dialplans` is immutable: a reload builds a new one and swaps an
//! `Arc`, so calls in progress keep the `Arc<Plan>` they started with.

pub mod diag;
pub mod interpreter;
pub mod journey;
pub mod model;
pub mod open;
pub mod parse;
pub mod say;
pub mod store;
pub mod validate;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{Datelike, NaiveDateTime};

pub use diag::{Diagnostic, Severity, SourceFile};
pub use interpreter::{
    CallInfo, End, Interpreter, IvrCommand, IvrCount, IvrEvent, QueueExitReason,
};
pub use model::{Expect, Plan, Step};
pub use store::DialplanStore;

use journey::{Sim, SimEvent};

/// Plan files larger than this are refused (a plan is hand-written text).
const MAX_PLAN_BYTES: u64 = 1 << 20;
/// Plan files per directory.
const MAX_PLANS: usize = 64;

/// Every loaded plan, its entry points, and what the prompt folders hold.
pub struct Dialplans {
    dir: PathBuf,
    plans: Vec<Arc<Plan>>,
    numbers: HashMap<String, usize>,
    default: Option<usize>,
    /// "es-MX/bienvenida" -> the words the file says (from index.toml).
    words: HashMap<String, String>,
    /// "es-MX/bienvenida" -> playing time, for every WAV found.
    prompts: BTreeMap<String, Duration>,
}

impl std::fmt::Debug for Dialplans {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialplans")
            .field("dir", &self.dir)
            .field(
                "plans",
                &self
                    .plans
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Dialplans {
    /// The plan that answers a called number (Request-URI user part), or the
    /// default plan; None when there is neither (answer 404).
    pub fn route(&self, called: &str) -> Option<Arc<Plan>> {
        let i = self
            .numbers
            .get(called)
            .or_else(|| self.numbers.get(called.strip_prefix('+')?))
            .copied()
            .or(self.default)?;
        self.plans.get(i).cloned()
    }

    pub fn plans(&self) -> &[Arc<Plan>] {
        &self.plans
    }

    pub fn plan(&self, name: &str) -> Option<Arc<Plan>> {
        self.plans.iter().find(|p| p.name == name).cloned()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every prompt key ("es-MX/bienvenida") the plans can ask to play,
    /// number words included: what the media room must have loaded.
    pub fn prompt_keys(&self) -> BTreeSet<String> {
        let mut keys = BTreeSet::new();
        for plan in &self.plans {
            let langs: Vec<&str> = plan.languages.iter().map(|l| l.v.as_str()).collect();
            for node in plan.nodes.values() {
                for p in node.kind.prompts() {
                    if let model::PromptRef::File { lang, name } = &p.v {
                        match lang {
                            Some(l) => {
                                keys.insert(format!("{l}/{name}"));
                            }
                            None => keys.extend(langs.iter().map(|l| format!("{l}/{name}"))),
                        }
                    }
                }
            }
            for l in &langs {
                keys.extend(say::words_table(l).iter().map(|(n, _)| format!("{l}/{n}")));
            }
        }
        keys
    }

    /// The words a prompt says, from `prompts/<lang>/index.toml`.
    pub fn words(&self, key: &str) -> Option<&str> {
        self.words.get(key).map(String::as_str)
    }

    /// Where the WAV for a prompt key lives.
    pub fn prompt_path(&self, key: &str) -> PathBuf {
        self.dir.join("prompts").join(format!("{key}.wav"))
    }

    /// Playing time of a prompt (zero if it has no file).
    pub fn prompt_duration(&self, key: &str) -> Duration {
        self.prompts.get(key).copied().unwrap_or(Duration::ZERO)
    }
}

fn read_prompts(
    dir: &Path,
    diags: &mut Vec<Diagnostic>,
) -> (BTreeMap<String, Duration>, HashMap<String, String>) {
    let mut prompts = BTreeMap::new();
    let mut words = HashMap::new();
    for lang in model::LANGUAGES {
        let ldir = dir.join("prompts").join(lang);
        let Ok(entries) = std::fs::read_dir(&ldir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "wav")
                && let Some(stem) = p.file_stem().and_then(|s| s.to_str())
            {
                prompts.insert(format!("{lang}/{stem}"), journey::wav_duration(&p));
            }
        }
        let index = ldir.join("index.toml");
        if let Ok(text) = std::fs::read_to_string(&index) {
            match toml::from_str::<BTreeMap<String, String>>(&text) {
                Ok(map) => words.extend(map.into_iter().map(|(k, v)| (format!("{lang}/{k}"), v))),
                Err(e) => {
                    let src = SourceFile::new(index.clone(), text);
                    diags.push(src.warning(
                        e.span().unwrap_or(0..0),
                        format!("prompt words index unreadable: {}", e.message()),
                    ));
                }
            }
        }
    }
    (prompts, words)
}

/// Loads and checks every `*.toml` plan in `dir` (prompts in
/// `dir/prompts/<lang>/`), runs the plans' journey tests, and returns the
/// plans with their warnings — or every diagnostic when any is an error.
/// `known_queues`: queue names from the gateway configuration (empty: not
/// checked, with a warning).
pub fn load_dir(
    dir: &Path,
    known_queues: &[String],
) -> Result<(Dialplans, Vec<Diagnostic>), Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "toml"))
            .collect(),
        Err(e) => {
            return Err(vec![Diagnostic::whole_file(
                Severity::Error,
                dir,
                format!("cannot read the dialplan directory: {e}"),
            )]);
        }
    };
    files.sort();
    if files.is_empty() {
        return Err(vec![Diagnostic::whole_file(
            Severity::Error,
            dir,
            "no dialplan files (*.toml) in this directory",
        )]);
    }
    if files.len() > MAX_PLANS {
        return Err(vec![Diagnostic::whole_file(
            Severity::Error,
            dir,
            format!("more than {MAX_PLANS} plan files"),
        )]);
    }
    let (prompts, words) = read_prompts(dir, &mut diags);
    let exists = |lang: &str, name: &str| prompts.contains_key(&format!("{lang}/{name}"));

    let mut plans: Vec<Arc<Plan>> = Vec::new();
    for f in &files {
        let too_big = std::fs::metadata(f)
            .map(|m| m.len() > MAX_PLAN_BYTES)
            .unwrap_or(false);
        if too_big {
            diags.push(Diagnostic::whole_file(
                Severity::Error,
                f,
                "plan file larger than 1 MiB",
            ));
            continue;
        }
        let text = match std::fs::read_to_string(f) {
            Ok(t) => t,
            Err(e) => {
                diags.push(Diagnostic::whole_file(
                    Severity::Error,
                    f,
                    format!("cannot read: {e}"),
                ));
                continue;
            }
        };
        let stem = f
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("plan")
            .to_string();
        let src = SourceFile::new(f.clone(), text);
        let mut d = Vec::new();
        if let Some(plan) = parse::parse_plan(src, &stem, &mut d) {
            d.extend(validate::validate(&plan, known_queues, &exists));
            plans.push(Arc::new(plan));
        }
        diags.extend(d);
    }

    // Entry points across plans.
    let mut numbers: HashMap<String, usize> = HashMap::new();
    let mut default: Option<usize> = None;
    for (i, p) in plans.iter().enumerate() {
        if plans[..i].iter().any(|q| q.name == p.name) {
            diags.push(p.source.error(
                p.start.span.clone(),
                format!("two plans are named \"{}\"", p.name),
            ));
        }
        for n in &p.numbers {
            if let Some(&j) = numbers.get(&n.v) {
                diags.push(p.source.error(
                    n.span.clone(),
                    format!(
                        "number \"{}\" is already answered by plan \"{}\"",
                        n.v, plans[j].name
                    ),
                ));
            } else {
                numbers.insert(n.v.clone(), i);
            }
        }
        if p.is_default {
            if let Some(j) = default {
                diags.push(p.source.error(
                    p.start.span.clone(),
                    format!(
                        "plan \"{}\" is the default, but so is \"{}\"",
                        p.name, plans[j].name
                    ),
                ));
            } else {
                default = Some(i);
            }
        }
    }
    if default.is_none() && !plans.is_empty() {
        diags.push(Diagnostic::whole_file(
            Severity::Warning,
            dir,
            "no plan has `default = true`: calls to numbers no plan lists are refused",
        ));
    }

    let set = Dialplans {
        dir: dir.to_path_buf(),
        plans,
        numbers,
        default,
        words,
        prompts,
    };
    if !diags.iter().any(Diagnostic::is_error) {
        let journeys = run_journeys(&set);
        diags.extend(journeys);
    }
    diags.sort_by(|a, b| {
        (&a.file, a.line, a.col, a.severity).cmp(&(&b.file, b.line, b.col, b.severity))
    });
    if diags.iter().any(Diagnostic::is_error) {
        Err(diags)
    } else {
        Ok((set, diags))
    }
}

fn prompt_len_fn(set: &Dialplans) -> Arc<dyn Fn(&str) -> Duration + Send + Sync> {
    let table = set.prompts.clone();
    Arc::new(move |k: &str| table.get(k).copied().unwrap_or(Duration::ZERO))
}

/// Runs every plan's `[[test]]`s through the real interpreter; each failure
/// is an error pointing at the test.
fn run_journeys(set: &Dialplans) -> Vec<Diagnostic> {
    let mut d = Vec::new();
    let len = prompt_len_fn(set);
    for plan in &set.plans {
        for t in &plan.tests {
            let number = if t.number.is_empty() {
                plan.numbers
                    .first()
                    .map(|n| n.v.clone())
                    .unwrap_or_default()
            } else {
                t.number.clone()
            };
            if !t.number.is_empty()
                && set.route(&t.number).map(|p| p.name.clone()) != Some(plan.name.clone())
            {
                d.push(plan.source.error(
                    t.span.clone(),
                    format!(
                        "journey test \"{}\": number \"{}\" is not answered by this plan",
                        t.name, t.number
                    ),
                ));
                continue;
            }
            let wall = journey::local_to_utc(plan, t.at.unwrap_or_else(journey::default_time));
            let info = CallInfo {
                caller: t.caller.clone(),
                called: number,
            };
            let mut sim = Sim::new(plan.clone(), info, wall, len.clone());
            sim.run(&t.press);
            let got = sim.outcome();
            let path = sim.interp.path().join(" → ");
            if got != t.expect.v {
                d.push(plan.source.error(
                    t.expect.span.clone(),
                    format!(
                        "journey test \"{}\" ended with {got}, expected {} (path: {path})",
                        t.name, t.expect.v
                    ),
                ));
                continue;
            }
            // `visits` must appear in the path in this order.
            let mut it = sim.interp.path().iter();
            for v in &t.visits {
                if !it.any(|p| *p == v.v) {
                    d.push(plan.source.error(
                        v.span.clone(),
                        format!(
                            "journey test \"{}\" did not visit \"{}\" here (path: {path})",
                            t.name, v.v
                        ),
                    ));
                    break;
                }
            }
            if let Some(l) = &t.language
                && sim.interp.language() != l.v
            {
                d.push(plan.source.error(
                    l.span.clone(),
                    format!(
                        "journey test \"{}\" ended in language \"{}\", expected \"{}\"",
                        t.name,
                        sim.interp.language(),
                        l.v
                    ),
                ));
            }
        }
    }
    d
}

/// `conmutador check [DIR]`: prints every problem like rustc does, runs the
/// journey tests, and returns true when there are no errors.
pub fn check_command(dir: &Path, queues: &[String], out: &mut impl Write) -> bool {
    let (ok, diags, summary) = match load_dir(dir, queues) {
        Ok((set, diags)) => {
            let nodes: usize = set.plans.iter().map(|p| p.nodes.len()).sum();
            let tests: usize = set.plans.iter().map(|p| p.tests.len()).sum();
            let s = format!(
                "{} plan(s), {nodes} nodes, {tests} journey test(s) passed",
                set.plans.len()
            );
            (true, diags, s)
        }
        Err(diags) => (false, diags, String::new()),
    };
    for d in &diags {
        let _ = writeln!(out, "{d}\n");
    }
    let errors = diags.iter().filter(|d| d.is_error()).count();
    let warnings = diags.len() - errors;
    if ok {
        let _ = writeln!(out, "ok: {summary}; {warnings} warning(s)");
    } else {
        let _ = writeln!(out, "failed: {errors} error(s), {warnings} warning(s)");
    }
    ok
}

/// Parses `--at` values: "2026-12-24 10:00", "2026-12-24T10:00[:00]" or a
/// bare date; the time is local to the plan's zone.
pub fn parse_at(s: &str) -> anyhow::Result<NaiveDateTime> {
    parse::parse_local_datetime(s)
        .with_context(|| format!("\"{s}\" is not a time (write \"2026-12-24 10:00\")"))
}

fn fmt_secs(d: Duration) -> String {
    format!("{:>6.1}s", d.as_secs_f64())
}

/// `conmutador simulate [DIR] --number N --press 1,5,… [--at …]`: walks a
/// plan with no telephony and prints the journey. `at` is local time in the
/// plan's zone (None: a Tuesday 10:00, see `journey::default_time`).
/// Fails when the plans do not load, no plan answers the number, or a press
/// token is not understood.
pub fn simulate_command<S: AsRef<str>>(
    dir: &Path,
    queues: &[String],
    number: &str,
    presses: &[S],
    at: Option<NaiveDateTime>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let set = match load_dir(dir, queues) {
        Ok((set, _warnings)) => set,
        Err(diags) => {
            for d in &diags {
                writeln!(out, "{d}\n")?;
            }
            bail!("the dialplans in {} have errors", dir.display());
        }
    };
    let steps = model::parse_steps(presses).map_err(anyhow::Error::msg)?;
    let Some(plan) = set.route(number) else {
        bail!("no plan answers number \"{number}\" and no plan is the default");
    };
    let local = at.unwrap_or_else(journey::default_time);
    let wall = journey::local_to_utc(&plan, local);
    writeln!(
        out,
        "plan \"{}\" ({}) answers {number}",
        plan.name,
        plan.source.path.display()
    )?;
    writeln!(
        out,
        "at {} {} ({})\n",
        local.format("%Y-%m-%d %H:%M"),
        plan.timezone,
        local.weekday()
    )?;
    let info = CallInfo {
        caller: "5550000000".into(),
        called: number.into(),
    };
    let mut sim = Sim::new(plan.clone(), info, wall, prompt_len_fn(&set));
    sim.run(&steps);
    let mut lang = plan.default_language().to_string();
    for ev in &sim.events {
        match ev {
            SimEvent::Visited { at, node } => {
                let kind = plan.node(node).map(|n| n.kind.type_name()).unwrap_or("?");
                if let Some(model::NodeKind::Language(l)) = plan.node(node).map(|n| &n.kind) {
                    lang = l.language.v.clone();
                    writeln!(out, "{}  → {node} ({kind}: {lang})", fmt_secs(*at))?;
                } else {
                    writeln!(out, "{}  → {node} ({kind})", fmt_secs(*at))?;
                }
            }
            SimEvent::Play {
                at,
                prompts,
                barge_in,
            } => {
                let mut t = *at;
                for p in prompts {
                    let words = set.words(p).map(str::to_string).or_else(|| {
                        p.split_once('/')
                            .and_then(|(l, n)| say::word(l, n))
                            .map(str::to_string)
                    });
                    let file = set.prompt_path(p);
                    let len = set.prompt_duration(p);
                    writeln!(
                        out,
                        "{}      ▶ {} ({:.1}s{}) \"{}\"",
                        fmt_secs(t),
                        file.display(),
                        len.as_secs_f64(),
                        if *barge_in { ", barge-in" } else { "" },
                        words.unwrap_or_else(|| "?".into())
                    )?;
                    t += len;
                }
            }
            SimEvent::Stopped { at } => {
                writeln!(out, "{}      ■ prompt stopped by a key", fmt_secs(*at))?
            }
            SimEvent::Pressed { at, digit } => {
                writeln!(out, "{}      ☎ pressed {digit}", fmt_secs(*at))?
            }
            SimEvent::Waited { at, waited } => writeln!(
                out,
                "{}      … no key for {:.1}s (timeout)",
                fmt_secs(*at),
                waited.as_secs_f64()
            )?,
            SimEvent::QueueExit { at, reason } => writeln!(
                out,
                "{}      ⇠ the queue lets the caller go: {reason:?}",
                fmt_secs(*at)
            )?,
            SimEvent::End { at, end } => match end {
                End::Queued { queue, priority } => writeln!(
                    out,
                    "{}  ■ queue \"{queue}\" (priority {priority})",
                    fmt_secs(*at)
                )?,
                End::Transfer { uri } => writeln!(out, "{}  ■ transfer to {uri}", fmt_secs(*at))?,
                End::Hangup => writeln!(out, "{}  ■ hang up", fmt_secs(*at))?,
            },
            SimEvent::Stuck { at, node } => writeln!(
                out,
                "{}  … presses used up; the caller is still in \"{node}\"",
                fmt_secs(*at)
            )?,
        }
    }
    let _ = lang;
    if !sim.interp.vars().is_empty() {
        let vars: Vec<String> = sim
            .interp
            .vars()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        writeln!(out, "\nvariables: {}", vars.join(", "))?;
    }
    writeln!(
        out,
        "end: {} (language {})",
        sim.outcome(),
        sim.interp.language()
    )?;
    Ok(())
}
