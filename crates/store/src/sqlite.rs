//! The embedded SQLite backend: WAL journal, foreign keys on, one writer at a
//! time (SQLite's own rule) with readers in parallel.

use crate::{
    CodeRecord, Error, EventQuery, Holder, KeyRecord, LoginFailures, Memberships, Result, Store,
    UserQuery,
};
use gatehouse_core::model::{
    ApiKey, Client, ClientScope, Consent, Credential, Event, Group, InitialAccess, Organization,
    Realm, Role, Session, User,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

mod inline_reads;
mod inline_writer;
use inline_reads::InlineReads;
use inline_writer::InlineWriter;

/// How long an event the admin API does not list stays in the outbox.
const UNLISTED_EVENTS_KEPT_MS: i64 = 24 * 3600 * 1000;

/// Migrations, applied in order, each once, each in its own transaction.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/sqlite/0001_init.sql")),
    (2, include_str!("../migrations/sqlite/0002_api_keys.sql")),
    (
        3,
        include_str!("../migrations/sqlite/0003_client_scopes.sql"),
    ),
    (
        4,
        include_str!("../migrations/sqlite/0004_initial_access.sql"),
    ),
    (5, include_str!("../migrations/sqlite/0005_consents.sql")),
    (
        6,
        include_str!("../migrations/sqlite/0006_event_listing.sql"),
    ),
    (7, include_str!("../migrations/sqlite/0007_event_purge.sql")),
    (
        8,
        include_str!("../migrations/sqlite/0008_organizations.sql"),
    ),
    (
        9,
        include_str!("../migrations/sqlite/0009_key_providers.sql"),
    ),
    (
        10,
        include_str!("../migrations/sqlite/0010_credential_history.sql"),
    ),
    (
        11,
        include_str!("../migrations/sqlite/0011_quick_login_check.sql"),
    ),
    (
        12,
        include_str!("../migrations/sqlite/0012_listener_positions.sql"),
    ),
];

/// The SQLite store.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Hot primary-key reads without the hop to sqlx's thread (None for
    /// an in-memory database).
    inline: Option<Arc<InlineReads>>,
    /// A login's reads and its session write without the hops (None for an
    /// in-memory database).
    writer: Option<Arc<InlineWriter>>,
}

/// Writes one credential row of user `user_id` at priority `place`, or at
/// its own; one with neither goes last in the user's list, as a new
/// credential does in Keycloak.
async fn insert_credential(
    tx: &mut Tx,
    user_id: &str,
    c: &Credential,
    place: Option<i64>,
) -> Result<()> {
    let priority = match place {
        Some(p) => p,
        None if c.priority != 0 => c.priority,
        None => {
            let last: i64 = sqlx::query_scalar(
                "SELECT COALESCE(MAX(COALESCE(json_extract(data, '$.priority'), 0)), 0) \
                 FROM credentials WHERE user_id = ?",
            )
            .bind(user_id)
            .fetch_one(&mut **tx)
            .await?;
            last + PRIORITY_STEP
        }
    };
    let data = if priority == c.priority {
        j(c)?
    } else {
        j(&Credential {
            priority,
            ..c.clone()
        })?
    };
    sqlx::query("INSERT INTO credentials (id, user_id, kind, data) VALUES (?,?,?,?)")
        .bind(&c.id)
        .bind(user_id)
        .bind(&c.kind)
        .bind(data)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The gap Keycloak leaves between neighbouring credentials' priorities.
const PRIORITY_STEP: i64 = 10;

/// A user's credentials in list order: by priority, and among rows written
/// before priorities existed (all 0), password first as they always were.
macro_rules! credential_order {
    () => {
        "ORDER BY COALESCE(json_extract(data, '$.priority'), 0), kind <> 'password', kind, rowid"
    };
}

/// Keycloak's credential type for a replaced password kept for the
/// realm's `passwordHistory`.
const HISTORY: &str = "password-history";

fn j<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Corrupt(e.to_string()))
}

fn data<T: DeserializeOwned>(row: &SqliteRow) -> Result<T> {
    let s: String = row.try_get("data")?;
    Ok(serde_json::from_str(&s)?)
}

fn all<T: DeserializeOwned>(rows: &[SqliteRow]) -> Result<Vec<T>> {
    rows.iter().map(data).collect()
}

type Tx = Transaction<'static, Sqlite>;

/// Renames (`to = Some`) or drops (`to = None`) a client scope name in the
/// realm's and every client's default/optional lists, inside `tx`.
async fn rewrite_scope_refs(
    tx: &mut Tx,
    realm_id: &str,
    from: &str,
    to: Option<&str>,
) -> Result<()> {
    fn fix(list: &mut Vec<String>, from: &str, to: Option<&str>) -> bool {
        let Some(i) = list.iter().position(|n| n == from) else {
            return false;
        };
        match to {
            Some(to) => list[i] = to.to_owned(),
            None => {
                list.remove(i);
            }
        }
        true
    }
    let row = sqlx::query("SELECT data FROM realms WHERE id = ?")
        .bind(realm_id)
        .fetch_optional(&mut **tx)
        .await?;
    if let Some(row) = row {
        let mut realm: Realm = data(&row)?;
        let a = fix(&mut realm.default_default_client_scopes, from, to);
        let b = fix(&mut realm.default_optional_client_scopes, from, to);
        if a || b {
            write_realm(tx, &realm).await?;
        }
    }
    let rows = sqlx::query("SELECT data FROM clients WHERE realm_id = ?")
        .bind(realm_id)
        .fetch_all(&mut **tx)
        .await?;
    for row in rows {
        let mut c: Client = data(&row)?;
        let a = fix(&mut c.default_client_scopes, from, to);
        let b = fix(&mut c.optional_client_scopes, from, to);
        if a || b {
            sqlx::query("UPDATE clients SET data = ? WHERE id = ?")
                .bind(j(&c)?)
                .bind(&c.id)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

async fn insert_scope(tx: &mut Tx, c: &ClientScope) -> Result<()> {
    sqlx::query("INSERT INTO client_scopes (id, realm_id, name, data) VALUES (?,?,?,?)")
        .bind(&c.id)
        .bind(&c.realm_id)
        .bind(&c.name)
        .bind(j(c)?)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The stored name of client scope `id` of `realm_id`, or NotFound.
async fn scope_name(tx: &mut Tx, realm_id: &str, id: &str) -> Result<String> {
    sqlx::query_scalar("SELECT name FROM client_scopes WHERE id = ? AND realm_id = ?")
        .bind(id)
        .bind(realm_id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(Error::NotFound)
}

/// Writes an existing realm's row (NotFound when there is none), provided
/// nobody wrote it since `realm` was read (Stale otherwise): every admin
/// edit rewrites the whole row, so without the check the later of two
/// concurrent edits would silently undo the earlier one.
async fn write_realm(tx: &mut Tx, realm: &Realm) -> Result<()> {
    let mut next = serde_json::to_value(realm)?;
    next["revision"] = (realm.revision + 1).into();
    let n = sqlx::query(
        "UPDATE realms SET name = ?, data = ? \
         WHERE id = ? AND COALESCE(json_extract(data, '$.revision'), 0) = ?",
    )
    .bind(&realm.name)
    .bind(next.to_string())
    .bind(&realm.id)
    .bind(realm.revision as i64)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if n == 0 {
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM realms WHERE id = ?")
            .bind(&realm.id)
            .fetch_optional(&mut **tx)
            .await?;
        return Err(if exists.is_some() {
            Error::Stale
        } else {
            Error::NotFound
        });
    }
    Ok(())
}

async fn write_events(tx: &mut Tx, ev: &[Event]) -> Result<()> {
    // One multi-row INSERT per 500 events (9 parameters each, well under
    // SQLite's limit): each statement is a round trip to sqlx's SQLite
    // thread, and group-committed batches hold dozens of events.
    for chunk in ev.chunks(500) {
        let data: Vec<String> = chunk.iter().map(j).collect::<Result<_>>()?;
        let mut q = sqlx::QueryBuilder::<Sqlite>::new(
            "INSERT INTO events (id, realm_id, category, kind, time, client_id, user_id, data, listed) ",
        );
        q.push_values(chunk.iter().zip(&data), |mut b, (e, d)| {
            b.push_bind(&e.id)
                .push_bind(&e.realm_id)
                .push_bind(&e.category)
                .push_bind(&e.kind)
                .push_bind(e.time)
                .push_bind(&e.client_id)
                .push_bind(&e.user_id)
                .push_bind(d)
                .push_bind(e.listed);
        });
        q.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// The `data` column of the one row `sql` selects, on an inline connection.
fn inline_data<P: rusqlite::Params>(
    c: &rusqlite::Connection,
    sql: &str,
    params: P,
) -> rusqlite::Result<Option<String>> {
    let mut st = c.prepare_cached(sql)?;
    let mut rows = st.query(params)?;
    Ok(match rows.next()? {
        Some(r) => Some(r.get(0)?),
        None => None,
    })
}

/// `write_events` on an inline connection's transaction (`data`: each
/// event as JSON).
fn inline_events(
    tx: &rusqlite::Transaction<'_>,
    ev: &[Event],
    data: &[String],
) -> rusqlite::Result<()> {
    let mut st = tx.prepare_cached(
        "INSERT INTO events (id, realm_id, category, kind, time, client_id, user_id, data, listed) VALUES (?,?,?,?,?,?,?,?,?)",
    )?;
    for (e, d) in ev.iter().zip(data) {
        st.execute(rusqlite::params![
            e.id,
            e.realm_id,
            e.category,
            e.kind,
            e.time,
            e.client_id,
            e.user_id,
            d,
            e.listed
        ])?;
    }
    Ok(())
}

/// `session` as an inline read (see `inline_reads.rs`).
fn inline_session(inline: &InlineReads, id: &str) -> Result<Option<Session>> {
    let row = inline.with(|c| {
        let mut st = c.prepare_cached(
            "SELECT data, refresh_token_id, last_access FROM sessions WHERE id = ?",
        )?;
        let mut rows = st.query([id])?;
        match rows.next()? {
            None => Ok(None),
            Some(r) => Ok(Some((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, i64>(2)?,
            ))),
        }
    })?;
    row.map(|(data, refresh_token_id, last_access)| {
        session_of(&data, refresh_token_id, last_access)
    })
    .transpose()
}

/// A session from its row: the JSON, and the two columns kept outside it
/// because they change on every refresh (they are authoritative).
fn session_of(data: &str, refresh_token_id: Option<String>, last_access: i64) -> Result<Session> {
    let mut s: Session = serde_json::from_str(data)?;
    s.refresh_token_id = refresh_token_id;
    s.last_access = last_access;
    Ok(s)
}

/// `s` as literal text inside a LIKE pattern (`ESCAPE '\\'`).
fn like_literal(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// A `search` word as Keycloak's LIKE pattern: `%` and `_` literal, `*`
/// any run of characters, and a prefix match unless it ends with `*`.
fn search_pattern(word: &str) -> String {
    let mut p = like_literal(word).replace('*', "%");
    if !p.ends_with('%') {
        p.push('%');
    }
    p
}

/// `s` anywhere in a value, without regard to case.
fn like(s: &str) -> String {
    format!("%{}%", like_literal(&s.to_lowercase()))
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://PATH` or
    /// `sqlite::memory:`) and applies pending migrations.
    pub async fn open(url: &str) -> Result<Self> {
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let inline = InlineReads::new(opts.get_filename()).map(Arc::new);
        let file = opts.get_filename().to_owned();
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .connect_with(opts)
            .await?;
        let mut store = SqliteStore {
            pool,
            inline,
            writer: None,
        };
        store.migrate().await?;
        // Opened after the migrations: they create the file's tables.
        store.writer = InlineWriter::open(&file)?.map(Arc::new);
        Ok(store)
    }

    async fn migrate(&self) -> Result<()> {
        sqlx::query("CREATE TABLE IF NOT EXISTS _migrations (version INTEGER PRIMARY KEY, applied INTEGER NOT NULL)")
            .execute(&self.pool)
            .await?;
        for (version, sql) in MIGRATIONS {
            let mut tx = self.pool.begin().await?;
            let done: Option<i64> =
                sqlx::query_scalar("SELECT version FROM _migrations WHERE version = ?")
                    .bind(version)
                    .fetch_optional(&mut *tx)
                    .await?;
            if done.is_none() {
                sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("INSERT INTO _migrations (version, applied) VALUES (?, ?)")
                    .bind(version)
                    .bind(gatehouse_core::time::now())
                    .execute(&mut *tx)
                    .await?;
                tracing::info!(version, "applied migration");
            }
            tx.commit().await?;
        }
        Ok(())
    }

    /// A write transaction, holding SQLite's write lock from its first
    /// statement. A deferred one that read first would ask for the lock
    /// only at its first write, and if another connection committed in
    /// between, SQLite refuses at once ("database is locked", no busy wait:
    /// its snapshot is stale), which a caller would see as a 500 under
    /// concurrent writes. Taking the lock up front makes it wait its turn
    /// (the busy timeout) like any writer.
    async fn begin(&self) -> Result<Tx> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Runs `sql` with one bound id, then writes events, in one transaction;
    /// fails with NotFound when no row was touched.
    async fn exec_one(&self, sql: &'static str, binds: &[&str], ev: &[Event]) -> Result<()> {
        self.exec_counted(sql, binds, ev, true).await.map(|_| ())
    }

    /// [`Self::exec_one`] that reports how many rows changed, and with
    /// `at_least_one` false writes the events even when none did.
    async fn exec_counted(
        &self,
        sql: &'static str,
        binds: &[&str],
        ev: &[Event],
        at_least_one: bool,
    ) -> Result<u64> {
        let mut tx = self.begin().await?;
        let mut q = sqlx::query(sql);
        for b in binds {
            q = q.bind(*b);
        }
        let n = q.execute(&mut *tx).await?.rows_affected();
        if n == 0 && at_least_one {
            return Err(Error::NotFound);
        }
        write_events(&mut tx, ev).await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn fetch_all<T: DeserializeOwned>(
        &self,
        sql: &'static str,
        binds: &[&str],
    ) -> Result<Vec<T>> {
        let mut q = sqlx::query(sql);
        for b in binds {
            q = q.bind(*b);
        }
        all(&q.fetch_all(&self.pool).await?)
    }

    async fn fetch_opt<T: DeserializeOwned>(
        &self,
        sql: &'static str,
        binds: &[&str],
    ) -> Result<Option<T>> {
        let mut q = sqlx::query(sql);
        for b in binds {
            q = q.bind(*b);
        }
        q.fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(data)
            .transpose()
    }

    fn user_filter(q: &UserQuery) -> (String, Vec<String>) {
        let mut sql = String::from(" FROM users WHERE realm_id = ?");
        let mut binds = vec![];
        let field = |sql: &mut String, binds: &mut Vec<String>, col: &str, v: &Option<String>| {
            if let Some(v) = v {
                if q.exact {
                    sql.push_str(&format!(" AND lower({col}) = ?"));
                    binds.push(v.to_lowercase());
                } else {
                    sql.push_str(&format!(" AND lower({col}) LIKE ? ESCAPE '\\'"));
                    binds.push(like(v));
                }
            }
        };
        field(&mut sql, &mut binds, "username", &q.username);
        field(&mut sql, &mut binds, "email", &q.email);
        field(&mut sql, &mut binds, "first_name", &q.first_name);
        field(&mut sql, &mut binds, "last_name", &q.last_name);
        // Keycloak's `search`: each word narrows; a word matches the start
        // of the username, e-mail, first or last name, `*` stands for
        // anything, and a quoted word matches one of them whole.
        for word in q.search.as_deref().unwrap_or("").split_whitespace() {
            let word = word.to_lowercase();
            let quoted = word
                .strip_prefix('"')
                .and_then(|w| w.strip_suffix('"'))
                .filter(|_| word.len() >= 2);
            let (op, value) = match quoted {
                Some(exact) => ("=", exact.to_owned()),
                None => ("LIKE", search_pattern(&word)),
            };
            let escape = if op == "LIKE" { " ESCAPE '\\'" } else { "" };
            sql.push_str(&format!(
                " AND (lower(username) {op} ?{escape} OR lower(email) {op} ?{escape} \
                 OR lower(first_name) {op} ?{escape} OR lower(last_name) {op} ?{escape})"
            ));
            for _ in 0..4 {
                binds.push(value.clone());
            }
        }
        for (k, v) in &q.attributes {
            sql.push_str(
                " AND EXISTS (SELECT 1 FROM json_each(users.data, '$.attributes') a, json_each(a.value) v \
                 WHERE a.key = ? AND lower(v.value) = ?)",
            );
            binds.push(k.clone());
            binds.push(v.to_lowercase());
        }
        if let Some(v) = q.email_verified {
            sql.push_str(if v {
                " AND json_extract(users.data, '$.email_verified') = 1"
            } else {
                " AND json_extract(users.data, '$.email_verified') = 0"
            });
        }
        if q.idp_alias.is_some() || q.idp_user_id.is_some() {
            sql.push_str(
                " AND EXISTS (SELECT 1 FROM json_each(users.data, '$.federated_identities') f WHERE 1",
            );
            if let Some(a) = &q.idp_alias {
                sql.push_str(" AND json_extract(f.value, '$.identity_provider') = ?");
                binds.push(a.clone());
            }
            if let Some(u) = &q.idp_user_id {
                sql.push_str(" AND json_extract(f.value, '$.user_id') = ?");
                binds.push(u.clone());
            }
            sql.push(')');
        }
        if let Some(l) = &q.federation_link {
            sql.push_str(" AND json_extract(users.data, '$.federation_link') = ?");
            binds.push(l.clone());
        }
        if let Some(e) = q.enabled {
            sql.push_str(if e {
                " AND enabled = 1"
            } else {
                " AND enabled = 0"
            });
        }
        if !q.include_service_accounts {
            sql.push_str(" AND service_account_client_id IS NULL");
        }
        (sql, binds)
    }
}

const JOIN_GROUP: &str = "INSERT OR IGNORE INTO user_groups (user_id, group_id) VALUES (?,?)";
const GRANT_USER_ROLE: &str = "INSERT OR IGNORE INTO user_roles (user_id, role_id) VALUES (?,?)";

/// Runs a two-column link insert (`sql`) for `owner` and each of `ids`.
async fn link_all(
    tx: &mut Transaction<'_, Sqlite>,
    sql: &'static str,
    owner: &str,
    ids: &[String],
) -> Result<()> {
    for id in ids {
        sqlx::query(sql)
            .bind(owner)
            .bind(id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

async fn upsert_user_row(tx: &mut Tx, u: &User, insert: bool) -> Result<u64> {
    let sql = if insert {
        "INSERT INTO users (realm_id, username, email, first_name, last_name, enabled, service_account_client_id, created, data, id) VALUES (?,?,?,?,?,?,?,?,?,?)"
    } else {
        "UPDATE users SET realm_id = ?, username = ?, email = ?, first_name = ?, last_name = ?, enabled = ?, service_account_client_id = ?, created = ?, data = ? WHERE id = ?"
    };
    Ok(sqlx::query(sql)
        .bind(&u.realm_id)
        .bind(&u.username)
        .bind(u.email.as_ref().map(|e| e.to_lowercase()))
        .bind(&u.first_name)
        .bind(&u.last_name)
        .bind(u.enabled)
        .bind(&u.service_account_client_id)
        .bind(u.created_timestamp)
        .bind(j(u)?)
        .bind(&u.id)
        .execute(&mut **tx)
        .await?
        .rows_affected())
}

fn key_from_row(r: &SqliteRow) -> Result<KeyRecord> {
    Ok(KeyRecord {
        kid: r.try_get("kid")?,
        realm_id: r.try_get("realm_id")?,
        alg: r.try_get("alg")?,
        sign_from: r.try_get("sign_from")?,
        retire_at: r.try_get("retire_at")?,
        created: r.try_get("created")?,
        private_sealed: r.try_get("private_sealed")?,
        public_jwk: r.try_get("public_jwk")?,
        priority: r.try_get("priority")?,
        active: r.try_get("active")?,
        name: r.try_get("name")?,
    })
}

const TAKE_CODE: &str = "DELETE FROM codes WHERE code = ? RETURNING code, realm_id, data, expires";

fn code_from_row(r: &SqliteRow) -> Result<CodeRecord> {
    Ok(CodeRecord {
        code: r.try_get("code")?,
        realm_id: r.try_get("realm_id")?,
        data: r.try_get("data")?,
        expires: r.try_get("expires")?,
    })
}

async fn insert_code<'e, E: sqlx::SqliteExecutor<'e>>(e: E, c: &CodeRecord) -> Result<()> {
    sqlx::query("INSERT INTO codes (code, realm_id, data, expires) VALUES (?,?,?,?)")
        .bind(&c.code)
        .bind(&c.realm_id)
        .bind(&c.data)
        .bind(c.expires)
        .execute(e)
        .await?;
    Ok(())
}

impl SqliteStore {
    /// Runs `sql` (a `DELETE FROM sessions ... RETURNING data,
    /// refresh_token_id, last_access` with one parameter) and the events in
    /// one transaction; returns the deleted sessions.
    async fn delete_sessions_where(
        &self,
        sql: &'static str,
        param: &str,
        ev: &[Event],
    ) -> Result<Vec<Session>> {
        let mut tx = self.begin().await?;
        let rows = sqlx::query(sql).bind(param).fetch_all(&mut *tx).await?;
        write_events(&mut tx, ev).await?;
        tx.commit().await?;
        sessions_from(&rows)
    }
}

/// Sessions from rows of `data, refresh_token_id, last_access` (the two
/// columns are kept outside the JSON because they change on every refresh).
fn sessions_from(rows: &[sqlx::sqlite::SqliteRow]) -> Result<Vec<Session>> {
    rows.iter().map(session_from).collect()
}

fn session_from(row: &sqlx::sqlite::SqliteRow) -> Result<Session> {
    session_of(
        row.try_get("data")?,
        row.try_get("refresh_token_id")?,
        row.try_get("last_access")?,
    )
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn create_realm(
        &self,
        realm: &Realm,
        scopes: &[ClientScope],
        ev: &[Event],
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO realms (id, name, data) VALUES (?,?,?)")
            .bind(&realm.id)
            .bind(&realm.name)
            .bind(j(realm)?)
            .execute(&mut *tx)
            .await?;
        for c in scopes {
            insert_scope(&mut tx, c).await?;
        }
        write_events(&mut tx, ev).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn realm_by_name(&self, name: &str) -> Result<Option<Realm>> {
        self.fetch_opt("SELECT data FROM realms WHERE name = ?", &[name])
            .await
    }

    async fn realms(&self) -> Result<Vec<Realm>> {
        self.fetch_all("SELECT data FROM realms ORDER BY name", &[])
            .await
    }

    async fn update_realm(&self, realm: &Realm, ev: &[Event]) -> Result<()> {
        let mut tx = self.begin().await?;
        write_realm(&mut tx, realm).await?;
        write_events(&mut tx, ev).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn remove_identity_provider(
        &self,
        realm: &Realm,
        alias: &str,
        ev: &[Event],
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        write_realm(&mut tx, realm).await?;
        sqlx::query(
            "UPDATE users SET data = json_set(data, '$.federated_identities', \
               (SELECT json_group_array(json(f.value)) FROM json_each(users.data, '$.federated_identities') f \
                WHERE json_extract(f.value, '$.identity_provider') != ?1)) \
             WHERE realm_id = ?2 AND EXISTS (SELECT 1 FROM json_each(users.data, '$.federated_identities') f \
                WHERE json_extract(f.value, '$.identity_provider') = ?1)",
        )
        .bind(alias)
        .bind(&realm.id)
        .execute(&mut *tx)
        .await?;
        write_events(&mut tx, ev).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_realm(&self, realm_id: &str, ev: &[Event]) -> Result<()> {
        self.exec_one("DELETE FROM realms WHERE id = ?", &[realm_id], ev)
            .await
    }

    async fn create_client(&self, c: &Client, ev: &[Event]) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO clients (id, realm_id, client_id, data) VALUES (?,?,?,?)")
            .bind(&c.id)
            .bind(&c.realm_id)
            .bind(&c.client_id)
            .bind(j(c)?)
            .execute(&mut *tx)
            .await?;
        write_events(&mut tx, ev).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn client(&self, realm_id: &str, id: &str) -> Result<Option<Client>> {
        self.fetch_opt(
            "SELECT data FROM clients WHERE realm_id = ? AND id = ?",
            &[realm_id, id],
        )
        .await
    }

    async fn client_by_client_id(&self, realm_id: &str, client_id: &str) -> Result<Option<Client>> {
        self.fetch_opt(
            "SELECT data FROM clients WHERE realm_id = ? AND client_id = ?",
            &[realm_id, client_id],
        )
        .await
    }

    async fn clients(&self, realm_id: &str) -> Result<Vec<Client>> {
        self.fetch_all(
            "SELECT data FROM clients WHERE realm_id = ? ORDER BY client_id",
            &[realm_id],
        )
        .await
    }

    async fn update_client(&self, c: &Client, ev: &[Event]) -> Result<()> {
        let d = j(c)?;
        self.exec_one(
            "UPDATE clients SET client_id = ?, data = ? WHERE id = ? AND realm_id = ?",
            &[&c.client_id, &d, &c.id, &c.realm_id],
            ev,
        )
        .await
    }

    async fn delete_client(&self, realm_id: &str, id: &str, ev: &[Event]) -> Result<()> {
        let mut tx = self.begin().await?;
        // Client roles reference the client by key, not by foreign key.
        sqlx::query("DELETE FROM roles WHERE realm_id = ? AND client_key = ?")
            .bind(realm_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let n = sqlx::query("DELETE FROM clients WHERE realm_id = ? AND id = ?")
            .bind(realm_id)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(Error::NotFound);
        }
        write_events(&mut tx, ev).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_client_scope(&self, c: &ClientScope, ev: &[Event]) -> Result<()> {
        let mut tx = self.begin().await?;
        insert_scope(&mut tx, c).await?;
        write_events(&mut tx, ev).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn client_scope(&self, realm_id: &str, id: &str) -> Result<Option<ClientScope>> {
        self.fetch_opt(
            "SELECT data FROM client_scopes WHERE realm_id = ? AND id = ?",
            &[realm_id, id],
        )
        .await
    }

    async fn client_scopes(&self, realm_id: &str) -> Result<Vec<ClientScope>> {
        self.fetch_all(
            "SELECT data FROM client_scopes WHERE realm_id = ? ORDER BY name",
            &[realm_id],
        )
        .await
    }

    async fn update_client_scope(&self, c: &ClientScope, ev: &[Event]) -> Result<()> {
        let mut tx = self.begin().await?;
        let old = scope_name(&mut tx, &c.realm_id, &c.id).await?;
        sqlx::query("UPDATE client_scopes SET name = ?, data = ? WHERE id = ?")
            .bind(&c.name)
            .bind(j(c)?)
            .bind(&c.id)
            .execute(&mut *tx)
            .await?;
        if old != c.name {
            rewrite_scope_refs(&mut tx, &c.realm_id, &old, Some(&c.name)).await?;
        }
        write_events(&mut tx, ev).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_client_scope(&self, realm_id: &str, id: &str, ev: &[Event]) -> Result<()> {
        let mut tx = self.begin().await?;
        let name = scope_name(&mut tx, realm_id, id).await?;
        sqlx::query("DELETE FROM client_scopes WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        rewrite_scope_refs(&mut tx, realm_id, &name, None).await?;
        write_events(&mut tx, ev).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_user(
        &self,
        u: &User,
        credentials: &[Credential],
        links: &Memberships,
        ev: &[Event],
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        upsert_user_row(&mut tx, u, true).await?;
        for c in credentials {
            insert_credential(&mut tx, &u.id, c, None).await?;
        }
        link_all(&mut tx, JOIN_GROUP, &u.id, &links.groups).await?;
        link_all(&mut tx, GRANT_USER_ROLE, &u.id, &links.roles).await?;
        write_events(&mut tx, ev).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn user(&self, realm_id: &str, id: &str) -> Result<Option<User>> {
        self.fetch_opt(
            "SELECT data FROM users WHERE realm_id = ? AND id = ?",
            &[realm_id, id],
        )
        .await
    }

    async fn user_by_username(&self, realm_id: &str, username: &str) -> Result<Option<User>> {
        const SQL: &str = "SELECT data FROM users WHERE realm_id = ? AND username = ?";
        let u = username.to_lowercase();
        let inline = self
            .writer
            .as_ref()
            .and_then(|w| w.try_with(|c| inline_data(c, SQL, [realm_id, &u])));
        if let Some(row) = inline {
            return row?.map(|d| Ok(serde_json::from_str(&d)?)).transpose();
        }
        self.fetch_opt(SQL, &[realm_id, &u]).await
    }

    async fn user_by_email(&self, realm_id: &str, email: &str) -> Result<Option<User>> {
        let e = email.to_lowercase();
        self.fetch_opt(
            "SELECT data FROM users WHERE realm_id = ? AND email = ? LIMIT 1",
            &[realm_id, &e],
        )
        .await
    }

    async fn service_account_user(
        &self,
        realm_id: &str,
        client_internal_id: &str,
    ) -> Result<Option<User>> {
        self.fetch_opt(
            "SELECT data FROM users WHERE realm_id = ? AND service_account_client_id = ?",
            &[realm_id, client_internal_id],
        )
        .await
    }

    async fn users(&self, realm_id: &str, q: &UserQuery) -> Result<Vec<User>> {
        let (filter, binds) = Self::user_filter(q);
        let sql = format!("SELECT data{filter} ORDER BY username LIMIT ? OFFSET ?");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(realm_id);
        for b in &binds {
            query = query.bind(b);
        }
        let max = if q.max <= 0 { 100 } else { q.max };
        let rows = query
            .bind(max)
            .bind(q.first.max(0))
            .fetch_all(&self.pool)
            .await?;
        all(&rows)
    }

    async fn count_users(&self, realm_id: &str, q: &UserQuery) -> Result<i64> {
        let (filter, binds) = Self::user_filter(q);
        let sql = format!("SELECT count(*){filter}");
        let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(realm_id);
        for b in &binds {
            query = query.bind(b);
        }
        Ok(query.fetch_one(&self.pool).await?)
    }

    async fn update_user(&self, u: &User, ev: &[Event]) -> Result<()> {
        let mut tx = self.begin().await?;
        if upsert_user_row(&mut tx, u, false).await? == 0 {
            return Err(Error::NotFound);
        }
        write_events(&mut tx, ev).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_user(&self, realm_id: &str, id: &str, ev: &[Event]) -> Result<()> {
        self.exec_one(
            "DELETE FROM users WHERE realm_id = ? AND id = ?",
            &[realm_id, id],
            ev,
        )
        .await
    }

    async fn set_credential(
        &self,
        c: &Credential,
        user: Option<&User>,
        ev: &[Event],
    ) -> Result<()> {
        // Replacing by type, keeping no history.
        self.set_password_keeping(c, 0, user, ev).await
    }

    async fn set_password_keeping(
        &self,
        new: &Credential,
        keep: usize,
        user: Option<&User>,
        ev: &[Event],
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        if let Some(u) = user
            && upsert_user_row(&mut tx, u, false).await? == 0
        {
            return Err(Error::NotFound);
        }
        if keep > 0 {
            let old =
                sqlx::query("SELECT data FROM credentials WHERE user_id = ? AND kind = 'password'")
                    .bind(&new.user_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if let Some(row) = old {
                let mut h: Credential = serde_json::from_str(&row.try_get::<String, _>("data")?)?;
                h.id = gatehouse_core::id::uuid();
                h.kind = HISTORY.into();
                h.user_label = None;
                h.priority = 0;
                insert_credential(&mut tx, &h.user_id, &h, None).await?;
            }
            // The newest `keep` stay.
            sqlx::query(
                "DELETE FROM credentials WHERE user_id = ?1 AND kind = ?2 AND id NOT IN \
                 (SELECT id FROM credentials WHERE user_id = ?1 AND kind = ?2 \
                  ORDER BY json_extract(data, '$.created_date') DESC, rowid DESC LIMIT ?3)",
            )
            .bind(&new.user_id)
            .bind(HISTORY)
            .bind(i64::try_from(keep).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await?;
        }
        // A replacement keeps the replaced credential's place in the list.
        let replaced: Vec<i64> = sqlx::query_scalar(
            "DELETE FROM credentials WHERE user_id = ? AND kind = ? \
             RETURNING COALESCE(json_extract(data, '$.priority'), 0)",
        )
        .bind(&new.user_id)
        .bind(&new.kind)
        .fetch_all(&mut *tx)
        .await?;
        let place = replaced.into_iter().min().filter(|_| new.priority == 0);
        insert_credential(&mut tx, &new.user_id, new, place).await?;
        write_events(&mut tx, ev).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn password(&self, user_id: &str) -> Result<Option<Credential>> {
        self.fetch_opt(
            "SELECT data FROM credentials WHERE user_id = ? AND kind = 'password'",
            &[user_id],
        )
        .await
    }

    async fn credentials(&self, user_id: &str) -> Result<Vec<Credential>> {
        const SQL: &str = concat!(
            "SELECT data FROM credentials WHERE user_id = ? ",
            credential_order!()
        );
        let inline = self.writer.as_ref().and_then(|w| {
            w.try_with(|c| {
                let mut st = c.prepare_cached(SQL)?;
                let rows = st.query_map([user_id], |r| r.get::<_, String>(0))?;
                rows.collect::<rusqlite::Result<Vec<String>>>()
            })
        });
        if let Some(rows) = inline {
            return rows?.iter().map(|d| Ok(serde_json::from_str(d)?)).collect();
        }
        let rows = sqlx::query(SQL).bind(user_id).fetch_all(&self.pool).await?;
        all(&rows)
    }

    async fn consents(&self, user_id: &str) -> Result<Vec<Consent>> {
        let rows = sqlx::query("SELECT data FROM consents WHERE user_id = ? ORDER BY client_id")
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?;
        all(&rows)
    }

    async fn put_consent(&self, c: &Consent, ev: &[Event]) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO consents (user_id, client_id, data) VALUES (?,?,?) \
             ON CONFLICT (user_id, client_id) DO UPDATE SET data = excluded.data",
        )
        .bind(&c.user_id)
        .bind(&c.client_id)
        .bind(j(c)?)
        .execute(&mut *tx)
        .await?;
        write_events(&mut tx, ev).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_consent(&self, user_id: &str, client_id: &str, ev: &[Event]) -> Result<bool> {
        let mut tx = self.begin().await?;
        let n = sqlx::query("DELETE FROM consents WHERE user_id = ? AND client_id = ?")
            .bind(user_id)
            .bind(client_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        write_events(&mut tx, ev).await?;
        tx.commit().await?;
        Ok(n > 0)
    }

    async fn delete_credential(&self, user_id: &str, id: &str, ev: &[Event]) -> Result<()> {
        self.exec_one(
            "DELETE FROM credentials WHERE user_id = ? AND id = ?",
            &[user_id, id],
            ev,
        )
        .await
    }

    async fn delete_credentials_of_type(
        &self,
        user_id: &str,
        kind: &str,
        ev: &[Event],
    ) -> Result<u64> {
        self.exec_counted(
            "DELETE FROM credentials WHERE user_id = ? AND kind = ?",
            &[user_id, kind],
            ev,
            false,
        )
        .await
    }

    async fn update_credential(&self, c: &Credential, ev: &[Event]) -> Result<()> {
        let data = j(c)?;
        self.exec_one(
            "UPDATE credentials SET data = ? WHERE id = ? AND user_id = ?",
            &[&data, &c.id, &c.user_id],
            ev,
        )
        .await
    }

    async fn add_credential(
        &self,
        c: &Credential,
        user: Option<&User>,
        ev: &[Event],
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        if let Some(u) = user
            && upsert_user_row(&mut tx, u, false).await? == 0
        {
            return Err(Error::NotFound);
        }
        insert_credential(&mut tx, &c.user_id, c, None).await?;
        write_events(&mut tx, ev).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn move_credential(
        &self,
        user_id: &str,
        id: &str,
        after: Option<&str>,
        ev: &[Event],
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let rows = sqlx::query(concat!(
            "SELECT data FROM credentials WHERE user_id = ? ",
            credential_order!()
        ))
        .bind(user_id)
        .fetch_all(&mut *tx)
        .await?;
        let mut list: Vec<Credential> = all(&rows)?;
        let from = list
            .iter()
            .position(|c| c.id == id)
            .ok_or(Error::NotFound)?;
        let to = match after {
            None => 0,
            Some(a) => match list.iter().position(|c| c.id == a) {
                // Counted once the credential has left its old place.
                Some(i) if i < from => i + 1,
                Some(i) => i,
                None => return Ok(false),
            },
        };
        let moved = list.remove(from);
        list.insert(to, moved);
        let mut priority = 0;
        for c in &mut list {
            priority += PRIORITY_STEP;
            if c.priority != priority {
                c.priority = priority;
                sqlx::query("UPDATE credentials SET data = ? WHERE id = ?")
                    .bind(j(c)?)
                    .bind(&c.id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        write_events(&mut tx, ev).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn create_group(&self, g: &Group, ev: &[Event]) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO groups (id, realm_id, parent_id, name, parent_key, data) VALUES (?,?,?,?,?,?)")
            .bind(&g.id)
            .bind(&g.realm_id)
            .bind(&g.parent_id)
            .bind(&g.name)
            .bind(g.parent_id.as_deref().unwrap_or(""))
            .bind(j(g)?)
            .execute(&mut *tx)
            .await?;
        write_events(&mut tx, ev).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn group(&self, realm_id: &str, id: &str) -> Result<Option<Group>> {
        self.fetch_opt(
            "SELECT data FROM groups WHERE realm_id = ? AND id = ?",
            &[realm_id, id],
        )
        .await
    }

    async fn groups(&self, realm_id: &str) -> Result<Vec<Group>> {
        self.fetch_all(
            "SELECT data FROM groups WHERE realm_id = ? ORDER BY name",
            &[realm_id],
        )
        .await
    }

    async fn update_group(&self, g: &Group, ev: &[Event]) -> Result<()> {
        let d = j(g)?;
        let parent = g.parent_id.clone().unwrap_or_default();
        let mut tx = self.begin().await?;
        let n = sqlx::query("UPDATE groups SET name = ?, parent_id = ?, parent_key = ?, data = ? WHERE id = ? AND realm_id = ?")
            .bind(&g.name)
            .bind(&g.parent_id)
            .bind(&parent)
            .bind(&d)
            .bind(&g.id)
            .bind(&g.realm_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(Error::NotFound);
        }
        write_events(&mut tx, ev).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_group(&self, realm_id: &str, id: &str, ev: &[Event]) -> Result<()> {
        self.exec_one(
            "DELETE FROM groups WHERE realm_id = ? AND id = ?",
            &[realm_id, id],
            ev,
        )
        .await
    }

    async fn join_group(&self, user_id: &str, group_id: &str, ev: &[Event]) -> Result<()> {
        let mut tx = self.begin().await?;
        link_all(&mut tx, JOIN_GROUP, user_id, &[group_id.to_owned()]).await?;
        write_events(&mut tx, ev).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn leave_group(&self, user_id: &str, group_id: &str, ev: &[Event]) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM user_groups WHERE user_id = ? AND group_id = ?")
            .bind(user_id)
            .bind(group_id)
            .execute(&mut *tx)
            .await?;
        write_events(&mut tx, ev).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn organizations(&self, realm_id: &str) -> Result<Vec<Organization>> {
        self.fetch_all(
            "SELECT data FROM organizations WHERE realm_id = ? ORDER BY name",
            &[realm_id],
        )
        .await
    }

    async fn organization(&self, realm_id: &str, id: &str) -> Result<Option<Organization>> {
        self.fetch_opt(
            "SELECT data FROM organizations WHERE realm_id = ? AND id = ?",
            &[realm_id, id],
        )
        .await
    }

    async fn put_organization(&self, o: &Organization, ev: &[Event]) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO organizations (id, realm_id, name, alias, data) VALUES (?,?,?,?,?) \
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, alias = excluded.alias, data = excluded.data",
        )
        .bind(&o.id)
        .bind(&o.realm_id)
        .bind(&o.name)
        .bind(&o.alias)
        .bind(j(o)?)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM organization_domains WHERE org_id = ?")
            .bind(&o.id)
            .execute(&mut *tx)
            .await?;
        for d in &o.domains {
            sqlx::query(
                "INSERT INTO organization_domains (realm_id, domain, org_id) VALUES (?,?,?)",
            )
            .bind(&o.realm_id)
            .bind(&d.name)
            .bind(&o.id)
            .execute(&mut *tx)
            .await?;
        }
        write_events(&mut tx, ev).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_organization(&self, realm_id: &str, id: &str, ev: &[Event]) -> Result<()> {
        self.exec_one(
            "DELETE FROM organizations WHERE realm_id = ? AND id = ?",
            &[realm_id, id],
            ev,
        )
        .await
    }

    async fn organization_members(&self, org_id: &str) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT user_id FROM organization_members WHERE org_id = ?")
            .bind(org_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| r.get::<String, _>(0)).collect())
    }

    async fn add_organization_member(
        &self,
        org_id: &str,
        user_id: &str,
        ev: &[Event],
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let n = sqlx::query(
            "INSERT INTO organization_members (org_id, user_id) VALUES (?,?) ON CONFLICT DO NOTHING",
        )
        .bind(org_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n > 0 {
            write_events(&mut tx, ev).await?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }

    async fn remove_organization_member(
        &self,
        org_id: &str,
        user_id: &str,
        ev: &[Event],
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let n = sqlx::query("DELETE FROM organization_members WHERE org_id = ? AND user_id = ?")
            .bind(org_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n > 0 {
            write_events(&mut tx, ev).await?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }

    async fn user_organizations(&self, user_id: &str) -> Result<Vec<Organization>> {
        self.fetch_all(
            "SELECT o.data FROM organizations o JOIN organization_members m ON m.org_id = o.id \
             WHERE m.user_id = ? ORDER BY o.name",
            &[user_id],
        )
        .await
    }

    async fn user_groups(&self, user_id: &str) -> Result<Vec<Group>> {
        self.fetch_all(
            "SELECT g.data FROM groups g JOIN user_groups ug ON ug.group_id = g.id WHERE ug.user_id = ? ORDER BY g.name",
            &[user_id],
        )
        .await
    }

    async fn group_members(&self, group_id: &str, first: i64, max: i64) -> Result<Vec<User>> {
        let rows = sqlx::query(
            "SELECT u.data FROM users u JOIN user_groups ug ON ug.user_id = u.id WHERE ug.group_id = ? ORDER BY u.username LIMIT ? OFFSET ?",
        )
        .bind(group_id)
        .bind(if max <= 0 { 100 } else { max })
        .bind(first.max(0))
        .fetch_all(&self.pool)
        .await?;
        all(&rows)
    }

    async fn create_role(&self, r: &Role, ev: &[Event]) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO roles (id, realm_id, client_key, name, data) VALUES (?,?,?,?,?)")
            .bind(&r.id)
            .bind(&r.realm_id)
            .bind(r.client_id.as_deref().unwrap_or(""))
            .bind(&r.name)
            .bind(j(r)?)
            .execute(&mut *tx)
            .await?;
        write_events(&mut tx, ev).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn role(&self, realm_id: &str, id: &str) -> Result<Option<Role>> {
        self.fetch_opt(
            "SELECT data FROM roles WHERE realm_id = ? AND id = ?",
            &[realm_id, id],
        )
        .await
    }

    async fn role_by_name(
        &self,
        realm_id: &str,
        client: Option<&str>,
        name: &str,
    ) -> Result<Option<Role>> {
        self.fetch_opt(
            "SELECT data FROM roles WHERE realm_id = ? AND client_key = ? AND name = ?",
            &[realm_id, client.unwrap_or(""), name],
        )
        .await
    }

    async fn roles(&self, realm_id: &str, client: Option<&str>) -> Result<Vec<Role>> {
        self.fetch_all(
            "SELECT data FROM roles WHERE realm_id = ? AND client_key = ? ORDER BY name",
            &[realm_id, client.unwrap_or("")],
        )
        .await
    }

    async fn update_role(&self, r: &Role, ev: &[Event]) -> Result<()> {
        let d = j(r)?;
        self.exec_one(
            "UPDATE roles SET name = ?, data = ? WHERE id = ? AND realm_id = ?",
            &[&r.name, &d, &r.id, &r.realm_id],
            ev,
        )
        .await
    }

    async fn delete_role(&self, realm_id: &str, id: &str, ev: &[Event]) -> Result<()> {
        self.exec_one(
            "DELETE FROM roles WHERE realm_id = ? AND id = ?",
            &[realm_id, id],
            ev,
        )
        .await
    }

    async fn add_composites(
        &self,
        parent_id: &str,
        child_ids: &[String],
        ev: &[Event],
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        for c in child_ids {
            sqlx::query("INSERT OR IGNORE INTO role_composites (parent_id, child_id) VALUES (?,?)")
                .bind(parent_id)
                .bind(c)
                .execute(&mut *tx)
                .await?;
        }
        write_events(&mut tx, ev).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn remove_composites(
        &self,
        parent_id: &str,
        child_ids: &[String],
        ev: &[Event],
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        for c in child_ids {
            sqlx::query("DELETE FROM role_composites WHERE parent_id = ? AND child_id = ?")
                .bind(parent_id)
                .bind(c)
                .execute(&mut *tx)
                .await?;
        }
        write_events(&mut tx, ev).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn composites(&self, parent_id: &str) -> Result<Vec<Role>> {
        self.fetch_all(
            "SELECT r.data FROM roles r JOIN role_composites c ON c.child_id = r.id WHERE c.parent_id = ? ORDER BY r.name",
            &[parent_id],
        )
        .await
    }

    async fn grant_roles(
        &self,
        holder: Holder<'_>,
        role_ids: &[String],
        ev: &[Event],
    ) -> Result<()> {
        let (sql, id) = match holder {
            Holder::User(u) => (GRANT_USER_ROLE, u),
            Holder::Group(g) => (
                "INSERT OR IGNORE INTO group_roles (group_id, role_id) VALUES (?,?)",
                g,
            ),
        };
        let mut tx = self.begin().await?;
        link_all(&mut tx, sql, id, role_ids).await?;
        write_events(&mut tx, ev).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn revoke_roles(
        &self,
        holder: Holder<'_>,
        role_ids: &[String],
        ev: &[Event],
    ) -> Result<()> {
        let (sql, id) = match holder {
            Holder::User(u) => (
                "DELETE FROM user_roles WHERE user_id = ? AND role_id = ?",
                u,
            ),
            Holder::Group(g) => (
                "DELETE FROM group_roles WHERE group_id = ? AND role_id = ?",
                g,
            ),
        };
        let mut tx = self.begin().await?;
        for r in role_ids {
            sqlx::query(sql).bind(id).bind(r).execute(&mut *tx).await?;
        }
        write_events(&mut tx, ev).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn granted_roles(&self, holder: Holder<'_>) -> Result<Vec<Role>> {
        match holder {
            Holder::User(u) => {
                self.fetch_all(
                    "SELECT r.data FROM roles r JOIN user_roles m ON m.role_id = r.id WHERE m.user_id = ? ORDER BY r.name",
                    &[u],
                )
                .await
            }
            Holder::Group(g) => {
                self.fetch_all(
                    "SELECT r.data FROM roles r JOIN group_roles m ON m.role_id = r.id WHERE m.group_id = ? ORDER BY r.name",
                    &[g],
                )
                .await
            }
        }
    }

    async fn effective_roles(&self, user_id: &str) -> Result<Vec<Role>> {
        self.fetch_all(
            "WITH RECURSIVE
               g(id) AS (
                 SELECT group_id FROM user_groups WHERE user_id = ?1
                 UNION
                 SELECT groups.parent_id FROM groups JOIN g ON groups.id = g.id WHERE groups.parent_id IS NOT NULL),
               r(id) AS (
                 SELECT role_id FROM user_roles WHERE user_id = ?1
                 UNION
                 SELECT role_id FROM group_roles WHERE group_id IN (SELECT id FROM g)
                 UNION
                 SELECT role_composites.child_id FROM role_composites JOIN r ON role_composites.parent_id = r.id)
             SELECT data FROM roles WHERE id IN (SELECT id FROM r) ORDER BY name",
            &[user_id],
        )
        .await
    }

    async fn role_members(&self, role_id: &str, first: i64, max: i64) -> Result<Vec<User>> {
        let rows = sqlx::query(
            "SELECT u.data FROM users u JOIN user_roles m ON m.user_id = u.id WHERE m.role_id = ? ORDER BY u.username LIMIT ? OFFSET ?",
        )
        .bind(role_id)
        .bind(if max <= 0 { 100 } else { max })
        .bind(first.max(0))
        .fetch_all(&self.pool)
        .await?;
        all(&rows)
    }

    async fn create_session(&self, s: &Session, ev: &[Event]) -> Result<()> {
        const SQL: &str = "INSERT INTO sessions (id, realm_id, user_id, refresh_token_id, last_access, data) VALUES (?,?,?,?,?,?)";
        let data = j(s)?;
        let inline = self.writer.as_ref().and_then(|w| {
            let events: Vec<String> = match ev.iter().map(j).collect() {
                Ok(v) => v,
                Err(e) => return Some(Err(e)),
            };
            w.try_with(|c| {
                let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                tx.prepare_cached(SQL)?.execute(rusqlite::params![
                    s.id,
                    s.realm_id,
                    s.user_id,
                    s.refresh_token_id,
                    s.last_access,
                    data
                ])?;
                inline_events(&tx, ev, &events)?;
                tx.commit()
            })
        });
        if let Some(done) = inline {
            return done;
        }
        let mut tx = self.begin().await?;
        sqlx::query(SQL)
            .bind(&s.id)
            .bind(&s.realm_id)
            .bind(&s.user_id)
            .bind(&s.refresh_token_id)
            .bind(s.last_access)
            .bind(data)
            .execute(&mut *tx)
            .await?;
        write_events(&mut tx, ev).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn session(&self, id: &str) -> Result<Option<Session>> {
        if let Some(inline) = &self.inline {
            return inline_session(inline, id);
        }
        let row =
            sqlx::query("SELECT data, refresh_token_id, last_access FROM sessions WHERE id = ?")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        row.as_ref().map(session_from).transpose()
    }

    async fn rotate_refresh(
        &self,
        id: &str,
        expected: Option<&str>,
        next: &str,
        now: i64,
        ev: &[Event],
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let n = sqlx::query(
            "UPDATE sessions SET refresh_token_id = ?, last_access = ? WHERE id = ? AND refresh_token_id IS ?",
        )
        .bind(next)
        .bind(now)
        .bind(id)
        .bind(expected)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 1 {
            write_events(&mut tx, ev).await?;
        }
        tx.commit().await?;
        Ok(n == 1)
    }

    async fn touch_sessions(&self, touches: &[(String, i64)], ev: &[Event]) -> Result<()> {
        let mut tx = self.begin().await?;
        // One statement per 1000 sessions; never moves a clock backwards.
        for chunk in touches.chunks(1000) {
            let mut q = sqlx::QueryBuilder::<Sqlite>::new(
                "UPDATE sessions SET last_access = v.column2 FROM (",
            );
            q.push_values(chunk, |mut b, (id, at)| {
                b.push_bind(id).push_bind(at);
            });
            q.push(") AS v WHERE sessions.id = v.column1 AND sessions.last_access < v.column2");
            q.build().execute(&mut *tx).await?;
        }
        write_events(&mut tx, ev).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_session(&self, id: &str, ev: &[Event]) -> Result<Vec<Session>> {
        self.delete_sessions_where(
            "DELETE FROM sessions WHERE id = ?1 OR json_extract(data, '$.sso_session_id') = ?1 RETURNING data, refresh_token_id, last_access",
            id,
            ev,
        )
        .await
    }

    async fn user_sessions(&self, user_id: &str) -> Result<Vec<Session>> {
        let rows = sqlx::query("SELECT data, refresh_token_id, last_access FROM sessions WHERE user_id = ? ORDER BY last_access DESC")
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?;
        sessions_from(&rows)
    }

    async fn realm_sessions(&self, realm_id: &str) -> Result<Vec<Session>> {
        let rows = sqlx::query("SELECT data, refresh_token_id, last_access FROM sessions WHERE realm_id = ? ORDER BY last_access DESC")
            .bind(realm_id)
            .fetch_all(&self.pool)
            .await?;
        sessions_from(&rows)
    }

    async fn delete_realm_sessions(&self, realm_id: &str, ev: &[Event]) -> Result<Vec<Session>> {
        self.delete_sessions_where(
            "DELETE FROM sessions WHERE realm_id = ? RETURNING data, refresh_token_id, last_access",
            realm_id,
            ev,
        )
        .await
    }

    async fn delete_user_sessions(&self, user_id: &str, ev: &[Event]) -> Result<Vec<Session>> {
        self.delete_sessions_where(
            "DELETE FROM sessions WHERE user_id = ? RETURNING data, refresh_token_id, last_access",
            user_id,
            ev,
        )
        .await
    }

    async fn put_code(&self, c: &CodeRecord) -> Result<()> {
        insert_code(&self.pool, c).await
    }

    async fn take_code(&self, code: &str) -> Result<Option<CodeRecord>> {
        let row = sqlx::query(TAKE_CODE)
            .bind(code)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(code_from_row).transpose()
    }

    async fn take_code_leaving(
        &self,
        code: &str,
        leave: &CodeRecord,
    ) -> Result<Option<CodeRecord>> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(TAKE_CODE)
            .bind(code)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(taken) = row.as_ref().map(code_from_row).transpose()? else {
            return Ok(None);
        };
        insert_code(&mut *tx, leave).await?;
        tx.commit().await?;
        Ok(Some(taken))
    }

    async fn update_code(&self, c: &CodeRecord) -> Result<()> {
        sqlx::query("UPDATE codes SET data = ?, expires = ? WHERE code = ?")
            .bind(&c.data)
            .bind(c.expires)
            .bind(&c.code)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn code(&self, code: &str) -> Result<Option<CodeRecord>> {
        let row = sqlx::query("SELECT code, realm_id, data, expires FROM codes WHERE code = ?")
            .bind(code)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(CodeRecord {
                code: r.try_get("code")?,
                realm_id: r.try_get("realm_id")?,
                data: r.try_get("data")?,
                expires: r.try_get("expires")?,
            })
        })
        .transpose()
    }

    async fn keys(&self, realm_id: &str) -> Result<Vec<KeyRecord>> {
        let rows = sqlx::query("SELECT * FROM keys WHERE realm_id = ? ORDER BY sign_from")
            .bind(realm_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(key_from_row).collect()
    }

    async fn insert_key(&self, k: &KeyRecord, ev: &[Event]) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO keys (kid, realm_id, alg, sign_from, retire_at, created, private_sealed, public_jwk, priority, active, name) VALUES (?,?,?,?,?,?,?,?,?,?,?)")
            .bind(&k.kid)
            .bind(&k.realm_id)
            .bind(&k.alg)
            .bind(k.sign_from)
            .bind(k.retire_at)
            .bind(k.created)
            .bind(&k.private_sealed)
            .bind(&k.public_jwk)
            .bind(k.priority)
            .bind(k.active)
            .bind(&k.name)
            .execute(&mut *tx)
            .await?;
        write_events(&mut tx, ev).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn retire_key(&self, kid: &str, retire_at: i64) -> Result<()> {
        sqlx::query("UPDATE keys SET retire_at = ? WHERE kid = ?")
            .bind(retire_at)
            .bind(kid)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn update_key(&self, k: &KeyRecord, ev: &[Event]) -> Result<()> {
        let mut tx = self.begin().await?;
        let n = sqlx::query(
            "UPDATE keys SET priority = ?, active = ?, name = ?, retire_at = ?, sign_from = ? WHERE kid = ? AND realm_id = ?",
        )
        .bind(k.priority)
        .bind(k.active)
        .bind(&k.name)
        .bind(k.retire_at)
        .bind(k.sign_from)
        .bind(&k.kid)
        .bind(&k.realm_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(Error::NotFound);
        }
        write_events(&mut tx, ev).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_key(&self, realm_id: &str, kid: &str, ev: &[Event]) -> Result<()> {
        self.exec_one(
            "DELETE FROM keys WHERE kid = ? AND realm_id = ?",
            &[kid, realm_id],
            ev,
        )
        .await
    }

    async fn secret(&self, realm_id: &str, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(
            sqlx::query_scalar("SELECT sealed FROM secrets WHERE realm_id = ? AND name = ?")
                .bind(realm_id)
                .bind(name)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn put_secret(&self, realm_id: &str, name: &str, sealed: &[u8]) -> Result<()> {
        sqlx::query("INSERT OR REPLACE INTO secrets (realm_id, name, sealed) VALUES (?,?,?)")
            .bind(realm_id)
            .bind(name)
            .bind(sealed)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn revoke_token(&self, realm_id: &str, jti: &str, exp: i64, ev: &[Event]) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("INSERT OR IGNORE INTO revoked_tokens (jti, realm_id, exp) VALUES (?,?,?)")
            .bind(jti)
            .bind(realm_id)
            .bind(exp)
            .execute(&mut *tx)
            .await?;
        write_events(&mut tx, ev).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn is_revoked(&self, jti: &str) -> Result<bool> {
        let n: Option<i64> = sqlx::query_scalar("SELECT 1 FROM revoked_tokens WHERE jti = ?")
            .bind(jti)
            .fetch_optional(&self.pool)
            .await?;
        Ok(n.is_some())
    }

    async fn login_failures(&self, user_id: &str) -> Result<LoginFailures> {
        const SQL: &str = "SELECT failures, last_failure_ms, last_ip, not_before FROM login_failures WHERE user_id = ?";
        // Every login of a brute-force-protected realm reads this.
        let inline = self.writer.as_ref().and_then(|w| {
            w.try_with(|c| {
                let mut st = c.prepare_cached(SQL)?;
                let mut rows = st.query([user_id])?;
                Ok(match rows.next()? {
                    Some(r) => LoginFailures {
                        failures: r.get(0)?,
                        last_failure_ms: r.get(1)?,
                        last_ip: r.get(2)?,
                        not_before: r.get(3)?,
                    },
                    None => LoginFailures::default(),
                })
            })
        });
        if let Some(lf) = inline {
            return lf;
        }
        let row = sqlx::query(SQL)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => failures_of(&r)?,
            None => LoginFailures::default(),
        })
    }

    async fn record_login_failure(
        &self,
        user_id: &str,
        now_ms: i64,
        not_before: i64,
        ip: Option<&str>,
        ev: &[Event],
    ) -> Result<LoginFailures> {
        let mut tx = self.begin().await?;
        let r = sqlx::query(
            "INSERT INTO login_failures (user_id, failures, last_failure, last_ip, last_failure_ms, not_before)
             VALUES (?, 1, ?, ?, ?, ?)
             ON CONFLICT(user_id) DO UPDATE SET failures = failures + 1, last_failure = excluded.last_failure,
               last_ip = excluded.last_ip, last_failure_ms = excluded.last_failure_ms,
               not_before = MAX(not_before, excluded.not_before)
             RETURNING failures, last_failure_ms, last_ip, not_before",
        )
        .bind(user_id)
        .bind(now_ms.div_euclid(1000))
        .bind(ip)
        .bind(now_ms)
        .bind(not_before)
        .fetch_one(&mut *tx)
        .await?;
        write_events(&mut tx, ev).await?;
        tx.commit().await?;
        failures_of(&r)
    }

    async fn clear_login_failures(&self, user_id: &str) -> Result<()> {
        sqlx::query("DELETE FROM login_failures WHERE user_id = ?")
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn reset_login_failures(
        &self,
        realm_id: &str,
        user_id: Option<&str>,
        ev: &[Event],
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "DELETE FROM login_failures WHERE user_id IN \
             (SELECT id FROM users WHERE realm_id = ? AND (? IS NULL OR id = ?))",
        )
        .bind(realm_id)
        .bind(user_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        write_events(&mut tx, ev).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn append_events(&self, ev: &[Event]) -> Result<()> {
        let mut tx = self.begin().await?;
        write_events(&mut tx, ev).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn clear_events(&self, realm_id: &str, category: &str, ev: &[Event]) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM events WHERE realm_id = ? AND category = ?")
            .bind(realm_id)
            .bind(category)
            .execute(&mut *tx)
            .await?;
        write_events(&mut tx, ev).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn events(&self, realm_id: &str, q: &EventQuery) -> Result<Vec<Event>> {
        let mut sql = String::from(
            "SELECT data FROM events WHERE realm_id = ? AND category = ? AND listed = 1",
        );
        let mut binds: Vec<String> = vec![];
        if !q.kinds.is_empty() {
            sql.push_str(" AND kind IN (");
            sql.push_str(&vec!["?"; q.kinds.len()].join(","));
            sql.push(')');
            binds.extend(q.kinds.iter().cloned());
        }
        if let Some(c) = &q.client_id {
            sql.push_str(" AND client_id = ?");
            binds.push(c.clone());
        }
        if let Some(u) = &q.user_id {
            sql.push_str(" AND user_id = ?");
            binds.push(u.clone());
        }
        if let Some(ip) = &q.ip_address {
            sql.push_str(" AND json_extract(data, '$.ip_address') = ?");
            binds.push(ip.clone());
        }
        if !q.resource_types.is_empty() {
            sql.push_str(" AND json_extract(data, '$.resource_type') IN (");
            sql.push_str(&vec!["?"; q.resource_types.len()].join(","));
            sql.push(')');
            binds.extend(q.resource_types.iter().cloned());
        }
        if let Some(p) = &q.resource_path {
            // Keycloak's `*` wildcard; everything else literal.
            let pattern = p
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
                .replace('*', "%");
            sql.push_str(" AND json_extract(data, '$.resource_path') LIKE ? ESCAPE '\\'");
            binds.push(pattern);
        }
        sql.push_str(" AND time >= ? AND time <= ? ORDER BY time DESC, seq DESC LIMIT ? OFFSET ?");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(realm_id)
            .bind(&q.category);
        for b in &binds {
            query = query.bind(b);
        }
        let rows = query
            .bind(q.date_from_ms.unwrap_or(0))
            .bind(q.date_to_ms.unwrap_or(i64::MAX))
            .bind(if q.max <= 0 { 100 } else { q.max })
            .bind(q.first.max(0))
            .fetch_all(&self.pool)
            .await?;
        all(&rows)
    }

    async fn events_since(
        &self,
        after: i64,
        kinds: &[&str],
        limit: i64,
    ) -> Result<Vec<(i64, Event)>> {
        let mut sql = String::from("SELECT seq, data FROM events WHERE seq > ?");
        if !kinds.is_empty() {
            sql.push_str(" AND kind IN (");
            sql.push_str(&vec!["?"; kinds.len()].join(","));
            sql.push(')');
        }
        sql.push_str(" ORDER BY seq LIMIT ?");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(after);
        for k in kinds {
            query = query.bind(*k);
        }
        let rows = query.bind(limit.max(1)).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| Ok((r.try_get("seq")?, data(r)?)))
            .collect()
    }

    async fn last_event_seq(&self) -> Result<i64> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM events")
            .fetch_one(&self.pool)
            .await?;
        Ok(seq.unwrap_or(0))
    }

    async fn listener_position(&self, name: &str) -> Result<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT seq FROM listener_positions WHERE name = ?")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn set_listener_position(&self, name: &str, seq: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO listener_positions (name, seq) VALUES (?, ?)
             ON CONFLICT(name) DO UPDATE SET seq = excluded.seq",
        )
        .bind(name)
        .bind(seq)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn create_api_key(&self, key: &ApiKey, key_hash: &str, ev: &[Event]) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO api_keys (id, realm_id, key_hash, data) VALUES (?,?,?,?)")
            .bind(&key.id)
            .bind(&key.realm_id)
            .bind(key_hash)
            .bind(j(key)?)
            .execute(&mut *tx)
            .await?;
        write_events(&mut tx, ev).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn api_keys(&self, realm_id: &str) -> Result<Vec<ApiKey>> {
        self.fetch_all(
            "SELECT data FROM api_keys WHERE realm_id = ? ORDER BY id",
            &[realm_id],
        )
        .await
    }

    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKey>> {
        self.fetch_opt("SELECT data FROM api_keys WHERE key_hash = ?", &[key_hash])
            .await
    }

    async fn delete_api_key(&self, realm_id: &str, id: &str, ev: &[Event]) -> Result<()> {
        self.exec_one(
            "DELETE FROM api_keys WHERE realm_id = ? AND id = ?",
            &[realm_id, id],
            ev,
        )
        .await
    }

    async fn create_initial_access(&self, ia: &InitialAccess, ev: &[Event]) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO initial_access (id, realm_id, timestamp, expiration, count, remaining_count) VALUES (?,?,?,?,?,?)")
            .bind(&ia.id)
            .bind(&ia.realm_id)
            .bind(ia.timestamp)
            .bind(ia.expiration)
            .bind(ia.count)
            .bind(ia.remaining_count)
            .execute(&mut *tx)
            .await?;
        write_events(&mut tx, ev).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn initial_accesses(&self, realm_id: &str) -> Result<Vec<InitialAccess>> {
        let rows = sqlx::query(
            "SELECT id, realm_id, timestamp, expiration, count, remaining_count FROM initial_access WHERE realm_id = ? ORDER BY timestamp, id",
        )
        .bind(realm_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(InitialAccess {
                    id: r.try_get("id")?,
                    realm_id: r.try_get("realm_id")?,
                    timestamp: r.try_get("timestamp")?,
                    expiration: r.try_get("expiration")?,
                    count: r.try_get("count")?,
                    remaining_count: r.try_get("remaining_count")?,
                })
            })
            .collect()
    }

    async fn delete_initial_access(&self, realm_id: &str, id: &str, ev: &[Event]) -> Result<()> {
        self.exec_one(
            "DELETE FROM initial_access WHERE realm_id = ? AND id = ?",
            &[realm_id, id],
            ev,
        )
        .await
    }

    async fn use_initial_access(&self, realm_id: &str, id: &str, now: i64) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE initial_access SET remaining_count = remaining_count - 1 WHERE realm_id = ? AND id = ? AND remaining_count > 0 AND (expiration = 0 OR timestamp + expiration > ?)",
        )
        .bind(realm_id)
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn purge_expired(&self, now: i64) -> Result<u64> {
        let mut n = 0;
        n += sqlx::query("DELETE FROM codes WHERE expires < ?")
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected();
        n += sqlx::query("DELETE FROM revoked_tokens WHERE exp < ?")
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected();
        n += sqlx::query("DELETE FROM keys WHERE retire_at IS NOT NULL AND retire_at < ?")
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected();
        // Events: unlisted ones (kept for delivery to listeners, which no
        // dispatcher reads yet) after a day; listed ones after the realm's
        // `eventsExpiration` / `adminEventsExpiration` (seconds), as
        // Keycloak's event store expires them; none when unset.
        let now_ms = now.saturating_mul(1000);
        n += sqlx::query("DELETE FROM events WHERE listed = 0 AND time < ?")
            .bind(now_ms - UNLISTED_EVENTS_KEPT_MS)
            .execute(&self.pool)
            .await?
            .rows_affected();
        let realms: Vec<Realm> = self.fetch_all("SELECT data FROM realms", &[]).await?;
        for r in &realms {
            for category in ["user", "admin"] {
                let Some(secs) = r.events_expiration(category) else {
                    continue;
                };
                n += sqlx::query(
                    "DELETE FROM events WHERE realm_id = ? AND category = ? AND listed = 1 AND time < ?",
                )
                .bind(&r.id)
                .bind(category)
                .bind(now_ms - secs.saturating_mul(1000))
                .execute(&self.pool)
                .await?
                .rows_affected();
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests;

/// A `login_failures` row (the columns `login_failures` selects).
fn failures_of(r: &sqlx::sqlite::SqliteRow) -> Result<LoginFailures> {
    Ok(LoginFailures {
        failures: r.try_get("failures")?,
        last_failure_ms: r.try_get("last_failure_ms")?,
        last_ip: r.try_get("last_ip")?,
        not_before: r.try_get("not_before")?,
    })
}
