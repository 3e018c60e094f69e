-- Organizations (LiteLLM's LiteLLM_OrganizationTable and LiteLLM_OrganizationMembership;
-- `/organization/*`). An organization's limits live in its budget row (llmgate_budgets), as in
-- LiteLLM; its spend is every call of its teams.
CREATE TABLE IF NOT EXISTS llmgate_organizations (
    organization_id TEXT PRIMARY KEY,
    organization_alias TEXT NOT NULL,
    budget_id TEXT NOT NULL,
    models TEXT NOT NULL DEFAULT '[]',
    spend DOUBLE PRECISION NOT NULL DEFAULT 0,
    metadata TEXT NOT NULL DEFAULT '{}',
    created_by TEXT NOT NULL DEFAULT '',
    updated_by TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS llmgate_organization_members (
    user_id TEXT NOT NULL,
    organization_id TEXT NOT NULL,
    user_role TEXT,
    spend DOUBLE PRECISION NOT NULL DEFAULT 0,
    budget_id TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, organization_id)
);
CREATE INDEX IF NOT EXISTS llmgate_organization_members_org ON llmgate_organization_members (organization_id);
ALTER TABLE llmgate_teams ADD COLUMN organization_id TEXT;
CREATE INDEX IF NOT EXISTS llmgate_teams_org ON llmgate_teams (organization_id)
