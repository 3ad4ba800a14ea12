//! Tests across the room: one per validator error kind (with line and
//! column), interpreter journeys in virtual time, and the shipped plan.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, TimeZone, Utc};

use super::diag::{Diagnostic, Severity, SourceFile};
use super::interpreter::*;
use super::model::Plan;
use super::{parse, validate};

fn parse_only(text: &str) -> (Option<Plan>, Vec<Diagnostic>) {
    let src = SourceFile::new("t.toml", text.to_string());
    let mut d = Vec::new();
    let p = parse::parse_plan(src, "t", &mut d);
    (p, d)
}

/// Prompts exist unless their name starts with "falta", or with "solo_es"
/// in English.
fn fake_prompts(lang: &str, name: &str) -> bool {
    !(name.starts_with("falta") || (lang == "en" && name.starts_with("solo_es")))
}

fn check(text: &str) -> Vec<Diagnostic> {
    let (p, mut d) = parse_only(text);
    if let Some(p) = p {
        d.extend(validate::validate(
            &p,
            &["pasaportes".to_string(), "operador".to_string()],
            &fake_prompts,
        ));
    }
    d
}

fn find<'a>(d: &'a [Diagnostic], needle: &str) -> &'a Diagnostic {
    d.iter()
        .find(|x| x.message.contains(needle))
        .unwrap_or_else(|| panic!("no diagnostic containing {needle:?} in {d:#?}"))
}

fn at(d: &Diagnostic) -> (Severity, usize, usize, &str) {
    (d.severity, d.line, d.col, d.text.as_str())
}

const BASE: &str = r#"[plan]
start = "inicio"
languages = ["es-MX", "en"]

[nodes.inicio]
type = "menu"
prompts = ["saludo"]
options = { 1 = "cola", 2 = "adios" }

[nodes.cola]
type = "queue"
queue = "pasaportes"
overflow = "adios"

[nodes.adios]
type = "hangup"
prompts = ["despedida"]
"#;

#[test]
fn base_plan_is_clean() {
    let d = check(BASE);
    assert!(d.is_empty(), "{d:#?}");
}

#[test]
fn error_toml_syntax() {
    let d = check("[plan]\nstart = \"inicio\nx = 1\n");
    let e = find(&d, "TOML syntax");
    assert_eq!((e.severity, e.line), (Severity::Error, 2));
    assert!(e.col >= 9, "{e:?}");
}

#[test]
fn error_unknown_key_points_at_the_key() {
    let text = BASE.replace(
        "overflow = \"adios\"",
        "overflow = \"adios\"\nnxet = \"adios\"",
    );
    let d = check(&text);
    let e = find(&d, "unknown key \"nxet\"");
    assert_eq!(at(e), (Severity::Error, 14, 1, "nxet"));
    assert!(
        e.message.contains("did you mean \"next\"") || e.message.contains("known keys"),
        "{}",
        e.message
    );
}

#[test]
fn error_unknown_node_reference() {
    let text = BASE.replace("2 = \"adios\"", "2 = \"pasaporte\"");
    let d = check(&text);
    let e = find(&d, "unknown node \"pasaporte\"");
    assert_eq!(at(e), (Severity::Error, 8, 29, "\"pasaporte\""));
}

#[test]
fn warning_unreachable_node() {
    let text = format!("{BASE}\n[nodes.huerfano]\ntype = \"hangup\"\n");
    let d = check(&text);
    let w = find(&d, "unreachable");
    assert_eq!(at(w), (Severity::Warning, 19, 8, "huerfano"));
    assert!(!d.iter().any(Diagnostic::is_error), "{d:#?}");
}

#[test]
fn error_digit_used_twice_in_a_menu() {
    let text = BASE.replace(
        "options = { 1 = \"cola\", 2 = \"adios\" }",
        "options = { 1 = \"cola\", \"1\" = \"adios\" }",
    );
    let d = check(&text);
    let e = find(&d, "digit \"1\" is used twice");
    assert_eq!((e.severity, e.line, e.col), (Severity::Error, 8, 25));

    let text = BASE.replace(
        "prompts = [\"saludo\"]",
        "prompts = [\"saludo\"]\nrepeat_key = \"2\"",
    );
    let d = check(&text);
    let e = find(&d, "digit \"2\" is used twice in menu \"inicio\"");
    assert_eq!(at(e), (Severity::Error, 8, 14, "\"2\""));
}

#[test]
fn error_missing_prompt_file_in_one_language() {
    let text = BASE.replace(
        "prompts = [\"despedida\"]",
        "prompts = [\"despedida\", \"solo_es_aviso\"]",
    );
    let d = check(&text);
    let e = find(&d, "missing prompt file prompts/en/solo_es_aviso.wav");
    assert_eq!(at(e), (Severity::Error, 17, 25, "\"solo_es_aviso\""));
    assert!(
        !d.iter()
            .any(|x| x.message.contains("prompts/es-MX/solo_es"))
    );
}

#[test]
fn error_loop_with_no_way_out() {
    let text = BASE.replace("2 = \"adios\"", "2 = \"a\"")
        + "\n[nodes.a]\ntype = \"play\"\nprompts = [\"x\"]\nnext = \"b\"\n\n[nodes.b]\ntype = \"play\"\nprompts = [\"y\"]\nnext = \"a\"\n";
    let d = check(&text);
    let e = find(&d, "loop with no way out: a → b → a");
    assert_eq!(at(e), (Severity::Error, 19, 8, "a"));
}

#[test]
fn error_loop_that_never_waits() {
    // A branch and a language switch feeding each other: a way out exists,
    // but when the condition holds the call spins without waiting.
    let text = BASE.replace("2 = \"adios\"", "2 = \"hora\"")
        + "\n[nodes.hora]\ntype = \"branch\"\ncases = [{ days = \"mon-sun\", next = \"ingles\" }]\nelse = \"adios\"\n\n[nodes.ingles]\ntype = \"language\"\nlanguage = \"en\"\nnext = \"hora\"\n";
    let d = check(&text);
    let e = find(&d, "loop that never waits");
    assert_eq!(e.severity, Severity::Error);
    assert!(e.line == 19 || e.line == 24, "{e:?}");
}

#[test]
fn error_language_not_enabled() {
    let text = BASE
        .replace("languages = [\"es-MX\", \"en\"]", "languages = [\"es-MX\"]")
        .replace("2 = \"adios\"", "2 = \"ingles\"")
        + "\n[nodes.ingles]\ntype = \"language\"\nlanguage = \"en\"\nnext = \"adios\"\n";
    let d = check(&text);
    let e = find(&d, "language \"en\" is not enabled");
    assert_eq!(at(e), (Severity::Error, 21, 12, "\"en\""));
}

#[test]
fn a_wrong_key_typed_ahead_drops_the_rest() {
    let (mut c, _) = Call::new(IVR, tuesday_10());
    c.digit('6'); // -> aviso (play, barge-in)
    let cmds = c.digit('9');
    assert_eq!(
        cmds,
        vec![
            IvrCommand::StopPlayback,
            visited("menu"),
            play(&["es-MX/invalida", "es-MX/corto"], true, 3)
        ]
    );
    assert_eq!(c.ivr.current_node(), "menu");
}

#[test]
fn error_unknown_queue() {
    let text = BASE.replace("queue = \"pasaportes\"", "queue = \"pasaporte\"");
    let d = check(&text);
    let e = find(
        &d,
        "unknown queue \"pasaporte\"; did you mean \"pasaportes\"?",
    );
    assert_eq!(at(e), (Severity::Error, 12, 9, "\"pasaporte\""));
}

#[test]
fn error_invalid_time_zone() {
    let text = BASE.replace(
        "languages = [\"es-MX\", \"en\"]",
        "languages = [\"es-MX\", \"en\"]\ntimezone = \"America/Mexico\"",
    );
    let d = check(&text);
    let e = find(&d, "unknown time zone \"America/Mexico\"");
    assert_eq!(at(e), (Severity::Error, 4, 12, "\"America/Mexico\""));
}

#[test]
fn error_invalid_time_range_and_days() {
    let text = BASE.replace("2 = \"adios\"", "2 = \"hora\"")
        + "\n[nodes.hora]\ntype = \"branch\"\ncases = [\n  { time = \"08:00-25:00\", next = \"adios\" },\n  { days = [\"mon\", \"funday\"], next = \"adios\" },\n  { dates = \"2026-12-31..2026-01-01\", next = \"adios\" },\n]\nelse = \"adios\"\n";
    let d = check(&text);
    let e = find(&d, "is not a time range");
    assert_eq!(at(e), (Severity::Error, 22, 12, "\"08:00-25:00\""));
    let e = find(&d, "\"funday\" is not a day");
    assert_eq!(at(e), (Severity::Error, 23, 20, "\"funday\""));
    let e = find(&d, "ends before it starts");
    assert_eq!((e.line, e.col), (24, 13));
}

#[test]
fn error_unknown_holiday_list() {
    let text = BASE.replace("2 = \"adios\"", "2 = \"hora\"")
        + "\n[holidays.oficiales]\n2026-01-01 = \"Año Nuevo\"\n\n[nodes.hora]\ntype = \"branch\"\ncases = [{ holiday = \"oficial\", next = \"adios\" }]\nelse = \"adios\"\n";
    let d = check(&text);
    let e = find(
        &d,
        "unknown holiday list \"oficial\"; did you mean \"oficiales\"?",
    );
    assert_eq!(at(e), (Severity::Error, 24, 22, "\"oficial\""));
}

#[test]
fn error_wrong_value_type_and_unknown_node_type() {
    let text = BASE
        .replace(
            "prompts = [\"saludo\"]",
            "prompts = [\"saludo\"]\nmax_retries = \"tres\"",
        )
        .replace("type = \"hangup\"", "type = \"colgar\"");
    let d = check(&text);
    let e = find(&d, "\"max_retries\" must be a whole number");
    assert_eq!(at(e), (Severity::Error, 8, 15, "\"tres\""));
    let e = find(&d, "unknown node type \"colgar\"");
    assert_eq!(at(e), (Severity::Error, 17, 8, "\"colgar\""));
}

#[test]
fn error_bad_collect_settings() {
    let text = BASE.replace("2 = \"adios\"", "2 = \"cita\"")
        + "\n[nodes.cita]\ntype = \"collect\"\nprompts = [\"cita\"]\nmin_digits = 8\nmax_digits = 8\npattern = \"XXXX\"\nterminator = \"##\"\nvariable = \"cita\"\nnext = \"adios\"\n";
    let d = check(&text);
    let e = find(&d, "can never match 8 to 8 digits");
    assert_eq!(at(e), (Severity::Error, 24, 11, "\"XXXX\""));
    let e = find(&d, "\"terminator\" must be one telephone key");
    assert_eq!((e.line, e.col), (25, 14));
}

#[test]
fn warnings_for_unset_variables_and_prefix_options() {
    let text = BASE.replace("2 = \"adios\"", "2 = \"adios\", 21 = \"hora\"")
        + "\n[nodes.hora]\ntype = \"branch\"\ncases = [{ var = \"cita\", matches = \"X.\", next = \"adios\" }]\nelse = \"adios\"\n";
    let d = check(&text);
    let w = find(&d, "variable \"cita\" is never set");
    assert_eq!(at(w), (Severity::Warning, 21, 18, "\"cita\""));
    let w = find(&d, "option \"2\" is a prefix of \"21\"");
    assert_eq!(w.severity, Severity::Warning);
    assert!(!d.iter().any(Diagnostic::is_error), "{d:#?}");
}

// --- load_dir: entry points, journeys, the shipped plan -----------------

fn write_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, text) in files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().expect("has parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }
    dir
}

fn with_prompts(mut files: Vec<(&'static str, String)>) -> Vec<(String, String)> {
    for lang in ["es-MX", "en"] {
        let words = super::say::words_table(lang).iter().map(|(n, _)| *n);
        for name in ["saludo", "despedida"].into_iter().chain(words) {
            files.push(("", format!("{lang}/{name}")));
        }
    }
    files
        .into_iter()
        .map(|(n, t)| {
            if n.is_empty() {
                (format!("prompts/{t}.wav"), String::new())
            } else {
                (n.to_string(), t)
            }
        })
        .collect()
}

fn load(
    files: Vec<(&'static str, String)>,
) -> Result<(super::Dialplans, Vec<Diagnostic>), Vec<Diagnostic>> {
    let files = with_prompts(files);
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let dir = write_dir(&refs);
    super::load_dir(dir.path(), &["pasaportes".to_string()])
}

#[test]
fn entry_points_route_numbers_and_default() {
    let a = BASE.replace(
        "start = \"inicio\"",
        "start = \"inicio\"\nnumbers = [\"100\"]\ndefault = true",
    );
    let b = BASE.replace(
        "start = \"inicio\"",
        "name = \"otro\"\nstart = \"inicio\"\nnumbers = [\"200\"]",
    );
    let (set, _) = load(vec![("a.toml", a), ("b.toml", b)]).expect("loads");
    assert_eq!(set.route("200").expect("routed").name, "otro");
    assert_eq!(set.route("100").expect("routed").name, "a");
    assert_eq!(set.route("999").expect("default").name, "a");
}

#[test]
fn error_number_answered_by_two_plans() {
    let a = BASE.replace(
        "start = \"inicio\"",
        "start = \"inicio\"\nnumbers = [\"100\"]",
    );
    let b = BASE.replace(
        "start = \"inicio\"",
        "name = \"otro\"\nstart = \"inicio\"\nnumbers = [\"100\"]",
    );
    let d = load(vec![("a.toml", a), ("b.toml", b)]).expect_err("must fail");
    let e = find(&d, "number \"100\" is already answered by plan \"a\"");
    assert_eq!((e.line, e.col), (4, 12));
    assert!(e.file.ends_with("b.toml"));
}

#[test]
fn error_failing_journey_test_points_at_expect() {
    let a = format!(
        "{BASE}\n[[test]]\nname = \"uno\"\npress = \"1\"\nexpect = \"queue:pasaportes\"\n\n[[test]]\nname = \"dos\"\npress = \"2\"\nexpect = \"queue:pasaportes\"\n"
    );
    let d = load(vec![("a.toml", a)]).expect_err("second journey fails");
    let e = find(
        &d,
        "journey test \"dos\" ended with hangup, expected queue:pasaportes",
    );
    assert_eq!(at(e), (Severity::Error, 27, 10, "\"queue:pasaportes\""));
    assert!(!d.iter().any(|x| x.message.contains("\"uno\"")));
}

#[test]
fn error_missing_prompt_file_found_on_disk() {
    let a = BASE.replace("[\"despedida\"]", "[\"despedida\", \"adios_final\"]");
    let d = load(vec![("a.toml", a)]).expect_err("missing wav");
    let e = find(&d, "missing prompt file prompts/es-MX/adios_final.wav");
    assert_eq!((e.line, e.col), (17, 25));
}

fn shipped_queues() -> Vec<String> {
    [
        "pasaportes",
        "matricula",
        "visas",
        "registro_civil",
        "proteccion",
        "operador",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn shipped_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dialplans")
}

#[test]
fn shipped_dialplans_load_without_errors_and_pass_their_journeys() {
    let (set, warnings) = match super::load_dir(&shipped_dir(), &shipped_queues()) {
        Ok(x) => x,
        Err(d) => panic!(
            "{}",
            d.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join("\n\n")
        ),
    };
    assert!(warnings.is_empty(), "{warnings:#?}");
    let plan = set
        .route("18776394835")
        .expect("mexitel answers its number");
    assert_eq!(plan.name, "mexitel");
    assert!(plan.tests.len() >= 15);
    // Every key the plan can play exists and says something.
    for key in set.prompt_keys() {
        assert!(set.prompt_duration(&key) > Duration::ZERO, "{key}");
        assert!(
            set.words(&key).is_some_and(|w| !w.is_empty()),
            "{key} has no words"
        );
    }
    let mut out = Vec::new();
    assert!(super::check_command(
        &shipped_dir(),
        &shipped_queues(),
        &mut out
    ));
    let out = String::from_utf8(out).expect("utf8");
    assert!(out.starts_with("ok: 1 plan(s)"), "{out}");
}

#[test]
fn shipped_holidays_fall_on_the_legal_days() {
    use chrono::{Datelike, Weekday};
    let (set, _) = super::load_dir(&shipped_dir(), &shipped_queues()).expect("loads");
    let plan = set.plan("mexitel").expect("plan");
    let days = &plan.holidays["oficiales"].days;
    for year in [2026, 2027] {
        // Constitution: first Monday of February; Juárez: third Monday of
        // March; Revolution: third Monday of November.
        let nth_monday = |month: u32, n: u32| {
            let first = NaiveDate::from_ymd_opt(year, month, 1).expect("date");
            let offset = (7 + Weekday::Mon.num_days_from_monday()
                - first.weekday().num_days_from_monday())
                % 7;
            first + chrono::Days::new(u64::from(offset + 7 * (n - 1)))
        };
        for d in [nth_monday(2, 1), nth_monday(3, 3), nth_monday(11, 3)] {
            assert!(days.contains_key(&d), "{d} missing");
        }
        for (m, d) in [(1, 1), (5, 1), (9, 16), (12, 25)] {
            assert!(days.contains_key(&NaiveDate::from_ymd_opt(year, m, d).expect("date")));
        }
    }
    assert_eq!(days.len(), 18);
}

#[test]
fn prompt_index_matches_say_tables() {
    for (lang, table) in [
        ("es-MX", super::say::WORDS_ES),
        ("en", super::say::WORDS_EN),
    ] {
        let text =
            std::fs::read_to_string(shipped_dir().join("prompts").join(lang).join("index.toml"))
                .expect("index");
        let index: std::collections::BTreeMap<String, String> =
            toml::from_str(&text).expect("index parses");
        for (name, words) in table {
            assert_eq!(
                index.get(*name).map(String::as_str),
                Some(*words),
                "{lang}/{name}"
            );
        }
    }
}

#[test]
fn simulate_prints_the_journey() {
    let mut out = Vec::new();
    let at = super::parse_at("2026-12-01 10:00").expect("time");
    super::simulate_command(
        &shipped_dir(),
        &shipped_queues(),
        "mexitel",
        &["1", "9", "12345678#"],
        Some(at),
        &mut out,
    )
    .expect("simulates");
    let out = String::from_utf8(out).expect("utf8");
    println!("{out}");
    assert!(out.contains("→ menu_principal (menu)"), "{out}");
    assert!(out.contains("prompts/es-MX/menu_principal.wav"), "{out}");
    assert!(out.contains("\"Para pasaportes, oprima uno."), "{out}");
    assert!(out.contains("☎ pressed 9"), "{out}");
    assert!(out.contains("\"ocho\""), "{out}");
    assert!(out.contains("■ queue \"operador\" (priority 0)"), "{out}");
    assert!(out.contains("variables: cita=12345678"), "{out}");
    assert!(
        out.contains("end: queue:operador (language es-MX)"),
        "{out}"
    );

    let err = super::simulate_command(
        &shipped_dir(),
        &shipped_queues(),
        "mexitel",
        &["1", "x"],
        None,
        &mut Vec::new(),
    );
    assert!(err.is_err());
}

// --- interpreter journeys in virtual time ---------------------------------

const IVR: &str = r##"[plan]
start = "menu"
languages = ["es-MX", "en"]

[holidays.mx]
2026-12-25 = "Navidad"

[nodes.menu]
type = "menu"
prompts = ["saludo"]
reprompt = ["corto"]
invalid_prompts = ["invalida"]
timeout_prompts = ["nada"]
timeout = "5s"
digit_timeout = "2s"
max_retries = 2
exhausted = "adios"
repeat_key = "*"
options = { 1 = "cola", 2 = "cita", 3 = "ingles", 4 = "cuatro", 41 = "cola", 5 = "hora", 6 = "aviso", 7 = "sordo" }

[nodes.sordo]
type = "menu"
prompts = ["largo"]
barge_in = false
options = { 1 = "cola" }

[nodes.aviso]
type = "play"
prompts = ["aviso"]
barge_in = true
next = "menu"

[nodes.cuatro]
type = "hangup"

[nodes.cita]
type = "collect"
prompts = ["cita"]
invalid_prompts = ["invalida"]
min_digits = 4
max_digits = 6
terminator = "#"
pattern = "ZX."
variable = "cita"
timeout = "5s"
digit_timeout = "3s"
max_retries = 1
next = "leer"
exhausted = "adios"

[nodes.leer]
type = "play"
prompts = ["su_cita", { say = "digits", var = "cita" }]
next = "cola"

[nodes.ingles]
type = "language"
language = "en"
next = "menu"

[nodes.hora]
type = "branch"
cases = [
  { holiday = "mx", next = "cerrado" },
  { days = "mon-fri", time = "08:00-18:00", next = "cola" },
  { days = ["sat"], time = "22:00-02:00", next = "noche" },
]
else = "cerrado"

[nodes.noche]
type = "transfer"
uri = "sip:guardia@example.com"

[nodes.cerrado]
type = "hangup"
prompts = ["cerrado"]

[nodes.cola]
type = "queue"
queue = "pasaportes"
priority = 3
prompts = ["espere"]
on_full = "lleno"
on_key = "menu"
overflow = "adios"

[nodes.lleno]
type = "hangup"
prompts = ["lleno"]

[nodes.adios]
type = "hangup"
prompts = ["adios"]
"##;

fn ivr_plan(text: &str) -> Arc<Plan> {
    let (p, d) = parse_only(text);
    assert!(d.is_empty(), "{d:#?}");
    Arc::new(p.expect("plan"))
}

/// A Tuesday at 10:00 in Mexico City.
fn tuesday_10() -> DateTime<Utc> {
    chrono_tz::America::Mexico_City
        .with_ymd_and_hms(2026, 12, 1, 10, 0, 0)
        .single()
        .expect("time")
        .with_timezone(&Utc)
}

struct Call {
    ivr: Interpreter,
    now: Instant,
    wall: DateTime<Utc>,
}

impl Call {
    fn new(text: &str, wall: DateTime<Utc>) -> (Call, Vec<IvrCommand>) {
        let info = CallInfo {
            caller: "5551234".into(),
            called: "100".into(),
        };
        let mut ivr = Interpreter::new(ivr_plan(text), info);
        let now = Instant::now();
        let cmds = ivr.start(now, wall);
        (Call { ivr, now, wall }, cmds)
    }
    fn ev(&mut self, ev: IvrEvent) -> Vec<IvrCommand> {
        self.now += Duration::from_millis(100);
        self.ivr.handle(ev, self.now, self.wall)
    }
    fn done(&mut self, token: u64) -> Vec<IvrCommand> {
        self.ev(IvrEvent::PlaybackDone { token })
    }
    fn digit(&mut self, d: char) -> Vec<IvrCommand> {
        self.ev(IvrEvent::Digit(d))
    }
    fn timer(&mut self, token: u64) -> Vec<IvrCommand> {
        self.ev(IvrEvent::Timer { token })
    }
}

fn visited(n: &str) -> IvrCommand {
    IvrCommand::Visited { node: n.into() }
}
fn play(prompts: &[&str], barge_in: bool, token: u64) -> IvrCommand {
    IvrCommand::Play {
        prompts: prompts.iter().map(|s| s.to_string()).collect(),
        barge_in,
        token,
    }
}
fn timer(token: u64, secs: u64) -> IvrCommand {
    IvrCommand::SetTimer {
        token,
        after: Duration::from_secs(secs),
    }
}

#[test]
fn menu_plays_greeting_waits_and_routes_a_digit() {
    let (mut c, cmds) = Call::new(IVR, tuesday_10());
    assert_eq!(
        cmds,
        vec![visited("menu"), play(&["es-MX/saludo"], true, 1)]
    );
    assert_eq!(c.done(1), vec![timer(2, 5)]);
    assert_eq!(
        c.digit('1'),
        vec![
            IvrCommand::CancelTimer { token: 2 },
            visited("cola"),
            play(&["es-MX/espere"], false, 3)
        ]
    );
    assert_eq!(
        c.done(3),
        vec![IvrCommand::Enqueue {
            queue: "pasaportes".into(),
            priority: 3
        }]
    );
    assert_eq!(
        c.ivr.end(),
        Some(&End::Queued {
            queue: "pasaportes".into(),
            priority: 3
        })
    );
    assert_eq!(c.ivr.path(), ["menu", "cola"]);
}

#[test]
fn menu_retries_on_timeout_and_invalid_then_goes_to_exhausted() {
    let (mut c, _) = Call::new(IVR, tuesday_10());
    c.done(1);
    // Timeout: "nada" then the short re-prompt.
    assert_eq!(
        c.timer(2),
        vec![play(&["es-MX/nada", "es-MX/corto"], true, 3)]
    );
    assert_eq!(c.done(3), vec![timer(4, 5)]);
    // Invalid key: "invalida" then the short re-prompt.
    assert_eq!(
        c.digit('9'),
        vec![
            IvrCommand::CancelTimer { token: 4 },
            play(&["es-MX/invalida", "es-MX/corto"], true, 5)
        ]
    );
    assert_eq!(c.done(5), vec![timer(6, 5)]);
    // Third failure with max_retries = 2: out.
    assert_eq!(
        c.timer(6),
        vec![visited("adios"), play(&["es-MX/adios"], false, 7)]
    );
    assert_eq!(c.done(7), vec![IvrCommand::Hangup]);
    assert!(c.ivr.is_finished());
    assert_eq!(c.ivr.end(), Some(&End::Hangup));
}

#[test]
fn stale_tokens_are_ignored() {
    let (mut c, _) = Call::new(IVR, tuesday_10());
    assert!(c.done(99).is_empty());
    assert!(c.timer(1).is_empty(), "a play token is not a timer token");
    c.done(1);
    c.digit('9'); // invalid: timer 2 cancelled, re-prompt token 3
    assert!(c.timer(2).is_empty(), "cancelled timer fired late");
    assert!(c.done(1).is_empty(), "old playback reported late");
}

#[test]
fn barge_in_stops_the_prompt_and_the_digit_chooses() {
    let (mut c, _) = Call::new(IVR, tuesday_10());
    assert_eq!(
        c.digit('1'),
        vec![
            IvrCommand::StopPlayback,
            visited("cola"),
            play(&["es-MX/espere"], false, 2)
        ]
    );
}

#[test]
fn without_barge_in_digits_during_the_prompt_are_ignored() {
    let (mut c, _) = Call::new(IVR, tuesday_10());
    c.digit('7');
    assert_eq!(c.ivr.current_node(), "sordo");
    // token 1 was stopped by barge-in; "largo" is token 2
    assert!(c.digit('1').is_empty());
    assert_eq!(c.done(2), vec![timer(3, 5)]);
    assert_eq!(c.digit('1')[1], visited("cola"));
}

#[test]
fn repeat_key_replays_without_counting_a_failure() {
    let (mut c, _) = Call::new(IVR, tuesday_10());
    c.done(1);
    assert_eq!(
        c.digit('*'),
        vec![
            IvrCommand::CancelTimer { token: 2 },
            play(&["es-MX/corto"], true, 3)
        ]
    );
    for _ in 0..5 {
        let t = match c.digit('*').last() {
            Some(IvrCommand::Play { token, .. }) => *token,
            other => panic!("{other:?}"),
        };
        c.done(t);
    }
    assert_eq!(c.ivr.current_node(), "menu");
    assert!(c.ivr.end().is_none());
}

#[test]
fn multi_digit_option_waits_for_the_inter_digit_timeout() {
    let (mut c, _) = Call::new(IVR, tuesday_10());
    c.done(1);
    // "4" is an option and a prefix of "41": wait digit_timeout (2s).
    assert_eq!(
        c.digit('4'),
        vec![IvrCommand::CancelTimer { token: 2 }, timer(3, 2)]
    );
    assert_eq!(
        c.digit('1')[..2],
        [IvrCommand::CancelTimer { token: 3 }, visited("cola")]
    );
    let (mut c, _) = Call::new(IVR, tuesday_10());
    c.done(1);
    c.digit('4');
    assert_eq!(c.timer(3), vec![visited("cuatro"), IvrCommand::Hangup]);
}

#[test]
fn collect_with_terminator_pattern_and_readback() {
    let (mut c, _) = Call::new(IVR, tuesday_10());
    c.digit('2');
    assert_eq!(c.ivr.current_node(), "cita");
    c.done(2);
    let mut last = Vec::new();
    for d in "1207#".chars() {
        last = c.digit(d);
    }
    assert_eq!(last[1], visited("leer"));
    assert_eq!(
        last[2],
        play(
            &[
                "es-MX/su_cita",
                "es-MX/num_uno",
                "es-MX/num_dos",
                "es-MX/num_cero",
                "es-MX/num_siete"
            ],
            false,
            8
        )
    );
    assert_eq!(c.ivr.vars()["cita"], "1207");
}

#[test]
fn collect_rejects_bad_input_and_stops_at_max_digits() {
    let (mut c, _) = Call::new(IVR, tuesday_10());
    c.digit('2');
    c.done(2);
    // Pattern ZX. refuses a leading zero: invalid, re-prompt.
    let mut last = Vec::new();
    for d in "0123#".chars() {
        last = c.digit(d);
    }
    assert!(
        matches!(&last[..], [IvrCommand::CancelTimer { .. }, IvrCommand::Play { prompts, .. }] if prompts == &["es-MX/invalida", "es-MX/cita"]),
        "{last:?}"
    );
    // max_digits = 6 ends input without the terminator.
    let mut last = Vec::new();
    for d in "987654".chars() {
        last = c.digit(d);
    }
    assert_eq!(last[1], visited("leer"));
    assert_eq!(c.ivr.vars()["cita"], "987654");
}

#[test]
fn collect_inter_digit_timeout_ends_input_and_short_input_fails() {
    let (mut c, _) = Call::new(IVR, tuesday_10());
    c.digit('2');
    c.done(2);
    let cmds = c.digit('5');
    let IvrCommand::SetTimer { token, after } = cmds[1] else {
        panic!("{cmds:?}")
    };
    assert_eq!(after, Duration::from_secs(3));
    // One digit then silence: too short (min 4), counts as invalid.
    let cmds = c.timer(token);
    assert!(matches!(&cmds[..], [IvrCommand::Play { .. }]), "{cmds:?}");
    // Second failure with max_retries = 1: exhausted.
    let IvrCommand::Play { token, .. } = cmds[0] else {
        unreachable!()
    };
    c.done(token);
    let cmds = c.digit('#');
    assert!(cmds.contains(&visited("adios")), "{cmds:?}");
}

fn branch_at(local: (i32, u32, u32, u32, u32), tz: chrono_tz::Tz) -> Vec<IvrCommand> {
    let (y, mo, d, h, mi) = local;
    let wall = tz
        .with_ymd_and_hms(y, mo, d, h, mi, 0)
        .single()
        .expect("time")
        .with_timezone(&Utc);
    let (mut c, _) = Call::new(IVR, wall);
    c.digit('5')
}

#[test]
fn branch_by_time_of_day_day_of_week_and_holiday() {
    let mx = chrono_tz::America::Mexico_City;
    // Tuesday 10:00 and 17:59: open.
    assert!(branch_at((2026, 12, 1, 10, 0), mx).contains(&visited("cola")));
    assert!(branch_at((2026, 12, 1, 17, 59), mx).contains(&visited("cola")));
    // 18:00 is closed (end exclusive), 07:59 too.
    assert!(branch_at((2026, 12, 1, 18, 0), mx).contains(&visited("cerrado")));
    assert!(branch_at((2026, 12, 1, 7, 59), mx).contains(&visited("cerrado")));
    // Christmas on a Friday: the holiday list wins.
    assert!(branch_at((2026, 12, 25, 10, 0), mx).contains(&visited("cerrado")));
    // A range across midnight on Saturday.
    assert!(branch_at((2026, 12, 5, 23, 0), mx).contains(&visited("noche")));
    assert!(branch_at((2026, 12, 5, 1, 30), mx).contains(&visited("noche")));
    // 10:00 in Tijuana is 12:00 in Mexico City: the plan's zone decides.
    let tj = chrono_tz::America::Tijuana;
    assert!(branch_at((2026, 12, 1, 17, 0), tj).contains(&visited("cerrado")));
}

#[test]
fn language_switch_changes_the_prompt_folder() {
    let (mut c, _) = Call::new(IVR, tuesday_10());
    let cmds = c.digit('3');
    assert_eq!(
        cmds,
        vec![
            IvrCommand::StopPlayback,
            visited("ingles"),
            visited("menu"),
            play(&["en/saludo"], true, 2)
        ]
    );
    assert_eq!(c.ivr.language(), "en");
}

#[test]
fn queue_exits_follow_the_reason() {
    let enqueue = |c: &mut Call| {
        c.digit('1');
        c.done(2);
        assert!(matches!(c.ivr.end(), Some(End::Queued { .. })));
    };
    let (mut c, _) = Call::new(IVR, tuesday_10());
    enqueue(&mut c);
    // Digits while queued belong to the queue, not the IVR.
    assert!(c.digit('1').is_empty());
    let cmds = c.ev(IvrEvent::QueueExit {
        reason: QueueExitReason::Full,
    });
    assert_eq!(cmds[0], visited("lleno"));

    let (mut c, _) = Call::new(IVR, tuesday_10());
    enqueue(&mut c);
    let cmds = c.ev(IvrEvent::QueueExit {
        reason: QueueExitReason::Key('*'),
    });
    assert_eq!(cmds[0], visited("menu"));
    assert_eq!(c.ivr.vars()["queue_key"], "*");
    assert!(c.ivr.end().is_none());

    // No node for "timeout": the overflow node takes it.
    let (mut c, _) = Call::new(IVR, tuesday_10());
    enqueue(&mut c);
    let cmds = c.ev(IvrEvent::QueueExit {
        reason: QueueExitReason::Timeout,
    });
    assert_eq!(cmds[0], visited("adios"));

    // A queue exit outside a queue is ignored.
    let (mut c, _) = Call::new(IVR, tuesday_10());
    assert!(
        c.ev(IvrEvent::QueueExit {
            reason: QueueExitReason::Empty
        })
        .is_empty()
    );
}

#[test]
fn queue_without_exit_nodes_hangs_up() {
    let text = BASE.replace("overflow = \"adios\"\n", "");
    let (mut c, _) = Call::new(&text, tuesday_10());
    c.digit('1');
    let cmds = c.ev(IvrEvent::QueueExit {
        reason: QueueExitReason::Empty,
    });
    assert_eq!(cmds, vec![IvrCommand::Hangup]);
    assert!(c.ivr.is_finished());
}

#[test]
fn type_ahead_during_a_barge_in_play_reaches_the_next_menu() {
    let (mut c, _) = Call::new(IVR, tuesday_10());
    c.digit('6'); // -> aviso (play, barge-in)
    assert_eq!(c.ivr.current_node(), "aviso");
    let cmds = c.digit('1');
    // The menu takes the typed-ahead "1" without playing its greeting.
    assert_eq!(
        cmds,
        vec![
            IvrCommand::StopPlayback,
            visited("menu"),
            visited("cola"),
            play(&["es-MX/espere"], false, 3)
        ]
    );
}

#[test]
fn runaway_loops_are_cut_off() {
    // Not validated on purpose: the interpreter must protect itself.
    let text = BASE.replace("2 = \"adios\"", "2 = \"a\"")
        + "\n[nodes.a]\ntype = \"branch\"\nelse = \"b\"\n\n[nodes.b]\ntype = \"language\"\nlanguage = \"en\"\nnext = \"a\"\n";
    let (mut c, _) = Call::new(&text, tuesday_10());
    let cmds = c.digit('2');
    assert_eq!(cmds.last(), Some(&IvrCommand::Hangup));
    let visits = cmds
        .iter()
        .filter(|c| matches!(c, IvrCommand::Visited { .. }))
        .count();
    assert_eq!(visits, MAX_HOPS);
    assert!(c.ivr.is_finished());
}

#[test]
fn a_caller_who_never_answers_is_eventually_hung_up() {
    // Exhaustion leads back to the same menu; the visit cap ends the call.
    let text = BASE.replace(
        "options = {",
        "exhausted = \"inicio\"\nmax_retries = 0\noptions = {",
    );
    let (mut c, mut cmds) = Call::new(&text, tuesday_10());
    for _ in 0..(2 * MAX_VISITS) {
        let next = cmds.iter().find_map(|c| match c {
            IvrCommand::Play { token, .. } => Some(IvrEvent::PlaybackDone { token: *token }),
            IvrCommand::SetTimer { token, .. } => Some(IvrEvent::Timer { token: *token }),
            _ => None,
        });
        let Some(ev) = next else { break };
        cmds = c.ev(ev);
    }
    assert!(c.ivr.is_finished());
    assert_eq!(cmds.last(), Some(&IvrCommand::Hangup));
}

#[test]
fn check_command_prints_diagnostics_like_rustc() {
    let text = BASE.replace("2 = \"adios\"", "2 = \"pasaporte\"");
    let files = with_prompts(vec![("mexitel.toml", text)]);
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let dir = write_dir(&refs);
    let mut out = Vec::new();
    assert!(!super::check_command(
        dir.path(),
        &["pasaportes".to_string()],
        &mut out
    ));
    let out = String::from_utf8(out).expect("utf8");
    let file = dir.path().join("mexitel.toml");
    let want = format!(
        "error: unknown node \"pasaporte\"\n --> {}:8:29\n  |\n8 | options = {{ 1 = \"cola\", 2 = \"pasaporte\" }}\n  |                             ^^^^^^^^^^^\n",
        file.display()
    );
    assert!(out.contains(&want), "{out}");
    assert!(
        out.contains("warning: no plan has `default = true`"),
        "{out}"
    );
    assert!(
        out.trim_end().ends_with("failed: 1 error(s), 1 warning(s)"),
        "{out}"
    );
}

#[test]
fn routing_accepts_a_leading_plus() {
    let (set, _) = super::load_dir(&shipped_dir(), &shipped_queues()).expect("loads");
    assert_eq!(set.route("+18776394835").expect("plan").name, "mexitel");
}

#[test]
fn beyond_the_queue_limit_offers_the_key_exit_only_where_the_node_has_one() {
    use super::say::WaitWords;
    let (mut c, _) = Call::new(IVR, tuesday_10());
    // In the menu (no queue node): the sentence alone.
    assert_eq!(
        c.ivr
            .queue_wait_announcement(40, WaitWords::Beyond)
            .last()
            .map(String::as_str),
        Some("es-MX/say_excede")
    );
    // Key 1 leads to the queue node "cola", which sends keys to the menu.
    c.digit('1');
    let said = c.ivr.queue_wait_announcement(40, WaitWords::Beyond);
    assert_eq!(
        said[said.len() - 2..],
        ["es-MX/say_excede", "es-MX/say_tecla_salir"]
    );
    assert_eq!(
        c.ivr
            .queue_wait_announcement(3, WaitWords::Range { low: 10, high: 15 })[2..],
        [
            "es-MX/say_espera",
            "es-MX/say_entre",
            "es-MX/num_diez",
            "es-MX/num_y",
            "es-MX/num_quince",
            "es-MX/u_minutos"
        ]
    );
}

#[test]
fn queue_announcement_speaks_the_call_language() {
    let (mut c, _) = Call::new(IVR, tuesday_10());
    assert_eq!(
        c.ivr.queue_announcement(1, Duration::from_secs(21 * 60)),
        [
            "es-MX/say_lugar",
            "es-MX/num_uno",
            "es-MX/say_espera",
            "es-MX/num_veintiun",
            "es-MX/u_minutos"
        ]
    );
    c.digit('3');
    assert_eq!(
        c.ivr.queue_announcement(2, Duration::from_secs(30)),
        [
            "en/say_lugar",
            "en/num_two",
            "en/say_espera",
            "en/num_one",
            "en/u_minute"
        ]
    );
}

#[test]
fn check_reports_every_problem_in_one_pass() {
    let text = r#"[plan]
start = "inicio"
languages = ["es-MX", "en", "fr"]
timezone = "Mexico"

[nodes.inicio]
type = "menu"
prompts = ["saludo", "falta_algo"]
options = { 1 = "cola", 2 = "play", x = "adios" }
exhausted = 5

[nodes.cola]
type = "queue"
queue = "pasaportez"

[nodes.play]
type = "play"
prompts = ["x"]

[nodes.adios]
type = "hangup"
prompts = ["despedida"]
colour = 1

[[test]]
press = "1 q"
expect = "queue"
"#;
    let files = with_prompts(vec![("mexitel.toml", text.to_string())]);
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let dir = write_dir(&refs);
    let d = super::load_dir(dir.path(), &["pasaportes".to_string()]).expect_err("broken");
    let errors: Vec<&str> = d
        .iter()
        .filter(|x| x.is_error())
        .map(|x| x.message.as_str())
        .collect();
    assert_eq!(errors.len(), 11, "{errors:#?}");
    for needle in [
        "unknown language \"fr\"",
        "unknown time zone \"Mexico\"",
        "missing prompt file prompts/en/falta_algo.wav",
        "menu option \"x\"",
        "\"exhausted\" in menu node \"inicio\" must be a string",
        "unknown queue \"pasaportez\"",
        "play node \"play\" needs \"next\"",
        "unknown key \"colour\"",
        "\"q\" is not a telephone key",
    ] {
        find(&d, needle);
    }
    // The broken node is reported once, not again as an unknown reference.
    assert!(
        !d.iter().any(|x| x.message.contains("unknown node")),
        "{d:#?}"
    );
}

#[test]
fn interpreter_counts_visits_invalid_keys_and_timeouts() {
    let info = CallInfo {
        caller: "1".into(),
        called: "2".into(),
    };
    let mut ivr = Interpreter::new(ivr_plan(IVR), info);
    let now = Instant::now();
    let wall = tuesday_10();
    ivr.start(now, wall);
    ivr.handle(IvrEvent::PlaybackDone { token: 1 }, now, wall);
    ivr.handle(IvrEvent::Timer { token: 2 }, now, wall); // timeout
    // What was counted so far, read from the core itself: no recorder.
    let first = ivr.take_figures();
    assert_eq!(
        first,
        [
            (IvrCount::Visit, "menu".to_owned(), 1),
            (IvrCount::Timeout, "menu".to_owned(), 1)
        ]
    );
    ivr.handle(IvrEvent::Digit('9'), now, wall); // invalid (barge-in)
    ivr.handle(IvrEvent::Digit('1'), now, wall); // -> cola
    // Taken figures start again from zero: only what came after.
    assert_eq!(
        ivr.take_figures(),
        [
            (IvrCount::Visit, "cola".to_owned(), 1),
            (IvrCount::Invalid, "menu".to_owned(), 1)
        ]
    );
    assert_eq!(ivr.take_figures(), []);
}

#[test]
fn simulate_after_hours_in_english() {
    let mut out = Vec::new();
    let at = super::parse_at("2026-12-05 11:00").expect("time");
    let presses = ["2", "w", "5", "exit:timeout"];
    super::simulate_command(
        &shipped_dir(),
        &shipped_queues(),
        "+18776394835",
        &presses,
        Some(at),
        &mut out,
    )
    .expect("simulates");
    let out = String::from_utf8(out).expect("utf8");
    assert!(out.contains("(Sat)"), "{out}");
    assert!(out.contains("→ ingles (language: en)"), "{out}");
    assert!(out.contains("prompts/en/fuera_de_horario.wav"), "{out}");
    assert!(out.contains("… no key for 5.0s (timeout)"), "{out}");
    assert!(
        out.contains("\"Thank you for calling Mexitel. Goodbye.\""),
        "{out}"
    );
    assert!(!out.contains("pressed 5"), "the call had ended: {out}");
    assert!(
        out.trim_end().ends_with("end: hangup (language en)"),
        "{out}"
    );
}
