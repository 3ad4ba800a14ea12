//! The guard cores in virtual time: no sockets, no sleeps.

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn cfg() -> GuardConfig {
    GuardConfig::default()
}

/// Sends `n` messages of `class` from `src` spread evenly over `over`,
/// returning the verdicts' counts (admit, limited, blocked-or-new).
fn send(
    l: &mut SourceLimiter,
    src: IpAddr,
    class: Class,
    trunk: bool,
    n: u32,
    start: Instant,
    over: Duration,
) -> (u32, u32, u32) {
    let (mut a, mut lim, mut b) = (0, 0, 0);
    for i in 0..n {
        let now = start + over.mul_f64(f64::from(i) / f64::from(n));
        match l.admit(src, class, trunk, now) {
            Verdict::Admit => a += 1,
            Verdict::Limited => lim += 1,
            Verdict::Blocked | Verdict::NewlyBlocked => b += 1,
        }
    }
    (a, lim, b)
}

#[test]
fn classify_peeks_at_the_method_only() {
    assert_eq!(classify(b"INVITE sip:1@x SIP/2.0\r\n"), Class::Invite);
    assert_eq!(classify(b"\r\nREGISTER sip:x SIP/2.0\r\n"), Class::Register);
    assert_eq!(classify(b"OPTIONS sip:x SIP/2.0\r\n"), Class::Other);
    assert_eq!(classify(b"SIP/2.0 200 OK\r\n"), Class::Other);
    assert_eq!(classify(b"INVITEX sip:x"), Class::Other);
    assert_eq!(classify(b""), Class::Other);
    assert_eq!(classify(&[0xff; 20]), Class::Other);
}

#[test]
fn a_phone_at_its_pace_is_never_limited() {
    let mut l = SourceLimiter::new(&cfg());
    let t0 = Instant::now();
    let phone = ip("192.0.2.7");
    // A REGISTER pair every 30 s and a call a minute for an hour.
    for k in 0..120u64 {
        let now = t0 + Duration::from_secs(30 * k);
        assert_eq!(l.admit(phone, Class::Register, false, now), Verdict::Admit);
        assert_eq!(l.admit(phone, Class::Register, false, now), Verdict::Admit);
        for _ in 0..6 {
            assert_eq!(l.admit(phone, Class::Other, false, now), Verdict::Admit);
        }
    }
    // Thirty phones behind one NAT re-registering at once (two each).
    let t1 = t0 + Duration::from_secs(4000);
    let (a, lim, b) = send(
        &mut l,
        phone,
        Class::Register,
        false,
        60,
        t1,
        Duration::ZERO,
    );
    assert_eq!((a, lim, b), (60, 0, 0));
}

#[test]
fn a_flood_is_limited_then_blocked_within_a_second() {
    let mut l = SourceLimiter::new(&cfg());
    let t0 = Instant::now();
    let bad = ip("203.0.113.9");
    // 3000 INVITEs/s for one second.
    let (a, lim, b) = send(
        &mut l,
        bad,
        Class::Invite,
        false,
        3000,
        t0,
        Duration::from_secs(1),
    );
    assert!(a <= 50 + 10 + 1, "burst plus a second of rate: {a}");
    assert!((99..=102).contains(&lim), "strikes until the block: {lim}");
    assert_eq!(a + lim + b, 3000);
    assert!(b > 2800, "{b}");
    let blocks = l.blocks(t0 + Duration::from_secs(1));
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].source, bad);
    assert_eq!(blocks[0].reason, BlockReason::Flood);
    assert!(blocks[0].remaining <= Duration::from_secs(60));
    // Every class is dropped while blocked; another source is untouched.
    let t1 = t0 + Duration::from_secs(30);
    assert_eq!(l.admit(bad, Class::Register, false, t1), Verdict::Blocked);
    assert_eq!(
        l.admit(ip("203.0.113.10"), Class::Invite, false, t1),
        Verdict::Admit
    );
    // After the block the source starts with full buckets.
    let t2 = t0 + Duration::from_secs(62);
    assert_eq!(l.admit(bad, Class::Invite, false, t2), Verdict::Admit);
    assert!(l.blocks(t2).is_empty());
}

#[test]
fn going_a_little_over_the_rate_drops_the_excess_but_never_blocks() {
    let mut l = SourceLimiter::new(&cfg());
    let t0 = Instant::now();
    let s = ip("198.51.100.1");
    // 15 INVITEs/s against 10/s for five minutes: 5/s over, leaking 10/s.
    let (a, lim, b) = send(
        &mut l,
        s,
        Class::Invite,
        false,
        4500,
        t0,
        Duration::from_secs(300),
    );
    assert_eq!(b, 0);
    assert!(lim > 1000, "{lim}");
    assert!(a >= 3000, "{a}");
}

#[test]
fn repeat_offenders_are_blocked_twice_as_long_up_to_the_maximum() {
    let mut l = SourceLimiter::new(&cfg());
    let bad = ip("203.0.113.9");
    let mut now = Instant::now();
    let mut lengths = Vec::new();
    for _ in 0..8 {
        let len = l.block(bad, BlockReason::Flood, now);
        lengths.push(len.as_secs());
        now += len + Duration::from_secs(1);
    }
    assert_eq!(lengths, vec![60, 120, 240, 480, 960, 1920, 3600, 3600]);
    // Long forgotten: a fresh start.
    now += Duration::from_secs(7200);
    assert_eq!(l.block(bad, BlockReason::Flood, now).as_secs(), 60);
}

#[test]
fn a_slow_scanner_is_blocked_for_its_refused_invites() {
    let mut l = SourceLimiter::new(&cfg());
    let t0 = Instant::now();
    let scanner = ip("203.0.113.20");
    // Five INVITEs a second, well under the rate, each refused (403).
    let mut blocked_at = None;
    for i in 0..60u32 {
        let now = t0 + Duration::from_millis(200 * u64::from(i));
        if l.admit(scanner, Class::Invite, false, now) != Verdict::Admit {
            blocked_at.get_or_insert(i);
            continue;
        }
        if l.refused(scanner, now).is_some() {
            blocked_at = Some(i);
        }
    }
    let at = blocked_at.expect("the scanner is blocked");
    assert!((20..=40).contains(&at), "{at}");
    assert_eq!(
        l.blocks(t0 + Duration::from_secs(12))[0].reason,
        BlockReason::Scan
    );
    // A phone dialling a wrong number now and then never is.
    let phone = ip("192.0.2.8");
    for i in 0..100u64 {
        let now = t0 + Duration::from_secs(5 * i);
        assert_eq!(l.admit(phone, Class::Invite, false, now), Verdict::Admit);
        assert!(l.refused(phone, now).is_none());
    }
    // Off when strangers_block_after is 0.
    let mut c = cfg();
    c.strangers_block_after = 0;
    let mut l = SourceLimiter::new(&c);
    for i in 0..200u64 {
        let now = t0 + Duration::from_millis(100 * i);
        l.admit(scanner, Class::Invite, false, now);
        assert!(l.refused(scanner, now).is_none());
    }
}

#[test]
fn unblock_lifts_a_block_at_once() {
    let mut l = SourceLimiter::new(&cfg());
    let t0 = Instant::now();
    let bad = ip("203.0.113.9");
    l.block(bad, BlockReason::Auth, t0);
    assert_eq!(l.admit(bad, Class::Other, false, t0), Verdict::Blocked);
    assert_eq!(l.blocks(t0)[0].dropped, 1);
    assert!(l.unblock(bad, t0));
    assert!(!l.unblock(bad, t0), "nothing left to lift");
    assert_eq!(l.admit(bad, Class::Other, false, t0), Verdict::Admit);
    assert!(l.blocks(t0).is_empty());
}

#[test]
fn trunks_have_their_own_higher_rates_and_are_not_blocked_by_default() {
    let mut l = SourceLimiter::new(&cfg());
    let t0 = Instant::now();
    let trunk = ip("127.0.0.1");
    // 600 calls/s for 10 s: three requests each.
    let (a, lim, b) = send(
        &mut l,
        trunk,
        Class::Invite,
        true,
        6000,
        t0,
        Duration::from_secs(10),
    );
    assert_eq!((a, lim, b), (6000, 0, 0));
    let (a, _, _) = send(
        &mut l,
        trunk,
        Class::Other,
        true,
        12000,
        t0,
        Duration::from_secs(10),
    );
    assert_eq!(a, 12000);
    // Far beyond its rate (20,000/s, 40,000 at once), a trunk's excess is dropped, but it is not blocked.
    let (_, lim, b) = send(
        &mut l,
        trunk,
        Class::Invite,
        true,
        200_000,
        t0 + Duration::from_secs(20),
        Duration::from_secs(1),
    );
    assert!(lim > 130_000, "{lim}");
    assert_eq!(b, 0);
    let mut blocking = cfg();
    blocking.block_trunks = true;
    let mut l = SourceLimiter::new(&blocking);
    let (_, _, b) = send(
        &mut l,
        trunk,
        Class::Invite,
        true,
        200_000,
        t0,
        Duration::from_secs(1),
    );
    assert!(b > 130_000, "{b}");
}

#[test]
fn a_zero_rate_means_unlimited() {
    let mut c = cfg();
    c.sources.other = Rate {
        rate: 0.0,
        burst: 0.0,
    };
    let mut l = SourceLimiter::new(&c);
    let (a, _, _) = send(
        &mut l,
        ip("192.0.2.1"),
        Class::Other,
        false,
        100_000,
        Instant::now(),
        Duration::ZERO,
    );
    assert_eq!(a, 100_000);
    assert_eq!(l.tracked(), 0, "unlimited classes keep no state");
}

#[test]
fn spoofed_sources_cannot_grow_the_tables() {
    let mut c = cfg();
    c.max_sources = 1000;
    let mut l = SourceLimiter::new(&c);
    let t0 = Instant::now();
    for i in 0..50_000u32 {
        let src = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
        l.admit(src, Class::Invite, false, t0);
        l.block(src, BlockReason::Flood, t0);
    }
    assert!(l.tracked() <= 1000);
    assert!(l.blocks(t0).len() <= 1000);
}

#[test]
fn config_validation_refuses_nonsense() {
    assert!(cfg().validate().is_ok());
    let mut c = cfg();
    c.sources.invite.burst = 0.0;
    assert!(c.validate().is_err());
    let mut c = cfg();
    c.trunks.other.rate = f64::NAN;
    assert!(c.validate().is_err());
    let mut c = cfg();
    c.block_after = 0;
    assert!(c.validate().is_err());
}

// ---------------------------------------------------------------- auth

fn auth() -> AuthLimiter {
    AuthLimiter::new(&AuthConfig::default(), 10_000)
}

#[test]
fn failures_grow_the_delay_then_block_the_source() {
    let mut a = auth();
    let t0 = Instant::now();
    let g = ip("203.0.113.5");
    let delays: Vec<u64> = (0..19)
        .map(|i| {
            let p = a.failed(g, "op1", t0 + Duration::from_secs(i));
            assert!(!p.block, "failure {i}");
            p.delay.as_millis() as u64
        })
        .collect();
    assert_eq!(&delays[..8], &[0, 0, 0, 500, 1000, 2000, 4000, 8000]);
    assert!(delays[8..].iter().all(|d| *d == 8000));
    assert!(a.failed(g, "op1", t0 + Duration::from_secs(20)).block);
}

#[test]
fn unknown_and_real_accounts_are_treated_alike() {
    let mut a = auth();
    let t0 = Instant::now();
    let (g1, g2) = (ip("203.0.113.5"), ip("203.0.113.6"));
    let real: Vec<Penalty> = (0..25)
        .map(|i| a.failed(g1, "op1", t0 + Duration::from_secs(i)))
        .collect();
    let mut b = auth();
    let fake: Vec<Penalty> = (0..25)
        .map(|i| b.failed(g2, "nobody-here", t0 + Duration::from_secs(i)))
        .collect();
    assert_eq!(real, fake);
}

#[test]
fn a_guessed_account_is_locked_but_not_for_its_usual_address() {
    let mut a = auth();
    let t0 = Instant::now();
    let phone = ip("192.0.2.10");
    a.succeeded(phone, "op1", t0);
    // Guessers from many addresses, three tries each.
    let mut locked_at = None;
    for i in 0..40u32 {
        let g = IpAddr::from(std::net::Ipv4Addr::from(0xcb00_7100 + i / 3));
        let p = a.failed(g, "op1", t0 + Duration::from_secs(u64::from(i)));
        assert!(!p.block);
        if p.locked_account && locked_at.is_none() {
            locked_at = Some(i);
        }
    }
    assert_eq!(locked_at, Some(29));
    let t1 = t0 + Duration::from_secs(60);
    assert!(a.locked(ip("203.0.113.200"), "op1", t1));
    assert!(
        !a.locked(phone, "op1", t1),
        "the real phone still registers"
    );
    assert!(
        !a.locked(ip("203.0.113.200"), "op2", t1),
        "other accounts untouched"
    );
    // The lock ends.
    assert!(!a.locked(
        ip("203.0.113.200"),
        "op1",
        t0 + Duration::from_secs(40 + 901)
    ));
}

#[test]
fn a_usual_address_is_blocked_only_far_later_and_success_forgives() {
    let mut a = auth();
    let t0 = Instant::now();
    let phone = ip("192.0.2.10");
    a.succeeded(phone, "op1", t0);
    // A phone with a stale password retrying: not blocked at 20 failures.
    for i in 0..99 {
        assert!(
            !a.failed(phone, "op1", t0 + Duration::from_secs(i)).block,
            "{i}"
        );
    }
    assert!(a.failed(phone, "op1", t0 + Duration::from_secs(99)).block);
    // A source that authenticates has its failures forgiven.
    let g = ip("198.51.100.3");
    for i in 0..10 {
        a.failed(g, "op2", t0 + Duration::from_secs(i));
    }
    a.succeeded(g, "op2", t0 + Duration::from_secs(11));
    assert_eq!(
        a.failed(g, "op2", t0 + Duration::from_secs(12)).delay,
        Duration::ZERO
    );
}

#[test]
fn failures_outside_the_window_are_forgotten() {
    let mut a = auth();
    let t0 = Instant::now();
    let g = ip("203.0.113.5");
    for i in 0..15 {
        a.failed(g, "op1", t0 + Duration::from_secs(i));
    }
    let later = t0 + Duration::from_secs(601 + 15);
    assert_eq!(a.failed(g, "op1", later).delay, Duration::ZERO);
}

#[test]
fn auth_tables_stay_bounded_under_random_names_and_sources() {
    let mut a = AuthLimiter::new(&AuthConfig::default(), 500);
    let t0 = Instant::now();
    for i in 0..20_000u32 {
        let g = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
        a.failed(g, &format!("user{i}"), t0);
        a.succeeded(g, &format!("user{i}"), t0);
    }
    assert!(a.by_source.len() <= 500);
    assert!(a.by_account.len() <= 500);
    assert!(a.usual.len() <= 500);
}

#[test]
fn sampler_writes_one_line_a_second_and_counts_the_rest() {
    let mut s = Sampler::default();
    let t0 = Instant::now();
    assert_eq!(s.due(t0), Some(0));
    for i in 1..100 {
        assert_eq!(s.due(t0 + Duration::from_millis(i)), None);
    }
    assert_eq!(s.due(t0 + Duration::from_millis(1001)), Some(99));
}

#[test]
fn sources_are_keyed_by_ipv4_address_or_ipv6_64() {
    assert_eq!(source_key(ip("192.0.2.7")), ip("192.0.2.7"));
    assert_eq!(source_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
    assert_eq!(
        source_key(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
        ip("2001:db8:1:2::")
    );
    assert_eq!(
        source_key(ip("2001:db8:1:2::99")),
        source_key(ip("2001:db8:1:2:ffff::1"))
    );
    assert_ne!(
        source_key(ip("2001:db8:1:2::1")),
        source_key(ip("2001:db8:1:3::1"))
    );
}
