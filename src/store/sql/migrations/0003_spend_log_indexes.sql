-- /spend/logs by user, team or key, newest first, stays an index range scan on a large log
-- (a user with few rows among a million: ~600 ms without, ~0.1-3 ms with; docs/governance.md).
CREATE INDEX IF NOT EXISTS llmgate_spend_logs_user_start ON llmgate_spend_logs (user_id, start_time);
CREATE INDEX IF NOT EXISTS llmgate_spend_logs_team_start ON llmgate_spend_logs (team_id, start_time);
CREATE INDEX IF NOT EXISTS llmgate_spend_logs_key_start ON llmgate_spend_logs (api_key, start_time);
