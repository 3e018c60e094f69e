-- Model-specific key budgets (LiteLLM's `model_max_budget` and `model_spend` on
-- LiteLLM_VerificationToken): JSON text, model -> budget and model -> spend this period.
ALTER TABLE llmgate_keys ADD COLUMN model_max_budget TEXT;
ALTER TABLE llmgate_keys ADD COLUMN model_spend TEXT
