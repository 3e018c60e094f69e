#!/usr/bin/env bash
# The million-row spend log of docs/governance.md ("A large spend log"): a fresh PostgreSQL
# database gets llmgate's migrations 1-5, 1 000 000 spend-log rows over 30 days (1000 keys, each
# of one of 500 users and 50 teams; 2000 end users; 3 models), then migration 10, which rolls the
# log up (timed: the upgrade of an existing database). `/global/spend/report`'s statements, from
# the log (before migration 10) and from the rollups (after), run as prepared statements
# (PREPARE/EXECUTE, as sqlx prepares them), each RUNS times; the script prints every timing.
#
#   scripts/million-spend-rows.sh postgres://llmgate@127.0.0.1:15432/llmgate [RUNS]
#
# It creates (and at the end drops) a database named llmgate_million_<pid> on that server.
set -euo pipefail
base="${1:?usage: $0 postgres://user@host:port/db [runs]}"
runs="${2:-5}"
here="$(cd "$(dirname "$0")/.." && pwd)"
mig="$here/src/store/sql/migrations"
db="llmgate_million_$$"
psql -q "$base" -c "CREATE DATABASE $db"
trap 'psql -q "$base" -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true' EXIT
url="${base%/*}/$db"
q() { psql -X -q -v ON_ERROR_STOP=1 "$url" "$@"; }

for m in 0001 0002 0003 0004 0005; do q -f "$mig/${m}"_*.sql; done
echo "filling 1 000 000 rows"
q <<'SQL'
INSERT INTO llmgate_spend_logs (request_id, api_key, key_alias, team_id, user_id, model_group, model, model_id, custom_llm_provider, prompt_tokens, completion_tokens, total_tokens, spend, start_time, end_time, latency_ms, cache_hit, status, request_tags, end_user)
SELECT 'req-' || i, 'key-' || (i % 1000), NULL, 'team-' || (i % 1000 % 50), 'user-' || (i % 1000 % 500),
       'group-' || (i % 3), 'model-' || (i % 3), 'dep-' || (i % 3), 'openai',
       10 + i % 50, 20 + i % 30, 30 + i % 50 + i % 30, 0.00001 * (1 + i % 100),
       1700000000000 + (i * 2592) , 1700000000000 + (i * 2592) + 500, 500, 0,
       CASE WHEN i % 50 = 0 THEN 'failure' ELSE 'success' END, '[]', 'end-user-' || (i % 2000)
FROM generate_series(CAST(1 AS BIGINT), 1000000) AS i;
VACUUM ANALYZE llmgate_spend_logs;
SQL

# $1, $2 the period (ms), $3 key, $4 user, $5 team, $6 end user: the log (src/store/sql/spend.rs).
raw="SELECT CAST(s.start_time / 86400000 AS BIGINT) AS day, s.team_id, t.team_alias, s.end_user, s.api_key, COALESCE(s.model, '') AS model, CAST(SUM(s.spend) AS DOUBLE PRECISION) AS spend, CAST(SUM(s.prompt_tokens) AS BIGINT) AS prompt_tokens, CAST(SUM(s.completion_tokens) AS BIGINT) AS completion_tokens, CAST(SUM(s.total_tokens) AS BIGINT) AS total_tokens FROM llmgate_spend_logs s LEFT JOIN llmgate_teams t ON t.team_id = s.team_id WHERE s.start_time >= \$1 AND s.start_time < \$2 AND (CAST(\$3 AS TEXT) IS NULL OR s.api_key = \$3) AND (CAST(\$4 AS TEXT) IS NULL OR s.user_id = \$4) AND (CAST(\$5 AS TEXT) IS NULL OR s.team_id = \$5) AND (CAST(\$6 AS TEXT) IS NULL OR s.end_user = \$6) GROUP BY CAST(s.start_time / 86400000 AS BIGINT), s.team_id, t.team_alias, s.end_user, s.api_key, COALESCE(s.model, '') ORDER BY 1, 2, 4, 5, 6"
# $1, $2 first and last day, $3 team (or user, or end user), $4 key: the rollups
# (src/store/sql/rollup.rs, REPORT_TEAM / REPORT_END_USER).
team="SELECT d.day, d.team_id AS entity, t.team_alias, d.api_key, d.model, CAST(SUM(d.spend) AS DOUBLE PRECISION) AS spend, CAST(SUM(d.prompt_tokens) AS BIGINT) AS prompt_tokens, CAST(SUM(d.completion_tokens) AS BIGINT) AS completion_tokens FROM llmgate_daily_team_spend d LEFT JOIN llmgate_teams t ON t.team_id = d.team_id WHERE d.day >= \$1 AND d.day <= \$2 AND (CAST(\$3 AS TEXT) IS NULL OR d.team_id = \$3) AND (CAST(\$4 AS TEXT) IS NULL OR d.api_key = \$4) GROUP BY d.day, d.team_id, t.team_alias, d.api_key, d.model"
enduser="SELECT d.day, d.end_user_id AS entity, d.api_key, d.model, CAST(SUM(d.spend) AS DOUBLE PRECISION) AS spend, CAST(SUM(d.prompt_tokens) AS BIGINT) AS prompt_tokens, CAST(SUM(d.completion_tokens) AS BIGINT) AS completion_tokens FROM llmgate_daily_end_user_spend d WHERE d.day >= \$1 AND d.day <= \$2 AND (CAST(\$3 AS TEXT) IS NULL OR d.end_user_id = \$3) AND (CAST(\$4 AS TEXT) IS NULL OR d.api_key = \$4) GROUP BY d.day, d.end_user_id, d.api_key, d.model"

d0=$((1700000000000 / 86400000 + 1))      # the first whole day
ms0=$((d0 * 86400000))
timed() { # label, prepare, execute
  local out
  out="$( { printf '%s;\n\\timing on\n' "$2"; for _ in $(seq "$runs"); do printf '%s;\n' "$3"; done; } \
    | q -o /dev/null 2>&1 | grep -o 'Time: [0-9.]* ms' | sed 's/Time: //; s/ ms//' | tr '\n' ' ')"
  printf '%-44s %s\n' "$1" "$out"
}
echo "== from the log (ms per run)"
P="PREPARE r(bigint, bigint, text, text, text, text) AS $raw"
timed "one day, every team" "$P" "EXECUTE r($ms0, $((ms0 + 86400000)), NULL, NULL, NULL, NULL)"
timed "one team, 30 days" "$P" "EXECUTE r($((ms0 - 86400000)), $((ms0 + 29 * 86400000)), NULL, NULL, 'team-7', NULL)"
timed "everything, 30 days" "$P" "EXECUTE r($((ms0 - 86400000)), $((ms0 + 29 * 86400000)), NULL, NULL, NULL, NULL)"

echo "== migration 10 (rolls the log up)"
start=$(date +%s%N)
q -f "$mig"/0010_*.sql
echo "migration 10: $(( ($(date +%s%N) - start) / 1000000 )) ms"
q -c "VACUUM ANALYZE llmgate_daily_team_spend" -c "VACUUM ANALYZE llmgate_daily_end_user_spend" -c "VACUUM ANALYZE llmgate_daily_user_spend"
q -t -c "SELECT 'rollup rows: team ' || (SELECT COUNT(*) FROM llmgate_daily_team_spend) || ', user ' || (SELECT COUNT(*) FROM llmgate_daily_user_spend) || ', end user ' || (SELECT COUNT(*) FROM llmgate_daily_end_user_spend)"

echo "== from the rollups (ms per run)"
P="PREPARE r(bigint, bigint, text, text) AS $team"
timed "one day, every team" "$P" "EXECUTE r($d0, $d0, NULL, NULL)"
timed "one team, 30 days" "$P" "EXECUTE r($((d0 - 1)), $((d0 + 28)), 'team-7', NULL)"
timed "everything, 30 days" "$P" "EXECUTE r($((d0 - 1)), $((d0 + 28)), NULL, NULL)"
timed "one key, 30 days (group_by=api_key)" "$P" "EXECUTE r($((d0 - 1)), $((d0 + 28)), NULL, 'key-7')"
P="PREPARE r(bigint, bigint, text, text) AS $enduser"
timed "customers, everything, 30 days" "$P" "EXECUTE r($((d0 - 1)), $((d0 + 28)), NULL, NULL)"
timed "one customer, 30 days" "$P" "EXECUTE r($((d0 - 1)), $((d0 + 28)), 'end-user-7', NULL)"
