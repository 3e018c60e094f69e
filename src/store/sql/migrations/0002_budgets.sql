-- Reusable budgets (LiteLLM's LiteLLM_BudgetTable; `/budget/*`).
CREATE TABLE IF NOT EXISTS llmgate_budgets (
    budget_id TEXT PRIMARY KEY,
    max_budget DOUBLE PRECISION,
    soft_budget DOUBLE PRECISION,
    budget_duration TEXT,
    budget_reset_at BIGINT,
    tpm_limit BIGINT,
    rpm_limit BIGINT,
    max_parallel_requests BIGINT,
    created_by TEXT NOT NULL DEFAULT '',
    updated_by TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
