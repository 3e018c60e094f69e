"""LiteLLM reads what llmgate writes: rows llmgate wrote into LiteLLM's own tables, loaded with
LiteLLM's own pydantic types (`litellm.proxy._types`: what its proxy builds from these rows) and
checked with LiteLLM's own functions (`hash_token` for keys and UI passwords).

Input (stdin): {"tables": {"<table>": [row, ...]}, "key": "<the key llmgate made>",
"password": "<the UI password llmgate set>"}, rows as PostgreSQL's `row_to_json`.
Output (stdout): one JSON object of what LiteLLM's types read. Any failure: a traceback, exit 1.
Run by tests/litellm_db.rs with LLMGATE_PYTHON (`bash .ci/test` installs litellm into it).
"""

import json
import os
import secrets
import sys

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from litellm.proxy import _types as T  # noqa: E402
# The same function as `litellm.proxy.utils.hash_token` (which needs FastAPI to import).
from litellm.types.proxy.auth.user_api_key_auth import hash_token  # noqa: E402

data = json.load(sys.stdin)
tables = data["tables"]
out = {}


def one(table):
    rows = tables[table]
    assert len(rows) == 1, (table, rows)
    return rows[0]


# Keys: the row as LiteLLM's auth loads it, and LiteLLM's own hash of the key.
key = T.LiteLLM_VerificationToken(**one("LiteLLM_VerificationToken"))
assert key.token == hash_token(data["key"]), "the key's token is LiteLLM's hash of the key"
out["key"] = {
    "token_matches": True,
    "key_alias": key.key_alias,
    "team_id": key.team_id,
    "user_id": key.user_id,
    "models": key.models,
    "max_budget": key.max_budget,
    "spend": key.spend,
    "metadata": key.metadata,
}

# The team with its model aliases (LiteLLM_ModelTable, linked by model_id).
team_row = one("LiteLLM_TeamTable")
model_row = one("LiteLLM_ModelTable")
team = T.LiteLLM_TeamTable(**team_row)
# Prisma maps the column `aliases` to the field `model_aliases` (`@map("aliases")`).
model = T.LiteLLM_ModelTable(**{**model_row, "model_aliases": model_row["aliases"]})
assert team_row["model_id"] == model_row["id"], "the team points at its model table row"
aliases = model.model_aliases
if isinstance(aliases, str):
    aliases = json.loads(aliases)
out["team"] = {
    "team_id": team.team_id,
    "members_with_roles": [m.model_dump() for m in team.members_with_roles],
    "spend": team.spend,
    "model_aliases": aliases,
}

# The member's budget in the team: the membership and its budget row.
budget = T.LiteLLM_BudgetTable(**one("LiteLLM_BudgetTable"))
membership = T.LiteLLM_TeamMembership(
    **one("LiteLLM_TeamMembership"), litellm_budget_table=budget
)
out["membership"] = {
    "user_id": membership.user_id,
    "team_id": membership.team_id,
    "spend": membership.spend,
    "max_budget_in_team": membership.litellm_budget_table.max_budget,
}

# The user; its UI password checked as LiteLLM's sign-in checks it (login_utils). llmgate writes
# an Argon2id string there (docs/ui.md), which LiteLLM's row type loads and its sign-in does not
# accept: the test reports both.
user_row = one("LiteLLM_UserTable")
user = T.LiteLLM_UserTable(**user_row)
stored = user_row["password"]
pw = data["password"]
out["user"] = {
    "user_id": user.user_id,
    "user_role": user.user_role,
    "teams": user.teams,
    "spend": user.spend,
    "password_is_argon2id": stored.startswith("$argon2id$"),
    "password_accepted": secrets.compare_digest(pw, stored)
    or secrets.compare_digest(hash_token(token=pw), stored),
    "wrong_password_accepted": secrets.compare_digest(pw + "x", stored)
    or secrets.compare_digest(hash_token(token=pw + "x"), stored),
}

# The end user with its region.
end_user = T.LiteLLM_EndUserTable(**one("LiteLLM_EndUserTable"))
out["end_user"] = {
    "user_id": end_user.user_id,
    "allowed_model_region": end_user.allowed_model_region,
    "spend": end_user.spend,
}

# Spend-log rows as LiteLLM's /spend/logs returns them (its type has the columns it reads; the
# newer ones, `team_id`, `end_user`, `status`, `model_group`, are read from the row as its UI does).
out["spend_logs"] = []
for r in tables["LiteLLM_SpendLogs"]:
    # The type declares `metadata` and `request_tags` as pydantic `Json` (JSON text, as a raw
    # query returns a JSONB column): given as text, their JSON is parsed and checked.
    as_text = {k: json.dumps(r[k]) for k in ("metadata", "request_tags") if r.get(k) is not None}
    s = T.LiteLLM_SpendLogs(**{**r, **as_text})
    assert s.metadata["user_api_key"] == r["api_key"], s.metadata
    out["spend_logs"].append(
        {
            "request_id": s.request_id,
            "api_key": s.api_key,
            "call_type": s.call_type,
            "user": s.user,
            "spend": s.spend,
            "total_tokens": s.total_tokens,
            "start_before_end": s.startTime <= s.endTime,
            "team_id": r["team_id"],
            "end_user": r["end_user"],
            "status": r["status"],
            "model_group": r["model_group"],
        }
    )
json.dump(out, sys.stdout)
