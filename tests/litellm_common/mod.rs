//! LiteLLM's own database for tests: a throw-away PostgreSQL database made by the migration
//! SQL of the `litellm-proxy-extras` package (`LLMGATE_LITELLM_MIGRATIONS`, or found through
//! `LLMGATE_PYTHON`; `bash .ci/test` provides both).

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use sqlx::Connection as _;

use crate::governance_common::fresh_pg;

/// The `migrations` folder of the installed `litellm-proxy-extras`.
pub fn migrations_dir() -> std::path::PathBuf {
    if let Ok(d) = std::env::var("LLMGATE_LITELLM_MIGRATIONS") {
        return d.into();
    }
    let py = std::env::var("LLMGATE_PYTHON").unwrap_or_else(|_| {
        panic!("neither LLMGATE_LITELLM_MIGRATIONS nor LLMGATE_PYTHON is set: run `bash .ci/test`")
    });
    let out = std::process::Command::new(&py)
        .args([
            "-c",
            "import litellm_proxy_extras, os; print(os.path.join(os.path.dirname(litellm_proxy_extras.__file__), 'migrations'))",
        ])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {py}: {e}"));
    assert!(
        out.status.success(),
        "litellm-proxy-extras is not installed in {py} (`bash .ci/test` installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().into()
}

/// A fresh PostgreSQL database with LiteLLM's schema, made by LiteLLM's own migrations applied
/// in order, as `prisma migrate deploy` does.
pub async fn litellm_db() -> String {
    let url = fresh_pg().await;
    let dir = migrations_dir();
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().join("migration.sql").is_file())
        .map(|e| e.file_name())
        .collect();
    names.sort();
    assert!(
        names.len() > 100,
        "{} migrations in {}",
        names.len(),
        dir.display()
    );
    let mut conn = sqlx::postgres::PgConnection::connect(&url).await.unwrap();
    for n in &names {
        let sql = std::fs::read_to_string(dir.join(n).join("migration.sql")).unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("LiteLLM migration {}: {e}", n.to_string_lossy()));
    }
    url
}
