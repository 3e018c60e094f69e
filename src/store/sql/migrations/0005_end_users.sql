-- End users, the callers' customers (LiteLLM's LiteLLM_EndUserTable; `/customer/*`): a
-- request's `user`. Limits live in the budget row (llmgate_budgets), as in LiteLLM.
CREATE TABLE IF NOT EXISTS llmgate_end_users (
    user_id TEXT PRIMARY KEY,
    alias TEXT,
    spend DOUBLE PRECISION NOT NULL DEFAULT 0,
    allowed_model_region TEXT,
    default_model TEXT,
    budget_id TEXT,
    blocked BIGINT NOT NULL DEFAULT 0
);
ALTER TABLE llmgate_spend_logs ADD COLUMN end_user TEXT;
CREATE INDEX IF NOT EXISTS llmgate_spend_logs_end_user ON llmgate_spend_logs (end_user)
