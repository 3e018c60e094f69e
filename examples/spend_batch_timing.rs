//! Times the spend writer's database work: `Store::write_spend` of 500-row batches (the
//! writer's batch size), with rows spread as in docs/governance.md's million-row log (1000 keys,
//! each of one of 500 users and 50 teams; 2000 end users; 3 models; a tag on every row).
//! Each batch also adds its daily rollups (migration 10).
//!
//! ```text
//! cargo run --release --example spend_batch_timing -- sqlite:///tmp/t.db?mode=rwc [batches]
//! cargo run --release --example spend_batch_timing -- postgres://user@host/db [batches]
//! ```

use std::time::Instant;

use llmgate::store::{SpendRow, Store};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .ok_or("usage: spend_batch_timing <database url> [batches]")?;
    let batches: usize = args.next().map_or(Ok(40), |s| s.parse())?;
    let store = Store::connect(&url).await?;
    let day0 = 1_700_000_000_000_i64;
    let mut times = Vec::with_capacity(batches);
    for b in 0..batches {
        let rows: Vec<SpendRow> = (0..500)
            .map(|j| {
                let i = b * 500 + j;
                let key = i % 1000;
                SpendRow {
                    request_id: format!("timing-{}-{i}", std::process::id()),
                    api_key: format!("key-{key}"),
                    team_id: Some(format!("team-{}", key % 50)),
                    user_id: Some(format!("user-{}", key % 500)),
                    end_user: Some(format!("end-user-{}", i % 2000)),
                    model_group: format!("group-{}", i % 3),
                    model: Some(format!("model-{}", i % 3)),
                    custom_llm_provider: Some("openai".into()),
                    prompt_tokens: 10,
                    completion_tokens: 20,
                    total_tokens: 30,
                    spend: 0.0001,
                    start_time: day0 + i as i64 * 2592,
                    end_time: day0 + i as i64 * 2592 + 500,
                    latency_ms: 500,
                    status: "success".into(),
                    request_tags: vec![format!("tag-{}", i % 10)],
                    ..SpendRow::default()
                }
            })
            .collect();
        let t = Instant::now();
        store.write_spend(&rows).await?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    let total: f64 = times.iter().sum();
    println!(
        "{batches} batches of 500 rows: median {:.1} ms, p90 {:.1} ms, {:.0} rows/s",
        times[times.len() / 2],
        times[times.len() * 9 / 10],
        (batches * 500) as f64 / (total / 1000.0)
    );
    Ok(())
}
