//! baresip, a real softphone, as a caller: it dials the shipped Mexitel
//! plan, hears the welcome, presses 2 (RFC 4733) and the plan switches to
//! English. What the phone recorded must be real audio, not silence.

mod common;

use std::time::Duration;

use common::baresip::{Baresip, BaresipOpts, rms};
use common::{Gw, eventually};

#[test]
fn baresip_caller_hears_the_welcome_and_its_digit_changes_the_path() {
    let gw = Gw::start("");
    let mut opts = BaresipOpts::caller();
    opts.quit_after = Duration::from_secs(60);
    let phone = Baresip::start(opts);
    phone.dial(&format!("sip:mexitel@{}", gw.udp));
    assert!(
        phone.wait_call_established(Duration::from_secs(15)),
        "call not answered\n{}\n{}",
        phone.log(),
        gw.log_text()
    );
    // The welcome plays with barge-in; let some of it through, then press 2.
    std::thread::sleep(Duration::from_secs(2));
    phone.send_dtmf("2");
    let visited = eventually(Duration::from_secs(10), || {
        gw.metric("conmutador_ivr_node_visits_total", &["node=\"ingles\""]) >= 1.0
    });
    assert!(visited, "digit 2 took the English branch\n{}", gw.metrics());
    assert_eq!(
        gw.metric("conmutador_ivr_node_visits_total", &["node=\"espanol\""]),
        0.0
    );
    // The media engine publishes its counters once a second.
    assert!(eventually(Duration::from_secs(3), || gw.metric(
        "conmutador_dtmf_digits_total",
        &["method=\"rfc4733\""]
    ) >= 1.0));
    std::thread::sleep(Duration::from_secs(2));
    let heard = phone.recorded_samples();
    assert!(
        heard.len() >= 8000 * 3,
        "at least 3 s recorded, got {}",
        heard.len()
    );
    assert!(
        rms(&heard) > 300.0,
        "the caller heard prompts, not silence (rms {})",
        rms(&heard)
    );
    phone.hangup();
    assert!(phone.wait_call_closed(Duration::from_secs(10)));
    assert!(eventually(Duration::from_secs(5), || gw.metric(
        "conmutador_calls_ended_total",
        &["reason=\"caller_hangup\""]
    ) >= 1.0));
}
