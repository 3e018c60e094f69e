-- Per-member team budgets and team model aliases (issue 23; LiteLLM's LiteLLM_TeamMembership and
-- LiteLLM_ModelTable). Self-contained: applies after any subset of the other migrations.
-- A user's place in a team: its spend in the team and its own budget row (`max_budget_in_team`,
-- a row of llmgate_budgets).
CREATE TABLE IF NOT EXISTS llmgate_team_members (
    user_id TEXT NOT NULL,
    team_id TEXT NOT NULL,
    spend DOUBLE PRECISION NOT NULL DEFAULT 0,
    budget_id TEXT,
    PRIMARY KEY (user_id, team_id)
);
-- A team's model aliases (`model_aliases` on /team/new|update): a JSON object alias -> group.
CREATE TABLE IF NOT EXISTS llmgate_team_model_aliases (
    team_id TEXT PRIMARY KEY,
    aliases TEXT NOT NULL
)
