//! `cargo bench -p gatehouse-gateway`: the per-request cost of
//! authenticate (cached token) + authorize (rules, then Cedar), the work the
//! gateway adds to a proxied request. Goal: under 2 µs for a cached token.
//! Plain timing loops (no criterion) so the benchmark costs no build time
//! in every lint run; each figure is the median of 15 batches.

use gatehouse_gateway::authz::cedar::CedarPolicy;
use gatehouse_gateway::authz::rules;
use gatehouse_gateway::config::{GatewayFile, Snapshot};
use gatehouse_jose::keys::{Alg, SigningKey};
use serde_json::json;
use std::hint::black_box;
use std::time::Instant;

fn median_ns(batch: u32, mut f: impl FnMut()) -> f64 {
    let mut runs = vec![];
    for _ in 0..15 {
        let t = Instant::now();
        for _ in 0..batch {
            f();
        }
        runs.push(t.elapsed().as_nanos() as f64 / batch as f64);
    }
    runs.sort_by(|a, b| a.total_cmp(b));
    runs[runs.len() / 2]
}

fn main() {
    gatehouse_jose::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (key, _) = SigningKey::generate(Alg::RS256).expect("key");
    let dir = std::env::temp_dir().join(format!("gatehouse-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let jwks = dir.join("jwks.json");
    std::fs::write(
        &jwks,
        gatehouse_jose::jwks::document([key.public_jwk()]).to_string(),
    )
    .expect("write");
    let now = gatehouse_core::time::now();
    let token = gatehouse_jose::sign::sign(
        &key,
        &json!({"iss": "https://idp.example/realms/r", "sub": "u1", "aud": "orders-api", "exp": now + 3600, "iat": now,
                "azp": "cli", "scope": "openid orders:read", "groups": ["sales", "emea"],
                "realm_access": {"roles": ["viewer"]}, "preferred_username": "alice", "department": "sales"}),
    )
    .expect("sign");
    let text = format!(
        "[authorizers.a]\ntype = \"jwt\"\nissuer = \"https://idp.example/realms/r\"\naudiences = [\"orders-api\"]\njwks_file = {:?}\n\n[[routes]]\nname = \"r\"\npath = \"/orders\"\nupstream = \"http://127.0.0.1:9\"\nauthorizers = [\"a\"]\nscopes_any = [\"orders:read\"]\ngroups_any = [\"sales\"]\nclaims = {{ department = [\"sales\", \"support\"] }}\n",
        jwks.display().to_string()
    );
    let snap = Snapshot::build(
        GatewayFile::parse(&text).expect("parse"),
        None,
        &reqwest::Client::new(),
        None,
    )
    .expect("snapshot");
    let route = snap.route("/orders").expect("route").clone();
    let gatehouse_gateway::authn::Authorizer::Jwt(jwt) = route.authorizers[0].as_ref() else {
        panic!("jwt authorizer expected");
    };
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    // Warm: the first call fetches the JWKS file and verifies the signature.
    let first = rt
        .block_on(jwt.authenticate(token.as_bytes(), None))
        .expect("valid token");
    let cedar = CedarPolicy::parse(
        r#"permit(principal in Group::"sales", action == Action::"GET", resource == Route::"r") when { principal.scopes.contains("orders:read") };
           forbid(principal, action, resource) when { context.ip.isInRange(ip("10.0.0.0/8")) };"#,
    )
    .expect("cedar");
    let ip: std::net::IpAddr = "127.0.0.1".parse().expect("ip");

    let auth = median_ns(20_000, || {
        let t = jwt.token(black_box(&headers)).expect("token");
        let id = rt
            .block_on(jwt.authenticate(t.expect("one token").token, None))
            .expect("cached");
        black_box(rules::check(&route.cfg, &id).expect("allowed"));
    });
    // The same over one connection that repeats its token.
    let memo = gatehouse_gateway::authn::jwt::TokenMemo::default();
    let auth_memo = median_ns(20_000, || {
        let t = jwt.token(black_box(&headers)).expect("token");
        let id = rt
            .block_on(jwt.authenticate(t.expect("one token").token, Some(&memo)))
            .expect("cached");
        black_box(rules::check(&route.cfg, &id).expect("allowed"));
    });
    let cedar_ns = median_ns(2_000, || {
        black_box(
            cedar
                .allows("r", "GET", "/orders/1", &first, ip, now)
                .expect("eval"),
        );
    });
    // The same request again on one connection (its last decision kept).
    let cedar_memo = gatehouse_gateway::authz::cedar::Memo::default();
    let cedar_memo_ns = median_ns(2_000, || {
        black_box(
            cedar
                .allows_with_memo(
                    "r",
                    "GET",
                    "/orders/1",
                    &first,
                    (ip, now),
                    Some(&cedar_memo),
                )
                .expect("eval"),
        );
    });
    let ks = gatehouse_jose::verify::KeySet::from_jwks_json(
        gatehouse_jose::jwks::document([key.public_jwk()])
            .to_string()
            .as_bytes(),
    )
    .expect("ks");
    let verify_rules = gatehouse_jose::verify::Rules::for_issuer("https://idp.example/realms/r");
    let verify = median_ns(500, || {
        black_box(ks.verify(black_box(&token), &verify_rules).expect("ok"));
    });
    println!("authenticate (cached token) + rules: {auth:>9.0} ns   goal < 2000 ns");
    println!("the same, token repeated on a connection: {auth_memo:>5.0} ns");
    println!("cedar evaluation (2 policies):        {cedar_ns:>9.0} ns");
    println!("the same, repeated on a connection:   {cedar_memo_ns:>9.0} ns");
    println!("uncached RS256 verification baseline: {verify:>9.0} ns");
    let _ = std::fs::remove_dir_all(&dir);
}
