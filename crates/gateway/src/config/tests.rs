use super::*;

fn build(text: &str) -> Result<Snapshot> {
    Snapshot::build(
        GatewayFile::parse(text)?,
        None,
        &reqwest::Client::new(),
        None,
    )
}

const AUTHZ: &str =
    "[authorizers.corp]\ntype = \"jwt\"\nissuer = \"http://127.0.0.1:1/realms/x\"\n";

#[test]
fn unprotected_routes_are_refused_unless_public() {
    let e = build("[[routes]]\nname = \"a\"\npath = \"/a\"\nupstream = \"http://127.0.0.1:9\"\n")
        .expect_err("must refuse");
    assert!(e.to_string().contains("route 'a': no authorizer"), "{e}");
    build("[[routes]]\nname = \"a\"\npath = \"/a\"\nupstream = \"http://127.0.0.1:9\"\npublic = true\n").expect("public ok");
    let e = build(&format!("{AUTHZ}[[routes]]\nname = \"a\"\npath = \"/a\"\nupstream = \"http://127.0.0.1:9\"\nauthorizers = [\"nope\"]\n")).expect_err("unknown");
    assert!(e.to_string().contains("unknown authorizer 'nope'"));
}

#[test]
fn typos_are_errors_with_a_line_number() {
    let e = build(&format!("{AUTHZ}[[routes]]\nname = \"a\"\npath = \"/a\"\nupstream = \"http://127.0.0.1:9\"\nauthorizers = [\"corp\"]\ngroup_any = [\"x\"]\n")).expect_err("typo");
    let msg = e.to_string();
    assert!(msg.contains("group_any") && msg.contains("line 9"), "{msg}");
}

#[test]
fn longest_prefix_wins_on_segment_boundaries() {
    let s = build("[[routes]]\nname = \"root\"\npath = \"/\"\nupstream = \"http://127.0.0.1:9\"\npublic = true\n[[routes]]\nname = \"o\"\npath = \"/orders\"\nupstream = \"http://127.0.0.1:9\"\npublic = true\n").expect("ok");
    assert_eq!(s.route("/orders/1").map(|r| r.cfg.name.as_str()), Some("o"));
    assert_eq!(s.route("/orders").map(|r| r.cfg.name.as_str()), Some("o"));
    assert_eq!(
        s.route("/ordersx").map(|r| r.cfg.name.as_str()),
        Some("root")
    );
    assert_eq!(s.route("/").map(|r| r.cfg.name.as_str()), Some("root"));
}

#[test]
fn symmetric_algorithms_are_refused() {
    let e =
        build("[authorizers.c]\ntype = \"jwt\"\nissuer = \"http://x\"\nalgorithms = [\"HS256\"]\n")
            .expect_err("hs");
    assert!(e.to_string().contains("HS256"));
}

#[test]
fn random_config_text_is_refused_cleanly() {
    let pieces = [
        "[[routes]]\n",
        "name = \"a\"\n",
        "path = \"/a\"\n",
        "upstream = \"http://127.0.0.1:9\"\n",
        "public = true\n",
        "authorizers = [\"x\"]\n",
        "[authorizers.x]\n",
        "type = \"jwt\"\n",
        "issuer = \"http://i\"\n",
        "rate_limit = { rate = 0 }\n",
        "cors = { allow_origins = [] }\n",
        "timeout_ms = 0\n",
        "\u{0}",
        "=\n",
        "[gateway]\n",
        "path = 7\n",
        "algorithms = [\"none\"]\n",
    ];
    let mut x: u64 = 0xdeadbeefcafef00d;
    let http = reqwest::Client::new();
    for _ in 0..2000 {
        let mut text = String::new();
        for _ in 0..(x % 9) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            text.push_str(pieces[(x % pieces.len() as u64) as usize]);
        }
        // Either a valid snapshot or an error; never a panic.
        let _ = GatewayFile::parse(&text).and_then(|f| Snapshot::build(f, None, &http, None));
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    const BASE: &str = "[authorizers.corp]\ntype = \"jwt\"\nissuer = \"http://127.0.0.1:1/realms/x\"\naudiences = [\"api\"]\n\n[[routes]]\nname = \"orders\"\npath = \"/orders\"\nupstream = \"http://127.0.0.1:9\"\nauthorizers = [\"corp\"]\nscopes_any = [\"orders:read\"]\n\n[[routes]]\nname = \"health\"\npath = \"/health\"\nupstream = \"http://127.0.0.1:9\"\npublic = true\n";

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Any text is parsed or refused with a message, never a panic.
        #[test]
        fn arbitrary_text_never_panics(text in ".{0,300}") {
            let _ = build(&text);
        }

        /// Typos of a valid file (a character dropped or replaced): whatever
        /// still loads leaves no route without an authorizer unless it says
        /// `public = true`.
        #[test]
        fn no_typo_leaves_a_route_open_by_accident(pos in any::<prop::sample::Index>(), with in proptest::option::of("[a-z\"=\\[\\]. \n_0-9]")) {
            let i = pos.index(BASE.len());
            let mut text = BASE.to_owned();
            match with {
                Some(c) => text.replace_range(i..i + 1, &c),
                None => {
                    text.remove(i);
                }
            }
            if let Ok(snap) = build(&text) {
                for r in &snap.routes {
                    prop_assert!(r.cfg.public || !r.authorizers.is_empty(), "{text}");
                }
            }
        }
    }
}

#[test]
fn client_id_as_audience_defaults_on_for_cognito_user_pools_only() {
    let auth = |extra: &str| {
        GatewayFile::parse(&format!("[authorizers.a]\ntype = \"jwt\"\n{extra}\n"))
            .expect("parse")
            .authorizers
            .remove("a")
            .expect("a")
            .client_id_as_audience()
    };
    let pool = "issuer = \"https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123\"";
    assert!(auth(pool));
    assert!(!auth(&format!("{pool}\nclient_id_as_audience = false")));
    assert!(!auth("issuer = \"https://idp.example/realms/r\""));
    assert!(!auth("issuer = \"https://cognito-idp.evil.example/x\""));
    assert!(!auth(
        "issuer = \"http://cognito-idp.eu-west-1.amazonaws.com/p\""
    ));
    assert!(auth(
        "issuer = \"https://idp.example\"\nclient_id_as_audience = true"
    ));
}

/// Durations past a day are refused at load with the setting's name, where
/// an unbounded one overflowed the deadline arithmetic on every request
/// (`Instant + Duration` panics) or jsonwebtoken's `now - leeway`.
#[test]
fn durations_beyond_a_day_are_refused_at_load() {
    let route = |extra: &str| {
        format!(
            "[[routes]]\nname = \"a\"\npath = \"/a\"\nupstream = \"http://127.0.0.1:9\"\npublic = true\n{extra}"
        )
    };
    for (text, says) in [
        (route("timeout_ms = 18446744073709551615\n"), "timeouts"),
        (route("connect_timeout_ms = 86400001\n"), "timeouts"),
        (route("timeout_ms = 0\n"), "timeouts"),
        (
            route("eject_seconds = 18446744073709551615\n"),
            "eject_seconds",
        ),
        (
            format!("{AUTHZ}leeway_seconds = 18446744073709551615\n"),
            "leeway_seconds",
        ),
        (
            "[gateway]\nheader_read_timeout_ms = 18446744073709551615\n".to_owned(),
            "header_read_timeout_ms",
        ),
    ] {
        let e = build(&text).expect_err(says);
        assert!(e.to_string().contains(says), "{e}");
    }
    build(&route(
        "timeout_ms = 86400000\nconnect_timeout_ms = 1\neject_seconds = 86400\n",
    ))
    .expect("a day is allowed");
}
