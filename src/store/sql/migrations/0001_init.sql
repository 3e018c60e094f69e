-- llmgate governance schema, portable between SQLite and PostgreSQL.
-- Timestamps are Unix milliseconds (BIGINT); lists and maps are JSON text; booleans are 0/1.
CREATE TABLE IF NOT EXISTS llmgate_teams (
    team_id TEXT PRIMARY KEY,
    team_alias TEXT,
    models TEXT NOT NULL DEFAULT '[]',
    spend DOUBLE PRECISION NOT NULL DEFAULT 0,
    max_budget DOUBLE PRECISION,
    budget_duration TEXT,
    budget_reset_at BIGINT,
    tpm_limit BIGINT,
    rpm_limit BIGINT,
    max_parallel_requests BIGINT,
    metadata TEXT NOT NULL DEFAULT '{}',
    members TEXT NOT NULL DEFAULT '[]',
    blocked BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS llmgate_users (
    user_id TEXT PRIMARY KEY,
    user_email TEXT,
    user_role TEXT,
    models TEXT NOT NULL DEFAULT '[]',
    spend DOUBLE PRECISION NOT NULL DEFAULT 0,
    max_budget DOUBLE PRECISION,
    budget_duration TEXT,
    budget_reset_at BIGINT,
    tpm_limit BIGINT,
    rpm_limit BIGINT,
    max_parallel_requests BIGINT,
    metadata TEXT NOT NULL DEFAULT '{}',
    teams TEXT NOT NULL DEFAULT '[]',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS llmgate_keys (
    token TEXT PRIMARY KEY,
    key_name TEXT,
    key_alias TEXT,
    models TEXT NOT NULL DEFAULT '[]',
    spend DOUBLE PRECISION NOT NULL DEFAULT 0,
    max_budget DOUBLE PRECISION,
    budget_duration TEXT,
    budget_reset_at BIGINT,
    tpm_limit BIGINT,
    rpm_limit BIGINT,
    max_parallel_requests BIGINT,
    metadata TEXT NOT NULL DEFAULT '{}',
    team_id TEXT,
    user_id TEXT,
    expires BIGINT,
    blocked BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS llmgate_keys_team ON llmgate_keys (team_id);
CREATE INDEX IF NOT EXISTS llmgate_keys_user ON llmgate_keys (user_id);
CREATE INDEX IF NOT EXISTS llmgate_keys_alias ON llmgate_keys (key_alias);
CREATE TABLE IF NOT EXISTS llmgate_spend_logs (
    request_id TEXT PRIMARY KEY,
    api_key TEXT NOT NULL,
    key_alias TEXT,
    team_id TEXT,
    user_id TEXT,
    model_group TEXT NOT NULL,
    model TEXT,
    model_id TEXT,
    custom_llm_provider TEXT,
    prompt_tokens BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    total_tokens BIGINT NOT NULL DEFAULT 0,
    spend DOUBLE PRECISION NOT NULL DEFAULT 0,
    start_time BIGINT NOT NULL,
    end_time BIGINT NOT NULL,
    latency_ms BIGINT NOT NULL,
    cache_hit BIGINT NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    request_tags TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS llmgate_spend_logs_key ON llmgate_spend_logs (api_key);
CREATE INDEX IF NOT EXISTS llmgate_spend_logs_start ON llmgate_spend_logs (start_time)
