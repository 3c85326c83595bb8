use super::*;

/// A realm whose events the listing shows (new realms list none, as in
/// Keycloak).
fn listed_realm(name: &str) -> Realm {
    let mut r = Realm::new(name);
    r.events_enabled = true;
    r.admin_events_enabled = true;
    r
}

/// A session of `user_id` started at time 1.
fn session(id: &str, realm_id: &str, user_id: &str) -> Session {
    Session {
        id: id.into(),
        realm_id: realm_id.into(),
        user_id: user_id.into(),
        client_id: "app".into(),
        ip: None,
        started: 1,
        last_access: 1,
        offline: false,
        refresh_token_id: None,
        rotate_refresh: false,
        scope: "openid".into(),
        auth_time: 1,
        sso_session_id: None,
        sso_auth: false,
        impersonator: None,
        broker: None,
        remember_me: false,
        claims: None,
    }
}

/// A store on a database file (in-memory ones skip the inline paths),
/// and the folder to remove afterwards.
async fn file_store() -> (std::path::PathBuf, SqliteStore) {
    let dir = std::env::temp_dir().join(format!("gatehouse-store-{}", gatehouse_core::id::uuid()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("db.sqlite");
    let s = SqliteStore::open(&format!("sqlite://{}", file.display()))
        .await
        .expect("open");
    (dir, s)
}

async fn store() -> SqliteStore {
    SqliteStore::open("sqlite::memory:").await.expect("open")
}

#[tokio::test]
async fn effective_roles_through_groups_parents_and_composites() {
    let s = store().await;
    let realm = listed_realm("r");
    s.create_realm(&realm, &[], &[]).await.expect("realm");
    let mk = |n: &str| Role {
        id: gatehouse_core::id::uuid(),
        realm_id: realm.id.clone(),
        client_id: None,
        name: n.into(),
        description: None,
        attributes: Default::default(),
    };
    let (direct, parent_role, composite, child) =
        (mk("direct"), mk("parent"), mk("comp"), mk("child"));
    for r in [&direct, &parent_role, &composite, &child] {
        s.create_role(r, &[]).await.expect("role");
    }
    s.add_composites(&composite.id, std::slice::from_ref(&child.id), &[])
        .await
        .expect("comp");
    let user = User::new(&realm.id, "Alice");
    s.create_user(&user, &[], &Memberships::default(), &[])
        .await
        .expect("user");
    let top = Group {
        id: gatehouse_core::id::uuid(),
        realm_id: realm.id.clone(),
        parent_id: None,
        name: "top".into(),
        description: None,
        attributes: Default::default(),
    };
    let sub = Group {
        id: gatehouse_core::id::uuid(),
        parent_id: Some(top.id.clone()),
        name: "sub".into(),
        description: None,
        ..top.clone()
    };
    s.create_group(&top, &[]).await.expect("g");
    s.create_group(&sub, &[]).await.expect("g");
    s.join_group(&user.id, &sub.id, &[]).await.expect("join");
    s.grant_roles(
        Holder::User(&user.id),
        &[direct.id.clone(), composite.id.clone()],
        &[],
    )
    .await
    .expect("grant");
    s.grant_roles(
        Holder::Group(&top.id),
        std::slice::from_ref(&parent_role.id),
        &[],
    )
    .await
    .expect("grant");
    let names: Vec<String> = s
        .effective_roles(&user.id)
        .await
        .expect("eff")
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, vec!["child", "comp", "direct", "parent"]);
    // Usernames are stored lower-cased and unique per realm.
    assert!(
        s.user_by_username(&realm.id, "ALICE")
            .await
            .expect("q")
            .is_some()
    );
    let dup = User::new(&realm.id, "alice");
    assert!(matches!(
        s.create_user(&dup, &[], &Memberships::default(), &[]).await,
        Err(Error::Conflict(_))
    ));
}

#[tokio::test]
async fn writes_and_their_events_commit_together() {
    let s = store().await;
    let realm = listed_realm("r");
    let ev = Event::admin(&realm, "CREATE", "REALM", "r");
    s.create_realm(&realm, &[], std::slice::from_ref(&ev))
        .await
        .expect("realm");
    // A failing write (duplicate) must not leave its event behind.
    let dup_ev = Event::admin(&realm, "CREATE", "REALM", "again");
    assert!(s.create_realm(&realm, &[], &[dup_ev]).await.is_err());
    let q = EventQuery {
        category: "admin".into(),
        ..Default::default()
    };
    let got = s.events(&realm.id, &q).await.expect("events");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, ev.id);
}

#[tokio::test]
async fn codes_are_single_use_and_refresh_rotation_is_compare_and_set() {
    codes_and_refresh_rotation(store().await).await;
}

/// The same on a database file, where session reads take the inline path
/// (`inline_reads.rs`): every read sees the write committed before it.
#[tokio::test]
async fn inline_session_reads_see_every_committed_write() {
    let dir = std::env::temp_dir().join(format!("gatehouse-store-{}", gatehouse_core::id::uuid()));
    std::fs::create_dir_all(&dir).expect("dir");
    let url = format!("sqlite://{}", dir.join("db.sqlite").display());
    let s = SqliteStore::open(&url).await.expect("open");
    assert!(s.inline.is_some(), "a file database reads inline");
    codes_and_refresh_rotation(s).await;
    std::fs::remove_dir_all(&dir).ok();
}

/// A login's statements on a database file run on the inline connection
/// (`inline_writer.rs`): the pool sees what it wrote, its foreign keys
/// hold, and while another connection holds the write lock the write goes
/// through the pool, which waits for the lock instead of failing.
#[tokio::test]
async fn login_statements_run_inline_and_yield_to_a_held_write_lock() {
    let (dir, s) = file_store().await;
    assert!(s.writer.is_some(), "a file database writes logins inline");
    let realm = listed_realm("r");
    s.create_realm(&realm, &[], &[]).await.expect("realm");
    let user = User::new(&realm.id, "Carol");
    let cred = Credential {
        id: gatehouse_core::id::uuid(),
        user_id: user.id.clone(),
        kind: "password".into(),
        created_date: 1,
        credential_data: "{}".into(),
        secret_data: "{}".into(),
        user_label: None,
        priority: 0,
    };
    s.create_user(
        &user,
        std::slice::from_ref(&cred),
        &Memberships::default(),
        &[],
    )
    .await
    .expect("user");
    let found = s.user_by_username(&realm.id, "CAROL").await.expect("read");
    assert_eq!(found.map(|u| u.id), Some(user.id.clone()));
    assert!(
        s.user_by_username(&realm.id, "dave")
            .await
            .expect("read")
            .is_none()
    );
    // Stored first in the user's list, at Keycloak's first priority.
    let stored = Credential {
        priority: 10,
        ..cred
    };
    assert_eq!(s.credentials(&user.id).await.expect("creds"), vec![stored]);
    assert_eq!(s.login_failures(&user.id).await.expect("lf").failures, 0);
    s.record_login_failure(&user.id, 7_250, 60, Some("10.0.0.1"), &[])
        .await
        .expect("failure");
    let lf = s.login_failures(&user.id).await.expect("lf");
    assert_eq!(
        (lf.failures, lf.last_failure(), lf.last_failure_ms),
        (1, 7, 7_250)
    );
    assert_eq!(
        (lf.last_ip.as_deref(), lf.not_before),
        (Some("10.0.0.1"), 60)
    );
    // A later failure without a wait of its own keeps the running one.
    let lf = s
        .record_login_failure(&user.id, 9_000, 0, None, &[])
        .await
        .expect("failure");
    assert_eq!(
        (lf.failures, lf.last_failure_ms, lf.not_before),
        (2, 9_000, 60)
    );

    let session = |id: &str, user_id: &str| session(id, &realm.id, user_id);
    let login = Event::user(&realm, "LOGIN");
    s.create_session(&session("s1", &user.id), std::slice::from_ref(&login))
        .await
        .expect("session");
    assert!(s.session("s1").await.expect("read").is_some());
    // The outbox read in order by a listener, from a kept position.
    let end = s.last_event_seq().await.expect("seq");
    assert!(end > 0);
    // (Unlisted, as with events off: listeners read them all the same.)
    let unlisted = |kind: &str| Event {
        listed: false,
        ..Event::user(&realm, kind)
    };
    let error = unlisted("LOGIN_ERROR");
    s.append_events(&[unlisted("LOGOUT"), error.clone()])
        .await
        .expect("append");
    let since = s
        .events_since(end, &["LOGIN_ERROR"], 10)
        .await
        .expect("since");
    assert_eq!(since.len(), 1);
    assert_eq!(since[0].1.id, error.id);
    assert_eq!(s.last_event_seq().await.expect("seq"), since[0].0);
    assert_eq!(s.events_since(end, &[], 10).await.expect("all").len(), 2);
    assert_eq!(s.listener_position("email").await.expect("pos"), None);
    s.set_listener_position("email", end).await.expect("set");
    s.set_listener_position("email", since[0].0)
        .await
        .expect("set");
    assert_eq!(
        s.listener_position("email").await.expect("pos"),
        Some(since[0].0)
    );
    let q = EventQuery {
        category: "user".into(),
        ..Default::default()
    };
    let listed = s.events(&realm.id, &q).await.expect("events");
    assert_eq!(
        listed.iter().map(|e| &e.id).collect::<Vec<_>>(),
        [&login.id]
    );
    // Foreign keys are on for this connection too: no session of a user
    // that does not exist, and nothing of the failed write is left.
    let orphan = s
        .create_session(&session("s2", "nobody"), &[Event::user(&realm, "LOGIN")])
        .await;
    assert!(matches!(orphan, Err(Error::NotFound)), "{orphan:?}");
    assert_eq!(s.events(&realm.id, &q).await.expect("events").len(), 1);

    // Another connection takes the write lock: the login's write waits
    // for it through the pool and lands once it is released.
    let mut other = rusqlite::Connection::open(dir.join("db.sqlite")).expect("open");
    let held = other
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .expect("lock");
    let s2 = s.clone();
    let third = session("s3", &user.id);
    let write = tokio::spawn(async move { s2.create_session(&third, &[]).await });
    // The wait is the pool's, off this (single-threaded) runtime: a
    // connection that waited for the lock here would stall it.
    let t0 = std::time::Instant::now();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(3),
        "runtime stalled"
    );
    assert!(!write.is_finished(), "the write waits for the lock");
    held.commit().expect("release");
    write.await.expect("task").expect("written after the lock");
    assert!(s.session("s3").await.expect("read").is_some());
    drop(s);
    std::fs::remove_dir_all(&dir).ok();
}

async fn codes_and_refresh_rotation(s: SqliteStore) {
    let realm = listed_realm("r");
    s.create_realm(&realm, &[], &[]).await.expect("realm");
    let c = CodeRecord {
        code: "c1".into(),
        realm_id: realm.id.clone(),
        data: "{}".into(),
        expires: 10,
    };
    s.put_code(&c).await.expect("put");
    assert!(s.take_code("c1").await.expect("take").is_some());
    assert!(s.take_code("c1").await.expect("take").is_none());
    // Taking a code can leave a tombstone in the same write; a missing
    // code leaves none.
    s.put_code(&c).await.expect("put");
    let stone = CodeRecord {
        code: "spent:c1".into(),
        data: "session-1".into(),
        ..c.clone()
    };
    let taken = s.take_code_leaving("c1", &stone).await.expect("take");
    assert_eq!(taken.map(|t| t.data).as_deref(), Some("{}"));
    assert!(
        s.take_code_leaving("c1", &stone)
            .await
            .expect("take")
            .is_none()
    );
    let left = s
        .take_code("spent:c1")
        .await
        .expect("take")
        .expect("tombstone");
    assert_eq!(left.data, "session-1");

    let user = User::new(&realm.id, "bob");
    s.create_user(&user, &[], &Memberships::default(), &[])
        .await
        .expect("user");
    let sess = Session {
        refresh_token_id: Some("r1".into()),
        rotate_refresh: true,
        ..session("s1", &realm.id, &user.id)
    };
    s.create_session(&sess, &[]).await.expect("sess");
    assert!(
        s.rotate_refresh("s1", Some("r1"), "r2", 2, &[])
            .await
            .expect("rot")
    );
    assert!(
        !s.rotate_refresh("s1", Some("r1"), "r3", 3, &[])
            .await
            .expect("rot")
    );
    assert_eq!(
        s.session("s1")
            .await
            .expect("s")
            .expect("some")
            .refresh_token_id
            .as_deref(),
        Some("r2")
    );
    // Batched touches move last_access forward only; a batch of events
    // larger than one statement's chunk commits with them.
    let evs: Vec<Event> = (0..1203)
        .map(|_| Event::user(&realm, "REFRESH_TOKEN"))
        .collect();
    s.touch_sessions(&[("s1".into(), 50), ("nope".into(), 60)], &evs)
        .await
        .expect("touch");
    s.touch_sessions(&[("s1".into(), 40)], &[])
        .await
        .expect("touch");
    assert_eq!(
        s.session("s1").await.expect("s").expect("some").last_access,
        50
    );
    let q = EventQuery {
        category: "user".into(),
        max: 5000,
        ..Default::default()
    };
    assert_eq!(s.events(&realm.id, &q).await.expect("events").len(), 1203);
    // Deleting the user ends its sessions (foreign key cascade).
    s.delete_user(&realm.id, &user.id, &[]).await.expect("del");
    assert!(s.session("s1").await.expect("s").is_none());
}

#[tokio::test]
async fn initial_access_counts_down_atomically_and_expires() {
    let s = store().await;
    let realm = listed_realm("r");
    s.create_realm(&realm, &[], &[]).await.expect("realm");
    let ia = InitialAccess {
        id: "ia".into(),
        realm_id: realm.id.clone(),
        timestamp: 1_000,
        expiration: 60,
        count: 2,
        remaining_count: 2,
    };
    s.create_initial_access(&ia, &[]).await.expect("create");
    // Two registrations at once from a two-use token: both pass, a third
    // does not, and none after expiry.
    let (a, b) = tokio::join!(
        s.use_initial_access(&realm.id, "ia", 1_010),
        s.use_initial_access(&realm.id, "ia", 1_010)
    );
    assert!(a.expect("a") && b.expect("b"));
    assert!(
        !s.use_initial_access(&realm.id, "ia", 1_010)
            .await
            .expect("c")
    );
    let left = s.initial_accesses(&realm.id).await.expect("list");
    assert_eq!(left[0].remaining_count, 0);
    let fresh = InitialAccess {
        id: "ib".into(),
        remaining_count: 5,
        count: 5,
        ..ia
    };
    s.create_initial_access(&fresh, &[]).await.expect("create");
    assert!(
        !s.use_initial_access(&realm.id, "ib", 1_060)
            .await
            .expect("expired")
    );
    assert!(
        !s.use_initial_access("other", "ib", 1_010)
            .await
            .expect("realm")
    );
    assert!(
        s.use_initial_access(&realm.id, "ib", 1_059)
            .await
            .expect("ok")
    );
    s.delete_initial_access(&realm.id, "ib", &[])
        .await
        .expect("delete");
    assert!(matches!(
        s.delete_initial_access(&realm.id, "ib", &[]).await,
        Err(Error::NotFound)
    ));
    assert_eq!(s.initial_accesses(&realm.id).await.expect("list").len(), 1);
}

/// The purge expires listed events by their realm's `eventsExpiration` /
/// `adminEventsExpiration` (seconds; none when unset) and unlisted ones
/// after a day, and leaves everything else.
#[tokio::test]
async fn events_expire_by_their_realms_settings() {
    let s = store().await;
    let mut kept = Realm::new("kept");
    let mut expiring = Realm::new("expiring");
    expiring
        .extra
        .insert("eventsExpiration".into(), serde_json::json!(60));
    expiring
        .extra
        .insert("adminEventsExpiration".into(), serde_json::json!("3600"));
    for r in [&mut kept, &mut expiring] {
        s.create_realm(r, &[], &[]).await.expect("realm");
    }
    let now = gatehouse_core::time::now();
    let at = |realm: &Realm, admin: bool, secs_ago: i64, listed: bool| {
        let mut e = if admin {
            Event::admin(realm, "CREATE", "USER", "users/x")
        } else {
            Event::user(realm, "LOGIN")
        };
        e.time = (now - secs_ago) * 1000;
        e.listed = listed;
        e
    };
    let events = vec![
        at(&expiring, false, 120, true),     // past 60 s: goes
        at(&expiring, false, 10, true),      // stays
        at(&expiring, true, 120, true),      // admin, within an hour: stays
        at(&expiring, true, 7200, true),     // admin, past an hour: goes
        at(&kept, false, 999_999, true),     // no expiration: stays
        at(&kept, false, 2 * 86_400, false), // unlisted, past a day: goes
        at(&kept, false, 600, false),        // unlisted, recent: stays
    ];
    s.append_events(&events).await.expect("append");
    assert_eq!(s.purge_expired(now).await.expect("purge"), 3);
    let count = |realm: &Realm, category: &str| {
        let q = EventQuery {
            category: category.into(),
            max: 100,
            ..Default::default()
        };
        let s = &s;
        let id = realm.id.clone();
        async move { s.events(&id, &q).await.expect("events").len() }
    };
    assert_eq!(count(&expiring, "user").await, 1);
    assert_eq!(count(&expiring, "admin").await, 1);
    assert_eq!(
        count(&kept, "user").await,
        1,
        "the unlisted ones never show"
    );
}

/// A realm write based on an older read is refused, not applied over the
/// write that came between: both edits rewrite the whole row.
#[tokio::test]
async fn realm_writes_from_a_stale_read_are_refused() {
    let s = store().await;
    let realm = Realm::new("r");
    s.create_realm(&realm, &[], &[]).await.expect("realm");
    let mut first = s.realm_by_name("r").await.expect("read").expect("realm");
    let mut second = first.clone();
    first.display_name = Some("First".into());
    s.update_realm(&first, &[]).await.expect("first write");
    second.events_enabled = true;
    assert!(matches!(
        s.update_realm(&second, &[]).await,
        Err(Error::Stale)
    ));
    let stored = s.realm_by_name("r").await.expect("read").expect("realm");
    assert_eq!(stored.display_name.as_deref(), Some("First"));
    assert!(!stored.events_enabled);
    // Read again, the second edit applies on top of the first.
    let mut again = stored;
    again.events_enabled = true;
    s.update_realm(&again, &[]).await.expect("retry");
    let stored = s.realm_by_name("r").await.expect("read").expect("realm");
    assert_eq!(
        (stored.display_name.as_deref(), stored.events_enabled),
        (Some("First"), true)
    );
    let mut gone = Realm::new("nope");
    gone.revision = 3;
    assert!(matches!(
        s.update_realm(&gone, &[]).await,
        Err(Error::NotFound)
    ));
}

/// Transactions that read before they write (a credential move, a
/// password kept in the history) must wait for one another: a deferred
/// transaction whose snapshot another writer overtook cannot take the
/// write lock (SQLite answers BUSY at once, whatever the busy timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transactions_that_read_first_wait_for_each_other_instead_of_failing() {
    let (dir, s) = file_store().await;
    let realm = Realm::new("r");
    s.create_realm(&realm, &[], &[]).await.expect("realm");
    let user = User::new(&realm.id, "erin");
    let cred = |kind: &str| Credential {
        id: gatehouse_core::id::uuid(),
        user_id: user.id.clone(),
        kind: kind.into(),
        created_date: 1,
        credential_data: "{}".into(),
        secret_data: "{}".into(),
        user_label: None,
        priority: 0,
    };
    let creds = [cred("password"), cred("otp"), cred("otp")];
    s.create_user(&user, &creds, &Memberships::default(), &[])
        .await
        .expect("user");
    let tasks: Vec<_> = (0..48)
        .map(|i| {
            let (s, user_id) = (s.clone(), user.id.clone());
            let id = creds[i % 3].id.clone();
            tokio::spawn(async move { s.move_credential(&user_id, &id, None, &[]).await })
        })
        .collect();
    for t in tasks {
        assert!(t.await.expect("join").expect("every move commits"));
    }
    assert_eq!(s.credentials(&user.id).await.expect("creds").len(), 3);
    let _ = std::fs::remove_dir_all(&dir);
}
