//! Numbers, durations and queue positions spoken from recorded word prompts,
//! in Mexican Spanish and English.
//!
//! Spanish grammar is the point of this file: gender and apocope ("un
//! minuto", "una persona", "veintiún minutos", "veintiuna personas",
//! "ciento un"), "cien" vs "ciento", "y" only between tens and units from 31
//! up, feminine hundreds ("doscientas personas"), "mil" without "un". Every
//! function returns prompt names (no language folder); the words each name
//! says are in `WORDS_ES` / `WORDS_EN`, which the prompt generator's
//! `index.toml` files must agree with (a test checks).
//!
//! Numbers above 999,999 are read digit by digit: nothing in a call center
//! counts that high, and a wrong "millón de" is worse than digits.

use std::time::Duration;

/// How a number is said before (or without) a noun.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// Counting or reading a number: "uno", "veintiuno", "ciento uno".
    Counting,
    /// Before a masculine noun: "un minuto", "veintiún minutos".
    Masculine,
    /// Before a feminine noun: "una hora", "doscientas personas".
    Feminine,
}

/// What a `{ say = .., var = .. }` prompt item does with its variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SayKind {
    /// Digit by digit: "uno dos tres".
    Digits,
    /// As a number: "ciento veintitrés".
    Number,
}

impl std::str::FromStr for SayKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "digits" => Ok(SayKind::Digits),
            "number" => Ok(SayKind::Number),
            _ => Err(format!(
                "unknown say kind \"{s}\" (use \"digits\" or \"number\")"
            )),
        }
    }
}

fn is_es(lang: &str) -> bool {
    lang.starts_with("es")
}

const ES_UNITS: [&str; 30] = [
    "num_cero",
    "num_uno",
    "num_dos",
    "num_tres",
    "num_cuatro",
    "num_cinco",
    "num_seis",
    "num_siete",
    "num_ocho",
    "num_nueve",
    "num_diez",
    "num_once",
    "num_doce",
    "num_trece",
    "num_catorce",
    "num_quince",
    "num_dieciseis",
    "num_diecisiete",
    "num_dieciocho",
    "num_diecinueve",
    "num_veinte",
    "num_veintiuno",
    "num_veintidos",
    "num_veintitres",
    "num_veinticuatro",
    "num_veinticinco",
    "num_veintiseis",
    "num_veintisiete",
    "num_veintiocho",
    "num_veintinueve",
];
const ES_TENS: [&str; 10] = [
    "",
    "",
    "",
    "num_treinta",
    "num_cuarenta",
    "num_cincuenta",
    "num_sesenta",
    "num_setenta",
    "num_ochenta",
    "num_noventa",
];
const ES_HUNDREDS_M: [&str; 10] = [
    "",
    "num_ciento",
    "num_doscientos",
    "num_trescientos",
    "num_cuatrocientos",
    "num_quinientos",
    "num_seiscientos",
    "num_setecientos",
    "num_ochocientos",
    "num_novecientos",
];
const ES_HUNDREDS_F: [&str; 10] = [
    "",
    "num_ciento",
    "num_doscientas",
    "num_trescientas",
    "num_cuatrocientas",
    "num_quinientas",
    "num_seiscientas",
    "num_setecientas",
    "num_ochocientas",
    "num_novecientas",
];

/// Every word prompt the Spanish functions can emit, with the words it says.
pub const WORDS_ES: &[(&str, &str)] = &[
    ("num_cero", "cero"),
    ("num_uno", "uno"),
    ("num_un", "un"),
    ("num_una", "una"),
    ("num_dos", "dos"),
    ("num_tres", "tres"),
    ("num_cuatro", "cuatro"),
    ("num_cinco", "cinco"),
    ("num_seis", "seis"),
    ("num_siete", "siete"),
    ("num_ocho", "ocho"),
    ("num_nueve", "nueve"),
    ("num_diez", "diez"),
    ("num_once", "once"),
    ("num_doce", "doce"),
    ("num_trece", "trece"),
    ("num_catorce", "catorce"),
    ("num_quince", "quince"),
    ("num_dieciseis", "dieciséis"),
    ("num_diecisiete", "diecisiete"),
    ("num_dieciocho", "dieciocho"),
    ("num_diecinueve", "diecinueve"),
    ("num_veinte", "veinte"),
    ("num_veintiuno", "veintiuno"),
    ("num_veintiun", "veintiún"),
    ("num_veintiuna", "veintiuna"),
    ("num_veintidos", "veintidós"),
    ("num_veintitres", "veintitrés"),
    ("num_veinticuatro", "veinticuatro"),
    ("num_veinticinco", "veinticinco"),
    ("num_veintiseis", "veintiséis"),
    ("num_veintisiete", "veintisiete"),
    ("num_veintiocho", "veintiocho"),
    ("num_veintinueve", "veintinueve"),
    ("num_treinta", "treinta"),
    ("num_cuarenta", "cuarenta"),
    ("num_cincuenta", "cincuenta"),
    ("num_sesenta", "sesenta"),
    ("num_setenta", "setenta"),
    ("num_ochenta", "ochenta"),
    ("num_noventa", "noventa"),
    ("num_y", "y"),
    ("num_cien", "cien"),
    ("num_ciento", "ciento"),
    ("num_doscientos", "doscientos"),
    ("num_doscientas", "doscientas"),
    ("num_trescientos", "trescientos"),
    ("num_trescientas", "trescientas"),
    ("num_cuatrocientos", "cuatrocientos"),
    ("num_cuatrocientas", "cuatrocientas"),
    ("num_quinientos", "quinientos"),
    ("num_quinientas", "quinientas"),
    ("num_seiscientos", "seiscientos"),
    ("num_seiscientas", "seiscientas"),
    ("num_setecientos", "setecientos"),
    ("num_setecientas", "setecientas"),
    ("num_ochocientos", "ochocientos"),
    ("num_ochocientas", "ochocientas"),
    ("num_novecientos", "novecientos"),
    ("num_novecientas", "novecientas"),
    ("num_mil", "mil"),
    ("num_asterisco", "asterisco"),
    ("num_gato", "gato"),
    ("u_hora", "hora"),
    ("u_horas", "horas"),
    ("u_minuto", "minuto"),
    ("u_minutos", "minutos"),
    ("u_segundo", "segundo"),
    ("u_segundos", "segundos"),
    ("u_persona", "persona"),
    ("u_personas", "personas"),
    ("say_lugar", "Usted ocupa el lugar número"),
    ("say_espera", "El tiempo estimado de espera es de"),
    ("say_hay", "Hay"),
    ("say_antes", "antes que usted."),
    ("say_nadie", "No hay nadie antes que usted."),
    ("say_entre", "entre"),
    (
        "say_excede",
        "Su espera será más larga de lo que esta fila permite.",
    ),
    (
        "say_tecla_salir",
        "Si lo prefiere, marque una tecla para dejar la fila.",
    ),
];

const EN_UNITS: [&str; 20] = [
    "num_zero",
    "num_one",
    "num_two",
    "num_three",
    "num_four",
    "num_five",
    "num_six",
    "num_seven",
    "num_eight",
    "num_nine",
    "num_ten",
    "num_eleven",
    "num_twelve",
    "num_thirteen",
    "num_fourteen",
    "num_fifteen",
    "num_sixteen",
    "num_seventeen",
    "num_eighteen",
    "num_nineteen",
];
const EN_TENS: [&str; 10] = [
    "",
    "",
    "num_twenty",
    "num_thirty",
    "num_forty",
    "num_fifty",
    "num_sixty",
    "num_seventy",
    "num_eighty",
    "num_ninety",
];

/// Every word prompt the English functions can emit, with the words it says.
pub const WORDS_EN: &[(&str, &str)] = &[
    ("num_zero", "zero"),
    ("num_one", "one"),
    ("num_two", "two"),
    ("num_three", "three"),
    ("num_four", "four"),
    ("num_five", "five"),
    ("num_six", "six"),
    ("num_seven", "seven"),
    ("num_eight", "eight"),
    ("num_nine", "nine"),
    ("num_ten", "ten"),
    ("num_eleven", "eleven"),
    ("num_twelve", "twelve"),
    ("num_thirteen", "thirteen"),
    ("num_fourteen", "fourteen"),
    ("num_fifteen", "fifteen"),
    ("num_sixteen", "sixteen"),
    ("num_seventeen", "seventeen"),
    ("num_eighteen", "eighteen"),
    ("num_nineteen", "nineteen"),
    ("num_twenty", "twenty"),
    ("num_thirty", "thirty"),
    ("num_forty", "forty"),
    ("num_fifty", "fifty"),
    ("num_sixty", "sixty"),
    ("num_seventy", "seventy"),
    ("num_eighty", "eighty"),
    ("num_ninety", "ninety"),
    ("num_hundred", "hundred"),
    ("num_thousand", "thousand"),
    ("num_and", "and"),
    ("num_star", "star"),
    ("num_pound", "pound"),
    ("u_hour", "hour"),
    ("u_hours", "hours"),
    ("u_minute", "minute"),
    ("u_minutes", "minutes"),
    ("u_second", "second"),
    ("u_seconds", "seconds"),
    ("u_caller", "caller"),
    ("u_callers", "callers"),
    ("say_lugar", "You are caller number"),
    ("say_espera", "Your estimated wait time is"),
    ("say_there_is", "There is"),
    ("say_there_are", "There are"),
    ("say_antes", "ahead of you."),
    ("say_nadie", "There is no one ahead of you."),
    ("say_between", "between"),
    (
        "say_beyond",
        "Your wait will be longer than this line allows.",
    ),
    (
        "say_key_leave",
        "If you prefer, press a key to leave the line.",
    ),
];

/// The words table for a language.
pub fn words_table(lang: &str) -> &'static [(&'static str, &'static str)] {
    if is_es(lang) { WORDS_ES } else { WORDS_EN }
}

/// The words a say prompt name speaks, for `simulate` and tests.
pub fn word(lang: &str, name: &str) -> Option<&'static str> {
    words_table(lang)
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, w)| *w)
}

fn es_below_100(n: u64, form: Form, out: &mut Vec<&'static str>) {
    let unit = |u: u64| -> &'static str {
        match (u, form) {
            (1, Form::Counting) => "num_uno",
            (1, Form::Masculine) => "num_un",
            (1, Form::Feminine) => "num_una",
            _ => ES_UNITS[u as usize],
        }
    };
    match n {
        0 => {}
        21 => out.push(match form {
            Form::Counting => "num_veintiuno",
            Form::Masculine => "num_veintiun",
            Form::Feminine => "num_veintiuna",
        }),
        1..=29 => out.push(unit(n)),
        _ => {
            out.push(ES_TENS[(n / 10) as usize]);
            if n % 10 != 0 {
                out.push("num_y");
                out.push(unit(n % 10));
            }
        }
    }
}

/// `hundreds_fem`: hundreds agree with the noun even when units take the
/// masculine apocope before "mil" ("doscientas un mil" is wrong; the noun
/// after mil decides: "doscientas mil personas", "veintiún mil personas").
fn es_below_1000(n: u64, form: Form, hundreds_fem: bool, out: &mut Vec<&'static str>) {
    let (h, r) = (n / 100, n % 100);
    if n == 100 {
        out.push("num_cien");
        return;
    }
    if h > 0 {
        out.push(if hundreds_fem {
            ES_HUNDREDS_F[h as usize]
        } else {
            ES_HUNDREDS_M[h as usize]
        });
    }
    es_below_100(r, form, out);
}

fn en_below_1000(n: u64, out: &mut Vec<&'static str>) {
    let (h, r) = (n / 100, n % 100);
    if h > 0 {
        out.push(EN_UNITS[h as usize]);
        out.push("num_hundred");
    }
    match r {
        0 => {}
        1..=19 => out.push(EN_UNITS[r as usize]),
        _ => {
            out.push(EN_TENS[(r / 10) as usize]);
            if r % 10 != 0 {
                out.push(EN_UNITS[(r % 10) as usize]);
            }
        }
    }
}

/// Prompt names that say `n` in `lang` ("es-MX" or "en"). `form` only
/// matters in Spanish.
pub fn number(lang: &str, n: u64, form: Form) -> Vec<String> {
    if n > 999_999 {
        return digits(lang, &n.to_string());
    }
    let mut out: Vec<&'static str> = Vec::new();
    if is_es(lang) {
        if n == 0 {
            out.push("num_cero");
        }
        let (th, rest) = (n / 1000, n % 1000);
        if th == 1 {
            out.push("num_mil");
        } else if th > 1 {
            // Units before "mil" take the masculine apocope in every form:
            // "veintiún mil", "treinta y un mil".
            es_below_1000(th, Form::Masculine, form == Form::Feminine, &mut out);
            out.push("num_mil");
        }
        es_below_1000(rest, form, form == Form::Feminine, &mut out);
    } else {
        if n == 0 {
            out.push("num_zero");
        }
        let (th, rest) = (n / 1000, n % 1000);
        if th > 0 {
            en_below_1000(th, &mut out);
            out.push("num_thousand");
        }
        en_below_1000(rest, &mut out);
    }
    out.into_iter().map(String::from).collect()
}

/// Prompt names that read a digit string key by key; other characters are
/// skipped.
pub fn digits(lang: &str, s: &str) -> Vec<String> {
    s.chars()
        .filter_map(|c| {
            let name = match c {
                '0'..='9' => {
                    let d = c as usize - '0' as usize;
                    if is_es(lang) {
                        ES_UNITS[d]
                    } else {
                        EN_UNITS[d]
                    }
                }
                '*' => {
                    if is_es(lang) {
                        "num_asterisco"
                    } else {
                        "num_star"
                    }
                }
                '#' => {
                    if is_es(lang) {
                        "num_gato"
                    } else {
                        "num_pound"
                    }
                }
                _ => return None,
            };
            Some(name.to_string())
        })
        .collect()
}

/// A count followed by its noun, singular for exactly one.
fn counted(lang: &str, n: u64, form: Form, singular: &str, plural: &str) -> Vec<String> {
    let mut out = number(lang, n, form);
    out.push(if n == 1 { singular } else { plural }.to_string());
    out
}

/// Says a duration as hours, minutes and seconds, leaving out zero parts:
/// "una hora y cinco minutos", "one hour and five minutes". Sub-second
/// parts are dropped; zero is "cero segundos".
pub fn duration(lang: &str, d: Duration) -> Vec<String> {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let es = is_es(lang);
    let mut parts: Vec<Vec<String>> = Vec::new();
    if h > 0 {
        parts.push(if es {
            counted(lang, h, Form::Feminine, "u_hora", "u_horas")
        } else {
            counted(lang, h, Form::Counting, "u_hour", "u_hours")
        });
    }
    if m > 0 {
        parts.push(if es {
            counted(lang, m, Form::Masculine, "u_minuto", "u_minutos")
        } else {
            counted(lang, m, Form::Counting, "u_minute", "u_minutes")
        });
    }
    if s > 0 || parts.is_empty() {
        parts.push(if es {
            counted(lang, s, Form::Masculine, "u_segundo", "u_segundos")
        } else {
            counted(lang, s, Form::Counting, "u_second", "u_seconds")
        });
    }
    let and = if es { "num_y" } else { "num_and" };
    let count = parts.len();
    let mut out = Vec::new();
    for (i, p) in parts.into_iter().enumerate() {
        if i > 0 && i == count - 1 {
            out.push(and.to_string());
        }
        out.extend(p);
    }
    out
}

/// "Usted ocupa el lugar número cinco" / "You are caller number five".
pub fn position(lang: &str, n: u64) -> Vec<String> {
    let mut out = vec!["say_lugar".to_string()];
    out.extend(number(lang, n, Form::Counting));
    out
}

/// "Hay veintiuna personas antes que usted" / "There are 21 callers ahead
/// of you"; zero has its own sentence.
pub fn callers_ahead(lang: &str, n: u64) -> Vec<String> {
    if n == 0 {
        return vec!["say_nadie".to_string()];
    }
    let mut out = Vec::new();
    if is_es(lang) {
        out.push("say_hay".to_string());
        out.extend(counted(lang, n, Form::Feminine, "u_persona", "u_personas"));
    } else {
        out.push(
            if n == 1 {
                "say_there_is"
            } else {
                "say_there_are"
            }
            .to_string(),
        );
        out.extend(counted(lang, n, Form::Counting, "u_caller", "u_callers"));
    }
    out.push("say_antes".to_string());
    out
}

/// What to say about a wait, as the queue core decided it (the call layer
/// maps the ACD's `WaitSpeech` onto this; this room does not import `acd`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitWords {
    /// "treinta segundos", "un minuto y treinta segundos".
    Seconds(u32),
    /// "N minutes" (hours and minutes from 60 on).
    Minutes(u32),
    /// "between `low` and `high` minutes".
    Range { low: u32, high: u32 },
    /// "Your wait will be longer than this line allows."
    Beyond,
}

/// Whole minutes a wait is said as: the nearest minute, at least one (a
/// caller told "zero minutes" who then waits feels lied to). The queue
/// core's `estimator::heard_minutes` is the same rule; a test holds them
/// together.
pub fn heard_minutes(d: Duration) -> u32 {
    ((d.as_secs_f64() / 60.0)
        .round()
        .clamp(1.0, f64::from(u32::MAX))) as u32
}

/// What a caller hears while waiting: position, then the estimated wait in
/// whole minutes as the queue core rounds it (`estimator::heard_minutes`:
/// nearest minute, never "cero minutos").
pub fn queue_announcement(lang: &str, position_in_queue: u64, estimate: Duration) -> Vec<String> {
    wait_announcement(
        lang,
        position_in_queue,
        WaitWords::Minutes(heard_minutes(estimate)),
        false,
    )
}

/// Position, then the wait as the queue core decided to say it: "... es de
/// veinte minutos", "... es de entre veinte y treinta minutos", or, when it
/// would run past what the queue allows, that sentence instead of a figure,
/// followed by the way out the plan offers (`key_exit`: the queue node
/// sends a pressed key somewhere).
pub fn wait_announcement(
    lang: &str,
    position_in_queue: u64,
    wait: WaitWords,
    key_exit: bool,
) -> Vec<String> {
    let es = is_es(lang);
    let mut out = position(lang, position_in_queue);
    match wait {
        WaitWords::Seconds(x) => {
            out.push("say_espera".to_string());
            out.extend(duration(lang, Duration::from_secs(u64::from(x.max(1)))));
        }
        WaitWords::Minutes(m) => {
            out.push("say_espera".to_string());
            out.extend(duration(
                lang,
                Duration::from_secs(u64::from(m.max(1)) * 60),
            ));
        }
        WaitWords::Range { low, high } => {
            out.push("say_espera".to_string());
            out.push(if es { "say_entre" } else { "say_between" }.to_string());
            out.extend(number(lang, u64::from(low), Form::Counting));
            out.push(if es { "num_y" } else { "num_and" }.to_string());
            out.extend(if es {
                counted(
                    lang,
                    u64::from(high),
                    Form::Masculine,
                    "u_minuto",
                    "u_minutos",
                )
            } else {
                counted(
                    lang,
                    u64::from(high),
                    Form::Counting,
                    "u_minute",
                    "u_minutes",
                )
            });
        }
        WaitWords::Beyond => {
            out.push(if es { "say_excede" } else { "say_beyond" }.to_string());
            if key_exit {
                out.push(
                    if es {
                        "say_tecla_salir"
                    } else {
                        "say_key_leave"
                    }
                    .to_string(),
                );
            }
        }
    }
    out
}

/// Joins prompt names into the words they say (for simulate and tests).
pub fn spoken(lang: &str, names: &[String]) -> String {
    names
        .iter()
        .map(|n| word(lang, n).unwrap_or(n.as_str()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use Form::*;

    fn es(n: u64, f: Form) -> String {
        spoken("es-MX", &number("es-MX", n, f))
    }
    fn en(n: u64) -> String {
        spoken("en", &number("en", n, Counting))
    }

    #[test]
    fn spanish_numbers_table() {
        let table: &[(u64, Form, &str)] = &[
            (0, Counting, "cero"),
            (1, Counting, "uno"),
            (1, Masculine, "un"),
            (1, Feminine, "una"),
            (2, Feminine, "dos"),
            (10, Counting, "diez"),
            (15, Counting, "quince"),
            (16, Counting, "dieciséis"),
            (20, Counting, "veinte"),
            (21, Counting, "veintiuno"),
            (21, Masculine, "veintiún"),
            (21, Feminine, "veintiuna"),
            (22, Counting, "veintidós"),
            (29, Counting, "veintinueve"),
            (30, Counting, "treinta"),
            (31, Counting, "treinta y uno"),
            (31, Masculine, "treinta y un"),
            (31, Feminine, "treinta y una"),
            (45, Counting, "cuarenta y cinco"),
            (99, Counting, "noventa y nueve"),
            (100, Counting, "cien"),
            (100, Feminine, "cien"),
            (101, Counting, "ciento uno"),
            (101, Masculine, "ciento un"),
            (101, Feminine, "ciento una"),
            (110, Counting, "ciento diez"),
            (121, Masculine, "ciento veintiún"),
            (199, Counting, "ciento noventa y nueve"),
            (200, Counting, "doscientos"),
            (200, Feminine, "doscientas"),
            (201, Feminine, "doscientas una"),
            (500, Counting, "quinientos"),
            (555, Feminine, "quinientas cincuenta y cinco"),
            (700, Masculine, "setecientos"),
            (999, Counting, "novecientos noventa y nueve"),
            (1000, Counting, "mil"),
            (1001, Counting, "mil uno"),
            (1001, Feminine, "mil una"),
            (1100, Counting, "mil cien"),
            (1101, Masculine, "mil ciento un"),
            (1999, Counting, "mil novecientos noventa y nueve"),
            (2000, Counting, "dos mil"),
            (2026, Counting, "dos mil veintiséis"),
            (5000, Feminine, "cinco mil"),
            (9999, Counting, "nueve mil novecientos noventa y nueve"),
            (21000, Counting, "veintiún mil"),
            (21000, Feminine, "veintiún mil"),
            (31000, Counting, "treinta y un mil"),
            (100000, Counting, "cien mil"),
            (101000, Counting, "ciento un mil"),
            (200000, Feminine, "doscientas mil"),
            (200000, Masculine, "doscientos mil"),
            (
                999999,
                Counting,
                "novecientos noventa y nueve mil novecientos noventa y nueve",
            ),
            (1000000, Counting, "uno cero cero cero cero cero cero"),
        ];
        assert!(table.len() >= 40);
        for (n, f, want) in table {
            assert_eq!(es(*n, *f), *want, "{n} {f:?}");
        }
    }

    #[test]
    fn english_numbers_table() {
        let table: &[(u64, &str)] = &[
            (0, "zero"),
            (1, "one"),
            (2, "two"),
            (7, "seven"),
            (10, "ten"),
            (11, "eleven"),
            (12, "twelve"),
            (13, "thirteen"),
            (15, "fifteen"),
            (19, "nineteen"),
            (20, "twenty"),
            (21, "twenty one"),
            (30, "thirty"),
            (34, "thirty four"),
            (40, "forty"),
            (58, "fifty eight"),
            (60, "sixty"),
            (77, "seventy seven"),
            (80, "eighty"),
            (99, "ninety nine"),
            (100, "one hundred"),
            (101, "one hundred one"),
            (110, "one hundred ten"),
            (115, "one hundred fifteen"),
            (120, "one hundred twenty"),
            (121, "one hundred twenty one"),
            (200, "two hundred"),
            (305, "three hundred five"),
            (999, "nine hundred ninety nine"),
            (1000, "one thousand"),
            (1001, "one thousand one"),
            (1010, "one thousand ten"),
            (1100, "one thousand one hundred"),
            (1234, "one thousand two hundred thirty four"),
            (2000, "two thousand"),
            (2026, "two thousand twenty six"),
            (5050, "five thousand fifty"),
            (9999, "nine thousand nine hundred ninety nine"),
            (10000, "ten thousand"),
            (21000, "twenty one thousand"),
            (100000, "one hundred thousand"),
            (
                999999,
                "nine hundred ninety nine thousand nine hundred ninety nine",
            ),
            (1000000, "one zero zero zero zero zero zero"),
        ];
        assert!(table.len() >= 40);
        for (n, want) in table {
            assert_eq!(en(*n), *want, "{n}");
        }
    }

    #[test]
    fn durations_table() {
        let s = |lang: &str, secs: u64| spoken(lang, &duration(lang, Duration::from_secs(secs)));
        let table: &[(&str, u64, &str)] = &[
            ("es-MX", 0, "cero segundos"),
            ("es-MX", 1, "un segundo"),
            ("es-MX", 30, "treinta segundos"),
            ("es-MX", 60, "un minuto"),
            ("es-MX", 61, "un minuto y un segundo"),
            ("es-MX", 120, "dos minutos"),
            ("es-MX", 21 * 60, "veintiún minutos"),
            ("es-MX", 31 * 60, "treinta y un minutos"),
            ("es-MX", 3600, "una hora"),
            ("es-MX", 3900, "una hora y cinco minutos"),
            ("es-MX", 3661, "una hora un minuto y un segundo"),
            ("es-MX", 7200, "dos horas"),
            ("es-MX", 21 * 3600, "veintiuna horas"),
            ("es-MX", 3605, "una hora y cinco segundos"),
            ("en", 0, "zero seconds"),
            ("en", 1, "one second"),
            ("en", 60, "one minute"),
            ("en", 125, "two minutes and five seconds"),
            ("en", 21 * 60, "twenty one minutes"),
            ("en", 3900, "one hour and five minutes"),
            ("en", 7322, "two hours two minutes and two seconds"),
        ];
        for (lang, secs, want) in table {
            assert_eq!(s(lang, *secs), *want, "{lang} {secs}");
        }
    }

    #[test]
    fn positions_and_callers_ahead() {
        assert_eq!(
            spoken("es-MX", &position("es-MX", 1)),
            "Usted ocupa el lugar número uno"
        );
        assert_eq!(
            spoken("es-MX", &position("es-MX", 21)),
            "Usted ocupa el lugar número veintiuno"
        );
        assert_eq!(
            spoken("en", &position("en", 3)),
            "You are caller number three"
        );
        assert_eq!(
            spoken("es-MX", &callers_ahead("es-MX", 0)),
            "No hay nadie antes que usted."
        );
        assert_eq!(
            spoken("es-MX", &callers_ahead("es-MX", 1)),
            "Hay una persona antes que usted."
        );
        assert_eq!(
            spoken("es-MX", &callers_ahead("es-MX", 21)),
            "Hay veintiuna personas antes que usted."
        );
        assert_eq!(
            spoken("es-MX", &callers_ahead("es-MX", 200)),
            "Hay doscientas personas antes que usted."
        );
        assert_eq!(
            spoken("en", &callers_ahead("en", 1)),
            "There is one caller ahead of you."
        );
        assert_eq!(
            spoken("en", &callers_ahead("en", 4)),
            "There are four callers ahead of you."
        );
        assert_eq!(
            spoken(
                "es-MX",
                &queue_announcement("es-MX", 2, Duration::from_secs(91))
            ),
            "Usted ocupa el lugar número dos El tiempo estimado de espera es de dos minutos"
        );
        assert_eq!(
            spoken("en", &queue_announcement("en", 1, Duration::ZERO)),
            "You are caller number one Your estimated wait time is one minute"
        );
    }

    #[test]
    fn ranges_and_beyond_are_said() {
        let range = WaitWords::Range { low: 20, high: 30 };
        assert_eq!(
            spoken("es-MX", &wait_announcement("es-MX", 41, range, false)),
            "Usted ocupa el lugar número cuarenta y uno El tiempo estimado de espera es de entre veinte y treinta minutos"
        );
        assert_eq!(
            spoken(
                "es-MX",
                &wait_announcement("es-MX", 3, WaitWords::Range { low: 1, high: 21 }, false)
            ),
            "Usted ocupa el lugar número tres El tiempo estimado de espera es de entre uno y veintiún minutos"
        );
        assert_eq!(
            spoken(
                "en",
                &wait_announcement("en", 7, WaitWords::Range { low: 10, high: 15 }, false)
            ),
            "You are caller number seven Your estimated wait time is between ten and fifteen minutes"
        );
        assert_eq!(
            spoken(
                "es-MX",
                &wait_announcement("es-MX", 90, WaitWords::Beyond, true)
            ),
            "Usted ocupa el lugar número noventa Su espera será más larga de lo que esta fila permite. Si lo prefiere, marque una tecla para dejar la fila."
        );
        assert_eq!(
            spoken(
                "es-MX",
                &wait_announcement("es-MX", 2, WaitWords::Seconds(90), false)
            ),
            "Usted ocupa el lugar número dos El tiempo estimado de espera es de un minuto y treinta segundos"
        );
        assert_eq!(
            spoken(
                "es-MX",
                &wait_announcement("es-MX", 2, WaitWords::Seconds(100), false)
            ),
            "Usted ocupa el lugar número dos El tiempo estimado de espera es de un minuto y cuarenta segundos"
        );
        assert_eq!(
            spoken(
                "en",
                &wait_announcement("en", 3, WaitWords::Seconds(130), false)
            ),
            "You are caller number three Your estimated wait time is two minutes and ten seconds"
        );
        assert_eq!(
            spoken(
                "en",
                &wait_announcement("en", 1, WaitWords::Seconds(45), false)
            ),
            "You are caller number one Your estimated wait time is forty five seconds"
        );
        assert_eq!(
            spoken("en", &wait_announcement("en", 90, WaitWords::Beyond, false)),
            "You are caller number ninety Your wait will be longer than this line allows."
        );
        // The figure said is the one the core rounded: 29 s is one minute
        // (never zero), 89 s one, 90 s two, 21 min 29 s twenty-one.
        for (secs, words) in [
            (29, "un minuto"),
            (89, "un minuto"),
            (90, "dos minutos"),
            (1289, "veintiún minutos"),
        ] {
            let said = spoken(
                "es-MX",
                &queue_announcement("es-MX", 1, Duration::from_secs(secs)),
            );
            assert!(said.ends_with(words), "{secs}: {said}");
        }
    }

    #[test]
    fn digits_read_key_by_key() {
        assert_eq!(
            spoken("es-MX", &digits("es-MX", "1207#")),
            "uno dos cero siete gato"
        );
        assert_eq!(spoken("en", &digits("en", "90*")), "nine zero star");
    }

    #[test]
    fn every_emitted_name_has_words() {
        for lang in ["es-MX", "en"] {
            for n in (0..2100).chain([21000, 101000, 999999]) {
                for f in [Counting, Masculine, Feminine] {
                    for name in number(lang, n, f) {
                        assert!(word(lang, &name).is_some(), "{lang} {name}");
                    }
                }
            }
            for secs in [0, 1, 61, 3661, 86399] {
                for name in duration(lang, Duration::from_secs(secs)) {
                    assert!(word(lang, &name).is_some(), "{lang} {name}");
                }
            }
            // Every figure the queue core says in seconds (10 s steps to
            // two minutes, 15 s steps to 2¾).
            for x in (10..120).step_by(10).chain((120..=165).step_by(15)) {
                for name in wait_announcement(lang, 2, WaitWords::Seconds(x), true) {
                    assert!(word(lang, &name).is_some(), "{lang} {x} s: {name}");
                }
            }
            for w in [
                WaitWords::Seconds(45),
                WaitWords::Seconds(90),
                WaitWords::Minutes(61),
                WaitWords::Range { low: 5, high: 10 },
                WaitWords::Beyond,
            ] {
                for name in wait_announcement(lang, 2, w, true) {
                    assert!(word(lang, &name).is_some(), "{lang} {name}");
                }
            }
            for name in callers_ahead(lang, 1)
                .into_iter()
                .chain(callers_ahead(lang, 5))
                .chain(callers_ahead(lang, 0))
            {
                assert!(word(lang, &name).is_some(), "{lang} {name}");
            }
        }
    }
}
