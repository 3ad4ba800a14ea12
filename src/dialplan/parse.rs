//! TOML → model. Walks the span-keeping tree of `toml::de::DeTable` by hand
//! rather than through serde derives: that way an unknown key points at the
//! key itself, a wrong type points at the value, and one pass reports every
//! problem in the file instead of stopping at the first.
//!
//! Only shape is checked here (types, ranges, syntax of times and patterns);
//! cross-references between nodes are the validator's job.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime, Weekday};
use chrono_tz::Tz;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diag::{Diagnostic, SourceFile};
use super::model::*;
use super::say::SayKind;

type Val<'i> = Spanned<DeValue<'i>>;

/// Parses one plan file. Returns the plan when its shape allowed building
/// one (problems are in `diags` either way).
pub fn parse_plan(
    src: Arc<SourceFile>,
    default_name: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<Plan> {
    let text = src.text.clone();
    let (doc, errors) = DeTable::parse_recoverable(&text);
    let syntax_errors = !errors.is_empty();
    for e in errors {
        let span = e.span().unwrap_or(0..0);
        let key = src.text.get(span.clone()).unwrap_or("").trim_matches('"');
        let msg = e.message().to_string();
        if msg.starts_with("duplicate key") && key.chars().count() == 1 && key.chars().all(is_dtmf)
        {
            diags.push(src.error(span, format!("digit \"{key}\" is used twice in one menu")));
        } else {
            diags.push(src.error(span, format!("TOML syntax: {msg}")));
        }
    }
    if syntax_errors {
        // A tree rebuilt after a syntax error would only add noise.
        return None;
    }
    let mut p = Parser { src: &src, diags };
    p.document(doc.get_ref(), doc.span(), default_name)
        .map(|mut plan| {
            plan.source = src.clone();
            plan
        })
}

struct Parser<'a> {
    src: &'a SourceFile,
    diags: &'a mut Vec<Diagnostic>,
}

/// A table being read: remembers which keys were asked for so the rest can
/// be reported as unknown.
struct Tbl<'a, 'i> {
    table: &'a DeTable<'i>,
    /// Where "missing key" errors point (the table's name).
    anchor: Range<usize>,
    what: String,
    used: Vec<&'static str>,
}

impl<'a, 'i> Tbl<'a, 'i> {
    fn new(table: &'a DeTable<'i>, anchor: Range<usize>, what: impl Into<String>) -> Self {
        Tbl {
            table,
            anchor,
            what: what.into(),
            used: Vec::new(),
        }
    }

    fn get(&mut self, key: &'static str) -> Option<&'a Val<'i>> {
        self.used.push(key);
        self.table.get(key)
    }

    fn has(&self, key: &str) -> bool {
        self.table.get(key).is_some()
    }
}

fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest name in `candidates`, when it is close enough to be a typo.
pub fn suggest<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("\"{s}\" is not a duration (write \"5s\", \"1500ms\" or \"2m\")"))?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "s" => n,
        "m" | "min" => n * 60.0,
        u => return Err(format!("unknown unit \"{u}\" in \"{s}\" (use ms, s or m)")),
    };
    Ok(Duration::from_secs_f64(secs))
}

fn parse_hhmm(s: &str) -> Option<NaiveTime> {
    let (h, m) = s.trim().split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    if h == 24 && m == 0 {
        // "until midnight": the exclusive end of the last minute.
        return NaiveTime::from_hms_opt(0, 0, 0);
    }
    NaiveTime::from_hms_opt(h, m, 0)
}

fn parse_day(s: &str) -> Option<Weekday> {
    Some(match s.to_lowercase().as_str() {
        "mon" | "monday" | "lun" | "lunes" => Weekday::Mon,
        "tue" | "tuesday" | "mar" | "martes" => Weekday::Tue,
        "wed" | "wednesday" | "mie" | "mié" | "miercoles" | "miércoles" => Weekday::Wed,
        "thu" | "thursday" | "jue" | "jueves" => Weekday::Thu,
        "fri" | "friday" | "vie" | "viernes" => Weekday::Fri,
        "sat" | "saturday" | "sab" | "sáb" | "sabado" | "sábado" => Weekday::Sat,
        "sun" | "sunday" | "dom" | "domingo" => Weekday::Sun,
        _ => return None,
    })
}

pub fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()
}

/// "2026-12-24 10:00", "2026-12-24T10:00:00" or a bare date (midnight).
pub fn parse_local_datetime(s: &str) -> Option<NaiveDateTime> {
    let s = s.trim();
    for f in [
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(t);
        }
    }
    parse_date(s).and_then(|d| d.and_hms_opt(0, 0, 0))
}

const NODE_TYPES: &[&str] = &[
    "menu", "play", "collect", "branch", "language", "queue", "transfer", "hangup",
];

impl<'a> Parser<'a> {
    fn err(&mut self, span: Range<usize>, msg: impl Into<String>) {
        let d = self.src.error(span, msg);
        self.diags.push(d);
    }

    /// Reports every key of `t` that was never asked for.
    fn finish(&mut self, t: Tbl<'_, '_>) {
        for (k, _) in t.table.iter() {
            let key: &str = k.get_ref();
            if t.used.contains(&key) {
                continue;
            }
            let hint = suggest(key, t.used.iter().copied())
                .map(|s| format!("; did you mean \"{s}\"?"))
                .unwrap_or_else(|| {
                    let mut keys: Vec<&str> = t.used.clone();
                    keys.sort_unstable();
                    keys.dedup();
                    format!(" (known keys: {})", keys.join(", "))
                });
            self.err(
                k.span(),
                format!("unknown key \"{key}\" in {}{hint}", t.what),
            );
        }
    }

    fn string(&mut self, t: &mut Tbl<'_, '_>, key: &'static str) -> Option<Sp<String>> {
        let v = t.get(key)?;
        match v.get_ref() {
            DeValue::String(s) => Some(Sp::new(s.to_string(), v.span())),
            other => {
                let what = t.what.clone();
                self.err(
                    v.span(),
                    format!(
                        "\"{key}\" in {what} must be a string, found {}",
                        type_name(other)
                    ),
                );
                None
            }
        }
    }

    fn req_string(&mut self, t: &mut Tbl<'_, '_>, key: &'static str) -> Option<Sp<String>> {
        if !t.has(key) {
            t.used.push(key);
            let (anchor, what) = (t.anchor.clone(), t.what.clone());
            self.err(anchor, format!("{what} needs \"{key}\""));
            return None;
        }
        self.string(t, key)
    }

    /// A required reference to another node (checked by the validator).
    fn node_ref(&mut self, t: &mut Tbl<'_, '_>, key: &'static str) -> Option<Sp<String>> {
        self.req_string(t, key)
    }

    fn boolean(&mut self, t: &mut Tbl<'_, '_>, key: &'static str, default: bool) -> bool {
        let Some(v) = t.get(key) else { return default };
        match v.get_ref() {
            DeValue::Boolean(b) => *b,
            other => {
                let what = t.what.clone();
                self.err(
                    v.span(),
                    format!(
                        "\"{key}\" in {what} must be true or false, found {}",
                        type_name(other)
                    ),
                );
                default
            }
        }
    }

    fn integer(
        &mut self,
        t: &mut Tbl<'_, '_>,
        key: &'static str,
        default: i64,
        range: (i64, i64),
    ) -> i64 {
        let Some(v) = t.get(key) else { return default };
        let n = match v.get_ref() {
            DeValue::Integer(i) => {
                let digits = i.as_str().replace('_', "");
                i64::from_str_radix(
                    digits
                        .trim_start_matches("0x")
                        .trim_start_matches("0o")
                        .trim_start_matches("0b"),
                    i.radix(),
                )
                .ok()
            }
            _ => None,
        };
        match n {
            Some(n) if n >= range.0 && n <= range.1 => n,
            Some(n) => {
                self.err(
                    v.span(),
                    format!(
                        "\"{key}\" = {n} is out of range ({}..={})",
                        range.0, range.1
                    ),
                );
                default
            }
            None => {
                self.err(
                    v.span(),
                    format!(
                        "\"{key}\" must be a whole number, found {}",
                        type_name(v.get_ref())
                    ),
                );
                default
            }
        }
    }

    fn duration(&mut self, t: &mut Tbl<'_, '_>, key: &'static str, default: Duration) -> Duration {
        let Some(v) = t.get(key) else { return default };
        let d = match v.get_ref() {
            DeValue::String(s) => parse_duration(s),
            DeValue::Integer(i) => i
                .as_str()
                .parse::<u64>()
                .map(Duration::from_secs)
                .map_err(|e| e.to_string()),
            DeValue::Float(f) => f
                .as_str()
                .parse::<f64>()
                .map_err(|e| e.to_string())
                .and_then(|x| Duration::try_from_secs_f64(x).map_err(|e| e.to_string())),
            other => Err(format!(
                "\"{key}\" must be a duration such as \"5s\", found {}",
                type_name(other)
            )),
        };
        match d {
            Ok(d) if d >= Duration::from_millis(100) && d <= Duration::from_secs(600) => d,
            Ok(_) => {
                self.err(v.span(), format!("\"{key}\" must be between 100ms and 10m"));
                default
            }
            Err(e) => {
                self.err(v.span(), e);
                default
            }
        }
    }

    /// A string or an array of strings.
    fn strings(&mut self, t: &mut Tbl<'_, '_>, key: &'static str) -> Vec<Sp<String>> {
        let Some(v) = t.get(key) else { return vec![] };
        match v.get_ref() {
            DeValue::String(s) => vec![Sp::new(s.to_string(), v.span())],
            DeValue::Array(a) => {
                let mut out = Vec::new();
                for item in a.iter() {
                    match item.get_ref() {
                        DeValue::String(s) => out.push(Sp::new(s.to_string(), item.span())),
                        other => self.err(
                            item.span(),
                            format!("\"{key}\" must hold strings, found {}", type_name(other)),
                        ),
                    }
                }
                out
            }
            other => {
                self.err(
                    v.span(),
                    format!(
                        "\"{key}\" must be a string or an array of strings, found {}",
                        type_name(other)
                    ),
                );
                vec![]
            }
        }
    }

    fn prompt_name(&mut self, s: &str, span: Range<usize>) -> Option<PromptRef> {
        let (lang, name) = match s.split_once('/') {
            Some((l, n)) => (Some(l.to_string()), n),
            None => (None, s),
        };
        if let Some(l) = &lang
            && !LANGUAGES.contains(&l.as_str())
        {
            self.err(
                span,
                format!(
                    "unknown language \"{l}\" in prompt (known: {})",
                    LANGUAGES.join(", ")
                ),
            );
            return None;
        }
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            self.err(span, format!("prompt name \"{s}\" may hold only letters, digits, _ and - (it names a .wav file)"));
            return None;
        }
        Some(PromptRef::File {
            lang,
            name: name.to_string(),
        })
    }

    fn prompts(&mut self, t: &mut Tbl<'_, '_>, key: &'static str) -> Vec<Sp<PromptRef>> {
        let Some(v) = t.get(key) else { return vec![] };
        let items: Vec<&Val<'_>> = match v.get_ref() {
            DeValue::Array(a) => a.iter().collect(),
            _ => vec![v],
        };
        let mut out = Vec::new();
        for item in items {
            match item.get_ref() {
                DeValue::String(s) => {
                    if let Some(p) = self.prompt_name(s, item.span()) {
                        out.push(Sp::new(p, item.span()));
                    }
                }
                DeValue::Table(tab) => {
                    let mut st = Tbl::new(tab, item.span(), format!("a say item of \"{key}\""));
                    let kind = self.req_string(&mut st, "say");
                    let var = self.req_string(&mut st, "var");
                    self.finish(st);
                    let (Some(kind), Some(var)) = (kind, var) else { continue };
                    match kind.v.parse::<SayKind>() {
                        Ok(k) => out.push(Sp::new(PromptRef::Say { kind: k, var: var.v }, item.span())),
                        Err(e) => self.err(kind.span, e),
                    }
                }
                other => self.err(
                    item.span(),
                    format!("\"{key}\" must hold prompt names or {{ say = .., var = .. }} tables, found {}", type_name(other)),
                ),
            }
        }
        out
    }

    fn key_char(&mut self, t: &mut Tbl<'_, '_>, key: &'static str) -> Option<Sp<char>> {
        let s = self.string(t, key)?;
        let mut cs = s.v.chars();
        match (cs.next(), cs.next()) {
            (Some(c), None) if is_dtmf(c) => Some(Sp::new(c, s.span)),
            _ => {
                self.err(
                    s.span,
                    format!("\"{key}\" must be one telephone key (0-9, *, #)"),
                );
                None
            }
        }
    }

    fn timezone(&mut self, t: &mut Tbl<'_, '_>, default: Tz) -> Tz {
        let Some(s) = self.string(t, "timezone") else {
            return default;
        };
        match s.v.parse::<Tz>() {
            Ok(tz) => tz,
            Err(_) => {
                let hint = if s.v.contains('/') {
                    ""
                } else {
                    " (write a zone such as \"America/Mexico_City\")"
                };
                self.err(s.span, format!("unknown time zone \"{}\"{hint}", s.v));
                default
            }
        }
    }

    fn document(
        &mut self,
        doc: &DeTable<'_>,
        span: Range<usize>,
        default_name: &str,
    ) -> Option<Plan> {
        let mut top = Tbl::new(doc, 0..0, "the plan file");
        let mut ok = true;

        // [plan]
        let plan_v = top.get("plan");
        let mut name = default_name.to_string();
        let mut start = None;
        let mut languages = Vec::new();
        let mut timezone = DEFAULT_TIMEZONE;
        let mut numbers = Vec::new();
        let mut is_default = false;
        match plan_v.map(|v| (v, v.get_ref())) {
            Some((v, DeValue::Table(t))) => {
                let mut pt = Tbl::new(t, v.span(), "[plan]");
                if let Some(n) = self.string(&mut pt, "name") {
                    name = n.v;
                }
                start = self.req_string(&mut pt, "start");
                languages = self.strings(&mut pt, "languages");
                for l in &languages {
                    if !LANGUAGES.contains(&l.v.as_str()) {
                        let hint = suggest(&l.v, LANGUAGES.iter().copied())
                            .map(|s| format!("; did you mean \"{s}\"?"))
                            .unwrap_or_default();
                        self.err(
                            l.span.clone(),
                            format!(
                                "unknown language \"{}\" (known: {}){hint}",
                                l.v,
                                LANGUAGES.join(", ")
                            ),
                        );
                    }
                }
                // Go on with the languages we know, to report the rest.
                languages.retain(|l| LANGUAGES.contains(&l.v.as_str()));
                if languages.is_empty() {
                    languages.push(Sp::new(DEFAULT_LANGUAGE.to_string(), 0..0));
                }
                timezone = self.timezone(&mut pt, DEFAULT_TIMEZONE);
                numbers = self.strings(&mut pt, "numbers");
                is_default = self.boolean(&mut pt, "default", false);
                self.finish(pt);
            }
            Some((v, other)) => {
                self.err(
                    v.span(),
                    format!("\"plan\" must be a table, found {}", type_name(other)),
                );
                ok = false;
            }
            None => {
                self.diags.push(self.src.error(
                    span.start..span.start,
                    "the file has no [plan] table (it needs at least `start = \"<first node>\"`)",
                ));
                ok = false;
            }
        }

        // [holidays.<list>] "YYYY-MM-DD" = "name"
        let mut holidays = BTreeMap::new();
        if let Some(v) = top.get("holidays") {
            match v.get_ref() {
                DeValue::Table(t) => {
                    for (k, lv) in t.iter() {
                        let DeValue::Table(days_t) = lv.get_ref() else {
                            self.err(lv.span(), format!("holiday list \"{}\" must be a table of \"YYYY-MM-DD\" = \"name\"", k.get_ref()));
                            continue;
                        };
                        let mut days = BTreeMap::new();
                        for (dk, dv) in days_t.iter() {
                            let Some(date) = parse_date(dk.get_ref()) else {
                                self.err(
                                    dk.span(),
                                    format!(
                                        "\"{}\" is not a date (write YYYY-MM-DD)",
                                        dk.get_ref()
                                    ),
                                );
                                continue;
                            };
                            let label = dv
                                .get_ref()
                                .as_str()
                                .map(str::to_string)
                                .unwrap_or_default();
                            days.insert(date, label);
                        }
                        holidays.insert(
                            k.get_ref().to_string(),
                            HolidayList {
                                name: Sp::new(k.get_ref().to_string(), k.span()),
                                days,
                            },
                        );
                    }
                }
                other => self.err(
                    v.span(),
                    format!("\"holidays\" must be a table, found {}", type_name(other)),
                ),
            }
        }

        // [nodes.<name>]
        let mut nodes = BTreeMap::new();
        let mut broken = BTreeSet::new();
        match top.get("nodes").map(|v| (v, v.get_ref())) {
            Some((_, DeValue::Table(t))) => {
                for (k, v) in t.iter() {
                    let nname = k.get_ref().to_string();
                    if !nname
                        .chars()
                        .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
                    {
                        self.err(
                            k.span(),
                            format!("node name \"{nname}\" may hold only letters, digits, _ and -"),
                        );
                    }
                    let DeValue::Table(nt) = v.get_ref() else {
                        self.err(
                            v.span(),
                            format!(
                                "node \"{nname}\" must be a table, found {}",
                                type_name(v.get_ref())
                            ),
                        );
                        continue;
                    };
                    if let Some(kind) = self.node(&nname, nt, k.span(), timezone) {
                        nodes.insert(
                            nname.clone(),
                            Node {
                                name: nname,
                                span: k.span(),
                                kind,
                            },
                        );
                    } else {
                        broken.insert(nname);
                    }
                }
            }
            Some((v, other)) => {
                self.err(
                    v.span(),
                    format!("\"nodes\" must be a table, found {}", type_name(other)),
                );
                ok = false;
            }
            None => {
                self.diags.push(
                    self.src
                        .error(0..0, "the file has no nodes (add [nodes.<name>] tables)"),
                );
                ok = false;
            }
        }

        // [[test]]
        let mut tests = Vec::new();
        if let Some(v) = top.get("test") {
            match v.get_ref() {
                DeValue::Array(a) => {
                    for item in a.iter() {
                        if let DeValue::Table(tt) = item.get_ref() {
                            if let Some(j) = self.journey(tt, item.span(), tests.len()) {
                                tests.push(j);
                            }
                        } else {
                            self.err(item.span(), "each [[test]] must be a table");
                        }
                    }
                }
                other => self.err(
                    v.span(),
                    format!(
                        "\"test\" must be an array of tables ([[test]]), found {}",
                        type_name(other)
                    ),
                ),
            }
        }
        self.finish(top);

        let start = start?;
        if !ok {
            return None;
        }
        Some(Plan {
            name,
            source: SourceFile::new("", String::new()),
            start,
            languages,
            timezone,
            numbers,
            is_default,
            holidays,
            nodes,
            broken,
            tests,
        })
    }

    fn node(
        &mut self,
        name: &str,
        t: &DeTable<'_>,
        anchor: Range<usize>,
        plan_tz: Tz,
    ) -> Option<NodeKind> {
        let mut nt = Tbl::new(t, anchor.clone(), format!("node \"{name}\""));
        let ty = self.req_string(&mut nt, "type")?;
        nt.what = format!("{} node \"{name}\"", ty.v);
        let kind = match ty.v.as_str() {
            "menu" => self.menu(&mut nt).map(NodeKind::Menu),
            "play" => {
                let prompts = self.prompts(&mut nt, "prompts");
                let barge_in = self.boolean(&mut nt, "barge_in", false);
                let next = self.node_ref(&mut nt, "next");
                next.map(|next| {
                    NodeKind::Play(Play {
                        prompts,
                        next,
                        barge_in,
                    })
                })
            }
            "collect" => self.collect(&mut nt).map(NodeKind::Collect),
            "branch" => self.branch(&mut nt, plan_tz).map(NodeKind::Branch),
            "language" => {
                let language = self.req_string(&mut nt, "language");
                if let Some(l) = &language
                    && !LANGUAGES.contains(&l.v.as_str())
                {
                    self.err(
                        l.span.clone(),
                        format!(
                            "unknown language \"{}\" (known: {})",
                            l.v,
                            LANGUAGES.join(", ")
                        ),
                    );
                }
                let next = self.node_ref(&mut nt, "next");
                match (language, next) {
                    (Some(language), Some(next)) => {
                        Some(NodeKind::Language(SetLanguage { language, next }))
                    }
                    _ => None,
                }
            }
            "queue" => {
                let queue = self.req_string(&mut nt, "queue");
                let priority = self.integer(&mut nt, "priority", 0, (-1000, 1000)) as i32;
                let prompts = self.prompts(&mut nt, "prompts");
                let on_full = self.string(&mut nt, "on_full");
                let on_timeout = self.string(&mut nt, "on_timeout");
                let on_empty = self.string(&mut nt, "on_empty");
                let on_key = self.string(&mut nt, "on_key");
                let overflow = self.string(&mut nt, "overflow");
                queue.map(|queue| {
                    NodeKind::Queue(Queue {
                        queue,
                        priority,
                        prompts,
                        on_full,
                        on_timeout,
                        on_empty,
                        on_key,
                        overflow,
                    })
                })
            }
            "transfer" => {
                let uri = self.req_string(&mut nt, "uri");
                if let Some(u) = &uri {
                    let lower = u.v.to_ascii_lowercase();
                    if !(lower.starts_with("sip:")
                        || lower.starts_with("sips:")
                        || lower.starts_with("tel:"))
                        || u.v.len() < 5
                        || u.v.chars().any(|c| c.is_whitespace() || c.is_control())
                    {
                        self.err(
                            u.span.clone(),
                            format!("\"{}\" is not a SIP URI (write sip:user@host)", u.v),
                        );
                    }
                }
                let prompts = self.prompts(&mut nt, "prompts");
                uri.map(|uri| NodeKind::Transfer(Transfer { uri, prompts }))
            }
            "hangup" => {
                let prompts = self.prompts(&mut nt, "prompts");
                Some(NodeKind::Hangup(Hangup { prompts }))
            }
            other => {
                let hint = suggest(other, NODE_TYPES.iter().copied())
                    .map(|s| format!("; did you mean \"{s}\"?"))
                    .unwrap_or_default();
                self.err(
                    ty.span,
                    format!(
                        "unknown node type \"{other}\" (known: {}){hint}",
                        NODE_TYPES.join(", ")
                    ),
                );
                return None;
            }
        };
        self.finish(nt);
        kind
    }

    fn menu(&mut self, nt: &mut Tbl<'_, '_>) -> Option<Menu> {
        let prompts = self.prompts(nt, "prompts");
        let reprompt = self.prompts(nt, "reprompt");
        let invalid_prompts = self.prompts(nt, "invalid_prompts");
        let timeout_prompts = self.prompts(nt, "timeout_prompts");
        let timeout = self.duration(nt, "timeout", DEFAULT_TIMEOUT);
        let digit_timeout = self.duration(nt, "digit_timeout", DEFAULT_DIGIT_TIMEOUT);
        let max_retries =
            self.integer(nt, "max_retries", DEFAULT_MAX_RETRIES as i64, (0, 10)) as u32;
        let exhausted = self.string(nt, "exhausted");
        let barge_in = self.boolean(nt, "barge_in", true);
        let repeat_key = self.key_char(nt, "repeat_key");
        let mut options = Vec::new();
        match nt.get("options") {
            Some(v) => match v.get_ref() {
                DeValue::Table(ot) => {
                    for (k, target) in ot.iter() {
                        let digits = k.get_ref().to_string();
                        if digits.is_empty() || digits.len() > 8 || !digits.chars().all(is_dtmf) {
                            self.err(k.span(), format!("menu option \"{digits}\" must be 1 to 8 telephone keys (0-9, *, #)"));
                            continue;
                        }
                        match target.get_ref() {
                            DeValue::String(s) => options.push(MenuOption {
                                digits: Sp::new(digits, k.span()),
                                next: Sp::new(s.to_string(), target.span()),
                            }),
                            other => self.err(
                                target.span(),
                                format!(
                                    "option \"{digits}\" must name a node, found {}",
                                    type_name(other)
                                ),
                            ),
                        }
                    }
                }
                other => self.err(
                    v.span(),
                    format!(
                        "\"options\" must be a table of digit = \"node\", found {}",
                        type_name(other)
                    ),
                ),
            },
            None => {
                let (a, w) = (nt.anchor.clone(), nt.what.clone());
                self.err(a, format!("{w} needs \"options\" (digit = \"node\")"));
                return None;
            }
        }
        if prompts.is_empty() {
            let (a, w) = (nt.anchor.clone(), nt.what.clone());
            self.err(a, format!("{w} needs \"prompts\" (the greeting)"));
        }
        options.sort_by_key(|o| o.digits.span.start);
        Some(Menu {
            prompts,
            reprompt,
            invalid_prompts,
            timeout_prompts,
            options,
            repeat_key,
            timeout,
            digit_timeout,
            max_retries,
            exhausted,
            barge_in,
        })
    }

    fn collect(&mut self, nt: &mut Tbl<'_, '_>) -> Option<Collect> {
        let prompts = self.prompts(nt, "prompts");
        let reprompt = self.prompts(nt, "reprompt");
        let invalid_prompts = self.prompts(nt, "invalid_prompts");
        let timeout_prompts = self.prompts(nt, "timeout_prompts");
        let max = MAX_COLLECT_DIGITS as i64;
        let min_digits = self.integer(nt, "min_digits", 1, (1, max)) as usize;
        let max_digits = self.integer(nt, "max_digits", min_digits as i64, (1, max)) as usize;
        if max_digits < min_digits {
            let sp = nt
                .get("max_digits")
                .map(|v| v.span())
                .unwrap_or(nt.anchor.clone());
            self.err(
                sp,
                format!("max_digits ({max_digits}) is smaller than min_digits ({min_digits})"),
            );
        }
        let terminator = self.key_char(nt, "terminator").map(|c| c.v);
        let timeout = self.duration(nt, "timeout", DEFAULT_TIMEOUT);
        let digit_timeout = self.duration(nt, "digit_timeout", DEFAULT_DIGIT_TIMEOUT);
        let pattern = match self.string(nt, "pattern") {
            Some(p) => match DigitPattern::parse(&p.v) {
                Ok(dp) => {
                    let (lo, hi) = dp.length_bounds();
                    if hi.is_some_and(|hi| hi < min_digits) || lo > max_digits {
                        self.err(p.span.clone(), format!("pattern \"{}\" can never match {min_digits} to {max_digits} digits", p.v));
                    }
                    Some(Sp::new(dp, p.span))
                }
                Err(e) => {
                    self.err(p.span, format!("bad pattern \"{}\": {e}", p.v));
                    None
                }
            },
            None => None,
        };
        let variable = self.req_string(nt, "variable");
        if let Some(v) = &variable
            && (v.v.is_empty() || !v.v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        {
            self.err(
                v.span.clone(),
                format!(
                    "variable name \"{}\" may hold only letters, digits and _",
                    v.v
                ),
            );
        }
        let max_retries =
            self.integer(nt, "max_retries", DEFAULT_MAX_RETRIES as i64, (0, 10)) as u32;
        let next = self.node_ref(nt, "next");
        let exhausted = self.string(nt, "exhausted");
        let barge_in = self.boolean(nt, "barge_in", true);
        if prompts.is_empty() {
            let (a, w) = (nt.anchor.clone(), nt.what.clone());
            self.err(a, format!("{w} needs \"prompts\""));
        }
        Some(Collect {
            prompts,
            reprompt,
            invalid_prompts,
            timeout_prompts,
            min_digits,
            max_digits: max_digits.max(min_digits),
            terminator,
            timeout,
            digit_timeout,
            pattern,
            variable: variable?,
            max_retries,
            next: next?,
            exhausted,
            barge_in,
        })
    }

    fn branch(&mut self, nt: &mut Tbl<'_, '_>, plan_tz: Tz) -> Option<Branch> {
        let timezone = self.timezone(nt, plan_tz);
        let otherwise = self.node_ref(nt, "else");
        let mut cases = Vec::new();
        if let Some(v) = nt.get("cases") {
            match v.get_ref() {
                DeValue::Array(a) => {
                    for item in a.iter() {
                        match item.get_ref() {
                            DeValue::Table(ct) => {
                                if let Some(c) = self.case(ct, item.span()) {
                                    cases.push(c);
                                }
                            }
                            other => self.err(
                                item.span(),
                                format!("each case must be a table, found {}", type_name(other)),
                            ),
                        }
                    }
                }
                other => self.err(
                    v.span(),
                    format!(
                        "\"cases\" must be an array of tables, found {}",
                        type_name(other)
                    ),
                ),
            }
        }
        Some(Branch {
            timezone,
            cases,
            otherwise: otherwise?,
        })
    }

    fn case(&mut self, ct: &DeTable<'_>, span: Range<usize>) -> Option<Case> {
        let mut t = Tbl::new(ct, span.clone(), "a branch case");
        let mut conditions = Vec::new();
        if let Some(h) = self.string(&mut t, "holiday") {
            conditions.push(Condition::Holiday(h));
        }
        let days = self.strings(&mut t, "days");
        if !days.is_empty() {
            let mut set = 0u8;
            for d in &days {
                // "mon-fri" ranges as well as single days.
                let parsed = match d.v.split_once('-') {
                    Some((a, b)) => match (parse_day(a), parse_day(b)) {
                        (Some(a), Some(b)) => {
                            let mut w = a;
                            set |= day_bit(w);
                            while w != b {
                                w = w.succ();
                                set |= day_bit(w);
                            }
                            true
                        }
                        _ => false,
                    },
                    None => parse_day(&d.v).map(|w| set |= day_bit(w)).is_some(),
                };
                if !parsed {
                    self.err(d.span.clone(), format!("\"{}\" is not a day of the week (mon..sun, or a range like \"mon-fri\")", d.v));
                }
            }
            conditions.push(Condition::Days(set));
        }
        if let Some(tr) = self.string(&mut t, "time") {
            let parsed =
                tr.v.split_once('-')
                    .and_then(|(a, b)| Some((parse_hhmm(a)?, parse_hhmm(b)?)));
            // "24:00" parses as midnight, so "00:00-24:00" (the whole day)
            // has start == end like an empty range; it is not empty.
            let whole_day =
                tr.v.split_once('-')
                    .is_some_and(|(_, b)| b.trim() == "24:00");
            match parsed {
                Some((start, end)) if start != end || whole_day => {
                    conditions.push(Condition::Time { start, end })
                }
                Some(_) => self.err(
                    tr.span,
                    format!("time range \"{}\" is empty (start equals end)", tr.v),
                ),
                None => self.err(
                    tr.span,
                    format!(
                        "\"{}\" is not a time range (write \"08:00-18:00\", 24-hour clock)",
                        tr.v
                    ),
                ),
            }
        }
        if let Some(v) = t.get("dates") {
            let items: Vec<&Val<'_>> = match v.get_ref() {
                DeValue::Array(a) => a.iter().collect(),
                _ => vec![v],
            };
            let mut ranges = Vec::new();
            for item in items {
                let s = match item.get_ref() {
                    DeValue::String(s) => s.to_string(),
                    DeValue::Datetime(d) => d.to_string(),
                    other => {
                        self.err(item.span(), format!("\"dates\" must hold \"YYYY-MM-DD\" or \"YYYY-MM-DD..YYYY-MM-DD\", found {}", type_name(other)));
                        continue;
                    }
                };
                let r = match s.split_once("..") {
                    Some((a, b)) => parse_date(a).zip(parse_date(b)),
                    None => parse_date(&s).map(|d| (d, d)),
                };
                match r {
                    Some((a, b)) if a <= b => ranges.push((a, b)),
                    Some(_) => self.err(item.span(), format!("date range \"{s}\" ends before it starts")),
                    None => self.err(item.span(), format!("\"{s}\" is not a date or date range (YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD)")),
                }
            }
            if !ranges.is_empty() {
                conditions.push(Condition::Dates(ranges));
            }
        }
        if let Some(name) = self.string(&mut t, "var") {
            let equals = self.string(&mut t, "equals");
            let pattern = self.string(&mut t, "matches");
            let test = match (equals, pattern) {
                (Some(e), None) => VarTest::Equals(e.v),
                (None, Some(p)) => match DigitPattern::parse(&p.v) {
                    Ok(dp) => VarTest::Matches(dp),
                    Err(e) => {
                        self.err(p.span, format!("bad pattern \"{}\": {e}", p.v));
                        VarTest::IsSet
                    }
                },
                (None, None) => VarTest::IsSet,
                (Some(e), Some(_)) => {
                    self.err(
                        e.span,
                        "a case may test a variable with \"equals\" or \"matches\", not both",
                    );
                    VarTest::IsSet
                }
            };
            conditions.push(Condition::Var { name, test });
        } else {
            for k in ["equals", "matches"] {
                if let Some(v) = ct.get(k) {
                    self.err(
                        v.span(),
                        format!("\"{k}\" needs \"var\" (the variable to test)"),
                    );
                }
            }
            t.used.extend(["equals", "matches"]);
        }
        let next = self.node_ref(&mut t, "next");
        self.finish(t);
        if conditions.is_empty() && !ct.is_empty() {
            self.err(span.clone(), "this case has no condition (holiday, days, time, dates or var); use the branch's \"else\" instead");
        }
        Some(Case {
            span,
            conditions,
            next: next?,
        })
    }

    fn journey(&mut self, tt: &DeTable<'_>, span: Range<usize>, index: usize) -> Option<Journey> {
        let mut t = Tbl::new(tt, span.clone(), "a [[test]]");
        let name = self
            .string(&mut t, "name")
            .map(|s| s.v)
            .unwrap_or_else(|| format!("test {}", index + 1));
        let caller = self
            .string(&mut t, "caller")
            .map(|s| s.v)
            .unwrap_or_else(|| "5550000000".into());
        let number = self
            .string(&mut t, "number")
            .map(|s| s.v)
            .unwrap_or_default();
        let at = match t.get("at") {
            Some(v) => {
                let s = match v.get_ref() {
                    DeValue::String(s) => s.to_string(),
                    DeValue::Datetime(d) => d.to_string(),
                    _ => String::new(),
                };
                match parse_local_datetime(&s) {
                    Some(at) => Some(at),
                    None => {
                        self.err(v.span(), "\"at\" must be a local time such as 2026-12-24T10:00:00 or \"2026-12-24 10:00\"");
                        None
                    }
                }
            }
            None => None,
        };
        let press_raw = self.strings(&mut t, "press");
        let press = match parse_steps(&press_raw.iter().map(|p| p.v.as_str()).collect::<Vec<_>>()) {
            Ok(p) => p,
            Err(e) => {
                let sp = press_raw
                    .first()
                    .map(|p| p.span.clone())
                    .unwrap_or(span.clone());
                self.err(sp, e);
                Vec::new()
            }
        };
        let expect = self
            .req_string(&mut t, "expect")
            .and_then(|e| match e.v.parse::<Expect>() {
                Ok(x) => Some(Sp::new(x, e.span)),
                Err(msg) => {
                    self.err(e.span, msg);
                    None
                }
            });
        let visits = self.strings(&mut t, "visits");
        let language = self.string(&mut t, "language");
        self.finish(t);
        Some(Journey {
            name,
            span,
            caller,
            number,
            at,
            press,
            expect: expect?,
            visits,
            language,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn parse(text: &str) -> (Option<Plan>, Vec<Diagnostic>) {
        let src = SourceFile::new("t.toml", text.to_string());
        let mut d = Vec::new();
        let p = parse_plan(src, "t", &mut d);
        (p, d)
    }

    #[test]
    fn parses_every_node_kind() {
        let (p, d) = parse(
            r##"
[plan]
start = "hola"
languages = ["es-MX", "en"]
numbers = ["100"]
default = true

[holidays.mx]
2026-01-01 = "Año Nuevo"

[nodes.hola]
type = "play"
prompts = ["bienvenida", "en/welcome"]
next = "hora"

[nodes.hora]
type = "branch"
timezone = "America/Tijuana"
cases = [
  { holiday = "mx", next = "adios" },
  { days = ["mon-fri"], time = "08:00-18:00", next = "menu" },
  { dates = ["2026-12-24..2026-12-31", 2027-01-06], next = "adios" },
  { var = "language", equals = "en", next = "menu" },
]
else = "adios"

[nodes.menu]
type = "menu"
prompts = ["menu"]
reprompt = ["menu_corto"]
timeout = "4s"
digit_timeout = 1.5
max_retries = 3
exhausted = "adios"
repeat_key = "*"
options = { 1 = "cola", 2 = "cita", 3 = "ingles", 9 = "fuera" }

[nodes.cita]
type = "collect"
prompts = ["cita", { say = "digits", var = "caller" }]
min_digits = 8
max_digits = 8
terminator = "#"
pattern = "XXXXXXXX"
variable = "cita"
next = "cola"

[nodes.ingles]
type = "language"
language = "en"
next = "menu"

[nodes.cola]
type = "queue"
queue = "pasaportes"
priority = 5
on_timeout = "adios"
overflow = "fuera"

[nodes.fuera]
type = "transfer"
uri = "sip:operador@10.0.0.1"

[nodes.adios]
type = "hangup"
prompts = "despedida"

[[test]]
press = "1"
expect = "queue:pasaportes"
"##,
        );
        assert!(d.is_empty(), "{d:?}");
        let p = p.unwrap();
        assert_eq!(p.nodes.len(), 8);
        assert_eq!(p.languages.len(), 2);
        let NodeKind::Menu(m) = &p.nodes["menu"].kind else {
            panic!()
        };
        assert_eq!(m.options.len(), 4);
        assert_eq!(m.timeout, Duration::from_secs(4));
        assert_eq!(m.digit_timeout, Duration::from_millis(1500));
        assert!(m.barge_in);
        let NodeKind::Branch(b) = &p.nodes["hora"].kind else {
            panic!()
        };
        assert_eq!(b.timezone, chrono_tz::America::Tijuana);
        assert_eq!(b.cases.len(), 4);
        let NodeKind::Collect(c) = &p.nodes["cita"].kind else {
            panic!()
        };
        assert_eq!(
            (c.min_digits, c.max_digits, c.terminator),
            (8, 8, Some('#'))
        );
        assert_eq!(p.tests.len(), 1);
        assert_eq!(p.holidays["mx"].days.len(), 1);
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn suggestions_catch_typos() {
        assert_eq!(suggest("nxet", ["next", "prompts"]), Some("next"));
        assert_eq!(suggest("zzzzzz", ["next", "prompts"]), None);
    }
}
