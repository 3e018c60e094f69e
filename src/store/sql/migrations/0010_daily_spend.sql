-- Daily spend rollups, as LiteLLM keeps them (LiteLLM_DailyUserSpend, LiteLLM_DailyTeamSpend,
-- LiteLLM_DailyEndUserSpend, LiteLLM_DailyTagSpend): one row per (entity, UTC day, key, model,
-- provider), added to by the spend writer in the same transaction as the spend-log rows.
-- `day` is days since 1970-01-01 (llmgate's tables keep times as numbers), '' stands for
-- "none" (a call without a user or team, or without a model or provider), as in LiteLLM.
-- /global/spend/report and /user|team/daily/activity read these instead of the log.
CREATE TABLE IF NOT EXISTS llmgate_daily_user_spend (
    user_id TEXT NOT NULL,
    day BIGINT NOT NULL,
    api_key TEXT NOT NULL,
    model TEXT NOT NULL,
    custom_llm_provider TEXT NOT NULL,
    model_group TEXT,
    prompt_tokens BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    spend DOUBLE PRECISION NOT NULL DEFAULT 0,
    api_requests BIGINT NOT NULL DEFAULT 0,
    successful_requests BIGINT NOT NULL DEFAULT 0,
    failed_requests BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, day, api_key, model, custom_llm_provider)
);
CREATE INDEX IF NOT EXISTS llmgate_daily_user_spend_day ON llmgate_daily_user_spend (day);
CREATE TABLE IF NOT EXISTS llmgate_daily_team_spend (
    team_id TEXT NOT NULL,
    day BIGINT NOT NULL,
    api_key TEXT NOT NULL,
    model TEXT NOT NULL,
    custom_llm_provider TEXT NOT NULL,
    model_group TEXT,
    prompt_tokens BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    spend DOUBLE PRECISION NOT NULL DEFAULT 0,
    api_requests BIGINT NOT NULL DEFAULT 0,
    successful_requests BIGINT NOT NULL DEFAULT 0,
    failed_requests BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (team_id, day, api_key, model, custom_llm_provider)
);
CREATE INDEX IF NOT EXISTS llmgate_daily_team_spend_day ON llmgate_daily_team_spend (day);
CREATE TABLE IF NOT EXISTS llmgate_daily_end_user_spend (
    end_user_id TEXT NOT NULL,
    day BIGINT NOT NULL,
    api_key TEXT NOT NULL,
    model TEXT NOT NULL,
    custom_llm_provider TEXT NOT NULL,
    model_group TEXT,
    prompt_tokens BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    spend DOUBLE PRECISION NOT NULL DEFAULT 0,
    api_requests BIGINT NOT NULL DEFAULT 0,
    successful_requests BIGINT NOT NULL DEFAULT 0,
    failed_requests BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (end_user_id, day, api_key, model, custom_llm_provider)
);
CREATE INDEX IF NOT EXISTS llmgate_daily_end_user_spend_day ON llmgate_daily_end_user_spend (day);
CREATE TABLE IF NOT EXISTS llmgate_daily_tag_spend (
    tag TEXT NOT NULL,
    day BIGINT NOT NULL,
    api_key TEXT NOT NULL,
    model TEXT NOT NULL,
    custom_llm_provider TEXT NOT NULL,
    model_group TEXT,
    prompt_tokens BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    spend DOUBLE PRECISION NOT NULL DEFAULT 0,
    api_requests BIGINT NOT NULL DEFAULT 0,
    successful_requests BIGINT NOT NULL DEFAULT 0,
    failed_requests BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tag, day, api_key, model, custom_llm_provider)
);
CREATE INDEX IF NOT EXISTS llmgate_daily_tag_spend_day ON llmgate_daily_tag_spend (day);
-- An existing log is rolled up once (tags excepted: their rollup starts here). The whole
-- log is read: on a million rows this took a few seconds (docs/governance.md).
INSERT INTO llmgate_daily_user_spend (user_id, day, api_key, model, custom_llm_provider, model_group, prompt_tokens, completion_tokens, spend, api_requests, successful_requests, failed_requests, created_at, updated_at)
SELECT COALESCE(user_id, ''), start_time / 86400000, api_key, COALESCE(model, ''), COALESCE(custom_llm_provider, ''), MAX(model_group), SUM(prompt_tokens), SUM(completion_tokens), SUM(spend), COUNT(*), SUM(CASE WHEN status = 'success' THEN 1 ELSE 0 END), SUM(CASE WHEN status = 'success' THEN 0 ELSE 1 END), MAX(end_time), MAX(end_time)
FROM llmgate_spend_logs WHERE 1 = 1
GROUP BY COALESCE(user_id, ''), start_time / 86400000, api_key, COALESCE(model, ''), COALESCE(custom_llm_provider, '')
ON CONFLICT (user_id, day, api_key, model, custom_llm_provider) DO NOTHING;
INSERT INTO llmgate_daily_team_spend (team_id, day, api_key, model, custom_llm_provider, model_group, prompt_tokens, completion_tokens, spend, api_requests, successful_requests, failed_requests, created_at, updated_at)
SELECT COALESCE(team_id, ''), start_time / 86400000, api_key, COALESCE(model, ''), COALESCE(custom_llm_provider, ''), MAX(model_group), SUM(prompt_tokens), SUM(completion_tokens), SUM(spend), COUNT(*), SUM(CASE WHEN status = 'success' THEN 1 ELSE 0 END), SUM(CASE WHEN status = 'success' THEN 0 ELSE 1 END), MAX(end_time), MAX(end_time)
FROM llmgate_spend_logs WHERE 1 = 1
GROUP BY COALESCE(team_id, ''), start_time / 86400000, api_key, COALESCE(model, ''), COALESCE(custom_llm_provider, '')
ON CONFLICT (team_id, day, api_key, model, custom_llm_provider) DO NOTHING;
INSERT INTO llmgate_daily_end_user_spend (end_user_id, day, api_key, model, custom_llm_provider, model_group, prompt_tokens, completion_tokens, spend, api_requests, successful_requests, failed_requests, created_at, updated_at)
SELECT end_user, start_time / 86400000, api_key, COALESCE(model, ''), COALESCE(custom_llm_provider, ''), MAX(model_group), SUM(prompt_tokens), SUM(completion_tokens), SUM(spend), COUNT(*), SUM(CASE WHEN status = 'success' THEN 1 ELSE 0 END), SUM(CASE WHEN status = 'success' THEN 0 ELSE 1 END), MAX(end_time), MAX(end_time)
FROM llmgate_spend_logs WHERE end_user IS NOT NULL AND end_user <> ''
GROUP BY end_user, start_time / 86400000, api_key, COALESCE(model, ''), COALESCE(custom_llm_provider, '')
ON CONFLICT (end_user_id, day, api_key, model, custom_llm_provider) DO NOTHING
