-- The Responses API store (issue 20): the answers the gateway made through the chat bridge
-- (kind 'made': the response object, this turn's input and output items as JSON text, the id it
-- continues) and the responses an OpenAI or Azure deployment made (kind 'relayed': the deployment
-- and model group). owner is the SHA-256 of the key that created it; times are Unix seconds.
CREATE TABLE IF NOT EXISTS llmgate_responses (id TEXT NOT NULL, kind TEXT NOT NULL, owner TEXT NOT NULL, response TEXT, input TEXT, output TEXT, previous_id TEXT, deployment TEXT, model_group TEXT, created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, PRIMARY KEY (id, kind));
CREATE INDEX IF NOT EXISTS llmgate_responses_previous ON llmgate_responses (previous_id);
CREATE INDEX IF NOT EXISTS llmgate_responses_expires ON llmgate_responses (expires_at)
